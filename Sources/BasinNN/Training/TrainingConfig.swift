import Foundation

/// Optimizer, schedule and loop settings for one training run, with PyTorch's meanings.
public struct TrainingConfig: Codable, Sendable, Equatable {
    public enum OptimizerKind: String, Codable, Sendable, CaseIterable {
        case sgd, adam, adamw
    }

    /// Learning rate per epoch.
    public enum Schedule: Codable, Sendable, Equatable {
        case constant
        /// `lr · gamma^⌊epoch / stepSize⌋` (`StepLR`).
        case step(stepSize: Int, gamma: Double)
        /// `etaMin + (lr − etaMin)(1 + cos(π·epoch/epochs))/2` (`CosineAnnealingLR`, T_max = epochs).
        case cosine(etaMin: Double)
        /// Garipov et al.'s (dnn-mode-connectivity): the base rate for the first half of
        /// training, then linear down to 1% of it by 90%, then 1%.
        case garipov

        private enum Key: String, CodingKey { case type, stepSize = "step_size", gamma, etaMin = "eta_min" }

        public init(from decoder: Decoder) throws {
            if let name = try? decoder.singleValueContainer().decode(String.self) {
                switch name {
                case "constant": self = .constant
                case "cosine": self = .cosine(etaMin: 0)
                case "garipov": self = .garipov
                default:
                    throw DecodingError.dataCorrupted(
                        .init(
                            codingPath: decoder.codingPath,
                            debugDescription: "unknown schedule '\(name)' (known: constant, step, cosine, garipov)"))
                }
                return
            }
            let c = try decoder.container(keyedBy: Key.self)
            switch try c.decode(String.self, forKey: .type) {
            case "constant": self = .constant
            case "step":
                self = .step(
                    stepSize: try c.decode(Int.self, forKey: .stepSize),
                    gamma: try c.decodeIfPresent(Double.self, forKey: .gamma) ?? 0.1)
            case "cosine": self = .cosine(etaMin: try c.decodeIfPresent(Double.self, forKey: .etaMin) ?? 0)
            case "garipov": self = .garipov
            case let other:
                throw DecodingError.dataCorruptedError(
                    forKey: .type, in: c,
                    debugDescription: "unknown schedule '\(other)' (known: constant, step, cosine, garipov)")
            }
        }

        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: Key.self)
            switch self {
            case .constant: try c.encode("constant", forKey: .type)
            case .step(let stepSize, let gamma):
                try c.encode("step", forKey: .type)
                try c.encode(stepSize, forKey: .stepSize)
                try c.encode(gamma, forKey: .gamma)
            case .cosine(let etaMin):
                try c.encode("cosine", forKey: .type)
                try c.encode(etaMin, forKey: .etaMin)
            case .garipov: try c.encode("garipov", forKey: .type)
            }
        }

        public func learningRate(base: Double, epoch: Int, epochs: Int) -> Double {
            switch self {
            case .constant: return base
            case .step(let stepSize, let gamma): return base * pow(gamma, Double(epoch / max(stepSize, 1)))
            case .cosine(let etaMin):
                return etaMin + (base - etaMin) * (1 + cos(Double.pi * Double(epoch) / Double(max(epochs, 1)))) / 2
            case .garipov:
                let alpha = Double(epoch) / Double(max(epochs, 1))
                let factor = alpha <= 0.5 ? 1 : alpha <= 0.9 ? 1 - (alpha - 0.5) / 0.4 * 0.99 : 0.01
                return factor * base
            }
        }
    }

    public var optimizer: OptimizerKind = .sgd
    public var lr: Double = 0.1
    public var momentum: Double = 0
    public var dampening: Double = 0
    public var nesterov: Bool = false
    public var weightDecay: Double = 0
    public var betas: [Double] = [0.9, 0.999]
    public var eps: Double = 1e-8
    public var schedule: Schedule = .constant
    /// Epochs of linear warm-up before the schedule: epoch e < N trains at lr·(e+1)/N, and the
    /// schedule then runs over the remaining epochs.
    public var warmupEpochs: Int?
    public var epochs: Int = 10
    public var batchSize: Int = 64
    public var seed: UInt64 = 0
    public var loss: LossFunction = .crossEntropy

    public init() {}

    private enum CodingKeys: String, CodingKey {
        case optimizer, lr, momentum, dampening, nesterov, weightDecay = "weight_decay", betas, eps, schedule, epochs
        case warmupEpochs = "warmup_epochs"
        case batchSize = "batch_size", seed, loss
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = TrainingConfig()
        optimizer = try c.decodeIfPresent(OptimizerKind.self, forKey: .optimizer) ?? d.optimizer
        lr = try c.decodeIfPresent(Double.self, forKey: .lr) ?? d.lr
        momentum = try c.decodeIfPresent(Double.self, forKey: .momentum) ?? d.momentum
        dampening = try c.decodeIfPresent(Double.self, forKey: .dampening) ?? d.dampening
        nesterov = try c.decodeIfPresent(Bool.self, forKey: .nesterov) ?? d.nesterov
        weightDecay = try c.decodeIfPresent(Double.self, forKey: .weightDecay) ?? d.weightDecay
        betas = try c.decodeIfPresent([Double].self, forKey: .betas) ?? d.betas
        eps = try c.decodeIfPresent(Double.self, forKey: .eps) ?? d.eps
        schedule = try c.decodeIfPresent(Schedule.self, forKey: .schedule) ?? d.schedule
        warmupEpochs = try c.decodeIfPresent(Int.self, forKey: .warmupEpochs)
        epochs = try c.decodeIfPresent(Int.self, forKey: .epochs) ?? d.epochs
        batchSize = try c.decodeIfPresent(Int.self, forKey: .batchSize) ?? d.batchSize
        seed = try c.decodeIfPresent(UInt64.self, forKey: .seed) ?? d.seed
        loss = try c.decodeIfPresent(LossFunction.self, forKey: .loss) ?? d.loss
    }

    /// Why these settings cannot train, naming the field, or nil when they can.
    public func validationError() -> String? {
        if !(lr > 0) { return "'lr' must be positive, got \(lr)" }
        if epochs < 0 { return "'epochs' must be at least 0, got \(epochs)" }
        if batchSize < 1 { return "'batch_size' must be at least 1, got \(batchSize)" }
        if momentum < 0 { return "'momentum' must be at least 0, got \(momentum)" }
        if weightDecay < 0 { return "'weight_decay' must be at least 0, got \(weightDecay)" }
        if nesterov && (momentum <= 0 || dampening != 0) { return "'nesterov' needs momentum > 0 and dampening 0" }
        if betas.count != 2 || !betas.allSatisfy({ $0 >= 0 && $0 < 1 }) {
            return "'betas' must be two numbers in [0, 1)"
        }
        if case .step(let stepSize, _) = schedule, stepSize < 1 { return "'schedule.step_size' must be at least 1" }
        if let warmupEpochs, warmupEpochs < 0 || warmupEpochs > epochs {
            return "'warmup_epochs' must be between 0 and 'epochs' (\(epochs)), got \(warmupEpochs)"
        }
        return nil
    }

    /// The learning rate of epoch `epoch` (0-based): the warm-up, then the schedule.
    public func learningRate(epoch: Int) -> Double {
        let warmup = warmupEpochs ?? 0
        if epoch < warmup { return lr * Double(epoch + 1) / Double(warmup) }
        return schedule.learningRate(base: lr, epoch: epoch - warmup, epochs: epochs - warmup)
    }
}
