import BasinNN
import BasinTestSupport
import Foundation
import Testing

@testable import BasinLandscape

@Suite struct LinearAssignmentTests {
    /// Every permutation of 0..<n (n ≤ 7).
    func permutations(_ n: Int) -> [[Int]] {
        if n == 0 { return [[]] }
        return permutations(n - 1).flatMap { p in
            (0...p.count).map { i in
                var q = p; q.insert(n - 1, at: i); return q
            }
        }
    }

    @Test func matchesBruteForceOnRandomMatrices() {
        var random = RandomSource(seed: 3, stream: 99)
        for n in 1...6 {
            for _ in 0..<5 {
                let score = (0..<(n * n)).map { _ in random.uniform(-1, 1) }
                let found = LinearAssignment.maximize(score, n: n)
                #expect(Set(found) == Set(0..<n))
                let value = { (p: [Int]) in (0..<n).reduce(0.0) { $0 + score[$1 * n + p[$1]] } }
                let best = permutations(n).map(value).max()!
                #expect(abs(value(found) - best) < 1e-12, "n=\(n): \(value(found)) vs best \(best)")
            }
        }
    }
}

@Suite struct WeightMatchingTests {
    /// A model and the same model with its hidden units shuffled: alignment must undo it.
    @Test(arguments: ["mlp-bn", "cnn", "resnet", "preresnet-layernorm"])
    func recoversAShuffledCopyAndKeepsTheFunction(_ kind: String) throws {
        let description =
            kind == "resnet" ? try Self.resnet(norm: "{\"type\": \"batchnorm2d\"}", preActivation: false)
            : kind == "preresnet-layernorm" ? try Self.resnet(norm: "\"layernorm\"", preActivation: true)
            : kind == "cnn"
            ? ModelDescription(
                input: [1, 6, 6],
                layers: [
                    .conv2d(
                        inChannels: nil, outChannels: 4, kernel: .init(3, 3), stride: .init(1, 1),
                        padding: .init(1, 1), bias: true),
                    .batchNorm2d(numFeatures: nil, eps: 1e-5, momentum: 0.1), .relu,
                    .maxPool2d(kernel: .init(2, 2), stride: .init(2, 2), padding: .init(0, 0)), .flatten,
                    .linear(inFeatures: nil, outFeatures: 5, bias: true), .tanh,
                    .linear(inFeatures: nil, outFeatures: 3, bias: true),
                ])
            : ModelDescription(
                input: [4],
                layers: [
                    .linear(inFeatures: nil, outFeatures: 8, bias: true),
                    .batchNorm1d(numFeatures: nil, eps: 1e-5, momentum: 0.1), .relu,
                    .linear(inFeatures: nil, outFeatures: 6, bias: true), .gelu(tanhApproximation: false),
                    .linear(inFeatures: nil, outFeatures: 3, bias: true),
                ])
        let network = try Network(description)
        var a = network.initialize(seed: 11)
        // Non-trivial running statistics, so moving them matters.
        for i in a.state.indices { a.state[i] = Float(0.5 + 0.1 * Double(i % 7)) }
        let spec = try PermutationSpec(network)
        var random = RandomSource(seed: 5, stream: 1)
        let shuffles = spec.sizes.map { random.permutation($0) }
        let b = spec.apply(shuffles, to: a)
        #expect(b.parameters != a.parameters)
        var data = Dataset(
            sampleShape: description.input, features: TestSupport.gaussian(50 * network.inputSize, seed: 2),
            labels: (0..<50).map { Int32($0 % 3) })
        data.classCount = 3
        // The shuffled copy computes the same function…
        #expect(try largestDifference(a, b, data) < 1e-5)
        let result = try WeightMatching.align(b, to: a)
        // …and alignment brings back the original weights exactly.
        #expect(result.model.parameters == a.parameters)
        #expect(result.model.state == a.state)
        #expect(result.similarityAfter > result.similarityBefore)
        #expect(try largestDifference(b, result.model, data) < 1e-5)
    }

