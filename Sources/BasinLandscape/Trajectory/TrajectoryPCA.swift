import BasinNN
import Foundation

/// Principal directions of a training trajectory (Li et al. 2018, §7): the top components of
/// the snapshots' offsets θᵢ − θ_final (centred, as scikit-learn's PCA does), with each
/// snapshot's coordinates along them so the path can be drawn on the surface.
public struct TrajectoryPCA: Sendable {
    /// Unit-norm directions, largest variance first.
    public let directions: [[Float]]
    public let explainedVarianceRatio: [Double]
    /// Per snapshot, (θᵢ − θ_final)·dⱼ for each direction.
    public let projections: [[Double]]

    public init(snapshots: [[Float]], final: [Float], components: Int = 2) throws {
        guard snapshots.count >= components + 1 else {
            throw NNError(
                "trajectory: PCA of \(components) directions needs at least \(components + 1) snapshots, got \(snapshots.count)"
            )
        }
        let n = snapshots.count, p = final.count
        let offsets = snapshots.map { VectorMath.difference($0, final) }
        var mean = [Double](repeating: 0, count: p)
        for row in offsets { for i in 0..<p { mean[i] += Double(row[i]) / Double(n) } }
        let centred = offsets.map { row in (0..<p).map { Double(row[$0]) - mean[$0] } }
        // The n×n Gram matrix shares its nonzero eigenvalues with the p×p covariance.
        var gram = [[Double]](repeating: [Double](repeating: 0, count: n), count: n)
        for a in 0..<n {
            for b in a..<n {
                var sum = 0.0
                for i in 0..<p { sum += centred[a][i] * centred[b][i] }
                gram[a][b] = sum
                gram[b][a] = sum
            }
        }
        let (values, vectors) = SymmetricEigen.decompose(gram)
        let total = values.reduce(0) { $0 + Swift.max($1, 0) }
        var directions: [[Float]] = [], ratios: [Double] = []
        for j in 0..<components {
            var d = [Double](repeating: 0, count: p)
            for a in 0..<n where vectors[a][j] != 0 {
                for i in 0..<p { d[i] += vectors[a][j] * centred[a][i] }
            }
            let norm = d.reduce(0) { $0 + $1 * $1 }.squareRoot()
            guard norm > 0 else { throw NNError("trajectory: the snapshots span fewer than \(components) directions") }
            // Sign convention: the first snapshot has a non-negative coordinate.
            let sign: Double = zip(d, offsets[0]).reduce(0) { $0 + $1.0 * Double($1.1) } < 0 ? -1 : 1
            directions.append(d.map { Float(sign * $0 / norm) })
            ratios.append(total > 0 ? Swift.max(values[j], 0) / total : 0)
        }
        self.directions = directions
        explainedVarianceRatio = ratios
        projections = offsets.map { row in directions.map { VectorMath.dot(row, $0) } }
    }
}

extension TrajectoryPCA {
    /// The parameters of every `.safetensors` snapshot in `directory`, in name order
    /// (`basin train --snapshots` writes epoch-0000, epoch-0001, …).
    public static func snapshots(in directory: URL, network: Network) throws -> [[Float]] {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter {
                $0.hasSuffix(".safetensors")
            }.sorted()
        } catch {
            throw NNError("\(directory.path): cannot list the snapshot directory (\(error.localizedDescription))")
        }
        return try names.map { name in
            let url = directory.appendingPathComponent(name)
            return try Checkpoint.load(try SafeTensors(contentsOf: url), into: network, source: url.path).parameters
        }
    }
}

/// Eigen-decomposition of a small symmetric matrix by cyclic Jacobi rotations.
enum SymmetricEigen {
    /// Eigenvalues in decreasing order and the eigenvectors as columns (`vectors[row][k]`).
    static func decompose(_ matrix: [[Double]]) -> (values: [Double], vectors: [[Double]]) {
        let n = matrix.count
        var a = matrix
        var v = (0..<n).map { i in (0..<n).map { $0 == i ? 1.0 : 0.0 } }
        for _ in 0..<100 {
            var off = 0.0
            for i in 0..<n { for j in 0..<n where i != j { off += a[i][j] * a[i][j] } }
            if off < 1e-24 * Swift.max(1, (0..<n).reduce(0) { $0 + a[$1][$1] * a[$1][$1] }) { break }
            for p in 0..<n {
                for q in (p + 1)..<n where a[p][q] != 0 {
                    let theta = (a[q][q] - a[p][p]) / (2 * a[p][q])
                    let t = (theta >= 0 ? 1 : -1) / (abs(theta) + (theta * theta + 1).squareRoot())
                    let c = 1 / (t * t + 1).squareRoot(), s = t * c
                    for k in 0..<n {
                        let akp = a[k][p], akq = a[k][q]
                        a[k][p] = c * akp - s * akq
                        a[k][q] = s * akp + c * akq
                    }
                    for k in 0..<n {
                        let apk = a[p][k], aqk = a[q][k]
                        a[p][k] = c * apk - s * aqk
                        a[q][k] = s * apk + c * aqk
                    }
                    for k in 0..<n {
                        let vkp = v[k][p], vkq = v[k][q]
                        v[k][p] = c * vkp - s * vkq
                        v[k][q] = s * vkp + c * vkq
                    }
                }
            }
        }
        let order = (0..<n).sorted { a[$0][$0] > a[$1][$1] }
        return (order.map { a[$0][$0] }, (0..<n).map { row in order.map { v[row][$0] } })
    }
}
