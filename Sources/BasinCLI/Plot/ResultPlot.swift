import BasinNN
import BasinSweep
import Foundation

/// Draws a result file as SVG: a 2-D result as a heatmap with contour lines and a colour bar
/// (plus the projected trajectory or the three models when present); a 1-D result or curve
/// as a line chart of train and test (and the straight line beside a curve). Axes are named
/// after the directions (α, β, t), the models are marked, values spanning more than two decades
/// are drawn on a log scale (said in the legend), a path's barrier is marked, and a result with
/// missing points says it is partial.
struct ResultPlot {
    let result: ResultFile
    let title: String
    let logScale: Bool
    /// Other paths between the same two models, drawn beside this one (a study's straight
    /// line, aligned line and fitted curve of one pair).
    var companions: [(label: String, result: ResultFile, color: String)] = []
    /// This result's own label beside companions ("fitted curve").
    var ownLabel: String?

    init(
        result: ResultFile, title: String, logScale: Bool, ownLabel: String? = nil,
        companions: [(String, ResultFile, String)] = []
    ) {
        self.result = result
        self.title = title
        self.logScale = logScale
        self.ownLabel = ownLabel
        self.companions = companions.map { (label: $0.0, result: $0.1, color: $0.2) }
    }

    /// Whether positive values span more than two decades (a log scale shows them; a linear
    /// one shows the largest alone).
    static func spansDecades(_ values: [Double]) -> Bool {
        let positive = values.filter { $0.isFinite && $0 > 0 }
        guard let low = positive.min(), let high = positive.max(), positive.count == values.filter(\.isFinite).count
        else { return false }
        return high / low > 100
    }

    /// Ticks of a log10 axis at round values: powers of ten, and 2× and 5× them when those are few.
    static func logTicks(_ low: Double, _ high: Double) -> [Double] {
        guard low.isFinite, high.isFinite, high > low else { return [low] }
        for factors in [[1.0], [1.0, 2, 5], [1.0, 1.5, 2, 3, 5, 7]] {
            var ticks: [Double] = []
            for e in Int(floor(max(-300, low)))...Int(ceil(min(300, high))) {
                for f in factors {
                    let t = log10(f) + Double(e)
                    if t >= low - 1e-9 && t <= high + 1e-9 { ticks.append(t) }
                }
            }
            if ticks.count >= 3 { return ticks }
        }
        return niceTicks(low, high)
    }

    /// The metric as a reader says it ("train loss").
    static func label(_ metric: String) -> String { metric.replacingOccurrences(of: "_", with: " ") }

    /// The names of a 2-D result's axes, from what it is.
    var axisNames: (x: String, y: String) {
        let kind = result.metadata["kind"]?.stringValue
        if kind == "plane" {
            return result.metadata["basis"]?.stringValue == "orthonormal"
                ? ("α (distance along θ₂ − θ₁)", "β (distance, orthogonal)") : ("α (toward θ₂)", "β (toward θ₃)")
        }
        if result["trajectory_x"] != nil { return ("α (first principal direction)", "β (second principal direction)") }
        return ("α (direction 1)", "β (direction 2)")
    }

    /// "partial: k of n points (missing in grey)" when some points are missing, else nil.
    func partialNote(_ values: [Float]) -> String? {
        let missing = values.filter(\.isNaN).count
        let done = result["done"]?.integers().map { $0.filter { $0 != 0 }.count } ?? values.count - missing
        guard done < values.count else { return nil }
        return "partial: \(done) of \(values.count) points computed (missing ones blank or grey)"
    }

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

    private func transform(_ v: Double, log: Bool) -> Double {
        log ? (v > 0 ? log10(v) : .nan) : v
    }

    // MARK: Heatmap

