import BasinNN
import Foundation

/// A study's barrier table as a grouped bar chart: per cell, the mean barrier of the straight
/// line, the aligned line and the fitted curve over its pairs, with ± one standard deviation.
struct BarrierChart {
    struct Cell {
        var name: String
        var means: [Double?]
        var stds: [Double?]
        /// Pairs of seeds whose barriers the cell averages (its `pair` rows).
        var pairs: Int = 0
    }

    static let series = [
        ("line", "straight line", "#d62728"), ("aligned", "aligned line", "#2ca02c"),
        ("curve", "fitted curve", "#1f77b4"),
    ]
    let cells: [Cell]
    /// `loss` or `error`.
    let quantity: String

    /// Reads a study's `summary.csv` (the `cell_mean` and `cell_std` rows).
    init(csv text: String, source: String, quantity: String) throws {
        var lines = text.split(separator: "\n").map(String.init)
        guard !lines.isEmpty else { throw NNError("\(source): empty") }
        let header = Self.fields(lines.removeFirst())
        guard header.first == "level" else {
            throw NNError("\(source): not a study summary (no 'level' column; specs with 'stages' write one)")
        }
        let columns = Self.series.map { header.firstIndex(of: "\($0.0)_\(quantity)_barrier") }
        var means: [String: [Double?]] = [:], stds: [String: [Double?]] = [:], order: [String] = []
        var pairs: [String: Int] = [:]
        for line in lines {
            let f = Self.fields(line)
            guard f.count == header.count else {
                throw NNError("\(source): a row has \(f.count) fields, not \(header.count)")
            }
            let values = columns.map { $0.flatMap { Double(f[$0]) } }
            if f[0] == "cell_mean" {
                means[f[1]] = values
                order.append(f[1])
            } else if f[0] == "cell_std" {
                stds[f[1]] = values
            } else if f[0] == "pair", values.contains(where: { $0 != nil }) {
                pairs[f[1], default: 0] += 1
            }
        }
        cells = order.map {
            Cell(name: $0.isEmpty ? "(all)" : $0, means: means[$0]!, stds: stds[$0] ?? [], pairs: pairs[$0] ?? 0)
        }
        guard cells.contains(where: { $0.means.contains { $0 != nil } }) else {
            throw NNError("\(source): no \(quantity) barriers yet (the connect stage has not finished)")
        }
        self.quantity = quantity
    }

    /// Splits a CSV line, honouring double quotes.
    static func fields(_ line: String) -> [String] {
        var out: [String] = [], current = "", quoted = false
        for c in line {
            if c == "\"" {
                quoted.toggle()
            } else if c == "," && !quoted {
                out.append(current)
                current = ""
            } else {
                current.append(c)
            }
        }
        out.append(current)
        return out
    }

    func svg(title: String) -> String {
        let width = 820.0, height = 480.0, left = 80.0, top = 60.0, plotWidth = 560.0, plotHeight = 320.0
        var canvas = SVGCanvas(width: width, height: height)
        let tops = cells.flatMap { cell in
            zip(cell.means, cell.stds + [Double?](repeating: nil, count: 3)).compactMap { m, s in
                m.map { $0 + (s ?? 0) }
            }
        }
        let lows = cells.flatMap { $0.means.compactMap { $0 } }
        let high = max(tops.max() ?? 1, 1e-12) * 1.1, low = min(0, lows.min() ?? 0)
        func py(_ v: Double) -> Double { top + (high - v) / (high - low) * plotHeight }
        for t in niceTicks(low, high) {
            canvas.line(left, py(t), left + plotWidth, py(t), stroke: "#e0e0e0")
            canvas.text(left - 8, py(t) + 4, tickLabel(t), anchor: "end")
        }
        let group = plotWidth / Double(max(cells.count, 1)), bar = group * 0.8 / Double(Self.series.count)
        for (c, cell) in cells.enumerated() {
            let x0 = left + Double(c) * group + group * 0.1
            for (k, (_, _, color)) in Self.series.enumerated() {
                guard let mean = cell.means[k] else { continue }
                let x = x0 + Double(k) * bar
                canvas.rect(x, min(py(mean), py(0)), bar * 0.9, abs(py(0) - py(mean)), fill: color)
                if let std = k < cell.stds.count ? cell.stds[k] : nil, std > 0 {
                    let cx = x + bar * 0.45
                    canvas.line(cx, py(mean - std), cx, py(mean + std), stroke: "black", width: 1.2)
                    canvas.line(cx - 4, py(mean + std), cx + 4, py(mean + std), stroke: "black", width: 1.2)
                    canvas.line(cx - 4, py(mean - std), cx + 4, py(mean - std), stroke: "black", width: 1.2)
                }
            }
            canvas.text(x0 + group * 0.4, top + plotHeight + 20, cell.name, size: 12)
            canvas.text(x0 + group * 0.4, top + plotHeight + 36, "n = \(cell.pairs)", size: 11)
        }
        canvas.line(left, py(0), left + plotWidth, py(0), stroke: "black")
        canvas.rect(left, top, plotWidth, plotHeight, fill: "none", stroke: "black")
        for (k, (_, label, color)) in Self.series.enumerated() {
            let y = top + 20 + Double(k) * 22
            canvas.rect(left + plotWidth + 15, y - 11, 14, 14, fill: color)
            canvas.text(left + plotWidth + 36, y, label, anchor: "start")
        }
        canvas.text(
            left + plotWidth + 15, top + 100, "mean ± std over a cell's n pairs", size: 11, anchor: "start")
        canvas.text(25, top + plotHeight / 2, "\(quantity) barrier", size: 14, rotate: -90)
        canvas.text(width / 2, 30, title, size: 15, weight: "bold")
        return canvas.document
    }
}
