import BasinNN

/// `train` (from `stages.train`): a model from a seed and complete training settings.
public struct TrainJob: Codable, Sendable, Equatable {
    public var name: String?
    public var config: TrainingConfig

    public init(name: String, config: TrainingConfig) {
        self.name = name
        self.config = config
    }
}
