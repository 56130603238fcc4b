import BasinNN

/// Sharpness of a model's loss on a dataset, from Hessian-vector products alone.
///
/// - **Top eigenvalue** by power iteration: v ← Hv/‖Hv‖ from a Gaussian start (Philox `probe`
///   stream of `seed`) until the Rayleigh quotient vᵀHv changes by at most `tolerance`
///   (relative) between steps, or `iterations` steps. It converges to the eigenvalue of largest
///   magnitude.
/// - **Trace** by Hutchinson's estimator: the mean of zᵀHz over `probes` Rademacher vectors z,
///   with its standard error (the sample standard deviation / √probes).
/// - **Top-k eigenvalues** (`topK` > 1) by Lanczos with full reorthogonalization from a
///   Gaussian start: the k largest Ritz values after `lanczosSteps` steps.
/// - **Eigenvalue density** (`density`) by stochastic Lanczos quadrature (`SpectralDensity`).
///
/// Hv is the central difference of full-batch gradients, (∇L(θ + εv) − ∇L(θ − εv)) / 2ε with
/// ε·‖v‖ = `step`·max(1, ‖θ‖/√n): exact for a quadratic loss, O(ε²) otherwise, with Float32
/// gradients summed in Float64. The loss is the evaluation-mode loss (BatchNorm with running
/// statistics, no dropout) on the whole dataset.
public struct Sharpness: Sendable {
    public var iterations: Int
    public var tolerance: Double
    public var probes: Int
    public var seed: UInt64
    public var step: Double = 1e-2
    /// Eigenvalues reported beside λmax (Lanczos); 1: power iteration alone.
    public var topK = 1
    /// Lanczos steps for the top-k (nil: max(3k, 30), at most the parameter count).
    public var lanczosSteps: Int?
    /// Stochastic Lanczos quadrature of the eigenvalue density (nil: not measured).
    public var density: DensitySettings?

    /// PyHessian's density settings: `runs` random starts of `steps` Lanczos steps each, the
    /// density on `bins` points with Gaussians of variance `sigmaSquared`·max(1, range).
    public struct DensitySettings: Sendable, Equatable {
        public var runs: Int
        public var steps: Int
        public var bins: Int
        public var sigmaSquared: Double

        public init(runs: Int = 1, steps: Int = 50, bins: Int = 200, sigmaSquared: Double = 1e-5) {
            self.runs = runs
            self.steps = steps
            self.bins = bins
            self.sigmaSquared = sigmaSquared
        }
    }

    public init(iterations: Int = 100, tolerance: Double = 1e-3, probes: Int = 30, seed: UInt64 = 0) {
        self.iterations = iterations
        self.tolerance = tolerance
        self.probes = probes
        self.seed = seed
    }

    public struct Result: Sendable {
        public var topEigenvalue: Double
        /// Power-iteration steps taken, and the relative change of the last step.
        public var iterationsUsed: Int
        public var lastChange: Double
        public var converged: Bool
        public var trace: Double
        public var traceStandardError: Double
        /// Hessian-vector products computed (each is two full-batch gradients).
        public var products: Int
        /// The `topK` largest eigenvalues, largest first (empty when `topK` is 1).
        public var topEigenvalues: [Double] = []
        public var spectralDensity: SpectralDensity?
    }

    /// Full-batch gradient of the mean loss (Float64 accumulation over chunks).
    static func gradient(_ model: Model, at parameters: [Float], data: Dataset, loss: LossFunction) -> [Double] {
        var model = model
        model.parameters = parameters
        let chunk = min(500, max(1, data.count))
        let workspace = Workspace(network: model.network, capacity: chunk)
        var total = [Double](repeating: 0, count: parameters.count)
        var gradients = [Float](repeating: 0, count: parameters.count)
        var start = 0
        while start < data.count {
            let batch = min(chunk, data.count - start)
            _ = Trainer.gradient(
                of: &model, on: data, samples: Array(start..<(start + batch))[...], loss: loss, mode: .eval,
                workspace: workspace, into: &gradients)
            let weight = Double(batch) / Double(data.count)
            for i in total.indices { total[i] += weight * Double(gradients[i]) }
            start += batch
        }
        return total
    }

