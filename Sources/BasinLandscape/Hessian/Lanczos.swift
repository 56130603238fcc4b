import Foundation
/// The Lanczos process on a symmetric operator known only through its products (Hessian-vector
/// products here), with full reorthogonalization, and the small symmetric eigenproblem it
/// leaves.
public enum Lanczos {
    /// `steps` Lanczos steps from `start` (at most `n`, fewer when the Krylov space closes).
    /// Returns the Ritz values (eigenvalues of the tridiagonal matrix, ascending) and each one's
    /// weight: the squared first component of its eigenvector, so Σ weights = 1 and the pairs
    /// are the Gauss quadrature of the operator's spectral measure seen from `start`.
    public static func run(steps: Int, start: [Double], product: ([Double]) -> [Double]) -> (values: [Double], weights: [Double]) {
        let n = start.count
        let norm = dot(start, start).squareRoot()
        guard n > 0, norm > 0, steps > 0 else { return ([], []) }
        var basis: [[Double]] = [start.map { $0 / norm }]
        var alpha: [Double] = [], beta: [Double] = []
        for j in 0..<min(steps, n) {
            let q = basis[j]
            var w = product(q)
            let a = dot(w, q)
            alpha.append(a)
            // Full reorthogonalization, twice ("twice is enough"), against every basis vector.
            for _ in 0..<2 {
                for b in basis {
                    let c = dot(w, b)
                    for i in 0..<n { w[i] -= c * b[i] }
                }
            }
            let b = dot(w, w).squareRoot()
            if j == min(steps, n) - 1 || b <= 1e-10 * max(1, abs(a)) { break }
            beta.append(b)
            basis.append(w.map { $0 / b })
        }
        let k = alpha.count
        var matrix = [Double](repeating: 0, count: k * k)
        for i in 0..<k {
            matrix[i * k + i] = alpha[i]
            if i + 1 < k {
                matrix[i * k + i + 1] = beta[i]
                matrix[(i + 1) * k + i] = beta[i]
            }
        }
        let (values, vectors) = symmetricEigen(matrix, n: k)
        let order = values.indices.sorted { values[$0] < values[$1] }
        return (order.map { values[$0] }, order.map { vectors[0 * k + $0] * vectors[0 * k + $0] })
    }

    /// Eigenvalues and eigenvectors (column j of the row-major result) of a symmetric n×n
    /// matrix by cyclic Jacobi rotations, in Double.
    public static func symmetricEigen(_ matrix: [Double], n: Int) -> (values: [Double], vectors: [Double]) {
        var a = matrix
        var v = [Double](repeating: 0, count: n * n)
        for i in 0..<n { v[i * n + i] = 1 }
        for _ in 0..<100 {
            var off = 0.0
            for p in 0..<n { for q in (p + 1)..<max(p + 1, n) { off += a[p * n + q] * a[p * n + q] } }
            if off < 1e-30 { break }
            for p in 0..<n {
                for q in (p + 1)..<max(p + 1, n) where abs(a[p * n + q]) > 1e-300 {
                    let theta = (a[q * n + q] - a[p * n + p]) / (2 * a[p * n + q])
                    let t = (theta >= 0 ? 1 : -1) / (abs(theta) + (theta * theta + 1).squareRoot())
                    let c = 1 / (t * t + 1).squareRoot(), s = t * c
                    for k in 0..<n {
                        let akp = a[k * n + p], akq = a[k * n + q]
                        a[k * n + p] = c * akp - s * akq
                        a[k * n + q] = s * akp + c * akq
                    }
                    for k in 0..<n {
                        let apk = a[p * n + k], aqk = a[q * n + k]
                        a[p * n + k] = c * apk - s * aqk
                        a[q * n + k] = s * apk + c * aqk
                    }
                    for k in 0..<n {
                        let vkp = v[k * n + p], vkq = v[k * n + q]
                        v[k * n + p] = c * vkp - s * vkq
                        v[k * n + q] = s * vkp + c * vkq
                    }
                }
            }
        }
        return ((0..<n).map { a[$0 * n + $0] }, v)
    }

    static func dot(_ a: [Double], _ b: [Double]) -> Double {
        var s = 0.0
        for i in a.indices { s += a[i] * b[i] }
        return s
    }
}

/// The Hessian's eigenvalue density by stochastic Lanczos quadrature (PyHessian's ESD): per
/// run, Lanczos from a Gaussian start gives Ritz values and weights; each becomes a Gaussian
/// of variance `sigmaSquared`·max(1, range) on a grid spanning the runs' mean extreme Ritz values
/// ± 0.01; the runs are averaged and the density normalized to integrate to 1 on the grid.
public struct SpectralDensity: Sendable, Equatable {
    public var grid: [Double]
    public var density: [Double]

    public init(runs ritz: [(values: [Double], weights: [Double])], bins: Int, sigmaSquared: Double) {
        let usable = ritz.filter { !$0.values.isEmpty }
        guard !usable.isEmpty, bins >= 2 else {
            grid = []
            density = []
            return
        }
        let high = usable.map { $0.values.max() ?? 0 }.reduce(0, +) / Double(usable.count) + 1e-2
        let low = usable.map { $0.values.min() ?? 0 }.reduce(0, +) / Double(usable.count) - 1e-2
        let sigma = sigmaSquared * max(1, high - low)
        grid = (0..<bins).map { low + (high - low) * Double($0) / Double(bins - 1) }
        var density = [Double](repeating: 0, count: bins)
        for run in usable {
            for (j, x) in grid.enumerated() {
                var sum = 0.0
                for (value, weight) in zip(run.values, run.weights) {
                    let d = value - x
                    sum += weight * Foundation.exp(-d * d / (2 * sigma)) / (2 * Double.pi * sigma).squareRoot()
                }
                density[j] += sum / Double(usable.count)
            }
        }
        let step = grid[1] - grid[0]
        let mass = density.reduce(0, +) * step
        self.density = mass > 0 ? density.map { $0 / mass } : density
    }
}
