/// Layers run one after another inside a block (a residual block's body or shortcut), with
/// their parameters and state laid out back to back in the block's own slices.
struct KernelChain: Sendable {
    let kernels: [any LayerKernel]
    let inputShape: [Int]
    let parameterRanges: [Range<Int>]
    let stateRanges: [Range<Int>]
    let plan: InferencePlan

    init(_ kernels: [any LayerKernel], inputShape: [Int]) {
        self.kernels = kernels
        self.inputShape = inputShape
        plan = InferencePlan(kernels)
        var parameters: [Range<Int>] = [], states: [Range<Int>] = []
        var p = 0, s = 0
        for kernel in kernels {
            let pc = kernel.parameterSpecs.reduce(0) { $0 + $1.count }
            let sc = kernel.stateSpecs.reduce(0) { $0 + $1.count }
            parameters.append(p..<(p + pc))
            states.append(s..<(s + sc))
            p += pc
            s += sc
        }
        parameterRanges = parameters
        stateRanges = states
    }

    var outputShape: [Int] { kernels.last?.outputShape ?? inputShape }
    var inputSize: Int { inputShape.reduce(1, *) }
    var outputSize: Int { outputShape.reduce(1, *) }
    var parameterCount: Int { parameterRanges.last?.upperBound ?? 0 }
    var stateCount: Int { stateRanges.last?.upperBound ?? 0 }

    /// Each layer's tensors named `prefix.i.suffix`, as in an `nn.Sequential` called `prefix`.
    func specs(_ prefix: String, _ specs: (any LayerKernel) -> [TensorSpec]) -> [TensorSpec] {
        kernels.enumerated().flatMap { i, kernel in
            specs(kernel).map { TensorSpec(suffix: "\(prefix).\(i).\($0.suffix)", shape: $0.shape, initial: $0.initial) }
        }
    }

    /// Scratch for a batch: the gradient with respect to the chain's input, each layer's output
    /// and its own scratch, and two buffers the layers' output gradients take in turn; without
    /// `gradients`, the outputs and one scratch region the layers share (the largest forward
    /// scratch), as a forward-only `Workspace` does.
    func scratchCount(batch: Int, gradients: Bool = true) -> Int {
        guard !kernels.isEmpty else { return 0 }
        guard gradients else {
            return kernels.reduce(0) { $0 + batch * $1.outputSize } + sharedScratch(batch: batch)
        }
        return kernels.reduce(batch * inputSize) { $0 + batch * $1.outputSize + $1.scratchCount(batch: batch) }
            + 2 * batch * largestOutput
    }

    private var largestOutput: Int { kernels.map(\.outputSize).max() ?? 0 }

    struct Regions {
        var outputs: [UnsafeMutableBufferPointer<Float>] = []
        var gradients: [UnsafeMutableBufferPointer<Float>] = []
        var scratch: [UnsafeMutableBufferPointer<Float>] = []
        var inputGradient: UnsafeMutableBufferPointer<Float>
        var backward: Bool
    }

    /// The scratch regions for `batch` samples, carved from `memory` in `scratchCount` order
    /// (gradient regions empty when `gradients` is false).
    func regions(_ memory: UnsafeMutableBufferPointer<Float>, batch: Int, gradients: Bool) -> Regions {
        var offset = 0
        func take(_ n: Int) -> UnsafeMutableBufferPointer<Float> {
            defer { offset += n }
            return UnsafeMutableBufferPointer(rebasing: memory[offset..<(offset + n)])
        }
        var regions = Regions(inputGradient: take(kernels.isEmpty || !gradients ? 0 : batch * inputSize), backward: gradients)
        guard gradients else {
            regions.outputs = kernels.map { take(batch * $0.outputSize) }
            regions.gradients = kernels.map { _ in take(0) }
            let shared = take(sharedScratch(batch: batch))
            regions.scratch = kernels.map { _ in shared }
            return regions
        }
        for kernel in kernels {
            regions.outputs.append(take(batch * kernel.outputSize))
            regions.scratch.append(take(kernel.scratchCount(batch: batch)))
        }
        // Layer i's output gradient lives from layer i+1's backward to its own, so two buffers
        // taken in turn hold them all.
        let buffers = [take(batch * largestOutput), take(batch * largestOutput)]
        regions.gradients = kernels.indices.map {
            UnsafeMutableBufferPointer(rebasing: buffers[$0 % 2][0..<(batch * kernels[$0].outputSize)])
        }
        return regions
    }

    private func sharedScratch(batch: Int) -> Int { kernels.map { $0.forwardScratchCount(batch: batch) }.max() ?? 0 }

