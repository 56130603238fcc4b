import BasinNN

/// Evaluates loss and accuracy at many points of an affine family.
///
/// Two paths give the same numbers up to float rounding:
/// - `plain`: θ(c) is formed and the whole network runs, point by point (the reference);
/// - `fast`: the first layer is linear in θ, so its response to θ(c) is Σₖ cₖ·(its response
///   to vₖ). Those K responses are computed once per sample chunk and shared by every point;
///   only the layers after the first run per point. Used when the first layer is Linear or
///   Conv2d; otherwise `fast` falls back to `plain`.
public struct LandscapeEvaluator: Sendable {
    public let family: AffineFamily
    public let train: Dataset
    public let test: Dataset?
    public let loss: LossFunction
    public let batchNorm: BatchNormMode
    /// Samples per chunk in evaluation.
    public var chunkSize = 500
    /// How BatchNorm statistics are re-estimated at each point (`batchNorm == .recompute`).
    public var batchNormRecompute = BatchNormRecompute()
    /// Upper bound on the floats held by per-point parameter copies in the fast path.
    public var groupFloats = 16 << 20
    /// Upper bound on the floats of the K first-layer responses of one chunk in the fast path,
    /// so they stay in cache while every point of a group combines them.
    public var responseFloats = 1 << 19
    /// The fewest samples per chunk in the fast path when the first layer is a convolution: a
    /// convolutional tail costs far more than combining responses, and its convolutions need
    /// batches wide enough for large GEMMs (64 images of 8×8 make 4096 columns).
    public var convolutionChunk = 64

    public init(family: AffineFamily, train: Dataset, test: Dataset?, loss: LossFunction, batchNorm: BatchNormMode)
        throws
    {
        for data in [train] + (test.map { [$0] } ?? []) {
            if let problem = loss.incompatibility(network: family.network, dataset: data) {
                throw NNError("cannot evaluate: \(problem)")
            }
        }
        self.family = family
        self.train = train
        self.test = test
        self.loss = loss
        self.batchNorm = batchNorm
    }

    /// Whether `fast` can reuse the first layer (it is Linear or Conv2d and the net has more layers).
    public var canReuseFirstLayer: Bool { Self.reusesFirstLayer(family.network) }

    /// Whether the fast path applies to `network`: a Linear or Conv2d first layer and more after it.
    public static func reusesFirstLayer(_ network: Network) -> Bool {
        guard network.layerCount >= 2 else { return false }
        switch network.description.layers[0] {
        case .linear, .conv2d: return true
        default: return false
        }
    }

    private var recomputes: Bool { batchNorm == .recompute && family.network.hasBatchNorm }

    /// The reference: every point evaluated with the full network.
    public func plain(_ points: [[Double]]) throws -> [PointMetrics] {
        let workspace = Workspace(
            network: family.network,
            capacity: Workspace.evaluationCapacity(
                network: family.network, limit: max(1, min(chunkSize, max(train.count, test?.count ?? 0)))),
            backward: false)
        return try points.map { c in
            var model = family.model(at: c)
            if recomputes { model.recomputeBatchNormStatistics(on: train, settings: batchNormRecompute) }
            let trainTally = try model.evaluate(on: train, loss: loss, workspace: workspace)
            let testTally = try test.map { try model.evaluate(on: $0, loss: loss, workspace: workspace) }
            return PointMetrics(train: trainTally, test: testTally)
        }
    }

