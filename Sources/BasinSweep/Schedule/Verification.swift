import Foundation

/// A shard being verified: the result stored, and a disagreeing one awaiting a third.
public struct Verification: Sendable {
    public struct Answer: Sendable, Equatable {
        public var identity: String
        public var label: String
        public var metrics: [Double]
        public var artifact: String?
        public var exact = true

        public init(identity: String, label: String, metrics: [Double], artifact: String?, exact: Bool) {
            self.identity = identity
            self.label = label
            self.metrics = metrics
            self.artifact = artifact
            self.exact = exact
        }
    }

    /// Relative and absolute tolerance when either answer is not from a Basin worker.
    public static let relativeTolerance = 1e-4
    public static let absoluteTolerance = 1e-6

    /// Equal bit for bit (values and artifact) when both come from Basin workers; else
    /// every value within the tolerance (NaN where the other is NaN).
    public static func agree(_ a: Answer, _ b: Answer) -> Bool {
        if a.exact && b.exact {
            return a.metrics.map(\.bitPattern) == b.metrics.map(\.bitPattern) && a.artifact == b.artifact
        }
        guard a.metrics.count == b.metrics.count else { return false }
        return zip(a.metrics, b.metrics).allSatisfy { x, y in
            (x.isNaN && y.isNaN) || x == y
                || abs(x - y) <= absoluteTolerance + relativeTolerance * max(abs(x), abs(y))
        }
    }

    /// Whether shard `shard` of job `job` is among the seeded fraction that is verified: the
    /// same shards on every run and machine.
    public static func selected(job: String, shard: Int, fraction: Double) -> Bool {
        guard fraction > 0 else { return false }
        guard fraction < 1 else { return true }
        let hash = ArtifactStore.hash(Data("verify:\(job):\(shard)".utf8))
        let draw = UInt64(hash.prefix(16), radix: 16) ?? 0
        return Double(draw >> 11) / Double(1 << 53) < fraction
    }

    var first: Answer
    var second: Answer?
    /// Identities that computed it: the next copy goes to another.
    var workers: Set<String>

    /// What verification found in a run.
    public struct Tally: Sendable, Equatable {
        public var selected = 0
        public var matched = 0
        public var mismatched = 0
        /// Shards whose stored result was voided because a worker lied.
        public var revoked = 0
        public var liars: [String] = []
    }
}
