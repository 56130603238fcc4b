import BasinLandscape
import BasinNN
import BasinTestSupport
import Foundation
import Testing

@Suite struct PathTests {
    @Test(arguments: [
        Curve(kind: .bezier, bends: 1), Curve(kind: .bezier, bends: 3), Curve(kind: .polychain, bends: 2),
    ])
    func curvesStartAndEndAtTheModels(_ curve: Curve) {
        var start = [Double](repeating: 0, count: curve.controlPointCount), end = start
        start[0] = 1
        end[curve.controlPointCount - 1] = 1
        #expect(curve.coefficients(at: 0) == start)
        #expect(curve.coefficients(at: 1) == end)
        for t in stride(from: 0.0, through: 1, by: 0.05) {
            #expect(abs(curve.coefficients(at: t).reduce(0, +) - 1) < 1e-12)
        }
        // Bends start on the straight line: the untrained curve is the line.
        let network = try! Network(
            ModelDescription(input: [2], layers: [.linear(inFeatures: nil, outFeatures: 2, bias: true)]))
        let a = network.initialize(seed: 1), b = network.initialize(seed: 2)
        let family = AffineFamily.through(curve.initialControlPoints(from: a, to: b))
        let line = AffineFamily.through([a, b])
        for t in [0.0, 0.3, 1] {
            let onCurve = family.model(at: curve.coefficients(at: t)).parameters
            let onLine = line.model(at: Curve.line.coefficients(at: t)).parameters
            for i in onCurve.indices { #expect(abs(onCurve[i] - onLine[i]) < 1e-6) }
        }
        #expect(family.model(at: curve.coefficients(at: 0)).parameters == a.parameters)
        #expect(family.model(at: curve.coefficients(at: 1)).parameters == b.parameters)
    }

    @Test func straightLinesAndPolychainsExtrapolateOutsideZeroToOne() {
        // θ(t) = (1 − t)·θ₀ + t·θ₁ must hold for t outside [0, 1] too (interpolations over
        // -0.25...1.25 are common), not fade toward the zero vector.
        #expect(Curve.line.coefficients(at: -0.25) == [1.25, -0.25])
        #expect(Curve.line.coefficients(at: 1.5) == [-0.5, 1.5])
        #expect(Curve.line.coefficients(at: 0.25) == [0.75, 0.25])
        let chain = Curve(kind: .polychain, bends: 1)
        #expect(chain.coefficients(at: 1.25) == [0, -0.5, 1.5])
        #expect(chain.coefficients(at: -0.25) == [1.5, -0.5, 0])
        for t in [-0.7, -0.1, 1.1, 2.0] {
            #expect(abs(chain.coefficients(at: t).reduce(0, +) - 1) < 1e-12)
        }
    }

    @Test func pathStatisticsFollowGaripov() {
        let s = PathStatistics(values: [1, 3, 2], segmentLengths: [1, 3])
        #expect(s.min == 1 && s.max == 3 && s.mean == 2)
        let expected: Double = (0.5 * 4 * 1 + 0.5 * 5 * 3) / 4
        #expect(s.integral == expected)
        let barrier = Barrier(
            t: [-0.5, 0, 0.5, 1, 1.5], loss: [9, 1, 4, 2, 9], accuracy: [0, 0.9, 0.5, 0.8, 0], start: (1, 0.9),
            end: (2, 0.8))
        #expect(barrier.lossBarrier == 4 - 1.5)  // t outside [0, 1] ignored
        #expect(abs(barrier.errorBarrier - (0.5 - 0.15)) < 1e-12)
    }

    /// Two models trained from different seeds: the fitted curve's highest loss is below the
    /// straight line's.
    @Test func fittedCurveBeatsTheStraightLine() throws {
        let (split, ends) = try TestSupport.trainedSpiralsPair(samples: 800, epochs: 25)
        var config = TrainingConfig()
        config.optimizer = .adam
        config.lr = 0.01
        config.seed = 0
        config.epochs = 15
        let curve = Curve(kind: .bezier, bends: 1)
        let points = try CurveFitter(curve: curve, config: config).fit(from: ends[0], to: ends[1], on: split.train)
        #expect(points[0].parameters == ends[0].parameters && points[2].parameters == ends[1].parameters)
        let t = Axis(min: 0, max: 1, steps: 21).values
        func maxLoss(_ family: AffineFamily, _ c: Curve) throws -> Double {
            let evaluator = try LandscapeEvaluator(
                family: family, train: split.train, test: nil, loss: .crossEntropy, batchNorm: .eval)
            return try evaluator.fast(t.map(c.coefficients(at:))).map(\.trainLoss).max()!
        }
        let lineMax = try maxLoss(.through(ends), .line)
        let curveMax = try maxLoss(.through(points), curve)
        #expect(curveMax < lineMax, "curve \(curveMax) vs line \(lineMax)")
    }
}
