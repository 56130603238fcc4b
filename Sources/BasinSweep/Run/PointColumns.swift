import BasinLandscape
import BasinNN
import Foundation

/// A grid's metrics as result-file columns: one Float32 column per metric (in the order of
/// `PointMetrics.fields`, NaN where a point is missing) and a `done` flag per point, each held
/// as the bytes the result file stores. A merge fills them straight from journal records and
/// the result file takes them as they are: nothing per point in between, no copy after.
public struct PointColumns: Sendable {
    // Float32 columns, little-endian, in `PointMetrics.fields` order.
    private var trainLoss, trainAccuracy, testLoss, testAccuracy: Data
    /// The Float32 columns (little-endian), in `PointMetrics.fields` order.
    public var columns: [Data] { [trainLoss, trainAccuracy, testLoss, testAccuracy] }
    /// One byte per point: 1 when it is done.
    public private(set) var done: Data
    public private(set) var pointsDone = 0

    public var count: Int { done.count }

    public init(count: Int) {
        let missing = [Float](repeating: .nan, count: count).withUnsafeBytes { Data($0) }
        (trainLoss, trainAccuracy, testLoss, testAccuracy) = (missing, missing, missing, missing)
        done = Data(count: count)
    }

    /// Sets point `i` unless it is set already (the first record of a point wins).
    public mutating func set(_ i: Int, _ trainLoss: Double, _ trainAccuracy: Double, _ testLoss: Double, _ testAccuracy: Double)
    {
        withUnsafeMutableMetrics(i..<(i + 1)) { point, flags, c0, c1, c2, c3 in
            guard flags[0] == 0 else { return 0 }
            flags[0] = 1
            (c0[point], c1[point], c2[point], c3[point]) =
                (Float(trainLoss), Float(trainAccuracy), Float(testLoss), Float(testAccuracy))
            return 1
        }
    }

    /// Every shard-done record of one grid job (`range` its point count), 4 values per point.
    public mutating func fill(_ record: Journal.ShardDone) {
        guard record.start >= 0, record.start <= record.end, record.end <= count,
            record.metrics.count == 4 * (record.end - record.start)
        else { return }
        record.metrics.withUnsafeBufferPointer { m in
            withUnsafeMutableMetrics(record.start..<record.end) { start, flags, c0, c1, c2, c3 in
                var added = 0
                for k in 0..<flags.count where flags[k] == 0 {
                    flags[k] = 1
                    added += 1
                    let point = start + k
                    (c0[point], c1[point], c2[point], c3[point]) =
                        (Float(m[4 * k]), Float(m[4 * k + 1]), Float(m[4 * k + 2]), Float(m[4 * k + 3]))
                }
                return added
            }
        }
    }

    typealias Column = UnsafeMutableBufferPointer<Float>

    /// `body(start, flags of range, column 0, …, column 3)` with the flags of `range` and the
    /// four whole columns writable in place; it returns how many points it newly set.
    private mutating func withUnsafeMutableMetrics(
        _ range: Range<Int>, _ body: (Int, UnsafeMutableBufferPointer<UInt8>, Column, Column, Column, Column) -> Int
    ) {
        var added = 0
        done.withUnsafeMutableBytes { flagBytes in
            let flags = UnsafeMutableBufferPointer(rebasing: flagBytes.bindMemory(to: UInt8.self)[range])
            trainLoss.withUnsafeMutableBytes { c0 in
                trainAccuracy.withUnsafeMutableBytes { c1 in
                    testLoss.withUnsafeMutableBytes { c2 in
                        testAccuracy.withUnsafeMutableBytes { c3 in
                            added = body(
                                range.lowerBound, flags, c0.bindMemory(to: Float.self), c1.bindMemory(to: Float.self),
                                c2.bindMemory(to: Float.self), c3.bindMemory(to: Float.self))
                        }
                    }
                }
            }
        }
        pointsDone += added
    }
}
