import Foundation

extension StudySummary {
    /// How `basin summary` writes the per-cell table.
    public enum Format: String, CaseIterable, Sendable {
        /// Aligned columns, each value as mean ± std (as `basin run` prints it).
        case text
        /// One row per cell: `cell,models,pairs`, then `COLUMN_mean,COLUMN_std` for every column.
        case csv
        /// A GitHub/pandoc table, mean ± std.
        case markdown
        /// A `tabular` for a paper (booktabs rules), $mean \pm std$, special characters escaped.
        case latex
    }

    /// The columns some cell has a value for, with their headings.
    var presentColumns: [(key: String, heading: String)] {
        let headings: [String: String] = [
            "train_loss": "train loss", "train_acc": "train acc", "test_loss": "test loss", "test_acc": "test acc",
            "top_eigenvalue": "λmax", "hessian_trace": "Hessian trace", "line_loss_barrier": "line loss barrier",
            "line_error_barrier": "line error barrier", "aligned_loss_barrier": "aligned loss barrier",
            "aligned_error_barrier": "aligned error barrier", "curve_loss_barrier": "curve loss barrier",
            "curve_error_barrier": "curve error barrier",
        ]
        let means = rows.filter { $0.level == "cell_mean" }
        return (Self.modelColumns + Self.pairColumns).filter { key in means.contains { $0.values[key] != nil } }
            .map { ($0, headings[$0] ?? $0) }
    }

    /// The per-cell table (mean and sample std over a cell's models or pairs) in `format`.
    public func cellTable(_ format: Format) -> String {
        let columns = presentColumns
        let cells = rows.filter { $0.level == "cell_mean" }
        func std(_ cell: String, _ key: String) -> Double? {
            rows.first { $0.level == "cell_std" && $0.cell == cell }?.values[key]
        }
        func count(_ cell: String, _ level: String) -> Int { rows.filter { $0.level == level && $0.cell == cell }.count }
        func name(_ cell: String) -> String { cell.isEmpty ? "(all)" : cell }
        switch format {
        case .text:
            return table()
        case .csv:
            var lines = [(["cell", "models", "pairs"] + columns.flatMap { ["\($0.key)_mean", "\($0.key)_std"] })
                .joined(separator: ",")]
            for mean in cells {
                lines.append(
                    ([Self.csvField(name(mean.cell)), String(count(mean.cell, "model")), String(count(mean.cell, "pair"))]
                        + columns.flatMap { [Self.format(mean.values[$0.key]), Self.format(std(mean.cell, $0.key))] })
                        .joined(separator: ","))
            }
            return lines.joined(separator: "\n") + "\n"
        case .markdown:
            var lines = [
                "| " + (["cell"] + columns.map(\.heading)).joined(separator: " | ") + " |",
                "|" + Array(repeating: " --- |", count: columns.count + 1).joined(),
            ]
            for mean in cells {
                let values = columns.map { column in
                    mean.values[column.key].map { Self.short($0) + " ± " + Self.short(std(mean.cell, column.key) ?? 0) } ?? ""
                }
                lines.append("| " + ([name(mean.cell).replacingOccurrences(of: "|", with: "\\|")] + values)
                    .joined(separator: " | ") + " |")
            }
            return lines.joined(separator: "\n") + "\n"
        case .latex:
            var lines = [
                "\\begin{tabular}{l" + String(repeating: "r", count: columns.count) + "}", "\\toprule",
                (["cell"] + columns.map { Self.latex($0.heading) }).joined(separator: " & ") + " \\\\", "\\midrule",
            ]
            for mean in cells {
                let values = columns.map { column in
                    mean.values[column.key].map {
                        "$" + Self.short($0) + " \\pm " + Self.short(std(mean.cell, column.key) ?? 0) + "$"
                    } ?? ""
                }
                lines.append(([Self.latex(name(mean.cell))] + values).joined(separator: " & ") + " \\\\")
            }
            lines += ["\\bottomrule", "\\end{tabular}"]
            return lines.joined(separator: "\n") + "\n"
        }
    }

    /// Four significant digits (nan as written by NumPy).
    static func short(_ value: Double) -> String { value.isNaN ? "nan" : String(format: "%.4g", value) }

    static func csvField(_ text: String) -> String {
        text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" })
            ? "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : text
    }

    /// Text with LaTeX's special characters escaped (λ as $\lambda$).
    static func latex(_ text: String) -> String {
        var out = ""
        for character in text {
            switch character {
            case "\\": out += "\\textbackslash{}"
            case "&", "%", "$", "#", "_", "{", "}": out += "\\\(character)"
            case "~": out += "\\textasciitilde{}"
            case "^": out += "\\textasciicircum{}"
            case "λ": out += "$\\lambda$"
            default: out.append(character)
            }
        }
        return out
    }
}
