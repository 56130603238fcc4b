import Foundation

/// Philox4x32-10 (Salmon et al. 2011), a counter-based generator.
///
/// The output is a pure function of `(key, counter)`, so any stream position can be computed
/// directly and every machine produces the same bits for the same seed.
public struct Philox4x32: Sendable {
    public var key: (UInt32, UInt32)

    public init(key: UInt64) {
        self.key = (UInt32(truncatingIfNeeded: key), UInt32(truncatingIfNeeded: key >> 32))
    }

    /// The four 32-bit words for a 128-bit counter.
    @inline(__always)
    public func block(_ c0: UInt32, _ c1: UInt32, _ c2: UInt32, _ c3: UInt32) -> (UInt32, UInt32, UInt32, UInt32) {
        var x = (c0, c1, c2, c3)
        var k = key
        for _ in 0..<10 {
            let p0 = UInt64(0xD251_1F53) &* UInt64(x.0)
            let p1 = UInt64(0xCD9E_8D57) &* UInt64(x.2)
            x = (
                UInt32(truncatingIfNeeded: p1 >> 32) ^ x.1 ^ k.0,
                UInt32(truncatingIfNeeded: p1),
                UInt32(truncatingIfNeeded: p0 >> 32) ^ x.3 ^ k.1,
                UInt32(truncatingIfNeeded: p0)
            )
            k = (k.0 &+ 0x9E37_79B9, k.1 &+ 0xBB67_AE85)
        }
        return x
    }
}

/// Well-known stream kinds, so independent uses of one seed never share bits.
public enum RandomStream: UInt64, Sendable {
    case initialization = 1
    case shuffle = 2
    case dropout = 3
    case data = 4
    case split = 5
    case direction = 6
    case curve = 7
    case probe = 8
    case augmentation = 9

    /// A stream id for the `index`-th use of this kind (a parameter, an epoch, a layer).
    public func id(_ index: Int = 0) -> UInt64 {
        (rawValue << 40) | UInt64(truncatingIfNeeded: index)
    }
}

/// A sequential reader over one Philox stream keyed by `(seed, stream)`.
///
/// Position `n` of the stream is word `n % 4` of the block at counter `(n / 4, stream)`; the
/// generator is deterministic and independent of the platform's RNG.
public struct RandomSource: Sendable {
    private let philox: Philox4x32
    private let stream: UInt64
    private var counter: UInt64
    private var buffer: (UInt32, UInt32, UInt32, UInt32) = (0, 0, 0, 0)
    private var used = 4
    private var spareGaussian: Double?

    public init(seed: UInt64, stream: UInt64, offset: UInt64 = 0) {
        self.philox = Philox4x32(key: seed)
        self.stream = stream
        self.counter = offset
    }

    public mutating func nextUInt32() -> UInt32 {
        if used == 4 {
            buffer = philox.block(
                UInt32(truncatingIfNeeded: counter), UInt32(truncatingIfNeeded: counter >> 32),
                UInt32(truncatingIfNeeded: stream), UInt32(truncatingIfNeeded: stream >> 32))
            counter &+= 1
            used = 0
        }
        defer { used += 1 }
        switch used {
        case 0: return buffer.0
        case 1: return buffer.1
        case 2: return buffer.2
        default: return buffer.3
        }
    }

    public mutating func nextUInt64() -> UInt64 {
        let hi = UInt64(nextUInt32())
        return (hi << 32) | UInt64(nextUInt32())
    }

    /// Uniform in [0, 1) with 24 random bits.
    public mutating func nextFloat() -> Float {
        Float(nextUInt32() >> 8) * 0x1p-24
    }

    /// Uniform in [0, 1) with 53 random bits.
    public mutating func nextDouble() -> Double {
        Double(nextUInt64() >> 11) * 0x1p-53
    }

    /// Uniform in [low, high).
    public mutating func uniform(_ low: Double, _ high: Double) -> Double {
        low + (high - low) * nextDouble()
    }

    /// Standard normal by the Box–Muller transform, computed in Double.
    public mutating func nextGaussian() -> Double {
        if let spare = spareGaussian {
            spareGaussian = nil
            return spare
        }
        let u1 = 1.0 - nextDouble()  // (0, 1]
        let u2 = nextDouble()
        let radius = (-2.0 * log(u1)).squareRoot()
        let angle = 2.0 * Double.pi * u2
        spareGaussian = radius * sin(angle)
        return radius * cos(angle)
    }

    /// Uniform integer in 0..<bound (Lemire's method with rejection, so unbiased).
    public mutating func nextInt(below bound: Int) -> Int {
        precondition(bound > 0)
        let b = UInt64(bound)
        while true {
            let product = nextUInt64().multipliedFullWidth(by: b)
            if product.low >= (0 &- b) % b {
                return Int(product.high)
            }
        }
    }

    /// A uniformly random permutation of 0..<count (Fisher–Yates).
    public mutating func permutation(_ count: Int) -> [Int] {
        var order = Array(0..<count)
        if count < 2 { return order }
        for i in stride(from: count - 1, to: 0, by: -1) {
            let j = nextInt(below: i + 1)
            order.swapAt(i, j)
        }
        return order
    }
}
