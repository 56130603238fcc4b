import Foundation

/// The training objective. Both average over the minibatch, as PyTorch's default `reduction='mean'`.
public enum LossFunction: String, Codable, Sendable, CaseIterable {
    /// Softmax cross-entropy on logits with class labels, via a stable log-sum-exp.
    case crossEntropy = "cross_entropy"
    /// Mean squared error over every output element; class labels become one-hot targets.
    case mse
}

/// Loss and accuracy summed over a set of samples.
public struct LossTally: Sendable, Equatable {
    /// Σ per-sample loss (for MSE the per-sample loss is the mean over output elements).
    public var lossSum = 0.0
    public var correct = 0
    public var count = 0

    public init() {}

    public var meanLoss: Double { count == 0 ? .nan : lossSum / Double(count) }
    public var accuracy: Double { count == 0 ? .nan : Double(correct) / Double(count) }
}

extension LossFunction {
    /// Scores `batch` rows of `output` against the dataset's samples `first..<first+batch` in
    /// `order` (or in place when `order` is nil), adding to `tally`.
    ///
    /// When `gradient` is given it receives ∂(mean loss over the batch)/∂output.
    public func score(
        output: UnsafeBufferPointer<Float>, batch: Int, dataset: Dataset, sampleIndex: (Int) -> Int,
        gradient: UnsafeMutableBufferPointer<Float>?, tally: inout LossTally
    ) {
        let width = batch == 0 ? 0 : output.count / batch
        for b in 0..<batch {
            let row = output.baseAddress! + b * width
            let index = sampleIndex(b)
            let gradRow = gradient.map { $0.baseAddress! + b * width }
            var best = 0
            for k in 1..<max(width, 1) where row[k] > row[best] { best = k }
            if dataset.isClassification {
                let label = Int(dataset.labels[index])
                if best == label { tally.correct += 1 }
                switch self {
                case .crossEntropy:
                    let maxLogit = row[best]
                    var sumExp: Float = 0
                    for k in 0..<width { sumExp += exp(row[k] - maxLogit) }
                    let logSumExp = maxLogit + log(sumExp)
                    tally.lossSum += Double(logSumExp - row[label])
                    if let gradRow {
                        let scale = 1 / Float(batch)
                        for k in 0..<width { gradRow[k] = exp(row[k] - logSumExp) * scale }
                        gradRow[label] -= scale
                    }
                case .mse:
                    var sum: Float = 0
                    for k in 0..<width {
                        let d = row[k] - (k == label ? 1 : 0)
                        sum += d * d
                        gradRow?[k] = 2 * d / Float(batch * width)
                    }
                    tally.lossSum += Double(sum / Float(width))
                }
            } else {
                let base = index * dataset.targetSize
                var sum: Float = 0
                for k in 0..<width {
                    let d = row[k] - dataset.targets[base + k]
                    sum += d * d
                    gradRow?[k] = 2 * d / Float(batch * width)
                }
                tally.lossSum += Double(sum / Float(width))
            }
            tally.count += 1
        }
    }

    /// Why this loss cannot train `network` on `dataset`, or nil when it can.
    public func incompatibility(network: Network, dataset: Dataset) -> String? {
        if network.inputSize != dataset.sampleSize {
            return
                "the model takes \(network.description.input) inputs but the data has samples of shape \(dataset.sampleShape)"
        }
        if dataset.isClassification {
            if dataset.classCount > network.outputSize {
                return "the data has \(dataset.classCount) classes but the model has \(network.outputSize) outputs"
            }
        } else {
            if self == .crossEntropy {
                return "cross_entropy needs integer class labels but the data has real-valued targets; use loss: mse"
            }
            if dataset.targetSize != network.outputSize {
                return
                    "the data has \(dataset.targetSize) targets per sample but the model has \(network.outputSize) outputs"
            }
        }
        return nil
    }
}
