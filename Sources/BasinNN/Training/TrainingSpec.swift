/// A model, its data and how to train it: the `model`, `data` and `train` sections of a spec.
public struct TrainingSpec: Codable, Sendable, Equatable {
    public var model: ModelDescription
    public var data: DataSpec
    public var train: TrainingConfig

    public init(model: ModelDescription, data: DataSpec, train: TrainingConfig = TrainingConfig()) {
        self.model = model
        self.data = data
        self.train = train
    }

    private enum CodingKeys: String, CodingKey { case model, data, train }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        model = try c.decode(ModelDescription.self, forKey: .model)
        data = try c.decode(DataSpec.self, forKey: .data)
        train = try c.decodeIfPresent(TrainingConfig.self, forKey: .train) ?? TrainingConfig()
    }
}
