import ArgumentParser
import BasinNN
import BasinSweep
import Foundation

/// `basin check`: a study spec checked as `basin run` checks it (the same sentences for the same
/// mistakes), and its jobs listed without running anything or touching a run directory.
struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Check a study spec without running it: its jobs, ids, points, shards and estimated cost.")

    @Argument(help: "Study spec (YAML).")
    var spec: String

    func run() throws {
        let (studySpec, _, url) = try SpecFile.studySpec(spec)
        let study: Study
        do {
            study = try Study(
                spec: studySpec, executor: Executor(spec: studySpec, base: url.deletingLastPathComponent().standardizedFileURL))
        } catch let error as SpecError {
            throw error.inFile(spec)
        }
        print(Self.table(study))
        let points = study.jobs.reduce(0) { $0 + $1.pointCount }, shards = study.jobs.reduce(0) { $0 + $1.shards.count }
        let seconds = study.jobs.compactMap(\.estimatedSeconds).reduce(0, +)
        print(
            "\(spec): valid; \(study.jobs.count) job(s), \(points) points in \(shards) shards, grid jobs about "
                + "\(ProgressDisplay.duration(seconds)) of one worker (estimated at 40 GFLOP/s)")
    }

    /// One row per job: name, kind, id (12 hex digits of 64), points (a path's two ends beside its
    /// grid, as `basin status` counts them), shards, the jobs it waits for, estimated seconds.
    static func table(_ study: Study) -> String {
        var rows = [["job", "kind", "id", "points", "shards", "after", "estimate"]]
        for job in study.jobs {
            var points = String(job.pointCount)
            if let grid = job.definition.grid {
                let axes = grid.axes.reduce(1) { $0 * $1.axis.steps }
                if axes != job.pointCount { points = "\(job.pointCount) (\(axes) + \(job.pointCount - axes) ends)" }
            }
            rows.append([
                job.name, job.definition.kind.rawValue, String(job.id.prefix(12)), points, String(job.shards.count),
                job.dependencies.map { study.jobs[$0].name }.joined(separator: " ").nonEmpty ?? "-",
                job.estimatedSeconds.map { $0 < 0.5 ? "<1s" : ProgressDisplay.duration($0) } ?? "-",
            ])
        }
        let widths = (0..<rows[0].count).map { c in rows.map { $0[c].count }.max() ?? 0 }
        return rows.map { row in
            zip(row, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }.joined(separator: "  ")
                .trimmingCharacters(in: .whitespaces)
        }.joined(separator: "\n")
    }
}

extension String {
    fileprivate var nonEmpty: String? { isEmpty ? nil : self }
}
