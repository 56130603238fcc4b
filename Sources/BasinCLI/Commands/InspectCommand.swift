import ArgumentParser
import BasinNN
import BasinSweep
import Foundation

/// `basin inspect`: what a result file holds.
struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "List a result file's arrays (dtype, shape, min, max) and its metadata."
    )

    @Argument(help: "Result file (.npz).")
    var file: String

    @Flag(help: "Print the whole metadata document.")
    var metadata = false

    func run() throws {
        let result = try ResultFile(contentsOf: URL(fileURLWithPath: file))
        print(file)
        let width = max(8, result.arrays.map(\.name.count).max() ?? 0)
        for (name, tensor) in result.arrays {
            let values = tensor.floats() ?? []
            let finite = values.filter { !$0.isNaN }
            let range = finite.isEmpty ? "all NaN" : String(format: "min %.6g  max %.6g", finite.min()!, finite.max()!)
            let missing = values.count - finite.count
            print(
                "  \(name.padding(toLength: width, withPad: " ", startingAt: 0))  \(tensor.dtype.rawValue.padding(toLength: 4, withPad: " ", startingAt: 0))  \(tensor.shape)  \(range)\(missing > 0 ? "  (\(missing) NaN)" : "")"
            )
        }
        if metadata {
            print(String(decoding: result.metadata.serialized(pretty: true), as: UTF8.self))
            return
        }
        for key in [
            "kind", "shape", "complete", "points_done", "points_total", "bn", "loss", "inputs", "basis",
            "model_coordinates",
        ] {
            if let value = result.metadata[key] {
                print("  \(key): \(String(decoding: value.serialized(), as: UTF8.self))")
            }
        }
        for key in ["statistics", "line_statistics"] {
            guard let stats = result.metadata[key] else { continue }
            for name in ["train_loss_barrier", "train_error_barrier", "test_loss_barrier", "test_error_barrier"] {
                if let v = stats[name]?.doubleValue {
                    print("  \(key == "statistics" ? "" : "line ")\(name): \(String(format: "%.6g", v))")
                }
            }
        }
    }
}
