import ArgumentParser
import BasinCluster
import BasinNN
import BasinSweep
import Foundation
import Logging

/// Options shared by `basin run` and `basin coordinator`.
struct SweepOptions: ParsableArguments {
    @Argument(help: "Study spec (YAML): model, data, jobs, sweep settings.")
    var spec: String

    @Option(help: "Run directory (created, or resumed when it exists).")
    var out: String

    @Option(help: "OpenBLAS threads for in-process work.")
    var threads: Int = 1

    /// Opens the run directory for this spec and reports what changed since the last run.
    func open(logger: Logger) throws -> Sweep {
        BLAS.setThreads(threads)
        let (text, url) = try SpecFile.read(spec)
        let studySpec = try SpecFile.decode(StudySpec.self, from: text, source: spec)
        if let problem = studySpec.train.validationError() { throw NNError("\(spec): train: \(problem)") }
        guard !studySpec.jobs.isEmpty || studySpec.stages != nil else {
            throw NNError("\(spec): neither 'jobs' nor 'stages'; nothing to run")
        }
        let sweep: Sweep
        do {
            sweep = try Sweep(
                specText: text, spec: studySpec, base: url.deletingLastPathComponent().standardizedFileURL,
                directory: URL(fileURLWithPath: out))
        } catch let error as NNError where error.description.hasPrefix("jobs[") || error.description.hasPrefix("data") {
            throw NNError("\(spec): \(error.description)")
        }
        for line in sweep.changes { logger.info("\(line)") }
        let total = sweep.study.jobs.reduce(0) { $0 + $1.pointCount }
        let shards = sweep.study.jobs.reduce(0) { $0 + $1.shards.count }
        logger.info(
            "\(sweep.study.jobs.count) job(s), \(total) points in \(shards) shards; \(sweep.remainingShards) shard(s) to compute (epoch \(sweep.epoch))"
        )
        return sweep
    }

    /// Runs the sweep through a `LocalCluster` (the coordinator on `bind`, `workers` local
    /// workers), prints what came of it, merges; with `keepServing`, then stays up for late workers.
    func coordinate(
        _ sweep: Sweep, bind: String, curve: CurveServer? = nil, workers: Int = 0, keepServing: Bool = false,
        logger: Logger
    ) throws {
        var settings = LocalCluster.Options(bind: bind, curve: curve)
        settings.workers = workers
        settings.threads = threads
        let cluster = LocalCluster(sweep: sweep, options: settings, logger: logger)
        let display = ProgressDisplay(logger: logger)
        cluster.onProgress = { done, total, rate, workers in
            display.show(done: done, total: total, rate: rate, workers: workers)
        }
        let end = try cluster.run(serveWhenDone: keepServing)
        display.finish()
        if case .stopped(let signal) = end {
            try stopped(
                sweep, by: signal, done: cluster.server?.core.pointsDone ?? 0, total: cluster.server?.core.pointsTotal ?? 0)
        }
        let core = cluster.server?.core
        if let core, sweep.spec.sweep.verify ?? 0 > 0 {
            let tally = core.verification
            var line =
                "verify: \(tally.selected) shard(s) selected, \(tally.matched) matched bit for bit, \(tally.mismatched) mismatch(es)"
            if core.unverifiable > 0 { line += ", \(core.unverifiable) without a second worker to check them" }
            if !tally.liars.isEmpty {
                line += "; quarantined \(tally.liars.joined(separator: ", ")) and computed \(tally.revoked) result(s) again"
            }
            logger.info("\(line)")
        }
        let outcome = Result { try finish(sweep, quarantine: core?.quarantine ?? [], blocked: core?.blockedJobs ?? [], logger: logger) }
        if keepServing { try cluster.serve() }
        try outcome.get()
    }

    /// A run a signal stopped: says what the journal kept, and exits 128 + the signal.
    func stopped(_ sweep: Sweep, by signal: Int32, done: Int, total: Int) throws -> Never {
        print(
            "stopped by \(SignalFlag.name(signal)): \(done)/\(total) points are journaled in \(sweep.run.url.path); run the same command again to resume"
        )
        throw ExitCode(128 + signal)
    }

