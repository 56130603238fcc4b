import ArgumentParser
import BasinNN
import BasinSweep
import Foundation

/// `basin summary`: a study's per-cell table (mean and standard deviation over each cell's
/// models and pairs) from a run's merged results, as text, CSV, Markdown or LaTeX.
struct SummaryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "summary",
        abstract: "Print a study's per-cell table (mean ± std over seeds) as text, csv, markdown or latex.")

    @Argument(help: "Run directory of a study (a spec with stages).")
    var directory: String

    @Option(help: "text, csv, markdown or latex.")
    var format: StudySummary.Format = .text

    func run() throws {
        let url = URL(fileURLWithPath: directory)
        guard let summary = try Sweep.summary(directory: url, spec: try SpecFile.runSpec(url)) else {
            throw NNError("\(directory): its spec has no stages, so there is no per-cell table (see jobs.csv)")
        }
        print(summary.cellTable(format), terminator: format == .text ? "\n" : "")
    }
}

extension StudySummary.Format: ExpressibleByArgument {}
