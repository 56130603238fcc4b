import BasinSweep
import Foundation
import Logging

/// A sweep run from this machine: the coordinator on `bind` and, for `basin run`, local
/// worker processes. It owns what the command line should not: starting and stopping the
/// workers (by pid), `status.json` (true while it computes and while it serves, gone once it
/// stops), and SIGINT/SIGTERM (the journal is synced, the workers are stopped, and the run
/// says what it kept).
public final class LocalCluster {
    public struct Options: Sendable {
        public var bind: String
        public var curve: CurveServer?
        /// Local worker processes to start once the coordinator listens.
        public var workers = 0
        public var threads = 1
        /// The `basin` executable the workers run.
        public var executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()

        public init(bind: String, curve: CurveServer? = nil) {
            self.bind = bind
            self.curve = curve
        }
    }

    public enum End: Equatable, Sendable {
        /// Every shard is done or quarantined.
        case finished
        /// Nothing was left to compute; no coordinator or worker was started.
        case nothingToDo
        /// Stopped by a signal before the end (the journal holds what was done).
        case stopped(signal: Int32)
    }

    public let sweep: Sweep
    public let options: Options
    let logger: Logger
    let signals: SignalFlag
    /// Called about once a second with (points done, total, points/s, workers alive).
    public var onProgress: ((Int, Int, Double, Int) -> Void)?
    public private(set) var server: CoordinatorServer?
    private var children: [Process] = []

    /// Catches SIGINT and SIGTERM from here on.
    public init(sweep: Sweep, options: Options, logger: Logger) {
        self.sweep = sweep
        self.options = options
        self.logger = logger
        signals = SignalFlag()
    }

    deinit { stopWorkers(grace: 0) }

    /// Runs the sweep to its end or to a signal. With `serveWhenDone` the coordinator is
    /// started even when nothing is left to compute (to `serve()` late workers after).
    public func run(serveWhenDone: Bool = false) throws -> End {
        if sweep.remainingShards == 0 && !serveWhenDone {
            logger.info("every shard is journaled already: nothing to compute, no workers started")
            return .nothingToDo
        }
        var settings = CoordinatorCore.Settings()
        settings.leaseSeconds = sweep.spec.sweep.leaseSeconds
        settings.epoch = sweep.epoch
        settings.verify = sweep.spec.sweep.verify ?? 0
        var core = CoordinatorCore(
            study: sweep.study, spec: sweep.spec, base: sweep.executor.base.path,
            completed: sweep.completed, outputs: sweep.outputs, artifacts: sweep.store.hashes(), settings: settings)
        core.fileArtifacts = sweep.fileArtifacts
        let server = try CoordinatorServer(
            core: core, journal: sweep.journal, store: sweep.store, bind: options.bind, curve: options.curve,
            logger: logger)
        self.server = server
        let security = options.curve.map { " (CURVE, \($0.allowed.count) allowed worker key(s))" } ?? ""
        logger.info("coordinator listening on \(server.endpoint)\(security)")
        server.onProgress = { [weak self] done, total, rate, workers in
            self?.onProgress?(done, total, rate, workers)
            self?.writeStatus(.running, done: done, total: total, rate: rate, workers: workers)
        }
        defer { try? FileManager.default.removeItem(at: sweep.run.statusFile) }
        if options.workers > 0 { try startWorkers(endpoint: server.endpoint) }
        let signals = self.signals
        let finished = try server.run(until: { signals.raised != nil })
        // Workers that joined have heard DONE and said BYE; any still running never joined
        // (the sweep ended first) or is stuck: neither has anything to do.
        stopWorkers(grace: finished ? 0.5 : 2)
        if let signal = signals.raised, !finished { return .stopped(signal: signal) }
        return .finished
    }

    /// After `run`: stays up telling late workers DONE, with `status.json` saying so, until
    /// SIGINT or SIGTERM.
    public func serve() throws {
        guard let server else { return }
        logger.info("the sweep is finished; telling late workers DONE until SIGTERM or SIGINT")
        let signals = self.signals
        server.onProgress = { [weak self] done, total, rate, workers in
            self?.writeStatus(.serving, done: done, total: total, rate: rate, workers: workers)
        }
        defer { try? FileManager.default.removeItem(at: sweep.run.statusFile) }
        try server.serve(until: { signals.raised != nil })
        logger.info("stopping on a signal")
    }

    private func writeStatus(_ phase: LiveStatus.Phase, done: Int, total: Int, rate: Double, workers: Int) {
        let status = LiveStatus(
            time: Date().timeIntervalSince1970, phase: phase, workers: workers, done: done, total: total, rate: rate,
            endpoint: server?.endpoint ?? options.bind, pid: Int(getpid()))
        try? status.write(to: sweep.run.statusFile)
    }

    private func startWorkers(endpoint: String) throws {
        for index in 0..<options.workers {
            let child = Process()
            child.executableURL = options.executable
            child.arguments = [
                "worker", "--connect", endpoint, "--name", "local-\(index)-\(getpid())", "--threads",
                String(options.threads),
                // Same machine: the run's own store is the cache, so artifacts never move.
                "--cache", sweep.run.artifacts.path,
            ]
            try child.run()
            children.append(child)
        }
        logger.info(
            "started \(options.workers) local worker(s): pids \(children.map { String($0.processIdentifier) }.joined(separator: ", "))"
        )
    }

    /// SIGTERM to each local worker still running, SIGKILL to any left after `grace` seconds.
    private func stopWorkers(grace: Double) {
        let running = children.filter(\.isRunning)
        children = []
        guard !running.isEmpty else { return }
        for child in running { kill(child.processIdentifier, SIGTERM) }
        let deadline = Date().addingTimeInterval(grace)
        while running.contains(where: \.isRunning) && Date() < deadline { usleep(10_000) }
        for child in running where child.isRunning { kill(child.processIdentifier, SIGKILL) }
        for child in running { child.waitUntilExit() }
    }
}
