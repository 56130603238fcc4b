import BasinNN
import Foundation

/// The summary of a study with stages: per model its losses, accuracies and sharpness; per
/// pair of seeds in a cell the loss and error barriers of the straight line, the aligned line
/// and the fitted curve; per cell the mean and standard deviation of each over its models or
/// pairs. Written as `summary.csv` (one row per model, pair, cell mean and cell std) and
/// printed as a table. Built from the merged results only, so it is as deterministic as they are.
public struct StudySummary: Sendable {
    public static let modelColumns = [
        "train_loss", "train_acc", "test_loss", "test_acc", "top_eigenvalue", "hessian_trace",
    ]
    public static let pairColumns = [
        "line_loss_barrier", "line_error_barrier", "aligned_loss_barrier", "aligned_error_barrier",
        "curve_loss_barrier", "curve_error_barrier",
    ]

    public struct Row: Sendable {
        /// `model`, `pair`, `cell_mean` or `cell_std`.
        public var level: String
        public var cell: String
        public var name: String
        public var values: [String: Double]
    }

    public private(set) var rows: [Row] = []

    /// `results` by job name (a job not finished yet is missing; its values stay empty).
    public init(stages: Stages, base: TrainingConfig, results: [String: ResultFile]) throws {
        func value(_ job: String, _ key: String) -> Double? {
            results[job]?.metadata["values"]?[key]?.doubleValue
        }
        func barrier(_ job: String, _ key: String) -> Double? {
            results[job]?.metadata["statistics"]?["train_\(key)"]?.doubleValue
        }
        for cell in try stages.cells(base: base) {
            var models: [Row] = [], pairs: [Row] = []
            for seed in stages.train.seeds {
                let tag = Stages.tag(cell, seed: seed)
                var values: [String: Double] = [:]
                for key in ["train_loss", "train_acc", "test_loss", "test_acc"] {
                    values[key] = value("train/\(tag)", key)
                }
                values["top_eigenvalue"] = value("hessian/\(tag)", "top_eigenvalue")
                values["hessian_trace"] = value("hessian/\(tag)", "trace")
                models.append(Row(level: "model", cell: cell.name, name: tag, values: values))
            }
            let seeds = stages.train.seeds
            for (i, a) in seeds.enumerated() {
                for b in seeds[(i + 1)...] {
                    let pair = Stages.pairTag(cell, a, b)
                    var values: [String: Double] = [:]
                    for (prefix, job) in [("line", "line"), ("aligned", "aligned"), ("curve", "curve")] {
                        values["\(prefix)_loss_barrier"] = barrier("\(job)/\(pair)", "loss_barrier")
                        values["\(prefix)_error_barrier"] = barrier("\(job)/\(pair)", "error_barrier")
                    }
                    pairs.append(Row(level: "pair", cell: cell.name, name: pair, values: values))
                }
            }
            var mean: [String: Double] = [:], std: [String: Double] = [:]
            for (columns, group) in [(Self.modelColumns, models), (Self.pairColumns, pairs)] {
                for column in columns {
                    let present = group.compactMap { $0.values[column] }
                    guard !present.isEmpty else { continue }
                    let m = present.reduce(0, +) / Double(present.count)
                    mean[column] = m
                    // Sample standard deviation (0 for a single value).
                    std[column] =
                        present.count > 1
                        ? (present.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(present.count - 1)).squareRoot() : 0
                }
            }
            rows += models + pairs
            rows.append(Row(level: "cell_mean", cell: cell.name, name: "", values: mean))
            rows.append(Row(level: "cell_std", cell: cell.name, name: "", values: std))
        }
    }

    static func format(_ value: Double?) -> String {
        guard let value else { return "" }
        return value.isNaN ? "nan" : String(format: "%.9g", value)
    }

    public func csv() -> String {
        let columns = Self.modelColumns + Self.pairColumns
        var lines = [(["level", "cell", "name"] + columns).joined(separator: ",")]
        for row in rows {
            // Cell names hold commas (lr=0.1,wd=0): quote them.
            let fields =
                [row.level, "\"\(row.cell)\"", "\"\(row.name)\""] + columns.map { Self.format(row.values[$0]) }
            lines.append(fields.joined(separator: ","))
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// Per cell: each model column and each barrier as mean ± std.
    public func table() -> String {
        let short = [
            ("train_loss", "train loss"), ("test_acc", "test acc"), ("top_eigenvalue", "λmax"),
            ("hessian_trace", "trace"), ("line_loss_barrier", "line barrier"),
            ("aligned_loss_barrier", "aligned barrier"), ("curve_loss_barrier", "curve barrier"),
            ("line_error_barrier", "line err barrier"),
        ]
        let cells = rows.filter { $0.level == "cell_mean" }
        let present = short.filter { column in cells.contains { $0.values[column.0] != nil } }
        var table = [["cell"] + present.map(\.1)]
        for mean in cells {
            let std = rows.first { $0.level == "cell_std" && $0.cell == mean.cell }
            table.append(
                [mean.cell.isEmpty ? "(all)" : mean.cell]
                    + present.map { column in
                        guard let m = mean.values[column.0] else { return "" }
                        return String(format: "%.4g ± %.2g", m, std?.values[column.0] ?? 0)
                    })
        }
        let widths = (0..<(table.first?.count ?? 0)).map { c in table.map { $0[c].count }.max() ?? 0 }
        return table.map { row in
            row.enumerated().map { $0.element.padding(toLength: widths[$0.offset], withPad: " ", startingAt: 0) }
                .joined(separator: "  ")
        }.joined(separator: "\n")
    }
}
