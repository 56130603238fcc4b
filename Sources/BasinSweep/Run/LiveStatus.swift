import BasinNN
import Foundation

/// `RUN/status.json`: what a live coordinator says about itself, rewritten about once a second
/// and removed when it stops. `basin status` trusts it only while it is fresh.
public struct LiveStatus: Codable, Sendable, Equatable {
    public enum Phase: String, Codable, Sendable {
        /// Computing the sweep.
        case running
        /// The sweep is finished and merged; the coordinator stays up to tell late workers DONE.
        case serving
    }

    /// Unix time it was written.
    public var time: Double
    public var phase: Phase
    public var workers: Int
    public var done: Int
    public var total: Int
    /// Points per second lately.
    public var rate: Double
    public var endpoint: String
    public var pid: Int

    public init(
        time: Double, phase: Phase, workers: Int, done: Int, total: Int, rate: Double, endpoint: String, pid: Int
    ) {
        self.time = time
        self.phase = phase
        self.workers = workers
        self.done = done
        self.total = total
        self.rate = rate
        self.endpoint = endpoint
        self.pid = pid
    }

    /// Seconds after which a status nobody rewrote is a coordinator that is gone.
    public static let freshFor = 5.0

    public func write(to url: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        try AtomicFile.write(try encoder.encode(self), to: url)
    }

    /// The status at `url` when it is there, readable and fresh at `now` (Unix time).
    public static func read(_ url: URL, now: Double) -> LiveStatus? {
        guard let data = try? Data(contentsOf: url), let status = try? JSONDecoder().decode(Self.self, from: data),
            status.time.isFinite, now - status.time < freshFor
        else { return nil }
        return status
    }
}