    /// A small ResNet on 3×8×8 images: a stem, an identity block, a downsampling block with a
    /// 1×1 projection, another identity block, global pooling and a classifier; BatchNorm after
    /// each convolution, or pre-activation blocks (norm, ReLU, conv) with LayerNorm.
    static func resnet(norm: String, preActivation: Bool) throws -> ModelDescription {
        func conv(_ out: Int, _ k: Int, _ s: Int) -> String {
            "{\"type\": \"conv2d\", \"out_channels\": \(out), \"kernel_size\": \(k), \"stride\": \(s), \"padding\": \(k / 2), \"bias\": false}"
        }
        func block(_ out: Int, _ s: Int, projection: Bool) -> String {
            let body =
                preActivation
                ? [norm, "\"relu\"", conv(out, 3, s), norm, "\"relu\"", conv(out, 3, 1)]
                : [conv(out, 3, s), norm, "\"relu\"", conv(out, 3, 1), norm]
            let shortcut = projection ? [conv(out, 1, s)] + (preActivation ? [] : [norm]) : []
            return "{\"type\": \"residual\", \"body\": [\(body.joined(separator: ", "))], \"shortcut\": [\(shortcut.joined(separator: ", "))]}"
                + (preActivation ? "" : ", \"relu\"")
        }
        let layers = [conv(4, 3, 1), norm, "\"relu\"", block(4, 1, projection: false), block(6, 2, projection: true),
            block(6, 1, projection: false), "{\"type\": \"adaptive_avgpool2d\", \"output_size\": 1}", "\"flatten\"",
            "{\"type\": \"linear\", \"out_features\": 3}"]
        return try ModelDescription.fromJSON(
            "{\"input\": [3, 8, 8], \"layers\": [\(layers.joined(separator: ", "))]}", source: "test")
    }

    /// The residual stream is one group: the stem's outputs, both blocks' outputs and the
    /// identity shortcuts share it, and the projection opens the next stage's.
    @Test func residualStreamsShareOnePermutation() throws {
        let network = try Network(try Self.resnet(norm: "{\"type\": \"batchnorm2d\"}", preActivation: false))
        let spec = try PermutationSpec(network)
        // stem+block 1 (4), block 1's inner (4), block 2's inner (6), stage 2's stream (6), block 3's inner (6).
        #expect(spec.sizes == [4, 4, 6, 6, 6], "\(spec.sizes)")
        let groupOf = { (name: String, axis: Int) in
            spec.tensors.first { $0.entry.name == name }?.axes.first { $0.axis == axis }?.group
        }
        #expect(groupOf("0.weight", 0) == groupOf("3.body.3.weight", 0))
        #expect(groupOf("5.body.3.weight", 0) == groupOf("5.shortcut.0.weight", 0))
        #expect(groupOf("7.body.3.weight", 0) == groupOf("5.shortcut.0.weight", 0))
        #expect(groupOf("5.shortcut.0.weight", 1) == groupOf("0.weight", 0))
        #expect(groupOf("11.weight", 0) == nil)  // the outputs stay put
        #expect {
            try PermutationSpec(
                Network(
                    ModelDescription(
                        input: [4, 2, 2],
                        layers: [.conv2d(inChannels: nil, outChannels: 4, kernel: .init(1), stride: .init(1), padding: .init(0), bias: true),
                                 .groupNorm(numGroups: 2, numChannels: nil, eps: 1e-5)])))
        } throws: { "\($0)".contains("groupnorm of 2 groups") }
    }

    func largestDifference(_ a: Model, _ b: Model, _ data: Dataset) throws -> Double {
        let wa = Workspace(network: a.network, capacity: data.count)
        let wb = Workspace(network: b.network, capacity: data.count)
        data.features.withUnsafeBufferPointer {
            a.infer($0.baseAddress!, batch: data.count, workspace: wa)
            b.infer($0.baseAddress!, batch: data.count, workspace: wb)
        }
        return zip(wa.output(batch: data.count), wb.output(batch: data.count)).map { Double(abs($0 - $1)) }.max()!
    }

    @Test func alignedModelsHaveNoHigherBarrierThanUnaligned() throws {
        let (split, ends) = try TestSupport.trainedSpiralsPair(samples: 600, epochs: 20)
        let aligned = try WeightMatching.align(ends[1], to: ends[0]).model
        #expect(try largestDifference(ends[1], aligned, split.train) < 1e-5)
        let t = Axis(min: 0, max: 1, steps: 21).values
        func barrier(_ end: Model) throws -> Double {
            let evaluator = try LandscapeEvaluator(
                family: .through([ends[0], end]), train: split.train, test: nil, loss: .crossEntropy, batchNorm: .eval)
            let losses = try evaluator.fast(t.map(Curve.line.coefficients(at:))).map(\.trainLoss)
            return losses.max()! - (losses.first! + losses.last!) / 2
        }
        let before = try barrier(ends[1]), after = try barrier(aligned)
        #expect(after <= before, "aligned barrier \(after) vs unaligned \(before)")
        #expect(after < 0.5 * before, "weight matching should remove most of the barrier: \(after) vs \(before)")
    }
}

@Suite struct SharpnessTests {
    /// Eigenvalues of a symmetric matrix (cyclic Jacobi), in Double.
    static func eigenvalues(_ m: [Double], n: Int) -> [Double] { Lanczos.symmetricEigen(m, n: n).values }

