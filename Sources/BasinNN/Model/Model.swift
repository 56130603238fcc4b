/// A network with its numbers: the flat parameter buffer (PyTorch `state_dict` order), the
/// BatchNorm running statistics and their `num_batches_tracked` counters.
///
/// A value type: copying a model copies its numbers, never shares them.
public struct Model: Sendable {
    public let network: Network
    /// All parameters, laid out by `network.parameterLayout`.
    public var parameters: [Float]
    /// Running statistics, laid out by `network.stateLayout`.
    public var state: [Float]
    /// One counter per BatchNorm layer, in `network.batchNormNames` order.
    public var batchesTracked: [Int64]

    public init(network: Network, parameters: [Float], state: [Float], batchesTracked: [Int64]) {
        precondition(parameters.count == network.parameterLayout.count && state.count == network.stateLayout.count)
        self.network = network
        self.parameters = parameters
        self.state = state
        self.batchesTracked = batchesTracked
    }

    /// Runs `batch` samples (`batch × inputSize` floats at `input`) through the network.
    ///
    /// The output is `workspace.output(batch:)`. In training mode BatchNorm updates the
    /// running statistics and counters.
    public mutating func forward(
        _ input: UnsafePointer<Float>, batch: Int, mode: ForwardMode, workspace: Workspace
    ) {
        if mode.usesBatchStatistics {
            for i in batchesTracked.indices { batchesTracked[i] += 1 }
        }
        let network = self.network
        parameters.withUnsafeMutableBufferPointer { params in
            state.withUnsafeMutableBufferPointer { state in
                Self.forward(network, params, state, input, batch: batch, mode: mode, workspace: workspace)
            }
        }
    }

    /// Evaluation-mode forward pass that leaves the model untouched; no backward may follow it
    /// (layers fuse, `ForwardMode.inference`).
    public func infer(_ input: UnsafePointer<Float>, batch: Int, workspace: Workspace) {
        parameters.withUnsafeBufferPointer { params in
            state.withUnsafeBufferPointer { state in
                // Evaluation mode reads parameters and state and never writes them.
                Self.forward(
                    network, UnsafeMutableBufferPointer(mutating: params), UnsafeMutableBufferPointer(mutating: state),
                    input, batch: batch, mode: .inference, workspace: workspace)
            }
        }
    }

    /// Back-propagates `workspace.outputGradient(batch:)` (set by the loss) through the
    /// activations of the last forward pass, writing ∂L/∂parameters into `gradients`.
    ///
    /// `input` and `mode` must be those of that forward pass.
    public func backward(
        _ input: UnsafePointer<Float>, batch: Int, mode: ForwardMode, workspace: Workspace,
        gradients: UnsafeMutableBufferPointer<Float>
    ) {
        precondition(gradients.count == parameters.count && batch <= workspace.capacity && mode != .inference)
        precondition(workspace.backward, "backward needs a workspace made with backward: true")
        let network = self.network
        parameters.withUnsafeBufferPointer { params in
            state.withUnsafeBufferPointer { state in
                let params = UnsafeMutableBufferPointer(mutating: params)
                let state = UnsafeMutableBufferPointer(mutating: state)
                for layer in stride(from: network.kernels.count - 1, through: 0, by: -1) {
                    let kernel = network.kernels[layer]
                    let memory = Self.memory(network, layer, params, state, input, batch: batch, workspace: workspace)
                    let inputGradient: UnsafeMutableBufferPointer<Float>? =
                        layer == 0
                        ? nil
                        : UnsafeMutableBufferPointer(
                            rebasing: workspace.gradients[layer - 1][0..<(batch * kernel.inputSize)])
                    let gradientMemory = LayerGradientMemory(
                        outputGradient: UnsafeMutableBufferPointer(
                            rebasing: workspace.gradients[layer][0..<(batch * kernel.outputSize)]),
                        inputGradient: inputGradient,
                        parameterGradients: UnsafeMutableBufferPointer(
                            rebasing: gradients[network.parameterRanges[layer]]))
                    kernel.backward(memory, gradientMemory, mode: mode, layerIndex: layer)
                }
            }
        }
    }

    private static func memory(
        _ network: Network, _ layer: Int, _ params: UnsafeMutableBufferPointer<Float>,
        _ state: UnsafeMutableBufferPointer<Float>, _ input: UnsafePointer<Float>, batch: Int, workspace: Workspace
    ) -> LayerMemory {
        let kernel = network.kernels[layer]
        let layerInput =
            layer == 0
            ? UnsafeMutableBufferPointer(mutating: UnsafeBufferPointer(start: input, count: batch * kernel.inputSize))
            : UnsafeMutableBufferPointer(rebasing: workspace.activations[layer - 1][0..<(batch * kernel.inputSize)])
        return LayerMemory(
            batch: batch, backward: workspace.backward,
            input: layerInput,
            output: UnsafeMutableBufferPointer(rebasing: workspace.activations[layer][0..<(batch * kernel.outputSize)]),
            parameters: UnsafeMutableBufferPointer(rebasing: params[network.parameterRanges[layer]]),
            state: UnsafeMutableBufferPointer(rebasing: state[network.stateRanges[layer]]),
            scratch: workspace.scratch[layer])
    }

    private static func forward(
        _ network: Network, _ params: UnsafeMutableBufferPointer<Float>, _ state: UnsafeMutableBufferPointer<Float>,
        _ input: UnsafePointer<Float>, batch: Int, mode: ForwardMode, workspace: Workspace
    ) {
        precondition(batch <= workspace.capacity, "batch \(batch) exceeds workspace capacity \(workspace.capacity)")
        if mode == .inference {
            network.plan.run(
                network.kernels, memory: { memory(network, $0, params, state, input, batch: batch, workspace: workspace) },
                id: { $0 })
            return
        }
        for layer in network.kernels.indices {
            let memory = memory(network, layer, params, state, input, batch: batch, workspace: workspace)
            network.kernels[layer].forward(memory, mode: mode, layerIndex: layer)
        }
    }
}

extension Model {
    /// Replaces the BatchNorm running statistics by their average over `data` in chunks of
    /// `settings.batchSize`, in order, weighted by `settings.weighting` (PyTorch's
    /// `torch.optim.swa_utils.update_bn` per batch; Garipov et al.'s `update_bn` per sample).
    /// Dropout is off while collecting. Does nothing for a model without BatchNorm.
    public mutating func recomputeBatchNormStatistics(on data: Dataset, settings: BatchNormRecompute = .init()) {
        guard network.hasBatchNorm, data.count > 0 else { return }
        resetBatchNormStatistics()
        let chunk = min(settings.batchSize, data.count)
        let workspace = Workspace(network: network, capacity: chunk, backward: false)
        data.features.withUnsafeBufferPointer { features in
            var start = 0, index = 0
            while start < data.count {
                let batch = min(chunk, data.count - start)
                forward(
                    features.baseAddress! + start * data.sampleSize, batch: batch,
                    mode: .recomputeStatistics(momentum: settings.momentum(batch: index, size: batch, seen: start)),
                    workspace: workspace)
                start += batch
                index += 1
            }
        }
    }

    /// Running means 0, variances 1, counters 0: a fresh BatchNorm.
    public mutating func resetBatchNormStatistics() {
        for entry in network.stateLayout.entries {
            let value: Float = entry.name.hasSuffix("running_var") ? 1 : 0
            for i in entry.range { state[i] = value }
        }
        for i in batchesTracked.indices { batchesTracked[i] = 0 }
    }
}
