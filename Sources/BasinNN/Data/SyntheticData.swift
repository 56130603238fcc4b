import Foundation

/// Built-in classification sets generated from a seed, so nothing needs a download.
///
/// Sample `i` has class `i % classes`; every number comes from the `data` stream of `seed`.
public enum SyntheticData {
    /// Gaussian blobs: `classes` centres drawn N(0, spread²) in `features` dimensions,
    /// samples N(centre, noise²).
    public static func blobs(samples: Int, features: Int, classes: Int, spread: Double, noise: Double, seed: UInt64)
        -> Dataset
    {
        var random = RandomSource(seed: seed, stream: RandomStream.data.id(0))
        let centres = (0..<(classes * features)).map { _ in random.nextGaussian() * spread }
        var x = [Float](), y = [Int32]()
        x.reserveCapacity(samples * features)
        for i in 0..<samples {
            let k = i % classes
            for j in 0..<features { x.append(Float(centres[k * features + j] + random.nextGaussian() * noise)) }
            y.append(Int32(k))
        }
        return Dataset(sampleShape: [features], features: x, labels: y, classCount: classes)
    }

    /// Interleaved spiral arms in 2-D: arm `k` at radius t and angle 2πk/classes + 2π·turns·t,
    /// t ~ U(0, 1), plus N(0, noise²) jitter.
    public static func spirals(samples: Int, classes: Int, turns: Double, noise: Double, seed: UInt64) -> Dataset {
        var random = RandomSource(seed: seed, stream: RandomStream.data.id(0))
        var x = [Float](), y = [Int32]()
        x.reserveCapacity(samples * 2)
        for i in 0..<samples {
            let k = i % classes
            let t = random.nextDouble()
            let angle = 2 * Double.pi * (Double(k) / Double(classes) + turns * t)
            x.append(Float(t * cos(angle) + random.nextGaussian() * noise))
            x.append(Float(t * sin(angle) + random.nextGaussian() * noise))
            y.append(Int32(k))
        }
        return Dataset(sampleShape: [2], features: x, labels: y, classCount: classes)
    }

    /// A teacher network: inputs N(0, I), labels the argmax of a random
    /// `features → hidden (tanh) → classes` MLP with N(0, 1/fan_in) weights.
    public static func teacher(samples: Int, features: Int, classes: Int, hidden: Int, seed: UInt64) -> Dataset {
        var weights = RandomSource(seed: seed, stream: RandomStream.data.id(1))
        let w1 = (0..<(hidden * features)).map { _ in weights.nextGaussian() / Double(features).squareRoot() }
        let w2 = (0..<(classes * hidden)).map { _ in weights.nextGaussian() / Double(hidden).squareRoot() }
        var random = RandomSource(seed: seed, stream: RandomStream.data.id(0))
        var x = [Float](), y = [Int32]()
        x.reserveCapacity(samples * features)
        var input = [Double](repeating: 0, count: features), h = [Double](repeating: 0, count: hidden)
        for _ in 0..<samples {
            for j in 0..<features {
                input[j] = random.nextGaussian()
                x.append(Float(input[j]))
            }
            for u in 0..<hidden {
                var sum = 0.0
                for j in 0..<features { sum += w1[u * features + j] * input[j] }
                h[u] = tanh(sum)
            }
            var best = 0, bestValue = -Double.infinity
            for k in 0..<classes {
                var sum = 0.0
                for u in 0..<hidden { sum += w2[k * hidden + u] * h[u] }
                if sum > bestValue { (best, bestValue) = (k, sum) }
            }
            y.append(Int32(best))
        }
        return Dataset(sampleShape: [features], features: x, labels: y, classCount: classes)
    }
}
