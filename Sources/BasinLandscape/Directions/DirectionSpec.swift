import BasinNN

/// How random directions are drawn and scaled (Li et al. 2018).
public struct DirectionSpec: Codable, Sendable, Equatable {
    /// Scaling of each Gaussian direction against the model's own weights.
    public enum Normalization: String, Codable, Sendable, CaseIterable {
        /// Every slice along dim 0 of a parameter (a filter, an output neuron) scaled to the
        /// norm of the same slice of θ: d ← d·‖θ_slice‖/(‖d_slice‖ + 1e-10).
        case filter
        /// Every parameter tensor scaled to the norm of the same tensor of θ.
        case layer
        /// Plain Gaussian.
        case none
    }

    /// Parameters with ≤ 1 dimension (biases, BatchNorm weights).
    public enum OneDimensional: String, Codable, Sendable, CaseIterable {
        /// Zero in the direction (`--ignore biasbn`): they stay at θ's values.
        case biasbn
        /// Copy θ's values into the direction (Li et al.'s default when not ignored).
        case keep
    }

    public var norm: Normalization = .filter
    public var ignore: OneDimensional = .biasbn
    /// Make the second direction orthogonal to the first (Gram–Schmidt over the whole
    /// vector, after normalization).
    public var orthogonalize: Bool = false
    public var seed: UInt64 = 0

    public init(
        norm: Normalization = .filter, ignore: OneDimensional = .biasbn, orthogonalize: Bool = false, seed: UInt64 = 0
    ) {
        self.norm = norm
        self.ignore = ignore
        self.orthogonalize = orthogonalize
        self.seed = seed
    }
}
