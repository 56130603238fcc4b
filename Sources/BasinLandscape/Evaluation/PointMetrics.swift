import BasinNN

/// Loss and accuracy at one point, on the training set and (when given) the test set.
public struct PointMetrics: Sendable, Equatable {
    public var trainLoss: Double
    public var trainAccuracy: Double
    public var testLoss: Double
    public var testAccuracy: Double

    public init(train: LossTally, test: LossTally?) {
        trainLoss = train.meanLoss
        trainAccuracy = train.accuracy
        testLoss = test?.meanLoss ?? .nan
        testAccuracy = test?.accuracy ?? .nan
    }

    /// Metric names as they appear in result files, with accessors.
    public static let fields: [(name: String, value: @Sendable (PointMetrics) -> Double)] = [
        ("train_loss", { $0.trainLoss }), ("train_acc", { $0.trainAccuracy }),
        ("test_loss", { $0.testLoss }), ("test_acc", { $0.testAccuracy }),
    ]
}

/// How BatchNorm running statistics are set at each evaluated point.
public enum BatchNormMode: String, Codable, Sendable, CaseIterable {
    /// The family's running statistics (the model's own around a model, combined with the
    /// same coefficients as the weights along paths).
    case eval
    /// Re-estimated at every point from the training set (Garipov et al.'s `update_bn`).
    case recompute
}
