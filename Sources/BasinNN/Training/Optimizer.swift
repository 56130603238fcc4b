import Foundation

/// SGD, Adam and AdamW over a flat parameter buffer, following `torch.optim` update by update.
public struct Optimizer: Sendable {
    public let config: TrainingConfig
    private var first: [Float]
    private var second: [Float]
    private var steps = 0

    public init(config: TrainingConfig, parameterCount: Int) {
        self.config = config
        let needsFirst = config.optimizer != .sgd || config.momentum != 0
        first = needsFirst ? [Float](repeating: 0, count: parameterCount) : []
        second = config.optimizer == .sgd ? [] : [Float](repeating: 0, count: parameterCount)
    }

    /// One update of `parameters` from `gradients` at learning rate `lr`.
    public mutating func step(parameters: inout [Float], gradients: [Float], lr: Double) {
        steps += 1
        let isFirstStep = steps == 1
        let c = config
        let lr32 = Float(lr), wd = Float(c.weightDecay)
        parameters.withUnsafeMutableBufferPointer { p in
            gradients.withUnsafeBufferPointer { g in
                first.withUnsafeMutableBufferPointer { m in
                    second.withUnsafeMutableBufferPointer { v in
                        switch c.optimizer {
                        case .sgd:
                            let momentum = Float(c.momentum), dampening = Float(c.dampening)
                            for i in 0..<p.count {
                                var d = g[i] + wd * p[i]
                                if momentum != 0 {
                                    m[i] = isFirstStep ? d : momentum * m[i] + (1 - dampening) * d
                                    d = c.nesterov ? d + momentum * m[i] : m[i]
                                }
                                p[i] -= lr32 * d
                            }
                        case .adam, .adamw:
                            let b1 = Float(c.betas[0]), b2 = Float(c.betas[1]), eps = Float(c.eps)
                            let correction1 = 1 - pow(c.betas[0], Double(steps))
                            let correction2 = 1 - pow(c.betas[1], Double(steps))
                            let stepSize = Float(lr / correction1)
                            let sqrtCorrection2 = Float(correction2.squareRoot())
                            let decoupled = c.optimizer == .adamw
                            for i in 0..<p.count {
                                var grad = g[i]
                                if decoupled {
                                    p[i] *= 1 - lr32 * wd
                                } else {
                                    grad += wd * p[i]
                                }
                                m[i] = b1 * m[i] + (1 - b1) * grad
                                v[i] = b2 * v[i] + (1 - b2) * grad * grad
                                let denom = v[i].squareRoot() / sqrtCorrection2 + eps
                                p[i] -= stepSize * m[i] / denom
                            }
                        }
                    }
                }
            }
        }
    }
}