    /// Merges, prints where the results are, and fails when shards were quarantined.
    func finish(
        _ sweep: Sweep, quarantine: [(job: String, shard: Int, points: Range<Int>, reasons: [String])],
        blocked: [(job: String, because: String)] = [], logger: Logger
    ) throws {
        let (done, total) = try sweep.merge()
        try? FileManager.default.removeItem(at: sweep.run.statusFile)
        if let summary = try sweep.summary() { print(summary.table()) }
        print("\(done)/\(total) points; results in \(sweep.run.results.path), summary in \(sweep.run.summaryFile.path)")
        for entry in blocked { print("not run: \(entry.job), because \(entry.because) failed") }
        if !quarantine.isEmpty {
            for entry in quarantine {
                print(
                    "missing: \(entry.job) points \(entry.points.lowerBound)..<\(entry.points.upperBound) (shard \(entry.shard)): \(entry.reasons.joined(separator: "; "))"
                )
            }
            throw NNError(
                "\(quarantine.count) shard(s) failed on several workers and were quarantined; the results mark their points NaN (done = false)"
            )
        }
    }
}

/// `basin run`: coordinator plus N local worker processes (or in-process with 0); resumes.
struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a study: a coordinator and N local worker processes (--workers 0: in this process). Resumes OUT."
    )

    @OptionGroup var options: SweepOptions

    @Option(help: "Local worker processes (0: compute in this process).")
    var workers: Int = 2

    @Option(help: "Endpoint for the coordinator (loopback unless told otherwise; port 0 picks a free one).")
    var bind: String = "tcp://127.0.0.1:0"

    func validate() throws {
        guard workers >= 0 else { throw ValidationError("--workers must be at least 0") }
    }

    func run() throws {
        let logger = Logger(label: "basin.run")
        let sweep = try options.open(logger: logger)
        if workers == 0 {
            let display = ProgressDisplay(logger: logger)
            let signals = SignalFlag()
            let scheduler = try sweep.runLocally(
                events: { logger.log(.schedule($0)) },
                progress: { done, total in display.show(done: done, total: total, rate: nil, workers: 0) },
                until: { signals.raised != nil })
            display.finish()
            if let signal = signals.raised, !scheduler.isFinished {
                try options.stopped(sweep, by: signal, done: scheduler.pointsDone, total: scheduler.pointsTotal)
            }
            try options.finish(sweep, quarantine: scheduler.quarantine, blocked: scheduler.blockedJobs, logger: logger)
            return
        }
        try options.coordinate(
            sweep, bind: bind.replacingOccurrences(of: ":0", with: ":*"), workers: workers, logger: logger)
    }
}

/// `basin coordinator`: the coordinator alone; workers connect from anywhere.
struct CoordinatorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "coordinator",
        abstract: "Run a study's coordinator; workers join with `basin worker --connect`. Resumes OUT."
    )

    @OptionGroup var options: SweepOptions

    @Option(
        help:
            "Endpoint to bind, e.g. tcp://127.0.0.1:5555 (loopback unless told otherwise; tcp://*:5555 for all interfaces)."
    )
    var bind: String = "tcp://127.0.0.1:5555"

    @Option(name: .customLong("curve-secret"), help: "CURVE: this coordinator's key pair (NAME.key from basin keygen).")
    var curveSecret: String?

    @Option(name: .customLong("curve-allow"), help: "CURVE: directory of allowed worker public keys (*.pub).")
    var curveAllow: String?

    @Flag(
        name: .customLong("keep-serving"),
        help:
            "After the sweep and the merge, stay up (telling late workers DONE) until SIGTERM: for supervisors that restart a coordinator that exits, like a Kubernetes StatefulSet."
    )
    var keepServing = false

    func validate() throws {
        guard (curveSecret == nil) == (curveAllow == nil) else {
            throw ValidationError("CURVE needs both --curve-secret and --curve-allow")
        }
    }

    func run() throws {
        let logger = Logger(label: "basin.coordinator")
        var curve: CurveServer?
        if let curveSecret, let curveAllow {
            curve = CurveServer(
                keys: try CurveKeyPair(contentsOf: curveSecret),
                allowed: try CurveKeyPair.allowList(directory: curveAllow))
        }
        let sweep = try options.open(logger: logger)
        let host = bind.hasPrefix("tcp://") ? String(bind.dropFirst(6).prefix { $0 != ":" }) : ""
        let address = bind.hasPrefix("tcp://[") ? String(bind.dropFirst(7).prefix { $0 != "]" }) : host
        let loopback =
            address.hasPrefix("127.") || address == "localhost" || address == "::1" || bind.hasPrefix("ipc://")
            || bind.hasPrefix("inproc://")
        if curve == nil && !loopback {
            logger.warning(
                "binding \(bind) without CURVE: anyone who can reach this port can join the sweep and submit results; turn CURVE on with `basin keygen` and --curve-secret/--curve-allow (README: Deploy)"
            )
        }
        try options.coordinate(sweep, bind: bind, curve: curve, keepServing: keepServing, logger: logger)
    }
}