    private func memory(
        _ i: Int, _ m: LayerMemory, _ regions: Regions, parameters: Range<Int>, state: Range<Int>
    ) -> LayerMemory {
        let base = parameters.lowerBound, stateBase = state.lowerBound
        let p = parameterRanges[i], s = stateRanges[i]
        return LayerMemory(
            batch: m.batch, backward: regions.backward, input: i == 0 ? m.input : regions.outputs[i - 1], output: regions.outputs[i],
            parameters: UnsafeMutableBufferPointer(rebasing: m.parameters[(base + p.lowerBound)..<(base + p.upperBound)]),
            state: UnsafeMutableBufferPointer(rebasing: m.state[(stateBase + s.lowerBound)..<(stateBase + s.upperBound)]),
            scratch: regions.scratch[i])
    }

    /// Runs the chain on `m.input`; its output is the last region of `regions` (nil: empty chain).
    func forward(_ m: LayerMemory, _ regions: Regions, parameters: Range<Int>, state: Range<Int>, mode: ForwardMode, id: Int)
        -> UnsafeMutableBufferPointer<Float>?
    {
        if mode == .inference {
            plan.run(kernels, memory: { memory($0, m, regions, parameters: parameters, state: state) }, id: { id &+ $0 })
        } else {
            for i in kernels.indices {
                kernels[i].forward(memory(i, m, regions, parameters: parameters, state: state), mode: mode, layerIndex: id &+ i)
            }
        }
        return regions.outputs.last
    }

    /// Back-propagates `outputGradient` through the chain; returns the gradient with respect to
    /// its input (nil when `wantInput` is false or the chain is empty).
    func backward(
        _ m: LayerMemory, _ regions: Regions, outputGradient: UnsafeMutableBufferPointer<Float>,
        parameterGradients: UnsafeMutableBufferPointer<Float>, parameters: Range<Int>, state: Range<Int>,
        wantInput: Bool, mode: ForwardMode, id: Int
    ) -> UnsafeMutableBufferPointer<Float>? {
        for i in kernels.indices.reversed() {
            let p = parameterRanges[i]
            let base = parameters.lowerBound - m.parameters.startIndex
            let gradients = LayerGradientMemory(
                outputGradient: i == kernels.count - 1 ? outputGradient : regions.gradients[i],
                inputGradient: i > 0 ? regions.gradients[i - 1] : (wantInput ? regions.inputGradient : nil),
                parameterGradients: UnsafeMutableBufferPointer(
                    rebasing: parameterGradients[(base + p.lowerBound)..<(base + p.upperBound)]))
            kernels[i].backward(
                memory(i, m, regions, parameters: parameters, state: state), gradients, mode: mode, layerIndex: id &+ i)
        }
        return wantInput && !kernels.isEmpty ? regions.inputGradient : nil
    }
}

/// A residual block: `body(x) + shortcut(x)`, an empty shortcut being the identity (PyTorch:
/// a module with `body` and `shortcut` `nn.Sequential` children, so its tensors are named
/// `body.0.weight`, `shortcut.1.running_mean`, ...).
struct ResidualKernel: LayerKernel {
    let body: KernelChain
    let shortcut: KernelChain

    var inputShape: [Int] { body.inputShape }
    var outputShape: [Int] { body.outputShape }

    var parameterSpecs: [TensorSpec] { body.specs("body", \.parameterSpecs) + shortcut.specs("shortcut", \.parameterSpecs) }
    var stateSpecs: [TensorSpec] { body.specs("body", \.stateSpecs) + shortcut.specs("shortcut", \.stateSpecs) }
    var batchNormPaths: [String] {
        body.kernels.enumerated().flatMap { i, k in k.batchNormPaths.map { Self.join("body.\(i)", $0) } }
            + shortcut.kernels.enumerated().flatMap { i, k in k.batchNormPaths.map { Self.join("shortcut.\(i)", $0) } }
    }
    var containsDropout: Bool { (body.kernels + shortcut.kernels).contains { $0.containsDropout } }
    var flopsPerSample: Int { (body.kernels + shortcut.kernels).reduce(outputSize) { $0 + $1.flopsPerSample } }

    static func join(_ prefix: String, _ path: String) -> String { path.isEmpty ? prefix : "\(prefix).\(path)" }

    func scratchCount(batch: Int) -> Int { body.scratchCount(batch: batch) + shortcut.scratchCount(batch: batch) }

    func forwardScratchCount(batch: Int) -> Int {
        body.scratchCount(batch: batch, gradients: false) + shortcut.scratchCount(batch: batch, gradients: false)
    }