    /// Lanczos run to the full dimension on an explicit matrix is Gauss quadrature of its
    /// spectral measure: the Ritz values are the eigenvalues and their weights the squared
    /// components of the start along each eigenvector; the density built from them integrates
    /// to 1 and has the start's Rayleigh quotient as its mean.
    @Test func lanczosIsGaussQuadratureOfAnExplicitMatrix() {
        let n = 8
        var random = RandomSource(seed: 9, stream: 9)
        let b = (0..<(n * n)).map { _ in random.nextGaussian() }
        var a = [Double](repeating: 0, count: n * n)
        for i in 0..<n { for j in 0..<n { for k in 0..<n { a[i * n + j] += b[k * n + i] * b[k * n + j] } } }
        let start = (0..<n).map { _ in random.nextGaussian() }
        let norm = start.reduce(0) { $0 + $1 * $1 }.squareRoot()
        let product = { (v: [Double]) in (0..<n).map { i in (0..<n).reduce(0.0) { $0 + a[i * n + $1] * v[$1] } } }
        let (values, weights) = Lanczos.run(steps: n, start: start, product: product)
        let (exact, vectors) = Lanczos.symmetricEigen(a, n: n)
        let order = exact.indices.sorted { exact[$0] < exact[$1] }
        #expect(values.count == n)
        for (r, i) in order.enumerated() {
            let component = (0..<n).reduce(0.0) { $0 + vectors[$1 * n + i] * start[$1] / norm }
            #expect(abs(values[r] - exact[i]) <= 1e-8 * max(1, abs(exact[i])), "θ\(r) \(values[r]) vs \(exact[i])")
            #expect(abs(weights[r] - component * component) <= 1e-8, "τ\(r) \(weights[r]) vs \(component * component)")
        }
        let spectrum = SpectralDensity(runs: [(values, weights)], bins: 4000, sigmaSquared: 1e-5)
        let step = spectrum.grid[1] - spectrum.grid[0]
        let mass = spectrum.density.reduce(0, +) * step
        let mean = zip(spectrum.grid, spectrum.density).reduce(0.0) { $0 + $1.0 * $1.1 } * step
        let rayleigh = zip(start, product(start)).reduce(0.0) { $0 + $1.0 * $1.1 } / (norm * norm)
        #expect(abs(mass - 1) < 1e-9 && spectrum.density.allSatisfy { $0 >= 0 })
        // The grid ends 0.01 beyond the extreme Ritz values (PyHessian's), cutting their
        // Gaussians' tails: the mean moves by at most about a kernel width.
        let width = (1e-5 * max(1, values.last! - values.first!)).squareRoot()
        #expect(abs(mean - rayleigh) <= 2 * width, "density mean \(mean) vs vᵀAv \(rayleigh)")
        #expect(spectrum.grid.first! < values.first! && spectrum.grid.last! > values.last!)
    }

