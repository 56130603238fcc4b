import BasinLandscape
import BasinNN

/// `fit` (from `stages.connect.curve`): a curve of `curve`'s family between `from` and `to`,
/// trained with `config`.
public struct FitJob: Codable, Sendable, Equatable {
    public var name: String?
    public var from: String
    public var to: String
    public var config: TrainingConfig
    public var curve: Curve

    public init(name: String, from: String, to: String, config: TrainingConfig, curve: Curve) {
        self.name = name
        self.from = from
        self.to = to
        self.config = config
        self.curve = curve
    }
}
