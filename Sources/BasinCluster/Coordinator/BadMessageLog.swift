import Foundation

/// Rate limit for log lines about bad messages, so a flood cannot fill the disk through the
/// log: the first bad message of a peer in a window is logged in full (at most `lines` of them
/// per window in all); the rest are counted and summarized once the window ends. Memory is
/// bounded: at most `peers` peers are tracked per window, the others count in one total.
struct BadMessageLog {
    let window: Double
    let lines: Int
    let peers = 1024
    private var windowStart: Double?
    private var fullLines = 0
    /// Per tracked peer: bad messages not logged in full this window.
    private var suppressed: [String: Int] = [:]
    private var untracked = 0

    init(window: Double, lines: Int) {
        self.window = window
        self.lines = lines
    }

    /// Whether the bad message from `peer` at `now` gets a full line.
    mutating func admit(_ peer: String, now: Double) -> Bool {
        if windowStart == nil { windowStart = now }
        if let count = suppressed[peer] {
            suppressed[peer] = count + 1
            return false
        }
        guard fullLines < lines, suppressed.count < peers else {
            if suppressed.count < peers { suppressed[peer] = 1 } else { untracked += 1 }
            return false
        }
        fullLines += 1
        suppressed[peer] = 0
        return true
    }

    /// At the end of a window: one line per peer with bad messages not logged, and one for the
    /// untracked rest (peer, count); then a new window.
    mutating func summaries(now: Double) -> [(peer: String?, count: Int)] {
        guard let start = windowStart, now - start >= window else { return [] }
        let counted = suppressed.filter { $0.value > 0 }.sorted { $0.key < $1.key }
        var out: [(peer: String?, count: Int)] = counted.prefix(lines).map { (peer: $0.key, count: $0.value) }
        let rest = untracked + counted.dropFirst(lines).reduce(0) { $0 + $1.value }
        if rest > 0 { out.append((peer: nil, count: rest)) }
        windowStart = nil
        fullLines = 0
        suppressed = [:]
        untracked = 0
        return out
    }
}
