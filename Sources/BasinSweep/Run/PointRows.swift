/// The coefficient rows of a landscape job's points, made when asked for: a grid of a
/// million points holds its axes, not a million small arrays, so a job is prepared (and a
/// merge lays out its result) without building rows no one evaluates there.
///
/// Row `i` of a grid is `x = xs[i % nx]`, `y = ys[i / nx]` (x along a row, row-major
/// `[ny, nx]`), as the result arrays are laid out.
public struct PointRows: RandomAccessCollection, Sendable {
    enum Layout: Sendable {
        /// Rows given one by one (paths: a few hundred at most).
        case listed([[Double]])
        /// θ0 + x·d1 (+ y·d2): `[1, x]` or `[1, x, y]`.
        case around(xs: [Double], ys: [Double]?)
        /// θ1 + x(θ2 − θ1) + y(θ3 − θ1): `[1 − x − y, x, y]`.
        case raw(xs: [Double], ys: [Double])
        /// θ1 + x·u + y·v: `[1, x, y]`.
        case orthonormal(xs: [Double], ys: [Double])
    }

    let layout: Layout

    init(_ layout: Layout) {
        self.layout = layout
    }

    public var startIndex: Int { 0 }

    public var endIndex: Int {
        switch layout {
        case .listed(let rows): rows.count
        case .around(let xs, let ys): xs.count * (ys?.count ?? 1)
        case .raw(let xs, let ys), .orthonormal(let xs, let ys): xs.count * ys.count
        }
    }

    public subscript(i: Int) -> [Double] {
        switch layout {
        case .listed(let rows): return rows[i]
        case .around(let xs, let ys):
            guard let ys else { return [1, xs[i]] }
            return [1, xs[i % xs.count], ys[i / xs.count]]
        case .raw(let xs, let ys):
            let x = xs[i % xs.count], y = ys[i / xs.count]
            return [1 - x - y, x, y]
        case .orthonormal(let xs, let ys):
            return [1, xs[i % xs.count], ys[i / xs.count]]
        }
    }
}
