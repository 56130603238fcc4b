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

    @Argument(help: "Result file (.npz), or a study's summary.csv (or its run directory).")
    var file: String

    @Option(name: .shortAndLong, help: "SVG file to write.")
    var output: String

    @Option(help: "Array to draw (2-D results); line charts draw train and test of the same quantity.")
    var metric: String = "train_loss"

    @Flag(help: "Logarithmic colour or y scale.")
    var log = false

    /// What a barrier chart draws, by `--metric`.
    static let barrierMetrics = ["train_loss": "loss", "loss": "loss", "loss_barrier": "loss", "error": "error",
                                 "error_barrier": "error"]

    func validate() throws {
        guard (output as NSString).pathExtension.lowercased() == "svg" else {
            throw ValidationError("basin plot writes SVG: name the output FILE.svg, not '\(output)'")
        }
    }

    func run() throws {
        var isDirectory: ObjCBool = false
        let summary =
            FileManager.default.fileExists(atPath: file, isDirectory: &isDirectory) && isDirectory.boolValue
            ? (file as NSString).appendingPathComponent("summary.csv") : file
        if summary.hasSuffix(".csv") {
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
        let result = try ResultFile(contentsOf: URL(fileURLWithPath: file))
        let plot = ResultPlot(result: result, title: Self.title(result, file: file), logScale: log)
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

    /// "<model> — <job>": the model's layers in short and what was computed.
    static func title(_ result: ResultFile, file: String) -> String {
        var model = ""
        if let data = try? JSONEncoder().encode(result.metadata["model"] ?? .null),
            let description = try? JSONDecoder().decode(ModelDescription.self, from: data)
        {
            model = Self.shortName(description)
        }
        let kind = result.metadata["kind"]?.stringValue ?? "result"
        var job = kind
        if let name = result.metadata["job_name"]?.stringValue {
            return [model, name].filter { !$0.isEmpty }.joined(separator: " — ")
        }
        if let inputs = result.metadata["inputs"], case .object(let items) = inputs {
            let names = items.keys.sorted().compactMap { key -> String? in
                if let s = items[key]?.stringValue { return s }
                if case .array(let a) = items[key]! { return a.compactMap(\.stringValue).joined(separator: ", ") }
                return nil
            }
            job += " of " + names.joined(separator: " → ")
        }
        return [model, job].filter { !$0.isEmpty }.joined(separator: " — ")
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
