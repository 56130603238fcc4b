import BasinLandscape

/// A grid's metrics as result-file columns: one Float32 array per metric (in the order of
/// `PointMetrics.fields`, NaN where a point is missing) and a `done` flag per point. A merge
/// fills them straight from journal records, with nothing per point in between.
public struct PointColumns: Sendable {
    public private(set) var values: [[Float]]
    public private(set) var done: [UInt8]
    public private(set) var pointsDone = 0

    public init(count: Int) {
        values = Array(repeating: [Float](repeating: .nan, count: count), count: PointMetrics.fields.count)
        done = [UInt8](repeating: 0, count: count)
    }

    /// Sets point `i` unless it is set already (the first record of a point wins).
    public mutating func set(_ i: Int, _ trainLoss: Double, _ trainAccuracy: Double, _ testLoss: Double, _ testAccuracy: Double)
    {
        guard done[i] == 0 else { return }
        done[i] = 1
        pointsDone += 1
        values[0][i] = Float(trainLoss)
        values[1][i] = Float(trainAccuracy)
        values[2][i] = Float(testLoss)
        values[3][i] = Float(testAccuracy)
    }

    /// Every shard-done record of one grid job (`range` its point count), 4 values per point.
    public mutating func fill(_ done: Journal.ShardDone) {
        guard done.start >= 0, done.start <= done.end, done.end <= self.done.count,
            done.metrics.count == 4 * (done.end - done.start)
        else { return }
        done.metrics.withUnsafeBufferPointer { m in
            for (k, point) in (done.start..<done.end).enumerated() {
                set(point, m[4 * k], m[4 * k + 1], m[4 * k + 2], m[4 * k + 3])
            }
        }
    }
}
