import ArgumentParser
import BasinNN
import BasinSweep
import Foundation

/// `basin plot`: a result file drawn as SVG.
struct PlotCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plot",
        abstract:
            "Draw a result: 2-D as a heatmap with contours and colour bar, 1-D and curves as line charts; a study's summary.csv as a barrier chart."
    )

    @Argument(help: "Result file (.npz), a study's summary.csv, or a run directory.")
    var file: String

    @Option(
        name: .shortAndLong,
        help:
            "SVG file to write (default: beside the result, FILE.svg; a study's barriers.svg; a plain sweep's results each beside itself).")
    var output: String?

    @Option(help: "Array to draw (2-D results); line charts draw train and test of the same quantity.")
    var metric: String = "train_loss"

    @Flag(help: "Logarithmic colour or y scale.")
    var log = false

    /// What a barrier chart draws, by `--metric`.
    static let barrierMetrics = ["train_loss": "loss", "loss": "loss", "loss_barrier": "loss", "error": "error",
                                 "error_barrier": "error"]

    func validate() throws {
        if let output, (output as NSString).pathExtension.lowercased() != "svg" {
            throw ValidationError("basin plot writes SVG: name the output FILE.svg, not '\(output)'")
        }
    }

    /// The paths of a study between the same two models, beside one of them: its straight line,
    /// aligned line and fitted curve (`results/line/PAIR.npz`, `aligned/…`, `curve/…`).
    static let pathJobs = [("line", "straight line", "#d62728"), ("aligned", "aligned line", "#2ca02c"),
                           ("curve", "fitted curve", "#1f77b4")]

    func run() throws {
        var isDirectory: ObjCBool = false
        let directory = FileManager.default.fileExists(atPath: file, isDirectory: &isDirectory) && isDirectory.boolValue
        let summary = directory ? (file as NSString).appendingPathComponent("summary.csv") : file
        // A study's summary.csv has a `level` column; a plain sweep's lists its jobs.
        if directory,
            (try? String(contentsOfFile: summary, encoding: .utf8))?.hasPrefix("level,") != true
        {
            return try plotEveryResult(in: file)
        }
        if summary.hasSuffix(".csv") {
            let output = self.output ?? (directory ? (file as NSString).appendingPathComponent("barriers.svg")
                : (summary as NSString).deletingPathExtension + ".svg")
            guard let quantity = Self.barrierMetrics[metric] else {
                throw ValidationError(
                    "a barrier chart draws --metric loss or error (loss_barrier, error_barrier), not '\(metric)'")
            }
            let chart = try BarrierChart(
                csv: try String(contentsOfFile: summary, encoding: .utf8), source: summary, quantity: quantity)
            let svg = chart.svg(
                title: "\(quantity.capitalized) barriers per cell — \((summary as NSString).deletingLastPathComponent)")
            try AtomicFile.write(Data(svg.utf8), to: URL(fileURLWithPath: output))
            print("\(output)")
            return
        }
        try plot(file, to: output ?? (file as NSString).deletingPathExtension + ".svg")
    }

    /// Every result of a plain sweep's run directory, each beside itself (`results/…/X.svg`).
    private func plotEveryResult(in directory: String) throws {
        let results = (directory as NSString).appendingPathComponent("results")
        guard let names = FileManager.default.enumerator(atPath: results)?.compactMap({ $0 as? String }) else {
            throw NNError("\(directory): neither a study's summary.csv nor a results folder (is it a run directory?)")
        }
        let files = names.filter { $0.hasSuffix(".npz") }.sorted()
        guard !files.isEmpty else { throw NNError("\(directory): no results yet (basin merge writes them)") }
        guard output == nil else {
            throw ValidationError("a plain sweep's results are plotted each beside itself; give no -o")
        }
        for name in files {
            let path = (results as NSString).appendingPathComponent(name)
            try plot(path, to: (path as NSString).deletingPathExtension + ".svg")
        }
    }

    private func plot(_ file: String, to output: String) throws {
        let result = try ResultFile(contentsOf: URL(fileURLWithPath: file))
        let companions = Self.companions(of: file)
        let plot = ResultPlot(
            result: result, title: Self.title(result, file: file), logScale: log,
            ownLabel: companions.isEmpty ? nil : Self.pathJobs.first { file.contains("/\($0.0)/") }?.1,
            companions: companions)
        // A Hessian result has no losses to draw: its eigenvalue density is the picture.
        let drawn = metric == "train_loss" && result["train_loss"] == nil && result["density"] != nil ? "density" : metric
        let svg: String
        do {
            svg = try plot.svg(metric: drawn)
        } catch let error as NNError {
            throw NNError("\(file): \(error.description)")
        }
        try AtomicFile.write(Data(svg.utf8), to: URL(fileURLWithPath: output))
        print("\(output)")
    }

    /// For a path of a study (`RUN/results/line|aligned|curve/PAIR.npz`), the other two paths
    /// of the same pair that exist, as (label, result, colour).
    static func companions(of file: String) -> [(String, ResultFile, String)] {
        let url = URL(fileURLWithPath: file).standardizedFileURL
        let kind = url.deletingLastPathComponent().lastPathComponent
        guard pathJobs.contains(where: { $0.0 == kind }) else { return [] }
        let results = url.deletingLastPathComponent().deletingLastPathComponent()
        return pathJobs.filter { $0.0 != kind }.compactMap { job, label, colour in
            let other = results.appendingPathComponent(job).appendingPathComponent(url.lastPathComponent)
            guard let result = try? ResultFile(contentsOf: other) else { return nil }
            return (label, result, colour)
        }
    }

    /// "<job> · <model>": what was computed first, then the model's layers in short (an external
    /// model by its name).
    static func title(_ result: ResultFile, file: String) -> String {
        var model = ""
        if let data = try? JSONEncoder().encode(result.metadata["model"] ?? .null),
            let description = try? JSONDecoder().decode(ModelDescription.self, from: data)
        {
            model = Self.shortName(description)
        } else if let external = result.metadata["model"]?["external"]?.stringValue {
            model = external
        }
        let kind = result.metadata["kind"]?.stringValue ?? "result"
        var job = kind
        if let name = result.metadata["job_name"]?.stringValue {
            return [name, model].filter { !$0.isEmpty }.joined(separator: " · ")
        }
        if let inputs = result.metadata["inputs"], case .object(let items) = inputs {
            let names = items.keys.sorted().compactMap { key -> String? in
                if let s = items[key]?.stringValue { return s }
                if case .array(let a) = items[key]! { return a.compactMap(\.stringValue).joined(separator: ", ") }
                return nil
            }
            job += " of " + names.joined(separator: " → ")
        }
        return [job, model].filter { !$0.isEmpty }.joined(separator: " · ")
    }

    static func shortName(_ description: ModelDescription) -> String {
        var parts = ["\(description.input)"]
        for layer in description.layers {
            switch layer {
            case .linear(_, let out, _): parts.append("fc\(out)")
            case .conv2d(_, let out, let k, _, _, _): parts.append("conv\(k.h)x\(k.w)·\(out)")
            case .batchNorm1d, .batchNorm2d: parts.append("bn")
            case .flatten, .dropout: continue
            default: parts.append(layer.typeName)
            }
        }
        let text = parts.joined(separator: " ")
        return text.count > 70 ? String(text.prefix(67)) + "…" : text
    }
}
