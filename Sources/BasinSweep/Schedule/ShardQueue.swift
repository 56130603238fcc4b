import DequeModule

/// The shards waiting for a lease, in order: O(1) append, prepend, membership and removal
/// (removal is lazy: the entry stays in the deque and is skipped when reached), so no event
/// scans or shifts the queue. Membership is the truth; order is best effort after removals.
struct ShardQueue<Key: Hashable> {
    private var order: Deque<Key> = []
    private var members: Set<Key> = []

    /// Counts insertions: a worker that found nothing it could take need not look again until
    /// this changes.
    private(set) var version = 0

    var isEmpty: Bool { members.isEmpty }
    var count: Int { members.count }

    func contains(_ key: Key) -> Bool { members.contains(key) }

    mutating func append(_ key: Key) {
        if members.insert(key).inserted {
            order.append(key)
            version &+= 1
        }
    }

    /// Puts `key` first (a shard whose lease came back goes before new work).
    mutating func prepend(_ key: Key) {
        if members.insert(key).inserted {
            order.prepend(key)
            version &+= 1
        }
    }

    mutating func remove(_ key: Key) {
        members.remove(key)
        compact()
    }

    mutating func removeAll(where predicate: (Key) -> Bool) {
        members = members.filter { !predicate($0) }
        compact()
    }

    /// Removes and returns the first key `accepts` takes; `limit` bounds the scan when most
    /// keys are refused (a worker restricted to few job kinds).
    mutating func popFirst(limit: Int = .max, where accepts: (Key) -> Bool) -> Key? {
        while let first = order.first, !members.contains(first) { order.removeFirst() }
        var scanned = 0
        for index in order.indices {
            let key = order[index]
            guard members.contains(key) else { continue }
            if accepts(key) {
                members.remove(key)
                if index == order.startIndex { order.removeFirst() }
                compact()
                return key
            }
            scanned += 1
            if scanned >= limit { break }
        }
        return nil
    }

    /// Drops removed entries once they outnumber the live ones.
    private mutating func compact() {
        guard order.count > 2 * members.count + 1024 else { return }
        var seen = Set<Key>()
        order = Deque(order.filter { members.contains($0) && seen.insert($0).inserted })
    }
}
