import CBLAS
import Foundation

/// Row-major single-precision GEMM through OpenBLAS, and its thread setting.
public enum BLAS {
    /// Basin's default of one OpenBLAS thread (one worker per core), applied once before the
    /// first workspace is made unless `OPENBLAS_NUM_THREADS` is set or `setThreads` came first.
    static let defaultThreads: Void = {
        if ProcessInfo.processInfo.environment["OPENBLAS_NUM_THREADS"] == nil {
            openblas_set_num_threads(1)
        }
    }()

    /// OpenBLAS threads for every later call in this process.
    public static func setThreads(_ count: Int) {
        _ = defaultThreads
        openblas_set_num_threads(Int32(clamping: max(1, count)))
    }

    public static var threads: Int {
        Int(openblas_get_num_threads())
    }

    /// C ← α·op(A)·op(B) + β·C, all row-major; op(A) is m×k, op(B) is k×n, C is m×n.
    ///
    /// `lda`, `ldb`, `ldc` are the row strides of A, B, C as stored (before transposition).
    /// C must not alias A or B.
    @inline(__always)
    public static func sgemm(
        transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
        alpha: Float = 1, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        guard m > 0, n > 0 else { return }
        guard let m32 = Int32(exactly: m), let n32 = Int32(exactly: n), let k32 = Int32(exactly: k),
            let lda32 = Int32(exactly: lda), let ldb32 = Int32(exactly: ldb), let ldc32 = Int32(exactly: ldc)
        else {
            preconditionFailure("sgemm dimensions exceed Int32: m=\(m) n=\(n) k=\(k)")
        }
        cblas_sgemm(
            CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
            m32, n32, k32, alpha, a, lda32, b, ldb32, beta, c, ldc32)
    }
}
