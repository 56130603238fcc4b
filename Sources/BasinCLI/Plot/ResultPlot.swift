import BasinNN
import BasinSweep
import Foundation

/// Draws a result file as SVG: a 2-D result as a heatmap with contour lines and a colour bar
/// (plus the projected trajectory or the three models when present); a 1-D result or curve
/// as a line chart of train and test (and the straight line beside a curve).
struct ResultPlot {
    let result: ResultFile
    let title: String
    let logScale: Bool

    static let width = 760.0, height = 560.0
    static let plotLeft = 80.0, plotTop = 60.0, plotWidth = 520.0, plotHeight = 420.0

    func svg(metric: String) throws -> String {
        guard let tensor = result[metric], let values = tensor.floats() else {
            let names = result.arrays.map(\.name).joined(separator: ", ")
            throw NNError("result has no array '\(metric)' (it has: \(names))")
        }
        switch tensor.shape.count {
        case 2: return heatmap(values.map(Double.init), ny: tensor.shape[0], nx: tensor.shape[1], metric: metric)
        case 1: return lineChart(metric: metric)
        default: throw NNError("array '\(metric)' has shape \(tensor.shape); plots take 1-D or 2-D results")
        }
    }

    private func axis(_ name: String, count: Int) -> [Double] {
        result[name]?.floats().map { $0.map(Double.init) } ?? (0..<count).map(Double.init)
    }

    private func transform(_ v: Double) -> Double {
        logScale ? (v > 0 ? log10(v) : .nan) : v
    }

    // MARK: Heatmap

