import ArgumentParser
import BasinCluster
import BasinNN
import BasinSweep
import Foundation
import Logging

/// `basin merge`: result files from the journal, now (also while the run is live).
struct MergeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "merge",
        abstract: "Write results/*.npz and summary.csv from the journal (idempotent; works on a live run).")

    @Argument(help: "Run directory.")
    var directory: String

    func run() throws {
        let url = URL(fileURLWithPath: directory)
        let (done, total) = try Sweep.merge(directory: url, spec: try SpecFile.runSpec(url))
        print("\(done)/\(total) points merged into \(RunDirectory(url).results.path)")
    }
}
