import ArgumentParser
import BasinCluster
import BasinNN
import BasinSweep
import Foundation
import Logging

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
        for entry in status.problems.quarantined {
            print(
                "quarantined: \(entry.job) points \(entry.start)..<\(entry.end) (shard \(entry.shard)), failed on "
                    + "\(entry.reasons.count) worker(s): \(entry.reasons.prefix(3).joined(separator: "; "))")
        }
        for entry in status.problems.notRun { print("not run: \(entry.job), because \(entry.because) failed") }
        if !status.voided.isEmpty {
            let reasons = Set(status.voided).sorted().prefix(5).joined(separator: "; ")
            print("\(status.voided.count) result(s) voided by verification and computed again: \(reasons)")
        }
    }
}
