/// `y = x Wᵀ + b` with W stored `[out, in]` row-major, as PyTorch's `nn.Linear`.
struct LinearKernel: LayerKernel {
    let inFeatures: Int
    let outFeatures: Int
    let hasBias: Bool

    var inputShape: [Int] { [inFeatures] }
    var outputShape: [Int] { [outFeatures] }

    var parameterSpecs: [TensorSpec] {
        let bound = Float(1 / Double(inFeatures).squareRoot())
        var specs = [TensorSpec(suffix: "weight", shape: [outFeatures, inFeatures], initial: .uniform(bound: bound))]
        if hasBias {
            specs.append(TensorSpec(suffix: "bias", shape: [outFeatures], initial: .uniform(bound: bound)))
        }
        return specs
    }

    func forward(_ m: LayerMemory, mode: ForwardMode, layerIndex: Int) {
        let weight = m.parameters.baseAddress!
        let out = m.output.baseAddress!
        if hasBias {
            let bias = weight + outFeatures * inFeatures
            for row in 0..<m.batch {
                (out + row * outFeatures).update(from: bias, count: outFeatures)
            }
        }
        BLAS.sgemm(
            transB: true, m: m.batch, n: outFeatures, k: inFeatures,
            a: m.input.baseAddress!, lda: inFeatures, b: weight, ldb: inFeatures,
            beta: hasBias ? 1 : 0, c: out, ldc: outFeatures)
    }

    func backward(_ m: LayerMemory, _ g: LayerGradientMemory, mode: ForwardMode, layerIndex: Int) {
        let gradOut = g.outputGradient.baseAddress!
        let gradWeight = g.parameterGradients.baseAddress!
        BLAS.sgemm(
            transA: true, m: outFeatures, n: inFeatures, k: m.batch,
            a: gradOut, lda: outFeatures, b: m.input.baseAddress!, ldb: inFeatures,
            c: gradWeight, ldc: inFeatures)
        if hasBias {
            let gradBias = gradWeight + outFeatures * inFeatures
            gradBias.update(repeating: 0, count: outFeatures)
            for row in 0..<m.batch {
                let r = gradOut + row * outFeatures
                for o in 0..<outFeatures { gradBias[o] += r[o] }
            }
        }
        if let gradIn = g.inputGradient {
            BLAS.sgemm(
                m: m.batch, n: inFeatures, k: outFeatures,
                a: gradOut, lda: outFeatures, b: m.parameters.baseAddress!, ldb: inFeatures,
                c: gradIn.baseAddress!, ldc: inFeatures)
        }
    }
}
