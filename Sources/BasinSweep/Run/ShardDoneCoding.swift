import Foundation

/// The binary body of a shard-done journal record (kind 4), all little-endian:
///
/// ```
/// job       32 bytes   the job id's SHA-256
/// shard     u64
/// start     u64
/// end       u64
/// seconds   f64
/// time      f64
/// worker    u16 length, then UTF-8 bytes
/// artifact  u8 (0: none, 1: present), then 32 bytes of SHA-256 when present
/// metrics   f64 × n (the rest of the body)
/// ```
///
/// Reading one is a few copies, no parsing: a journal of 10^7 points reads back in well under
/// a second (`scripts/bench-journal`). Records whose ids are not SHA-256 hex (none Basin
/// writes) keep the JSON-header form (kind 2).
enum ShardDoneCoding {
    static func encodable(_ done: Journal.ShardDone) -> Bool {
        ArtifactStore.isHash(done.job) && done.artifact.map(ArtifactStore.isHash) != false
            && done.worker.utf8.count <= Int(UInt16.max) && done.shard >= 0 && done.start >= 0 && done.end >= 0
    }

    static func size(_ done: Journal.ShardDone) -> Int {
        1 + 32 + 24 + 16 + 2 + done.worker.utf8.count + 1 + (done.artifact == nil ? 0 : 32) + 8 * done.metrics.count
    }

    static func encode(_ done: Journal.ShardDone, into body: inout Data) {
        func u64(_ value: Int) {
            var v = UInt64(value).littleEndian
            withUnsafeBytes(of: &v) { body.append(contentsOf: $0) }
        }
        func f64(_ value: Double) { u64(Int(bitPattern: UInt(value.bitPattern))) }
        appendHash(done.job, to: &body)
        u64(done.shard)
        u64(done.start)
        u64(done.end)
        f64(done.seconds)
        f64(done.time)
        var length = UInt16(done.worker.utf8.count).littleEndian
        withUnsafeBytes(of: &length) { body.append(contentsOf: $0) }
        body.append(contentsOf: Array(done.worker.utf8))
        if let artifact = done.artifact {
            body.append(1)
            appendHash(artifact, to: &body)
        } else {
            body.append(0)
        }
        done.metrics.withUnsafeBytes { body.append(contentsOf: $0) }
    }

    /// The last job id decoded, as its 32 bytes and its hex string: a journal holds long runs
    /// of one job's records, which then share one string instead of spelling it each time.
    struct RecentID {
        var bytes: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        var id: String?

        mutating func id(of hash: UnsafeRawBufferPointer) -> String {
            let words = (
                hash.loadUnaligned(fromByteOffset: 0, as: UInt64.self),
                hash.loadUnaligned(fromByteOffset: 8, as: UInt64.self),
                hash.loadUnaligned(fromByteOffset: 16, as: UInt64.self),
                hash.loadUnaligned(fromByteOffset: 24, as: UInt64.self)
            )
            if let id, words == bytes { return id }
            let spelled = ShardDoneCoding.hex(hash)
            (bytes, id) = (words, spelled)
            return spelled
        }
    }

    /// The record in `body` (after the kind byte), or nil when it is not a whole one; the job
    /// id is `ids`' string when the job is the last one's.
    static func decode(_ body: ArraySlice<UInt8>, ids: inout RecentID) -> Journal.ShardDone? {
        body.withUnsafeBytes { raw -> Journal.ShardDone? in
            var offset = 0
            func take(_ count: Int) -> UnsafeRawBufferPointer? {
                guard count >= 0, raw.count - offset >= count else { return nil }
                defer { offset += count }
                return UnsafeRawBufferPointer(rebasing: raw[offset..<(offset + count)])
            }
            func u64() -> UInt64? { take(8).map { $0.loadUnaligned(as: UInt64.self).littleEndian } }
            func int() -> Int? { u64().flatMap { Int(exactly: $0) } }
            guard let job = take(32).map({ ids.id(of: $0) }), let shard = int(), let start = int(), let end = int(),
                let seconds = u64().map(Double.init(bitPattern:)), let time = u64().map(Double.init(bitPattern:)),
                let length = take(2).map({ Int($0.loadUnaligned(as: UInt16.self).littleEndian) }),
                let worker = take(length).map({ String(decoding: $0, as: UTF8.self) }), let flag = take(1)?.first,
                flag <= 1
            else { return nil }
            var artifact: String?
            if flag == 1 {
                guard let hash = take(32) else { return nil }
                artifact = hex(hash)
            }
            let rest = raw.count - offset
            guard rest % 8 == 0, let values = take(rest) else { return nil }
            var metrics = [Double](repeating: 0, count: rest / 8)
            metrics.withUnsafeMutableBytes { target in target.copyMemory(from: values) }
            return Journal.ShardDone(
                job: job, shard: shard, start: start, end: end, worker: worker, seconds: seconds, time: time,
                metrics: metrics, artifact: artifact)
        }
    }

    private static let digits = Array("0123456789abcdef".utf8)

    static func hex(_ bytes: UnsafeRawBufferPointer) -> String {
        String(unsafeUninitializedCapacity: bytes.count * 2) { buffer in
            for (i, byte) in bytes.enumerated() {
                buffer[2 * i] = digits[Int(byte >> 4)]
                buffer[2 * i + 1] = digits[Int(byte & 15)]
            }
            return bytes.count * 2
        }
    }

    /// Appends the 32 bytes a 64-digit lowercase hex hash spells.
    static func appendHash(_ hash: String, to body: inout Data) {
        var bytes = [UInt8](repeating: 0, count: 32)
        var high = true, index = 0
        for c in hash.utf8 where index < 32 {
            let v: UInt8 = c <= 57 ? c - 48 : c - 87
            if high { bytes[index] = v << 4 } else { bytes[index] |= v; index += 1 }
            high.toggle()
        }
        body.append(contentsOf: bytes)
    }
}
