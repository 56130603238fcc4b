import BasinNN
import BasinTestSupport
import Foundation
import Testing

@Suite struct BLASTests {
    /// Every transpose combination of the sgemm wrapper against a plain Double triple loop.
    @Test(arguments: [(false, false), (true, false), (false, true), (true, true)])
    func sgemmMatchesPlainReference(_ transposes: (Bool, Bool)) {
        let (transA, transB) = transposes
        let m = 5, n = 7, k = 3
        let a = TestSupport.gaussian(m * k, seed: 1), b = TestSupport.gaussian(k * n, seed: 2)
        var c = TestSupport.gaussian(m * n, seed: 3)
        let original = c
        // Stored shapes: A is m×k (or k×m when transposed), B is k×n (or n×k).
        let lda = transA ? m : k, ldb = transB ? k : n
        a.withUnsafeBufferPointer { a in
            b.withUnsafeBufferPointer { b in
                c.withUnsafeMutableBufferPointer { c in
                    BLAS.sgemm(
                        transA: transA, transB: transB, m: m, n: n, k: k, alpha: 2, a: a.baseAddress!, lda: lda,
                        b: b.baseAddress!, ldb: ldb, beta: 0.5, c: c.baseAddress!, ldc: n)
                }
            }
        }
        for i in 0..<m {
            for j in 0..<n {
                var sum = 0.0
                for p in 0..<k {
                    let av = transA ? a[p * m + i] : a[i * k + p]
                    let bv = transB ? b[j * k + p] : b[p * n + j]
                    sum += Double(av) * Double(bv)
                }
                let expected = 2 * sum + 0.5 * Double(original[i * n + j])
                #expect(abs(Double(c[i * n + j]) - expected) < 1e-5)
            }
        }
    }

    @Test func oneThreadByDefault() throws {
        guard ProcessInfo.processInfo.environment["OPENBLAS_NUM_THREADS"] == nil else { return }
        _ = Workspace(network: try Network(ModelDescription(input: [2], layers: [.relu])), capacity: 1)
        #expect(BLAS.threads == 1)
    }
}
