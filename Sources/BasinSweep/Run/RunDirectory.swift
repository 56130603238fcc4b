import BasinNN
import Foundation

/// Everything about one run (DESIGN.md §4): `basin.lock`, `spec.yaml`, `study.json`,
/// `journal/`, `results/`, `summary.csv`, `status.json`.
public struct RunDirectory: Sendable {
    public let url: URL

    public init(_ url: URL) {
        self.url = url
    }

    public var journal: URL { url.appendingPathComponent("journal") }
    public var results: URL { url.appendingPathComponent("results") }
    public var specFile: URL { url.appendingPathComponent("spec.yaml") }
    public var studyFile: URL { url.appendingPathComponent("study.json") }
    public var statusFile: URL { url.appendingPathComponent("status.json") }
    public var summaryFile: URL { url.appendingPathComponent("summary.csv") }
    public var jobsFile: URL { url.appendingPathComponent("jobs.csv") }
    /// What the last run left undone (`RunProblems`).
    public var problemsFile: URL { url.appendingPathComponent("problems.json") }
    public var artifacts: URL { url.appendingPathComponent("artifacts") }

    /// The result file of a job: `results/<job name>.npz`.
    public func result(_ name: String) -> URL { results.appendingPathComponent(name + ".npz") }

    /// Takes the run's exclusive lock (held until `RunLock` is released or the process exits).
    public func lock() throws -> RunLock {
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return try RunLock(url.appendingPathComponent("basin.lock"))
    }
}

/// `flock` on `basin.lock`: one coordinator per run directory.
public final class RunLock {
    private let descriptor: Int32

    init(_ url: URL) throws {
        descriptor = open(url.path, O_RDWR | O_CREAT, 0o644)
        guard descriptor >= 0 else {
            throw RunDirectoryError.cannotLock(url.deletingLastPathComponent(), reason: String(cString: strerror(errno)))
        }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            let owner =
                (try? String(contentsOf: url, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "?"
            close(descriptor)
            throw RunDirectoryError.locked(url.deletingLastPathComponent(), owner: owner)
        }
        ftruncate(descriptor, 0)
        let pid = "\(getpid())\n"
        _ = pid.withCString { write(descriptor, $0, strlen($0)) }
    }

    deinit {
        flock(descriptor, LOCK_UN)
        close(descriptor)
    }
}
