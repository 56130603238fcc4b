import ArgumentParser
import BasinNN
import Foundation

/// `basin report`: one self-contained HTML page about a run, finished or in progress.
struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract:
            "Write one self-contained HTML page about a run: provenance, the study table, barrier chart, every result's plot and definition.")

    @Argument(help: "Run directory (finished or in progress).")
    var directory: String

    @Option(name: .shortAndLong, help: "HTML file to write.")
    var output: String = "report.html"

    func run() throws {
        let report = try RunReport(directory: URL(fileURLWithPath: directory))
        let (page, figures) = try report.html()
        try AtomicFile.write(Data(page.utf8), to: URL(fileURLWithPath: output))
        print("\(output): \(report.study.jobs.count) job(s), \(figures) figure(s), \(report.status.done)/\(report.status.total) points")
    }
}
