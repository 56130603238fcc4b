import BasinNN
import Foundation

/// A result file as CSV (one row per point) or as a legacy VTK rectilinear grid for ParaView.
///
/// Both write every metric array the result has (`train_loss`, `train_acc`, `test_loss`,
/// `test_acc`) and the `done` mask; points not computed are `nan`. Values are written in the
/// shortest form that reads back to the same Float32 or Float64.
public enum ResultExport {
    public static let metrics = ["train_loss", "train_acc", "test_loss", "test_acc"]

    /// The grid a result lies on: coordinate names and values, x varying fastest.
    struct Grid {
        var axes: [(name: String, values: [String])]
        var count: Int
    }

    static func grid(_ result: ResultFile, source: String) throws -> Grid {
        guard let loss = result["train_loss"] else { throw NNError("\(source): not a Basin result (no train_loss)") }
        let axes: [(String, TensorData?)]
        switch loss.shape.count {
        case 1: axes = [(result["t"] != nil ? "t" : "x", result["t"] ?? result["x"])]
        case 2: axes = [("x", result["x"]), ("y", result["y"])]
        default: throw NNError("\(source): train_loss has shape \(loss.shape); only 1-D and 2-D results export")
        }
        let expected = loss.shape.count == 1 ? [loss.shape[0]] : [loss.shape[1], loss.shape[0]]
        var out: [(name: String, values: [String])] = []
        for ((name, tensor), count) in zip(axes, expected) {
            guard let tensor, let values = texts(tensor), values.count == count else {
                throw NNError("\(source): axis '\(name)' is missing or does not have \(count) values")
            }
            out.append((name, values))
        }
        return Grid(axes: out, count: loss.count)
    }

    /// Each element as text: Float32 and Float64 in their shortest round-trip form, `nan` for NaN.
    static func texts(_ tensor: TensorData) -> [String]? {
        func format<T: BinaryFloatingPoint & LosslessStringConvertible>(_ values: [T]) -> [String] {
            values.map { $0.isNaN ? "nan" : $0.isInfinite ? ($0 > 0 ? "inf" : "-inf") : String($0) }
        }
        switch tensor.dtype {
        case .f64: return tensor.doubles().map(format)
        case .f32: return tensor.floats().map(format)
        case .bool, .u8: return tensor.integers().map { $0.map { $0 != 0 ? "1" : "0" } }
        default: return tensor.integers().map { $0.map(String.init) }
        }
    }

    /// Columns present in `result` among the metrics and `done`, with their values as text.
    static func columns(_ result: ResultFile, count: Int, source: String) throws -> [(String, [String])] {
        var out: [(String, [String])] = []
        for name in metrics + ["done"] {
            guard let tensor = result[name] else { continue }
            guard let values = texts(tensor), values.count == count else {
                throw NNError("\(source): array '\(name)' does not hold \(count) values")
            }
            out.append((name, values))
        }
        return out
    }

    /// `x,y,train_loss,...,done` (or `t,...` for paths): one row per point, x fastest.
    public static func csv(_ result: ResultFile, source: String) throws -> String {
        let grid = try grid(result, source: source)
        let columns = try columns(result, count: grid.count, source: source)
        var lines = [(grid.axes.map(\.name) + columns.map(\.0)).joined(separator: ",")]
        let nx = grid.axes[0].values.count
        for i in 0..<grid.count {
            var row = [grid.axes[0].values[i % nx]]
            if grid.axes.count == 2 { row.append(grid.axes[1].values[i / nx]) }
            row += columns.map { $0.1[i] }
            lines.append(row.joined(separator: ","))
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// A legacy-format VTK rectilinear grid (ASCII): x (and y) coordinates, z = 0, every metric
    /// and `done` as point scalars. ParaView opens it; "Warp By Scalar" on a loss gives the 3-D surface.
    public static func vtk(_ result: ResultFile, title: String, source: String) throws -> String {
        let grid = try grid(result, source: source)
        let columns = try columns(result, count: grid.count, source: source)
        let nx = grid.axes[0].values.count, ny = grid.axes.count == 2 ? grid.axes[1].values.count : 1
        // The title line is at most 256 characters and a single line.
        let header = String(title.replacingOccurrences(of: "\n", with: " ").prefix(200))
        var lines = [
            "# vtk DataFile Version 3.0", "Basin \(header)", "ASCII", "DATASET RECTILINEAR_GRID",
            "DIMENSIONS \(nx) \(ny) 1",
            "X_COORDINATES \(nx) double", grid.axes[0].values.joined(separator: " "),
            "Y_COORDINATES \(ny) double", grid.axes.count == 2 ? grid.axes[1].values.joined(separator: " ") : "0",
            "Z_COORDINATES 1 double", "0",
            "POINT_DATA \(grid.count)",
        ]
        for (name, values) in columns {
            let type = name == "done" ? "int" : "double"
            lines += ["SCALARS \(name) \(type) 1", "LOOKUP_TABLE default"]
            for start in stride(from: 0, to: values.count, by: 8) {
                lines.append(values[start..<min(start + 8, values.count)].joined(separator: " "))
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
