/// Preallocated memory for running one network on minibatches of up to `capacity` samples:
/// every layer's output, two buffers that the layers' output gradients take in turn (layer i's
/// lives from layer i+1's backward to its own), per-layer scratch and a staging area for
/// gathered inputs. A workspace made with `backward: false` holds no gradients and one scratch
/// region that every layer uses in turn (a layer's scratch is dead once its forward returns),
/// and serves forward passes only: evaluation and BatchNorm re-estimation.
///
/// A workspace belongs to one thread at a time; it is reused across minibatches so the
/// training and evaluation loops allocate nothing.
public final class Workspace {
    public let capacity: Int
    /// Whether it holds gradients, so `Model.backward` can run in it.
    public let backward: Bool
    let network: Network
    let activations: [UnsafeMutableBufferPointer<Float>]
    let gradients: [UnsafeMutableBufferPointer<Float>]
    let scratch: [UnsafeMutableBufferPointer<Float>]
    /// Room for `capacity` input samples (minibatches gathered from a shuffled dataset).
    public let input: UnsafeMutableBufferPointer<Float>
    private let storage: UnsafeMutableBufferPointer<Float>

    public init(network: Network, capacity: Int, backward: Bool = true) {
        precondition(capacity > 0)
        _ = BLAS.defaultThreads
        self.capacity = capacity
        self.backward = backward
        self.network = network
        let (outputSizes, gradientSizes, scratchSizes, inputCount) = Self.sizes(network, capacity, backward)
        let total = outputSizes.reduce(0, +) + gradientSizes.reduce(0, +) + scratchSizes.reduce(0, +) + inputCount
        let storage = UnsafeMutableBufferPointer<Float>.allocate(capacity: max(total, 1))
        storage.initialize(repeating: 0)
        self.storage = storage
        var offset = 0
        func take(_ n: Int) -> UnsafeMutableBufferPointer<Float> {
            defer { offset += n }
            return UnsafeMutableBufferPointer(rebasing: storage[offset..<(offset + n)])
        }
        activations = outputSizes.map(take)
        let buffers = gradientSizes.map(take)
        gradients = outputSizes.indices.map { i in
            backward ? UnsafeMutableBufferPointer(rebasing: buffers[i % 2][0..<outputSizes[i]]) : take(0)
        }
        let scratch = scratchSizes.map(take)
        self.scratch = backward ? scratch : network.kernels.map { _ in scratch[0] }
        input = take(inputCount)
    }

    deinit {
        storage.deallocate()
    }

    /// The floats of each region: layer outputs, gradient buffers, scratch, input staging.
    private static func sizes(_ network: Network, _ capacity: Int, _ backward: Bool) -> ([Int], [Int], [Int], Int) {
        let outputSizes = network.kernels.map { $0.outputSize * capacity }
        // Layer i's output gradient lives from layer i+1's backward to its own: two buffers
        // taken in turn hold them all.
        let gradientSizes = backward ? [Int](repeating: outputSizes.max() ?? 0, count: 2) : []
        // Without a backward pass no layer's scratch outlives its forward, so all share one.
        let scratchSizes =
            backward
            ? network.kernels.map { $0.scratchCount(batch: capacity) }
            : [network.kernels.map { $0.forwardScratchCount(batch: capacity) }.max() ?? 0]
        return (outputSizes, gradientSizes, scratchSizes, network.inputSize * capacity)
    }

    /// Floats a workspace of `capacity` holds.
    public static func floats(network: Network, capacity: Int, backward: Bool) -> Int {
        let (a, b, c, d) = sizes(network, capacity, backward)
        return a.reduce(0, +) + b.reduce(0, +) + c.reduce(0, +) + d
    }

    /// Evaluation chunks: the largest of `limit`, `limit`/2, `limit`/4, … (at least 1) whose
    /// forward-only workspace holds at most `floats` (2²⁴ floats, 64 MB, by default), so a wide
    /// convolutional network evaluates in chunks of tens of images and an MLP in hundreds.
    public static func evaluationCapacity(network: Network, limit: Int, floats budget: Int = 1 << 24) -> Int {
        var capacity = max(1, limit)
        while capacity > 1, floats(network: network, capacity: capacity, backward: false) > budget { capacity /= 2 }
        return capacity
    }

    /// The network's output for the last forward pass: `batch × outputSize`, row-major.
    public func output(batch: Int) -> UnsafeMutableBufferPointer<Float> {
        guard let last = activations.last else { return UnsafeMutableBufferPointer(rebasing: input[0..<0]) }
        return UnsafeMutableBufferPointer(rebasing: last[0..<(batch * network.outputSize)])
    }

    /// Where the loss writes ∂L/∂output before a backward pass.
    public func outputGradient(batch: Int) -> UnsafeMutableBufferPointer<Float> {
        UnsafeMutableBufferPointer(rebasing: gradients[gradients.count - 1][0..<(batch * network.outputSize)])
    }
}