    private func regions(_ m: LayerMemory) -> (KernelChain.Regions, KernelChain.Regions) {
        let split = body.scratchCount(batch: m.batch, gradients: m.backward)
        let scratch = m.scratch
        return (
            body.regions(
                UnsafeMutableBufferPointer(rebasing: scratch[scratch.startIndex..<(scratch.startIndex + split)]),
                batch: m.batch, gradients: m.backward),
            shortcut.regions(
                UnsafeMutableBufferPointer(rebasing: scratch[(scratch.startIndex + split)...]), batch: m.batch,
                gradients: m.backward)
        )
    }

    private var parameterSplit: (Range<Int>, Range<Int>) {
        (0..<body.parameterCount, body.parameterCount..<(body.parameterCount + shortcut.parameterCount))
    }

    private var stateSplit: (Range<Int>, Range<Int>) {
        (0..<body.stateCount, body.stateCount..<(body.stateCount + shortcut.stateCount))
    }

    /// Stream ids of the layers inside (dropout masks), distinct from every top-level layer's.
    private func ids(_ layerIndex: Int) -> (Int, Int) {
        let base = (layerIndex &+ 1) &* 1_048_576
        return (base, base &+ 524_288)
    }

    func forward(_ m: LayerMemory, mode: ForwardMode, layerIndex: Int) {
        forward(m, mode: mode, epilogue: .none, layerIndex: layerIndex)
    }

    var absorbs: Absorbs { .relu }

    func forward(_ m: LayerMemory, epilogue: Epilogue, layerIndex: Int) {
        forward(m, mode: .inference, epilogue: epilogue, layerIndex: layerIndex)
    }

    /// The sum and, in inference, the ReLU after the block in the same pass.
    private func forward(_ m: LayerMemory, mode: ForwardMode, epilogue: Epilogue, layerIndex: Int) {
        let (bodyRegions, shortcutRegions) = regions(m)
        let (bodyParameters, shortcutParameters) = parameterSplit
        let (bodyState, shortcutState) = stateSplit
        let (bodyID, shortcutID) = ids(layerIndex)
        guard
            let main = body.forward(
                m, bodyRegions, parameters: bodyParameters, state: bodyState, mode: mode, id: bodyID)
        else { return }
        let side =
            shortcut.forward(
                m, shortcutRegions, parameters: shortcutParameters, state: shortcutState, mode: mode, id: shortcutID)
            ?? m.input
        let n = m.batch * outputSize
        let y = m.output.baseAddress!, a = main.baseAddress!, b = side.baseAddress!
        if epilogue.relu {
            for i in 0..<n {
                let v = a[i] + b[i]
                y[i] = rectified(v)
            }
        } else {
            for i in 0..<n { y[i] = a[i] + b[i] }
        }
    }

    func backward(_ m: LayerMemory, _ g: LayerGradientMemory, mode: ForwardMode, layerIndex: Int) {
        let (bodyRegions, shortcutRegions) = regions(m)
        let (bodyParameters, shortcutParameters) = parameterSplit
        let (bodyState, shortcutState) = stateSplit
        let (bodyID, shortcutID) = ids(layerIndex)
        let wantInput = g.inputGradient != nil
        let fromBody = body.backward(
            m, bodyRegions, outputGradient: g.outputGradient, parameterGradients: g.parameterGradients,
            parameters: bodyParameters, state: bodyState, wantInput: wantInput, mode: mode, id: bodyID)
        let fromShortcut = shortcut.backward(
            m, shortcutRegions, outputGradient: g.outputGradient, parameterGradients: g.parameterGradients,
            parameters: shortcutParameters, state: shortcutState, wantInput: wantInput, mode: mode, id: shortcutID)
        guard let gradIn = g.inputGradient?.baseAddress, let a = fromBody?.baseAddress else { return }
        // The identity shortcut passes the output gradient straight through.
        let b = fromShortcut?.baseAddress ?? g.outputGradient.baseAddress!
        for i in 0..<(m.batch * inputSize) { gradIn[i] = a[i] + b[i] }
    }
}

/// `nn.Identity()`.
struct IdentityKernel: LayerKernel {
    let shape: [Int]
    var inputShape: [Int] { shape }
    var outputShape: [Int] { shape }

    func forward(_ m: LayerMemory, mode: ForwardMode, layerIndex: Int) {
        m.output.baseAddress!.update(from: m.input.baseAddress!, count: m.batch * inputSize)
    }

    func backward(_ m: LayerMemory, _ g: LayerGradientMemory, mode: ForwardMode, layerIndex: Int) {
        g.inputGradient?.baseAddress!.update(from: g.outputGradient.baseAddress!, count: m.batch * inputSize)
    }
}
