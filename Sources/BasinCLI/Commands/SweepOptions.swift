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
    /// `localWorkers`: whether Basin workers of this process compute it (`basin run`), which
    /// cannot build an external model.
    func open(logger: Logger, localWorkers: Bool = false) throws -> Sweep {
        BLAS.setThreads(threads)
        let (studySpec, text, url) = try SpecFile.studySpec(spec)
        if localWorkers, let external = studySpec.model.external {
            throw NNError(
                "\(spec): the model '\(external.name)' is external, which Basin's own workers cannot build; run "
                    + "`basin coordinator` and PyTorch workers (`basin-worker --model FILE.py:FUNCTION`)")
        }
        let sweep: Sweep
        do {
            sweep = try Sweep(
                specText: text, spec: studySpec, base: url.deletingLastPathComponent().standardizedFileURL,
                directory: URL(fileURLWithPath: out))
        } catch let error as SpecError {
            throw error.inFile(spec)
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
        try RunProblems(
            quarantined: quarantine.map {
                .init(job: $0.job, shard: $0.shard, start: $0.points.lowerBound, end: $0.points.upperBound, reasons: $0.reasons)
            },
            notRun: blocked.map { .init(job: $0.job, because: $0.because) }
        ).write(to: sweep.run.problemsFile)
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
