import BasinTestSupport
import Foundation
import Testing

@testable import BasinSweep

/// The binary shard-done record (kind 4): every field back bit for bit, the JSON-header form
/// (kind 2) still read, and no body, whole or cut short, that can trap the reader.
@Suite struct JournalCodingTests {
    let job = String(repeating: "0123456789abcdef", count: 4)
    let artifact = String(repeating: "fedcba9876543210", count: 4)

    func sameBits(_ a: Journal.ShardDone, _ b: Journal.ShardDone) -> Bool {
        a.job == b.job && a.shard == b.shard && a.start == b.start && a.end == b.end && a.worker == b.worker
            && a.seconds.bitPattern == b.seconds.bitPattern && a.time.bitPattern == b.time.bitPattern
            && a.artifact == b.artifact && a.metrics.map(\.bitPattern) == b.metrics.map(\.bitPattern)
    }

    @Test func shardDoneRecordsRoundTripBitForBit() throws {
        let records = [
            Journal.ShardDone(
                job: job, shard: 7, start: 70, end: 72, worker: "w-ü#1", seconds: 0.25, time: 1.8e9,
                metrics: [0.5, .nan, -0.0, .infinity, .leastNonzeroMagnitude, 0.75, 2, 3]),
            Journal.ShardDone(
                job: job, shard: 0, start: 0, end: 1, worker: "", seconds: 0, time: 0, metrics: [1, 1, 1, 1],
                artifact: artifact),
            Journal.ShardDone(job: job, shard: 1 << 40, start: 0, end: 0, worker: "x", seconds: 1, time: 2, metrics: []),
        ]
        for record in records {
            let bytes = Journal.encode(.shardDone(record))
            #expect(bytes[12] == Journal.Kind.shardDoneBinary.rawValue)
            guard case .shardDone(let back)? = Journal.decode([UInt8](bytes)[12...]) else {
                Issue.record("not decoded: \(record)")
                continue
            }
            #expect(sameBits(back, record), "\(back) != \(record)")
        }
        // A record whose job is no SHA-256 keeps the JSON header (kind 2), and reads back.
        let odd = Journal.ShardDone(job: "j", shard: 0, start: 0, end: 1, worker: "w", seconds: 1, time: 2, metrics: [1, 2, 3, 4])
        let legacy = Journal.encode(.shardDone(odd))
        #expect(legacy[12] == Journal.Kind.shardDone.rawValue)
        #expect(Journal.decode([UInt8](legacy)[12...]) == .shardDone(odd))
    }

    @Test func aBodyCutShortOrPaddedIsNoRecordAndNoTrap() {
        let record = Journal.ShardDone(
            job: job, shard: 3, start: 30, end: 32, worker: "worker", seconds: 1, time: 2,
            metrics: [1, 2, 3, 4, 5, 6, 7, 8], artifact: artifact)
        let body = [UInt8](Journal.encode(.shardDone(record)))[12...]
        for cut in 1..<(body.count - 64) {
            // Cut anywhere before the metrics: nothing decodes.
            #expect(Journal.decode(body.prefix(cut)) == nil, "cut at \(cut)")
        }
        var flagged = Array(body)
        // The artifact flag byte (after kind, 32 + 24 + 16 bytes, the worker's length and name).
        flagged[1 + 32 + 24 + 16 + 2 + 6] = 9
        #expect(Journal.decode(flagged[...]) == nil)
        // Metrics that are not whole Float64s.
        #expect(Journal.decode((Array(body) + [0, 0, 0])[...]) == nil)
    }

    /// zlib's CRC-32 (what zip readers and numpy check): the standard check value, and every
    /// length and alignment equal to the byte-at-a-time definition.
    @Test func crc32MatchesZlibAtEveryLengthAndOffset() {
        #expect(CRC32.checksum(Array("123456789".utf8)) == 0xCBF4_3926)
        var state: UInt32 = 7
        let bytes = (0..<300).map { _ -> UInt8 in
            state = state &* 1_664_525 &+ 1_013_904_223
            return UInt8(state >> 24)
        }
        func slow(_ bytes: ArraySlice<UInt8>) -> UInt32 {
            var c: UInt32 = 0xFFFF_FFFF
            for byte in bytes {
                c ^= UInt32(byte)
                for _ in 0..<8 { c = (c & 1) != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
            }
            return ~c
        }
        for start in 0..<9 {
            for end in stride(from: start, through: bytes.count, by: 7) {
                #expect(CRC32.checksum(bytes[start..<end]) == slow(bytes[start..<end]), "\(start)..<\(end)")
            }
        }
        // Continuing a checksum equals one over the whole.
        #expect(CRC32.checksum(bytes[100...], continuing: CRC32.checksum(bytes[..<100])) == CRC32.checksum(bytes))
    }
}