    private func heatmap(_ raw: [Double], ny: Int, nx: Int, metric: String) -> String {
        var canvas = SVGCanvas(width: Self.width, height: Self.height)
        let xs = axis("x", count: nx), ys = axis("y", count: ny)
        let automatic = !logScale && Self.spansDecades(raw)
        let log = logScale || automatic
        let values = raw.map { transform($0, log: log) }
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
        canvas.text(Self.plotLeft + Self.plotWidth / 2, Self.height - 30, axisNames.x, size: 14)
        canvas.text(25, Self.plotTop + Self.plotHeight / 2, axisNames.y, size: 14, rotate: -90)
        // The model a surface is built around, at the origin.
        if result.metadata["kind"]?.stringValue == "surface", left <= 0, right >= 0, bottom <= 0, top >= 0 {
            canvas.circle(px(0), py(0), r: 5, fill: "white", stroke: "black")
            canvas.text(px(0) + 8, py(0) - 8, "θ (the model)", size: 13, anchor: "start", weight: "bold")
        }
        if let note = partialNote(raw.map(Float.init)) {
            canvas.text(Self.plotLeft, Self.height - 8, note, size: 11, anchor: "start")
        }
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
        for t in log ? Self.logTicks(low, high) : niceTicks(low, high, count: 6) {
            let y = Self.plotTop + Self.plotHeight * (1 - (t - low) / span)
            canvas.line(barLeft + barWidth, y, barLeft + barWidth + 4, y, stroke: "black")
            canvas.text(
                barLeft + barWidth + 7, y + 4, log ? tickLabel(pow(10, t)) : tickLabel(t), size: 11, anchor: "start")
        }
        canvas.text(barLeft + barWidth / 2, Self.plotTop - 10, Self.label(metric) + (log ? " (log scale)" : ""), size: 12)
        if automatic {
            canvas.text(
                Self.width - 10, Self.height - 8, String(format: "log scale: the values span %.1f decades", high - low),
                size: 11, anchor: "end")
        }
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
        let own = companions.isEmpty ? (hasLine ? "curve" : "") : (ownLabel ?? "")
        var sources: [(ResultFile, String, String, String)] = [(result, "", own, "#1f77b4")]
        if hasLine { sources.append((result, "line_", "straight line", "#d62728")) }
        sources += companions.map { ($0.result, "", $0.label, $0.color) }
        for (file, prefix, label, color) in sources {
            for (split, dash) in [("train", nil as String?), ("test", "6,4")] {
                guard let v = file["\(prefix)\(split)_\(base)"]?.floats(), v.contains(where: { !$0.isNaN }) else {
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
        let automatic = !logScale && Self.spansDecades(series.flatMap(\.values))
        let log = logScale || automatic
        func transform(_ v: Double) -> Double { self.transform(v, log: log) }
        let all = series.flatMap { $0.values.map(transform) }.filter { $0.isFinite }
        var low = all.min() ?? 0, high = all.max() ?? 1
        if high <= low { (low, high) = (low - 0.5, high + 0.5) }
        let pad = (high - low) * 0.05
        low -= pad
        high += pad
        let x0 = xs.first ?? 0, x1 = xs.last ?? 1
        func px(_ x: Double) -> Double { Self.plotLeft + (x - x0) / max(x1 - x0, 1e-12) * Self.plotWidth }
        func py(_ y: Double) -> Double { Self.plotTop + (high - y) / (high - low) * Self.plotHeight }
        for t in log ? Self.logTicks(low, high) : niceTicks(low, high) {
            canvas.line(Self.plotLeft, py(t), Self.plotLeft + Self.plotWidth, py(t), stroke: "#e0e0e0")
            canvas.text(Self.plotLeft - 8, py(t) + 4, log ? tickLabel(pow(10, t)) : tickLabel(t), anchor: "end")
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
        // A path's models at t = 0 and 1, and its barrier: the highest train value on [0, 1] above
        // the mean of the two ends.
        if xName == "t", let statistics = result.metadata["statistics"], let train = series.first?.values {
            var ends: [Double] = []
            if case .array(let items)? = statistics["train_endpoint_loss"] { ends = items.compactMap(\.doubleValue) }
            if base == "loss", ends.count == 2 {
                for (t, value, name) in [(0.0, ends[0], "θ₁"), (1.0, ends[1], "θ₂")] where t >= x0 && t <= x1 {
                    let y = transform(value)
                    guard y.isFinite else { continue }
                    canvas.circle(px(t), py(y), r: 5, fill: "white", stroke: "black")
                    canvas.text(px(t), py(y) - 10, name, size: 13, weight: "bold")
                }
            }
            let key = base == "loss" ? "train_loss_barrier" : "train_error_barrier"
            let inside = zip(xs, train).filter { $0.0 >= 0 && $0.0 <= 1 && $0.1.isFinite }
            let peak = base == "loss" ? inside.max { $0.1 < $1.1 } : inside.min { $0.1 < $1.1 }
            if let barrier = statistics[key]?.doubleValue, barrier.isFinite, let (t, value) = peak,
                base == "loss" || base == "acc"
            {
                let y = transform(value)
                if y.isFinite {
                    canvas.line(px(t), py(y), px(t), Self.plotTop + Self.plotHeight, stroke: "#444", dash: "3,3")
                    canvas.text(
                        px(t) + 6, py(y) + (base == "loss" ? -14 : 18),
                        String(format: "%@ barrier %.4g", base == "loss" ? "loss" : "error", barrier), size: 12,
                        anchor: "start", weight: "bold")
                }
            }
        }
        if let values = result["train_\(base)"]?.floats(), let note = partialNote(values) {
            canvas.text(Self.plotLeft, Self.height - 8, note, size: 11, anchor: "start")
        }
        if automatic {
            canvas.text(Self.width - 10, Self.height - 8, "log scale: the values span more than 2 decades", size: 11, anchor: "end")
        }
        let xLabel =
            xName == "density_grid" ? "eigenvalue" : xName == "t" ? "t (θ₁ at 0, θ₂ at 1)" : xName == "x" ? "α" : xName
        canvas.text(Self.plotLeft + Self.plotWidth / 2, Self.height - 30, xLabel, size: 14)
        canvas.text(
            25, Self.plotTop + Self.plotHeight / 2, Self.label(metric == "epoch_loss" ? "mean loss" : base)
                + (log ? " (log scale)" : ""), size: 14, rotate: -90)
        canvas.text(Self.width / 2, 30, title, size: 15, weight: "bold")
        return canvas.document
    }
}