    /// Hv by central differences of the gradient.
    public func hessianVectorProduct(_ model: Model, _ v: [Double], data: Dataset, loss: LossFunction) -> [Double] {
        let n = v.count
        let vNorm = (v.reduce(0) { $0 + $1 * $1 }).squareRoot()
        guard vNorm > 0 else { return v }
        let thetaNorm = model.parameters.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
        let epsilon = step * max(1, thetaNorm / Double(max(n, 1)).squareRoot()) / vNorm
        let plus = (0..<n).map { Float(Double(model.parameters[$0]) + epsilon * v[$0]) }
        let minus = (0..<n).map { Float(Double(model.parameters[$0]) - epsilon * v[$0]) }
        let gPlus = Self.gradient(model, at: plus, data: data, loss: loss)
        let gMinus = Self.gradient(model, at: minus, data: data, loss: loss)
        return (0..<n).map { (gPlus[$0] - gMinus[$0]) / (2 * epsilon) }
    }

    public func measure(_ model: Model, on data: Dataset, loss: LossFunction) throws -> Result {
        guard iterations >= 1, probes >= 1, tolerance > 0 else {
            throw NNError("hessian: 'iterations' and 'probes' must be at least 1 and 'tolerance' positive")
        }
        guard topK >= 1, (lanczosSteps ?? 1) >= 1 else { throw NNError("hessian: 'top_k' and its steps must be at least 1") }
        if let density, density.runs < 1 || density.steps < 1 || density.bins < 2 || !(density.sigmaSquared > 0) {
            throw NNError("hessian: 'density' needs runs and steps of at least 1, at least 2 bins and a positive sigma_squared")
        }
        if let problem = loss.incompatibility(network: model.network, dataset: data) {
            throw NNError("cannot measure sharpness: \(problem)")
        }
        guard data.count > 0 else { throw NNError("cannot measure sharpness on an empty dataset") }
        let n = model.parameters.count
        var products = 0
        var random = RandomSource(seed: seed, stream: RandomStream.probe.id(0))
        var v = (0..<n).map { _ in random.nextGaussian() }
        normalize(&v)
        var eigenvalue = 0.0, change = Double.infinity, used = 0
        for step in 1...iterations {
            let w = hessianVectorProduct(model, v, data: data, loss: loss)
            products += 1
            let rayleigh = zip(v, w).reduce(0) { $0 + $1.0 * $1.1 }
            change = step == 1 ? .infinity : abs(rayleigh - eigenvalue) / max(abs(rayleigh), 1e-30)
            eigenvalue = rayleigh
            used = step
            v = w
            normalize(&v)
            if change <= tolerance { break }
        }
        var samples: [Double] = []
        for probe in 0..<probes {
            var signs = RandomSource(seed: seed, stream: RandomStream.probe.id(1 + probe))
            let z = (0..<n).map { _ in signs.nextUInt32() & 1 == 0 ? -1.0 : 1.0 }
            let hz = hessianVectorProduct(model, z, data: data, loss: loss)
            products += 1
            samples.append(zip(z, hz).reduce(0) { $0 + $1.0 * $1.1 })
        }
        let mean = samples.reduce(0, +) / Double(samples.count)
        let variance =
            samples.count > 1
            ? samples.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(samples.count - 1) : 0
        func product(_ v: [Double]) -> [Double] {
            products += 1
            return hessianVectorProduct(model, v, data: data, loss: loss)
        }
        func gaussian(_ stream: Int) -> [Double] {
            var random = RandomSource(seed: seed, stream: RandomStream.probe.id(stream))
            return (0..<n).map { _ in random.nextGaussian() }
        }
        var top: [Double] = []
        if topK > 1 {
            let (values, _) = Lanczos.run(steps: min(n, lanczosSteps ?? max(3 * topK, 30)), start: gaussian(1 << 20), product: product)
            top = Array(values.reversed().prefix(topK))
        }
        var spectrum: SpectralDensity?
        if let density {
            let runs = (0..<density.runs).map { r in
                Lanczos.run(steps: min(n, density.steps), start: gaussian((1 << 21) + r), product: product)
            }
            spectrum = SpectralDensity(runs: runs, bins: density.bins, sigmaSquared: density.sigmaSquared)
        }
        return Result(
            topEigenvalue: eigenvalue, iterationsUsed: used, lastChange: change, converged: change <= tolerance,
            trace: mean, traceStandardError: (variance / Double(samples.count)).squareRoot(), products: products,
            topEigenvalues: top, spectralDensity: spectrum)
    }

    private func normalize(_ v: inout [Double]) {
        let norm = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
        if norm > 0 { for i in v.indices { v[i] /= norm } }
    }
}
