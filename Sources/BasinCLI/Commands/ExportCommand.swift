import ArgumentParser
import BasinNN
import BasinSweep
import Foundation

/// `basin export`: a result file as CSV or as a VTK grid for ParaView.
struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write a result as CSV (one row per point) or as a legacy VTK rectilinear grid (ParaView)."
    )

    enum Format: String, ExpressibleByArgument, CaseIterable {
        case csv, vtk
    }

    @Argument(help: "Result file (.npz).")
    var file: String

    @Option(help: "Output format.")
    var to: Format

    @Option(name: .shortAndLong, help: "File to write (default: the result's name with .csv or .vtk).")
    var output: String?

    func run() throws {
        let result = try ResultFile(contentsOf: URL(fileURLWithPath: file))
        let text: String
        switch to {
        case .csv: text = try ResultExport.csv(result, source: file)
        case .vtk: text = try ResultExport.vtk(result, title: PlotCommand.title(result, file: file), source: file)
        }
        let destination = output ?? ((file as NSString).deletingPathExtension + "." + to.rawValue)
        try AtomicFile.write(Data(text.utf8), to: URL(fileURLWithPath: destination))
        print(destination)
    }
}
