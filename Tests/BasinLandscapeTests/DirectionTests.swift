import BasinLandscape
import BasinNN
import BasinTestSupport
import Foundation
import Testing

@Suite struct DirectionTests {
    static let description = ModelDescription(
        input: [2, 5, 5],
        layers: [
            .conv2d(inChannels: nil, outChannels: 3, kernel: .init(3), stride: .init(1), padding: .init(0), bias: true),
            .batchNorm2d(numFeatures: nil, eps: 1e-5, momentum: 0.1), .relu, .flatten,
            .linear(inFeatures: nil, outFeatures: 4, bias: true),
        ])

    let model = try! Network(description).initialize(seed: 3)

    /// Every dim-0 slice of a ≥2-D parameter has the norm of the same slice of θ.
    @Test func filterNormalizationMatchesItsDefinition() {
        let d = Directions.random(
            around: model, count: 1, spec: DirectionSpec(norm: .filter, ignore: .biasbn, seed: 1))[0]
        for entry in model.network.parameterLayout.entries where entry.shape.count > 1 {
            let slice = entry.count / entry.shape[0]
            for s in 0..<entry.shape[0] {
                let range = (entry.offset + s * slice)..<(entry.offset + (s + 1) * slice)
                let dn = VectorMath.norm(d[range]), wn = VectorMath.norm(model.parameters[range])
                #expect(abs(dn - wn) <= 1e-5 * wn, "\(entry.name) slice \(s)")
            }
        }
    }

    @Test func layerNormalizationAndBiasBN() {
        let layer = Directions.random(
            around: model, count: 1, spec: DirectionSpec(norm: .layer, ignore: .biasbn, seed: 1))[0]
        let keep = Directions.random(around: model, count: 1, spec: DirectionSpec(norm: .none, ignore: .keep, seed: 1))[
            0]
        for entry in model.network.parameterLayout.entries {
            if entry.shape.count <= 1 {
                #expect(layer[entry.range].allSatisfy { $0 == 0 }, "\(entry.name) zeroed by biasbn")
                #expect(Array(keep[entry.range]) == Array(model.parameters[entry.range]), "\(entry.name) copies θ")
            } else {
                let wn = VectorMath.norm(model.parameters[entry.range])
                #expect(abs(VectorMath.norm(layer[entry.range]) - wn) <= 1e-5 * wn)
            }
        }
        // Other seeds give other directions; the same seed the same bits.
        let again = Directions.random(
            around: model, count: 1, spec: DirectionSpec(norm: .layer, ignore: .biasbn, seed: 1))[0]
        let other = Directions.random(
            around: model, count: 1, spec: DirectionSpec(norm: .layer, ignore: .biasbn, seed: 2))[0]
        #expect(again == layer && other != layer)
    }

    @Test func orthogonalizedDirectionsAreOrthogonal() {
        let pair = Directions.random(around: model, count: 2, spec: DirectionSpec(orthogonalize: true, seed: 5))
        let cosine = VectorMath.dot(pair[0], pair[1]) / (VectorMath.norm(pair[0]) * VectorMath.norm(pair[1]))
        #expect(abs(cosine) < 1e-6)
        let plain = Directions.random(around: model, count: 2, spec: DirectionSpec(orthogonalize: false, seed: 5))
        #expect(plain[0] == pair[0])
    }

    @Test func directionSetsRoundTrip() throws {
        let pair = Directions.random(around: model, count: 2, spec: DirectionSpec(seed: 9))
        let url = TestSupport.temporaryDirectory().appendingPathComponent("dirs.safetensors")
        try Directions.save(pair, layout: model.network.parameterLayout, metadata: [:], to: url)
        #expect(try Directions.load(contentsOf: url, layout: model.network.parameterLayout) == pair)
    }

    /// PCA of a trajectory that moves along two known orthogonal directions recovers them.
    @Test func trajectoryPCARecoversTheDirections() throws {
        let p = 50
        var a = [Float](repeating: 0, count: p), b = [Float](repeating: 0, count: p)
        a[3] = 1
        b[10] = 0.6
        b[11] = 0.8
        let final = TestSupport.gaussian(p, seed: 1)
        let snapshots = (0..<12).map { i -> [Float] in
            // u linear, v quadratic in the same symmetric steps: uncorrelated after centring.
            let s = Double(12 - i) - 6.5, u = 3 * s, v = 0.1 * s * s
            return (0..<p).map { final[$0] + Float(u) * a[$0] + Float(v) * b[$0] }
        }
        let pca = try TrajectoryPCA(snapshots: snapshots, final: final)
        #expect(abs(abs(VectorMath.dot(pca.directions[0], a)) - 1) < 1e-5)
        #expect(abs(abs(VectorMath.dot(pca.directions[1], b)) - 1) < 1e-5)
        #expect(pca.explainedVarianceRatio[0] > pca.explainedVarianceRatio[1])
        // The projection of each snapshot reproduces its offset along the directions.
        for (snapshot, coordinates) in zip(snapshots, pca.projections) {
            let offset = VectorMath.difference(snapshot, final)
            #expect(abs(coordinates[0] - VectorMath.dot(offset, pca.directions[0])) < 1e-9)
        }
    }
}
