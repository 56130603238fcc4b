import Foundation

/// The coordinator's worker connections: who each routing id is, when it was last heard and
/// last sent to (liveness and heartbeats), and which jobs it has been told about. Each
/// connection has a number, which is what the `ShardScheduler` knows it by. Pure; the time
/// comes in.
struct WorkerRegistry {
    struct Connection {
        var number: Int
        /// The name it gave and the same, escaped, for log lines.
        var name: String
        var label: String
        /// Name, host and pid: what quarantine and distinct-worker counts go by.
        var identity: String
        var lastHeard: Double
        var lastSent: Double
        /// Jobs whose definition and spec it has been sent.
        var knownJobs: Set<Int> = []
    }

    private(set) var connections: [Data: Connection] = [:]
    private var peers: [Int: Data] = [:]
    private var nextNumber = 1

    var count: Int { connections.count }
    var routingIds: Dictionary<Data, Connection>.Keys { connections.keys }

    subscript(peer: Data) -> Connection? { connections[peer] }

    func peer(_ number: Int) -> Data? { peers[number] }

    /// Adds a connection; returns its number.
    mutating func add(_ peer: Data, name: String, label: String, identity: String, now: Double) -> Int {
        let number = nextNumber
        nextNumber += 1
        connections[peer] = Connection(
            number: number, name: name, label: label, identity: identity, lastHeard: now, lastSent: now)
        peers[number] = peer
        return number
    }

    @discardableResult
    mutating func remove(_ peer: Data) -> Connection? {
        guard let gone = connections.removeValue(forKey: peer) else { return nil }
        peers[gone.number] = nil
        return gone
    }

    mutating func heard(_ peer: Data, now: Double) { connections[peer]?.lastHeard = now }
    mutating func sent(_ peer: Data, now: Double) { connections[peer]?.lastSent = now }

    /// Records that `peer` is told about `job`; false when it already was.
    mutating func learn(_ peer: Data, job: Int) -> Bool {
        connections[peer]?.knownJobs.insert(job).inserted ?? false
    }

    /// Connections silent for longer than `deadAfter` (with the seconds), and those due a
    /// heartbeat (marked as sent to now).
    mutating func check(now: Double, deadAfter: Double, heartbeat: Double) -> (silent: [(Data, Double)], due: [Data]) {
        var silent: [(Data, Double)] = [], due: [Data] = []
        for (peer, connection) in connections {
            if now - connection.lastHeard > deadAfter {
                silent.append((peer, now - connection.lastHeard))
            } else if now - connection.lastSent >= heartbeat {
                due.append(peer)
            }
        }
        for peer in due { connections[peer]?.lastSent = now }
        return (silent, due)
    }
}
