/// How inference (`ForwardMode.inference`) runs a list of layers: each step is one layer with
/// the eval-mode BatchNorm and the ReLU after it that the layer takes into its own pass
/// (conv → batchnorm → relu, batchnorm → relu, residual → relu); every other layer is a step
/// of its own. The skipped layers' activations are left unwritten: nothing reads them, since no
/// backward pass follows inference.
struct InferencePlan: Sendable {
    struct Step: Sendable {
        var layer: Int
        /// The BatchNorm absorbed (its index and kernel), applied before the ReLU.
        var batchNorm: (index: Int, kernel: BatchNormKernel)?
        var relu: Bool
        /// The last layer the step covers: where its output goes.
        var last: Int
    }

    let steps: [Step]

    init(_ kernels: [any LayerKernel]) {
        var steps: [Step] = []
        var i = 0
        while i < kernels.count {
            let absorbs = kernels[i].absorbs
            var step = Step(layer: i, batchNorm: nil, relu: false, last: i)
            if absorbs.contains(.batchNorm), i + 1 < kernels.count, let norm = kernels[i + 1] as? BatchNormKernel,
                norm.shape == kernels[i].outputShape
            {
                step.batchNorm = (i + 1, norm)
                step.last = i + 1
            }
            if absorbs.contains(.relu), step.last + 1 < kernels.count,
                let activation = kernels[step.last + 1] as? ActivationKernel, case .relu = activation.function
            {
                step.relu = true
                step.last += 1
            }
            steps.append(step)
            i = step.last + 1
        }
        self.steps = steps
    }

    /// Runs every step; `memory(i)` is layer `i`'s memory as a layer-by-layer pass would give it,
    /// `id(i)` its stream id.
    func run(_ kernels: [any LayerKernel], memory: (Int) -> LayerMemory, id: (Int) -> Int) {
        for step in steps {
            var m = memory(step.layer)
            guard step.last != step.layer else {
                kernels[step.layer].forward(m, mode: .inference, layerIndex: id(step.layer))
                continue
            }
            m.output = memory(step.last).output
            var epilogue = Epilogue(relu: step.relu)
            if let (index, norm) = step.batchNorm { epilogue.norm = norm.inferenceNorm(memory(index)) }
            kernels[step.layer].forward(m, epilogue: epilogue, layerIndex: id(step.layer))
        }
    }
}
