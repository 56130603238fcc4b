import ArgumentParser
import BasinCluster
import BasinNN
import BasinSweep
import Foundation
import Logging

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
        let sweep = try options.open(logger: logger, localWorkers: true)
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