    private func heatmap(_ raw: [Double], ny: Int, nx: Int, metric: String) -> String {
        var canvas = SVGCanvas(width: Self.width, height: Self.height)
        let xs = axis("x", count: nx), ys = axis("y", count: ny)
        let values = raw.map(transform)
        let finite = values.filter { $0.isFinite }
        let low = finite.min() ?? 0, high = finite.max() ?? 1
        let span = high > low ? high - low : 1
        let (x0, x1) = (xs.first ?? 0, xs.last ?? 1), (y0, y1) = (ys.first ?? 0, ys.last ?? 1)
        // Cell centres sit on the grid values; each cell spans half a step on either side.
        let dx = nx > 1 ? (x1 - x0) / Double(nx - 1) : 1, dy = ny > 1 ? (y1 - y0) / Double(ny - 1) : 1
        let left = x0 - dx / 2, right = x1 + dx / 2, bottom = y0 - dy / 2, top = y1 + dy / 2
        func px(_ x: Double) -> Double { Self.plotLeft + (x - left) / (right - left) * Self.plotWidth }
        func py(_ y: Double) -> Double { Self.plotTop + (top - y) / (top - bottom) * Self.plotHeight }
        for j in 0..<ny {
            for i in 0..<nx {
                let v = values[j * nx + i]
                let fill = v.isFinite ? ColorMap.color((v - low) / span) : "#bbbbbb"
                canvas.rect(
                    px(xs[i] - dx / 2), py(ys[j] + dy / 2), Self.plotWidth / Double(nx) + 0.5,
                    Self.plotHeight / Double(ny) + 0.5, fill: fill)
            }
        }
        // Contour lines by marching squares over the cell centres.
        if nx > 1 && ny > 1 && high > low {
            for level in (1...9).map({ low + span * Double($0) / 10 }) {
                var d = ""
                for j in 0..<(ny - 1) {
                    for i in 0..<(nx - 1) {
                        let corners = [(i, j), (i + 1, j), (i + 1, j + 1), (i, j + 1)]
                        let v = corners.map { values[$0.1 * nx + $0.0] }
                        guard v.allSatisfy({ $0.isFinite }) else { continue }
                        var crossings: [(Double, Double)] = []
                        for e in 0..<4 {
                            let a = v[e], b = v[(e + 1) % 4]
                            guard (a < level) != (b < level) else { continue }
                            let w = (level - a) / (b - a)
                            let (ia, ja) = corners[e], (ib, jb) = corners[(e + 1) % 4]
                            let x = xs[ia] + w * (xs[ib] - xs[ia]), y = ys[ja] + w * (ys[jb] - ys[ja])
                            crossings.append((px(x), py(y)))
                        }
                        for k in stride(from: 0, to: crossings.count - 1, by: 2) {
                            d +=
                                "M\(SVGCanvas.number(crossings[k].0)) \(SVGCanvas.number(crossings[k].1))L\(SVGCanvas.number(crossings[k + 1].0)) \(SVGCanvas.number(crossings[k + 1].1))"
                        }
                    }
                }
                if !d.isEmpty { canvas.path(d, stroke: "white", width: 0.8) }
            }
        }
        canvas.rect(Self.plotLeft, Self.plotTop, Self.plotWidth, Self.plotHeight, fill: "none", stroke: "black")
        for t in niceTicks(left, right) {
            canvas.line(
                px(t), Self.plotTop + Self.plotHeight, px(t), Self.plotTop + Self.plotHeight + 5, stroke: "black")
            canvas.text(px(t), Self.plotTop + Self.plotHeight + 20, tickLabel(t))
        }
        for t in niceTicks(bottom, top) {
            canvas.line(Self.plotLeft - 5, py(t), Self.plotLeft, py(t), stroke: "black")
            canvas.text(Self.plotLeft - 8, py(t) + 4, tickLabel(t), anchor: "end")
        }
        canvas.text(Self.plotLeft + Self.plotWidth / 2, Self.height - 30, "x", size: 14)
        canvas.text(25, Self.plotTop + Self.plotHeight / 2, "y", size: 14, rotate: -90)
        // Overlays: the projected trajectory, the three models of a plane.
        if let tx = result["trajectory_x"]?.floats(), let ty = result["trajectory_y"]?.floats() {
            let points = zip(tx, ty).map { (px(Double($0)), py(Double($1))) }
            canvas.polyline(points, stroke: "#ff3b30", width: 2)
            for p in points { canvas.circle(p.0, p.1, r: 2.5, fill: "#ff3b30", stroke: "white") }
        }
        if let mx = result["model_x"]?.floats(), let my = result["model_y"]?.floats() {
            for (k, (x, y)) in zip(mx, my).enumerated() {
                canvas.circle(px(Double(x)), py(Double(y)), r: 5, fill: "white")
                canvas.text(
                    px(Double(x)) + 8, py(Double(y)) - 8, "θ\(k + 1)", size: 13, anchor: "start", weight: "bold")
            }
        }
        // Colour bar.
        let barLeft = Self.plotLeft + Self.plotWidth + 40, barWidth = 20.0
        for s in 0..<100 {
            let f = Double(s) / 100
            canvas.rect(
                barLeft, Self.plotTop + Self.plotHeight * (1 - f - 0.01), barWidth, Self.plotHeight / 100 + 0.5,
                fill: ColorMap.color(f))
        }
        canvas.rect(barLeft, Self.plotTop, barWidth, Self.plotHeight, fill: "none", stroke: "black")
        for t in niceTicks(low, high) {
            let y = Self.plotTop + Self.plotHeight * (1 - (t - low) / span)
            canvas.line(barLeft + barWidth, y, barLeft + barWidth + 4, y, stroke: "black")
            canvas.text(
                barLeft + barWidth + 7, y + 4, logScale ? tickLabel(pow(10, t)) : tickLabel(t), size: 11,
                anchor: "start")
        }
        canvas.text(barLeft + barWidth / 2, Self.plotTop - 10, metric + (logScale ? " (log)" : ""), size: 12)
        canvas.text(Self.width / 2, 30, title, size: 15, weight: "bold")
        return canvas.document
    }

    // MARK: Line chart