/// `basin worker`: computes shards for a coordinator.
struct WorkerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Compute shards for a coordinator; reconnects by itself when the coordinator restarts."
    )

    @Option(help: "Coordinator endpoint, e.g. tcp://HOST:5555.")
    var connect: String

    @Option(help: "Leases held at once (one computing, the rest queued so the worker never idles).")
    var slots: Int = 2

    @Option(help: "OpenBLAS threads.")
    var threads: Int = 1

    @Option(help: "Worker name in logs (default: host-pid).")
    var name: String?

    @Flag(name: .customLong("keep-alive"), help: "Stay connected after the coordinator says DONE.")
    var keepAlive = false

    @Option(
        name: .customLong("give-up-after"),
        help:
            "Seconds without a word from the coordinator after which an idle worker exits with an error (0: never); long enough to outlast a coordinator restart."
    )
    var giveUpAfter: Double = 600

    @Option(name: .customLong("curve-keys"), help: "CURVE: this worker's key pair (NAME.key from basin keygen).")
    var curveKeys: String?

    @Option(name: .customLong("curve-server"), help: "CURVE: the coordinator's public key (its .pub file).")
    var curveServer: String?

    @Option(
        help:
            "Directory of artifacts (checkpoints, curves) by SHA-256: fetched inputs and made outputs are kept there (default: $XDG_CACHE_HOME/basin or ~/.cache/basin)."
    )
    var cache: String?

    /// The default artifact cache.
    static var defaultCache: URL {
        let environment = ProcessInfo.processInfo.environment
        if let xdg = environment["XDG_CACHE_HOME"], !xdg.isEmpty {
            return URL(fileURLWithPath: xdg).appendingPathComponent("basin")
        }
        if let home = environment["HOME"], !home.isEmpty {
            return URL(fileURLWithPath: home).appendingPathComponent(".cache/basin")
        }
        return URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("basin-cache-\(getuid())")
    }

    func validate() throws {
        guard slots >= 1 else { throw ValidationError("--slots must be at least 1") }
        guard giveUpAfter >= 0 && giveUpAfter.isFinite else {
            throw ValidationError("--give-up-after must be 0 (never) or a number of seconds, got \(giveUpAfter)")
        }
        guard (curveKeys == nil) == (curveServer == nil) else {
            throw ValidationError("CURVE needs both --curve-keys and --curve-server")
        }
        guard connect.hasPrefix("tcp://") || connect.hasPrefix("ipc://") else {
            throw ValidationError("--connect must be an endpoint such as tcp://HOST:5555, got '\(connect)'")
        }
    }

    func run() throws {
        BLAS.setThreads(threads)
        let logger = Logger(label: "basin.worker")
        let workerName = name ?? "\(ProcessInfo.processInfo.hostName)-\(getpid())"
        var curve: CurveClient?
        if let curveKeys, let curveServer {
            curve = CurveClient(
                keys: try CurveKeyPair(contentsOf: curveKeys),
                serverKey: try CurveKeyPair.publicKey(contentsOf: curveServer))
        }
        let cacheURL = cache.map { URL(fileURLWithPath: $0) } ?? Self.defaultCache
        let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
        let client = try WorkerClient(
            endpoint: connect, name: workerName, slots: slots, exitWhenDone: !keepAlive,
            giveUpAfter: giveUpAfter > 0 ? giveUpAfter : nil, cache: cacheURL,
            computeCommand: [executable, "compute-child", "--cache", cacheURL.path, "--threads", String(threads)],
            curve: curve, logger: logger)
        let reason = try client.run()
        logger.info("worker \(workerName) leaving: \(reason)")
    }
}

