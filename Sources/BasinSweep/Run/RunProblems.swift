import BasinNN
import Foundation

/// `RUN/problems.json`: what the last run to finish or stop left undone, for `basin status`:
/// shards quarantined after failing on several workers (their points are NaN in the results,
/// `done` false) and jobs not run because a job they read failed. Written when a run ends; a
/// later run that ends with none writes it empty. Quarantine is not journaled, so a rerun tries
/// those shards again.
public struct RunProblems: Codable, Sendable, Equatable {
    public struct Quarantined: Codable, Sendable, Equatable {
        public var job: String
        public var shard: Int
        /// Points `start ..< end` of the job.
        public var start: Int
        public var end: Int
        /// Each failure's reason as the workers gave it.
        public var reasons: [String]

        public init(job: String, shard: Int, start: Int, end: Int, reasons: [String]) {
            self.job = job
            self.shard = shard
            self.start = start
            self.end = end
            self.reasons = reasons
        }
    }

    public struct NotRun: Codable, Sendable, Equatable {
        public var job: String
        /// The job it reads, which failed.
        public var because: String

        public init(job: String, because: String) {
            self.job = job
            self.because = because
        }
    }

    public var quarantined: [Quarantined]
    public var notRun: [NotRun]

    private enum CodingKeys: String, CodingKey { case quarantined, notRun = "not_run" }

    public init(quarantined: [Quarantined] = [], notRun: [NotRun] = []) {
        self.quarantined = quarantined
        self.notRun = notRun
    }

    public var isEmpty: Bool { quarantined.isEmpty && notRun.isEmpty }

    public func write(to url: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        try AtomicFile.write(try encoder.encode(self), to: url)
    }

    /// The file's problems; none when it is absent. A file that does not decode is an error
    /// naming it (it is Basin's own, so something damaged it).
    public static func read(_ url: URL) throws -> RunProblems {
        guard let data = try? Data(contentsOf: url) else { return RunProblems() }
        do {
            return try JSONDecoder().decode(Self.self, from: data)
        } catch {
            throw NNError("\(url.path): unreadable (\(error)); remove it, and the next run writes it again")
        }
    }
}
