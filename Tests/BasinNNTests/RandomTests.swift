import BasinNN
import Testing

@Suite struct RandomTests {
    /// Known-answer vectors of Philox4x32-10 from the Random123 distribution (kat_vectors).
    @Test func philoxMatchesRandom123() {
        let zero = Philox4x32(key: 0).block(0, 0, 0, 0)
        #expect([zero.0, zero.1, zero.2, zero.3] == [0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8])
        let ones = Philox4x32(key: 0xffff_ffff_ffff_ffff).block(0xffff_ffff, 0xffff_ffff, 0xffff_ffff, 0xffff_ffff)
        #expect([ones.0, ones.1, ones.2, ones.3] == [0x408f_276d, 0x41c8_3b0e, 0xa20b_c7c6, 0x6d54_51fd])
        let pi = Philox4x32(key: 0x299f_31d0_a409_3822).block(0x243f_6a88, 0x85a3_08d3, 0x1319_8a2e, 0x0370_7344)
        #expect([pi.0, pi.1, pi.2, pi.3] == [0xd16c_fe09, 0x94fd_cceb, 0x5001_e420, 0x2412_6ea1])
    }

    @Test func streamsAreReproducibleAndIndependent() {
        var a = RandomSource(seed: 7, stream: RandomStream.shuffle.id(3))
        var b = RandomSource(seed: 7, stream: RandomStream.shuffle.id(3))
        var c = RandomSource(seed: 7, stream: RandomStream.shuffle.id(4))
        let first = (0..<100).map { _ in a.nextUInt32() }
        #expect(first == (0..<100).map { _ in b.nextUInt32() })
        #expect(first != (0..<100).map { _ in c.nextUInt32() })
        // Starting at an offset equals skipping that many blocks.
        var skipped = RandomSource(seed: 7, stream: RandomStream.shuffle.id(3), offset: 5)
        #expect((0..<20).map { _ in skipped.nextUInt32() } == Array(first[20..<40]))
    }

    @Test func distributionsLookRight() {
        var random = RandomSource(seed: 1, stream: 1)
        let n = 200_000
        var sum = 0.0, squares = 0.0
        for _ in 0..<n {
            let g = random.nextGaussian()
            sum += g
            squares += g * g
        }
        #expect(abs(sum / Double(n)) < 0.01)
        #expect(abs(squares / Double(n) - 1) < 0.02)
        let uniforms = (0..<n).map { _ in random.nextFloat() }
        #expect(uniforms.allSatisfy { $0 >= 0 && $0 < 1 })
        let permutation = random.permutation(1000)
        #expect(permutation.sorted() == Array(0..<1000))
        #expect(permutation != Array(0..<1000))
    }
}