/// `basin status`: progress of a run directory, live or finished.
struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status", abstract: "Show done/total per job, rate, ETA and workers alive.")

    @Argument(help: "Run directory.")
    var directory: String

    func run() throws {
        let status = try Sweep.status(URL(fileURLWithPath: directory))
        let width = max(10, status.jobs.map(\.name.count).max() ?? 0)
        for job in status.jobs {
            let percent = job.total > 0 ? 100 * Double(job.done) / Double(job.total) : 100
            print(
                "\(job.name.padding(toLength: width, withPad: " ", startingAt: 0))  \(job.kind.padding(toLength: 11, withPad: " ", startingAt: 0))  \(job.done)/\(job.total)  \(String(format: "%.1f%%", percent))"
            )
        }
        var line = "total \(status.done)/\(status.total) points"
        if status.pointsPerSecond > 0 { line += String(format: ", %.1f points/s", status.pointsPerSecond) }
        if let eta = status.eta { line += ", ETA \(ProgressDisplay.duration(eta))" }
        if let live = status.live {
            line += ", \(live.workers) worker(s) alive"
            if live.phase == .serving { line += ", coordinator serving late workers (the sweep is finished)" }
        } else {
            line += ", no coordinator running"
        }
        print(line)
        if !status.voided.isEmpty {
            let reasons = Set(status.voided).sorted().prefix(5).joined(separator: "; ")
            print("\(status.voided.count) result(s) voided by verification and computed again: \(reasons)")
        }
    }
}

/// `basin merge`: result files from the journal, now (also while the run is live).
struct MergeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "merge",
        abstract: "Write results/*.npz and summary.csv from the journal (idempotent; works on a live run).")

    @Argument(help: "Run directory.")
    var directory: String

    func run() throws {
        let url = URL(fileURLWithPath: directory)
        let specPath = RunDirectory(url).specFile.path
        let (text, _) = try SpecFile.read(specPath)
        let spec = try SpecFile.decode(StudySpec.self, from: text, source: specPath)
        let (done, total) = try Sweep.merge(directory: url, spec: spec)
        print("\(done)/\(total) points merged into \(RunDirectory(url).results.path)")
    }
}

/// Progress on a terminal (one rewritten line) or as log lines every 10 s elsewhere.
/// `@unchecked Sendable`: its two variables are touched by one thread only, the loop that
/// reports progress (the coordinator's I/O loop, or the in-process run's).
final class ProgressDisplay: @unchecked Sendable {
    let logger: Logger
    let isTerminal = isatty(STDERR_FILENO) == 1
    var lastLog = Date.distantPast
    var shown = false

    init(logger: Logger) {
        self.logger = logger
    }

    static func duration(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return s >= 3600
            ? "\(s / 3600)h\(String(format: "%02d", s % 3600 / 60))m"
            : s >= 60 ? "\(s / 60)m\(String(format: "%02d", s % 60))s" : "\(s)s"
    }

    func show(done: Int, total: Int, rate: Double?, workers: Int) {
        var text = "\(done)/\(total) points"
        if let rate, rate > 0 {
            text += String(format: ", %.1f points/s", rate)
            if done < total { text += ", ETA " + Self.duration(Double(total - done) / rate) }
        }
        if workers > 0 { text += ", \(workers) worker(s)" }
        if isTerminal {
            FileHandle.standardError.write(Data("\r\u{1B}[K\(text)".utf8))
            shown = true
        } else if Date().timeIntervalSince(lastLog) >= 10 {
            lastLog = Date()
            logger.info("\(text)")
        }
    }

    func finish() {
        if shown { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}

/// `basin keygen`: a CURVE key pair for a coordinator or a worker.
struct KeygenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keygen",
        abstract: "Write a CURVE key pair: NAME.key (private) and NAME.pub (give it to the other side)."
    )

    @Argument(help: "File name without extension.")
    var name: String = "basin"

    func run() throws {
        try CurveKeyPair.generate().write(name: name)
        print("wrote \(name).key (keep private) and \(name).pub")
    }
}

/// `basin compute-child`: the process a worker runs its computations in (not for direct use).
struct ComputeChildCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compute-child", abstract: "A worker's compute process (started by `basin worker`).",
        shouldDisplay: false)

    @Option(help: "The worker's artifact cache.")
    var cache: String

    @Option(help: "OpenBLAS threads.")
    var threads: Int = 1

    func run() throws {
        BLAS.setThreads(threads)
        let store = ArtifactStore(directory: URL(fileURLWithPath: cache))
        // Deep networks recurse: give the computation a roomy stack of its own.
        final class Status: @unchecked Sendable {
            // Written by the compute thread before it signals `done`.
            var value: Int32 = 0
            let done = DispatchSemaphore(value: 0)
        }
        let status = Status()
        let thread = Thread {
            status.value = ComputeChild.serve(cache: store)
            status.done.signal()
        }
        thread.stackSize = 16 << 20
        thread.start()
        status.done.wait()
        // The computation's BLAS threads may still be winding down: leave without teardown.
        _exit(status.value)
    }
}