    private func lineChart(metric: String) -> String {
        var canvas = SVGCanvas(width: Self.width, height: Self.height)
        let base = metric.replacingOccurrences(of: "train_", with: "").replacingOccurrences(of: "test_", with: "")
        var xName = result["t"] != nil ? "t" : "x"
        var series: [(label: String, values: [Double], color: String, dash: String?)] = []
        let hasLine = result["line_train_\(base)"] != nil
        for (prefix, label, color) in [("", hasLine ? "curve" : "", "#1f77b4"), ("line_", "straight line", "#d62728")] {
            for (split, dash) in [("train", nil as String?), ("test", "6,4")] {
                guard let v = result["\(prefix)\(split)_\(base)"]?.floats(), v.contains(where: { !$0.isNaN }) else {
                    continue
                }
                series.append(
                    ([label, split].filter { !$0.isEmpty }.joined(separator: " "), v.map(Double.init), color, dash))
            }
        }
        // A series of its own (a training job's epoch_loss, a Hessian's eigenvalue density):
        // drawn alone, against its index, its epochs or its eigenvalue grid.
        if series.isEmpty, let v = result[metric]?.floats() {
            series.append((metric, v.map(Double.init), "#1f77b4", nil))
            if metric == "density" && result["density_grid"] != nil {
                xName = "density_grid"
            } else if result[xName] == nil {
                xName = metric == "epoch_loss" ? "epoch" : "index"
            }
        }
        let n = series.first?.values.count ?? 0
        let xs: [Double] = xName == "epoch" ? (0..<n).map { Double($0 + 1) } : axis(xName, count: n)
        let all = series.flatMap { $0.values.map(transform) }.filter { $0.isFinite }
        var low = all.min() ?? 0, high = all.max() ?? 1
        if high <= low { (low, high) = (low - 0.5, high + 0.5) }
        let pad = (high - low) * 0.05
        low -= pad
        high += pad
        let x0 = xs.first ?? 0, x1 = xs.last ?? 1
        func px(_ x: Double) -> Double { Self.plotLeft + (x - x0) / max(x1 - x0, 1e-12) * Self.plotWidth }
        func py(_ y: Double) -> Double { Self.plotTop + (high - y) / (high - low) * Self.plotHeight }
        for t in niceTicks(low, high) {
            canvas.line(Self.plotLeft, py(t), Self.plotLeft + Self.plotWidth, py(t), stroke: "#e0e0e0")
            canvas.text(Self.plotLeft - 8, py(t) + 4, logScale ? tickLabel(pow(10, t)) : tickLabel(t), anchor: "end")
        }
        for t in niceTicks(x0, x1) {
            canvas.line(
                px(t), Self.plotTop + Self.plotHeight, px(t), Self.plotTop + Self.plotHeight + 5, stroke: "black")
            canvas.text(px(t), Self.plotTop + Self.plotHeight + 20, tickLabel(t))
        }
        canvas.rect(Self.plotLeft, Self.plotTop, Self.plotWidth, Self.plotHeight, fill: "none", stroke: "black")
        for s in series {
            var segment: [(Double, Double)] = []
            for (x, v) in zip(xs, s.values.map(transform)) {
                if v.isFinite {
                    segment.append((px(x), py(v)))
                } else {
                    canvas.polyline(segment, stroke: s.color, width: 2, dash: s.dash)
                    segment = []
                }
            }
            canvas.polyline(segment, stroke: s.color, width: 2, dash: s.dash)
        }
        for (k, s) in series.enumerated() {
            let y = Self.plotTop + 20 + Double(k) * 20
            let x = Self.plotLeft + Self.plotWidth + 15
            canvas.line(x, y - 4, x + 30, y - 4, stroke: s.color, width: 2, dash: s.dash)
            canvas.text(x + 36, y, s.label, size: 12, anchor: "start")
        }
        // The top eigenvalues over a density, as dashed verticals.
        if xName == "density_grid", let top = result["top_eigenvalues"]?.floats() {
            for value in top.map(Double.init) where value >= x0 && value <= x1 {
                canvas.line(px(value), Self.plotTop, px(value), Self.plotTop + Self.plotHeight, stroke: "#d62728", dash: "4,4")
            }
            let y = Self.plotTop + 20 + Double(series.count) * 20, x = Self.plotLeft + Self.plotWidth + 15
            canvas.line(x, y - 4, x + 30, y - 4, stroke: "#d62728", dash: "4,4")
            canvas.text(x + 36, y, "top-\(top.count) eigenvalues", size: 12, anchor: "start")
        }
        canvas.text(
            Self.plotLeft + Self.plotWidth / 2, Self.height - 30, xName == "density_grid" ? "eigenvalue" : xName, size: 14)
        canvas.text(25, Self.plotTop + Self.plotHeight / 2, base + (logScale ? " (log10)" : ""), size: 14, rotate: -90)
        canvas.text(Self.width / 2, 30, title, size: 15, weight: "bold")
        return canvas.document
    }
}