    /// First-layer reuse; identical in meaning to `plain`.
    public func fast(_ points: [[Double]]) throws -> [PointMetrics] {
        guard canReuseFirstLayer else { return try plain(points) }
        let network = family.network
        let head = try network.layers(0..<1)
        let tail = try network.layers(1..<network.layerCount)
        let headRange = network.parameterSlice(0..<1)
        let tailRange = network.parameterSlice(1..<network.layerCount)
        let tailStateRange = network.stateSlice(1..<network.layerCount)
        let heads = family.bases.map { basis in
            Model(network: head, parameters: Array(basis[headRange]), state: [], batchesTracked: [])
        }
        let tailBases = family.bases.map { Array($0[tailRange]) }
        let tailStates = family.states.map { Array($0[tailStateRange]) }
        let groupSize = max(1, min(points.count, groupFloats / max(tailRange.count, 1)))
        var fastChunk = max(8, min(chunkSize, responseFloats / max((family.dimension + 1) * head.outputSize, 1)))
        if case .conv2d = network.description.layers[0] { fastChunk = max(fastChunk, min(chunkSize, convolutionChunk)) }
        var results: [PointMetrics] = []
        results.reserveCapacity(points.count)
        var groupStart = 0
        while groupStart < points.count {
            let group = Array(points[groupStart..<min(points.count, groupStart + groupSize)])
            var tails = group.map { c in
                Model(
                    network: tail, parameters: VectorMath.combination(c, tailBases),
                    state: VectorMath.combination(c, tailStates),
                    batchesTracked: [Int64](repeating: 0, count: tail.batchNormNames.count))
            }
            let responses = FirstLayerResponses(heads: heads, outputSize: head.outputSize)
            if recomputes {
                for p in tails.indices { tails[p].resetBatchNormStatistics() }
                let size = batchNormRecompute.batchSize
                let workspace = Workspace(network: tail, capacity: min(size, train.count), backward: false)
                forEachChunk(of: train, size: size) { pointer, batch, index in
                    let momentum = batchNormRecompute.momentum(batch: index, size: batch, seen: index * size)
                    responses.compute(pointer, batch: batch)
                    for p in tails.indices {
                        responses.combine(group[p], batch: batch)
                        tails[p].forward(
                            responses.combined, batch: batch, mode: .recomputeStatistics(momentum: momentum),
                            workspace: workspace)
                    }
                }
            }
            let trainTallies = tally(train, chunk: fastChunk, tails: tails, group: group, responses: responses)
            let testTallies = test.map { tally($0, chunk: fastChunk, tails: tails, group: group, responses: responses) }
            for p in group.indices {
                results.append(PointMetrics(train: trainTallies[p], test: testTallies?[p]))
            }
            groupStart += group.count
        }
        return results
    }

    private func tally(
        _ data: Dataset, chunk: Int, tails: [Model], group: [[Double]], responses: FirstLayerResponses
    ) -> [LossTally] {
        var tallies = [LossTally](repeating: LossTally(), count: group.count)
        guard data.count > 0, let tailNetwork = tails.first?.network else { return tallies }
        let workspace = Workspace(network: tailNetwork, capacity: min(chunk, data.count), backward: false)
        forEachChunk(of: data, size: chunk) { pointer, batch, index in
            responses.compute(pointer, batch: batch)
            let first = index * chunk
            for p in group.indices {
                responses.combine(group[p], batch: batch)
                tails[p].infer(responses.combined, batch: batch, workspace: workspace)
                loss.score(
                    output: UnsafeBufferPointer(workspace.output(batch: batch)), batch: batch, dataset: data,
                    sampleIndex: { first + $0 }, gradient: nil, tally: &tallies[p])
            }
        }
        return tallies
    }

    private func forEachChunk(
        of data: Dataset, size: Int, _ body: (UnsafePointer<Float>, Int, Int) -> Void
    ) {
        data.features.withUnsafeBufferPointer { features in
            var start = 0, index = 0
            while start < data.count {
                let batch = min(size, data.count - start)
                body(features.baseAddress! + start * data.sampleSize, batch, index)
                start += batch
                index += 1
            }
        }
    }
}

/// The first layer's response to each basis vector for one chunk of samples, and their
/// combination for one point. Owns its memory (reused across chunks); one thread at a time.
private final class FirstLayerResponses {
    let heads: [Model]
    let outputSize: Int
    private var capacity = 0
    private var workspace: Workspace?
    /// K responses, each `capacity × outputSize`, row-major, one after another.
    private var responses = UnsafeMutableBufferPointer<Float>(start: nil, count: 0)
    /// Σₖ cₖ·responseₖ for the current point.
    private(set) var combined = UnsafeMutablePointer<Float>.allocate(capacity: 1)

    init(heads: [Model], outputSize: Int) {
        self.heads = heads
        self.outputSize = outputSize
    }

    deinit {
        responses.deallocate()
        combined.deallocate()
    }

    func compute(_ input: UnsafePointer<Float>, batch: Int) {
        if batch > capacity {
            responses.deallocate()
            combined.deallocate()
            capacity = batch
            workspace = Workspace(network: heads[0].network, capacity: batch, backward: false)
            responses = .allocate(capacity: heads.count * batch * outputSize)
            combined = .allocate(capacity: batch * outputSize)
        }
        let workspace = workspace!
        for k in heads.indices {
            heads[k].infer(input, batch: batch, workspace: workspace)
            (responses.baseAddress! + k * capacity * outputSize).update(
                from: workspace.output(batch: batch).baseAddress!, count: batch * outputSize)
        }
    }

    /// combined ← Σₖ cₖ·responseₖ over the first `batch` rows (Float, k ascending).
    func combine(_ coefficients: [Double], batch: Int) {
        let n = batch * outputSize
        let out = combined
        let first = responses.baseAddress!
        let c0 = Float(coefficients[0])
        for i in 0..<n { out[i] = c0 * first[i] }
        for k in 1..<heads.count {
            let ck = Float(coefficients[k])
            let r = first + k * capacity * outputSize
            for i in 0..<n { out[i] += ck * r[i] }
        }
    }
}
