/// Samples in memory: features `[count, sampleShape...]` row-major as Float32, with either
/// integer class labels or regression targets.
public struct Dataset: Sendable, Equatable {
    public var sampleShape: [Int]
    public var features: [Float]
    /// Class labels in 0..<classCount; empty for a regression set.
    public var labels: [Int32]
    /// Regression targets `[count, targetSize]`; empty for a classification set.
    public var targets: [Float]
    public var targetSize: Int
    public var classCount: Int
    /// Crop-and-flip applied to training minibatches (CIFAR sources); nil: samples as they are.
    public var augmentation: Augmentation?

    public var count: Int { sampleSize == 0 ? 0 : features.count / sampleSize }
    public var sampleSize: Int { sampleShape.reduce(1, *) }
    public var isClassification: Bool { targets.isEmpty }

    public init(sampleShape: [Int], features: [Float], labels: [Int32], classCount: Int? = nil) {
        self.sampleShape = sampleShape
        self.features = features
        self.labels = labels
        self.targets = []
        self.targetSize = 0
        self.classCount = classCount ?? (Int(labels.max() ?? -1) + 1)
    }

    public init(sampleShape: [Int], features: [Float], targets: [Float], targetSize: Int) {
        self.sampleShape = sampleShape
        self.features = features
        self.labels = []
        self.targets = targets
        self.targetSize = targetSize
        self.classCount = 0
    }

    /// The samples at `indices`, in that order.
    public func subset(_ indices: [Int]) -> Dataset {
        var copy = self
        let s = sampleSize
        copy.features = []
        copy.features.reserveCapacity(indices.count * s)
        for i in indices { copy.features.append(contentsOf: features[(i * s)..<((i + 1) * s)]) }
        if isClassification {
            copy.labels = indices.map { labels[$0] }
        } else {
            copy.targets = []
            for i in indices { copy.targets.append(contentsOf: targets[(i * targetSize)..<((i + 1) * targetSize)]) }
        }
        return copy
    }

    /// Splits off a test set of `round(fraction · count)` samples chosen by a seeded permutation.
    public func split(testFraction: Double, seed: UInt64) -> (train: Dataset, test: Dataset) {
        var random = RandomSource(seed: seed, stream: RandomStream.split.id())
        let order = random.permutation(count)
        let testCount = min(count, max(0, Int((testFraction * Double(count)).rounded())))
        return (subset(Array(order[testCount...])), subset(Array(order[..<testCount])))
    }

    /// Per-feature mean and standard deviation (population), computed in Double.
    public func featureStatistics() -> (mean: [Float], std: [Float]) {
        let s = sampleSize, n = count
        var mean = [Double](repeating: 0, count: s), squares = [Double](repeating: 0, count: s)
        for i in 0..<n {
            for j in 0..<s { mean[j] += Double(features[i * s + j]) }
        }
        for j in 0..<s { mean[j] /= Double(max(n, 1)) }
        for i in 0..<n {
            for j in 0..<s {
                let d = Double(features[i * s + j]) - mean[j]
                squares[j] += d * d
            }
        }
        let std = squares.map { ($0 / Double(max(n, 1))).squareRoot() }
        return (mean.map { Float($0) }, std.map { Float($0 < 1e-12 ? 1 : $0) })
    }

    /// `(x − mean) / std` per feature; a constant feature keeps std 1.
    public mutating func normalize(mean: [Float], std: [Float]) {
        let s = sampleSize
        for i in 0..<count {
            for j in 0..<s { features[i * s + j] = (features[i * s + j] - mean[j]) / std[j] }
        }
    }
}