    /// Softmax regression (one Linear layer, cross-entropy): its Hessian is known in closed
    /// form, H = (1/N) Σ (diag(p) − ppᵀ) ⊗ x̃x̃ᵀ with x̃ = (x, 1). Basin's estimates must agree
    /// within the tolerances they state.
    @Test func softmaxRegressionMatchesTheClosedFormHessian() throws {
        let features = 3, classes = 3, count = 200
        let data = SyntheticData.blobs(
            samples: count, features: features, classes: classes, spread: 2, noise: 1, seed: 4)
        let network = try Network(
            ModelDescription(input: [features], layers: [.linear(inFeatures: nil, outFeatures: classes, bias: true)]))
        var model = network.initialize(seed: 1)
        var config = TrainingConfig()
        config.epochs = 5
        config.lr = 0.1
        try Trainer(config: config).train(&model, on: data)
        // Parameters: weight [classes, features] row-major, then bias [classes].
        let n = classes * features + classes
        func index(_ k: Int, _ f: Int) -> Int { f < features ? k * features + f : classes * features + k }
        var h = [Double](repeating: 0, count: n * n)
        for s in 0..<count {
            let x = (0..<features).map { Double(data.features[s * features + $0]) } + [1]
            let logits = (0..<classes).map { k in
                (0..<features).reduce(Double(model.parameters[classes * features + k])) {
                    $0 + Double(model.parameters[k * features + $1]) * x[$1]
                }
            }
            let top = logits.max()!
            let e = logits.map { exp($0 - top) }
            let p = e.map { $0 / e.reduce(0, +) }
            for k in 0..<classes {
                for l in 0..<classes {
                    let w = (k == l ? p[k] : 0) - p[k] * p[l]
                    for f in 0...features {
                        for g in 0...features { h[index(k, f) * n + index(l, g)] += w * x[f] * x[g] / Double(count) }
                    }
                }
            }
        }
        let exactTop = Self.eigenvalues(h, n: n).max()!
        let exactTrace = (0..<n).reduce(0.0) { $0 + h[$1 * n + $1] }
        let sharpness = Sharpness(iterations: 200, tolerance: 1e-6, probes: 400, seed: 3)
        let r = try sharpness.measure(model, on: data, loss: .crossEntropy)
        #expect(r.converged)
        #expect(abs(r.topEigenvalue - exactTop) <= 1e-3 * exactTop, "λmax \(r.topEigenvalue) vs \(exactTop)")
        #expect(
            abs(r.trace - exactTrace) <= 4 * r.traceStandardError + 1e-3 * exactTrace,
            "trace \(r.trace) ± \(r.traceStandardError) vs \(exactTrace)")
        // The top three eigenvalues by Lanczos, and a density whose mass lies on the spectrum.
        var lanczos = sharpness
        lanczos.probes = 1
        lanczos.topK = 3
        lanczos.lanczosSteps = n
        lanczos.density = .init(runs: 2, steps: n, bins: 500, sigmaSquared: 1e-5)
        let k = try lanczos.measure(model, on: data, loss: .crossEntropy)
        let exactTop3 = Array(Self.eigenvalues(h, n: n).sorted(by: >).prefix(3))
        #expect(k.topEigenvalues.count == 3)
        for (found, exact) in zip(k.topEigenvalues, exactTop3) {
            #expect(abs(found - exact) <= 1e-3 * exactTop, "top-3 \(k.topEigenvalues) vs \(exactTop3)")
        }
        let spectrum = try #require(k.spectralDensity)
        let step = spectrum.grid[1] - spectrum.grid[0]
        #expect(abs(spectrum.density.reduce(0, +) * step - 1) < 1e-9)
        #expect(spectrum.grid.last! >= exactTop && spectrum.grid.last! <= exactTop * 1.01 + 0.02, "\(spectrum.grid.last!)")
        // A Hessian-vector product against the closed form, coordinate by coordinate.
        var v = [Double](repeating: 0, count: n)
        v[1] = 1
        v[n - 1] = -0.5
        let hv = sharpness.hessianVectorProduct(model, v, data: data, loss: .crossEntropy)
        for i in 0..<n {
            let exact = (0..<n).reduce(0.0) { $0 + h[i * n + $1] * v[$1] }
            #expect(abs(hv[i] - exact) <= 1e-3 * max(1, abs(exact)), "(Hv)[\(i)] \(hv[i]) vs \(exact)")
        }
    }

    /// A small MLP: the explicit Hessian (columns H eᵢ by differences of gradients) gives the
    /// reference top eigenvalue and trace.
    @Test func mlpMatchesItsExplicitHessian() throws {
        let data = SyntheticData.blobs(samples: 150, features: 2, classes: 2, spread: 2, noise: 1, seed: 8)
        let network = try Network(
            ModelDescription(
                input: [2],
                layers: [
                    .linear(inFeatures: nil, outFeatures: 5, bias: true), .tanh,
                    .linear(inFeatures: nil, outFeatures: 2, bias: true),
                ]))
        var model = network.initialize(seed: 2)
        var config = TrainingConfig()
        config.epochs = 3
        try Trainer(config: config).train(&model, on: data)
        let sharpness = Sharpness(iterations: 300, tolerance: 1e-7, probes: 600, seed: 1)
        let n = model.parameters.count
        var h = [Double](repeating: 0, count: n * n)
        for j in 0..<n {
            var e = [Double](repeating: 0, count: n)
            e[j] = 1
            let column = sharpness.hessianVectorProduct(model, e, data: data, loss: .crossEntropy)
            for i in 0..<n { h[i * n + j] = column[i] }
        }
        // Symmetric to the accuracy of the differences.
        var asymmetry = 0.0, scale = 0.0
        for i in 0..<n {
            for j in 0..<n {
                asymmetry = max(asymmetry, abs(h[i * n + j] - h[j * n + i]))
                scale = max(scale, abs(h[i * n + j]))
            }
        }
        #expect(asymmetry <= 1e-3 * scale)
        let symmetric = (0..<(n * n)).map { (h[$0] + h[($0 % n) * n + $0 / n]) / 2 }
        let eigen = Self.eigenvalues(symmetric, n: n)
        let largest = eigen.max(by: { abs($0) < abs($1) })!
        let trace = (0..<n).reduce(0.0) { $0 + h[$1 * n + $1] }
        let r = try sharpness.measure(model, on: data, loss: .crossEntropy)
        #expect(abs(r.topEigenvalue - largest) <= 1e-3 * abs(largest), "λmax \(r.topEigenvalue) vs \(largest)")
        #expect(abs(r.trace - trace) <= 4 * r.traceStandardError + 1e-3 * abs(trace), "trace \(r.trace) vs \(trace)")
    }
}
