/// How BatchNorm running statistics are re-estimated for a point (`bn: recompute`): reset, then
/// the batch statistics (mean, unbiased variance) of the training set in order, in batches of
/// `batchSize`, averaged with one of two conventions:
/// - `batch`: every batch weighs the same (PyTorch's `torch.optim.swa_utils.update_bn`, whose
///   cumulative average gives batch k the momentum 1/(k+1)); the default;
/// - `samples`: every batch weighs its size (Garipov et al.'s `update_bn`, momentum
///   b / (seen + b)), so a short last batch counts for what it holds.
/// The two agree when every batch is full.
public struct BatchNormRecompute: Codable, Sendable, Equatable {
    public enum Weighting: String, Codable, Sendable, CaseIterable {
        case batch, samples
    }

    public var batchSize: Int
    public var weighting: Weighting

    public init(batchSize: Int = 128, weighting: Weighting = .batch) {
        self.batchSize = batchSize
        self.weighting = weighting
    }

    /// The momentum that folds batch `index` (of `size` samples, after `seen` samples) into the
    /// running average.
    public func momentum(batch index: Int, size: Int, seen: Int) -> Double {
        switch weighting {
        case .batch: 1 / Double(index + 1)
        case .samples: Double(size) / Double(seen + size)
        }
    }

    /// Metadata for a result: the convention that made its statistics.
    public var description: [String: String] {
        ["batch_size": String(batchSize), "weighting": weighting.rawValue]
    }

    private enum CodingKeys: String, CodingKey { case batchSize = "batch_size", weighting }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        batchSize = try c.decodeIfPresent(Int.self, forKey: .batchSize) ?? 128
        weighting = try c.decodeIfPresent(Weighting.self, forKey: .weighting) ?? .batch
        guard (1...1_000_000).contains(batchSize) else {
            throw DecodingError.dataCorruptedError(
                forKey: .batchSize, in: c, debugDescription: "must be a batch size from 1 to 1000000, got \(batchSize)")
        }
    }
}
