import BasinNN
import Foundation

/// The run's append-only journal: `journal/000001.log`, `000002.log`, … one segment per
/// coordinator start. Each record is
///
///     magic "BSJ1" | length u32 LE | CRC-32 u32 LE (zlib, over kind + payload) | kind u8 | payload
///
/// Opening for writing verifies every record and truncates a torn tail of the last segment
/// (a crash mid-append). A bad record with good ones after it (corruption, not a torn tail) is
/// reported with its segment and offset and skipped: reading resumes at the next record that
/// verifies, and only the shards the bad bytes held are recomputed. Appends go to the kernel at
/// once; `sync()` makes them durable (group commit: the caller decides how often). A failed
/// write or fsync throws, naming the file and the cause; the caller stops (fail-stop).
public final class Journal {
    /// The file operations the journal uses: the system's, or a test's that fails on cue.
    public struct FileLayer: Sendable {
        /// `write(2)`: bytes written, or -1 with `errno` set.
        public var write: @Sendable (Int32, UnsafeRawPointer, Int) -> Int
        /// `fsync(2)`: 0, or -1 with `errno` set.
        public var sync: @Sendable (Int32) -> Int32

        public init(
            write: @escaping @Sendable (Int32, UnsafeRawPointer, Int) -> Int,
            sync: @escaping @Sendable (Int32) -> Int32
        ) {
            self.write = write
            self.sync = sync
        }

        public static let system = FileLayer(
            write: { descriptor, bytes, count in Foundation.write(descriptor, bytes, count) },
            sync: { descriptor in Foundation.fsync(descriptor) })
    }

    /// Bytes of a segment that did not verify, with good records after them.
    public struct Damage: Sendable, Equatable, CustomStringConvertible {
        public var segment: String
        public var offset: Int
        public var length: Int
        public var problem: String

        public var description: String {
            "journal \(segment): \(problem) at byte offset \(offset); \(length) byte(s) skipped up to the next good record (the shards they held are recomputed)"
        }
    }
    public enum Kind: UInt8, Sendable {
        case runStarted = 1
        case shardDone = 2
        case shardRevoked = 3
        /// A shard-done record in fixed binary fields (`ShardDoneCoding`): what is written now;
        /// kind 2 (a JSON header) is still read.
        case shardDoneBinary = 4
    }

    /// A shard-done record found false (its worker failed verification): it no longer counts,
    /// and the shard is computed again. `digest` names the record: the SHA-256 of its metrics.
    public struct ShardRevoked: Codable, Sendable, Equatable {
        public var job: String
        public var shard: Int
        public var digest: String
        public var reason: String

        public init(job: String, shard: Int, digest: String, reason: String) {
            self.job = job
            self.shard = shard
            self.digest = digest
            self.reason = reason
        }
    }

    /// One finished shard: its points' metrics, 4 per point (train loss, train acc, test loss, test acc).
    public struct ShardDone: Codable, Sendable, Equatable {
        public var job: String
        public var shard: Int
        public var start: Int
        public var end: Int
        public var worker: String
        public var seconds: Double
        /// Unix time the coordinator recorded it (for rates in `basin status`).
        public var time: Double
        public var metrics: [Double] = []
        /// SHA-256 of the artifact the job made (train, align, fit), stored before this record.
        public var artifact: String?

        public init(
            job: String, shard: Int, start: Int, end: Int, worker: String, seconds: Double, time: Double,
            metrics: [Double], artifact: String? = nil
        ) {
            self.job = job
            self.shard = shard
            self.start = start
            self.end = end
            self.worker = worker
            self.seconds = seconds
            self.time = time
            self.metrics = metrics
            self.artifact = artifact
        }

        private enum CodingKeys: String, CodingKey { case job, shard, start, end, worker, seconds, time, artifact }
    }

    public enum Record: Sendable, Equatable {
        case runStarted(epoch: Int, time: Double)
        case shardDone(ShardDone)
        case shardRevoked(ShardRevoked)
    }

    /// The SHA-256 of a record's metrics: what a revocation names.
    public static func digest(_ metrics: [Double]) -> String {
        ArtifactStore.hash(metrics.withUnsafeBytes { Data($0) })
    }

    /// `records` with every shard-done record that a later revocation names left out.
    public static func effective(_ records: [Record]) -> [Record] {
        var revoked: [String: Int] = [:]
        for case .shardRevoked(let r) in records { revoked["\(r.job)#\(r.shard)#\(r.digest)", default: 0] += 1 }
        guard !revoked.isEmpty else { return records }
        // A revocation voids the records before it; walk backwards counting them down.
        var pending: [String: Int] = [:]
        var keep = [Bool](repeating: true, count: records.count)
        for (index, record) in records.enumerated().reversed() {
            switch record {
            case .shardRevoked(let r): pending["\(r.job)#\(r.shard)#\(r.digest)", default: 0] += 1
            case .shardDone(let done):
                let key = "\(done.job)#\(done.shard)#\(digest(done.metrics))"
                if let count = pending[key], count > 0 {
                    pending[key] = count - 1
                    keep[index] = false
                }
            case .runStarted: break
            }
        }
        return records.indices.filter { keep[$0] }.map { records[$0] }
    }

    static let magic: [UInt8] = Array("BSJ1".utf8)

    public let directory: URL
    /// The segment being appended to.
    public private(set) var segment: URL
    private var descriptor: Int32 = -1
    private let files: FileLayer
    public private(set) var unsynced = 0

    /// Reads every record of every segment. Read-only: a torn tail is skipped, not truncated
    /// (a live run may be appending to it).
    public static func read(_ directory: URL) throws -> [Record] {
        try readReporting(directory).records
    }

    /// Every record of every segment, and the damaged stretches that were skipped.
    /// Revoked shard-done records are left out (the revocations stay in the list).
    public static func readReporting(_ directory: URL) throws -> (records: [Record], damage: [Damage]) {
        var records: [Record] = []
        var damage: [Damage] = []
        for url in segments(directory) {
            let segment = try parse(url)
            records += segment.records
            damage += segment.damage
        }
        return (effective(records), damage)
    }

    /// The records of one segment file (a torn tail skipped).
    public static func read(segmentOnly url: URL) throws -> [Record] {
        try parse(url).records
    }

    /// Reads every record back (as `readReporting`) and opens the journal for appending, in one
    /// pass over the segments: what a coordinator does when it resumes a run directory.
    public static func resume(directory: URL, files: FileLayer = .system) throws -> (
        journal: Journal, records: [Record], damage: [Damage]
    ) {
        var records: [Record] = []
        var damage: [Damage] = []
        var lastValid: Int?
        for url in segments(directory) {
            let segment = try parse(url)
            records += segment.records
            damage += segment.damage
            lastValid = segment.validLength
        }
        let journal = try Journal(directory: directory, files: files, lastValidLength: lastValid)
        return (journal, effective(records), damage)
    }

    /// Opens the journal for appending: verifies it, truncates a torn tail, starts a new segment.
    public convenience init(directory: URL, files: FileLayer = .system) throws {
        try self.init(directory: directory, files: files, lastValidLength: nil)
    }

    /// `lastValidLength`: the last segment's good length when the caller has just parsed it.
    private init(directory: URL, files: FileLayer, lastValidLength: Int?) throws {
        self.directory = directory
        self.files = files
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let existing = Self.segments(directory)
        if let last = existing.last {
            let validLength = try lastValidLength ?? Self.parse(last).validLength
            guard truncate(last.path, off_t(validLength)) == 0 else {
                throw JournalError("\(last.path): cannot truncate the torn tail (\(String(cString: strerror(errno))))")
            }
        }
        let next = directory.appendingPathComponent(String(format: "%06d.log", existing.count + 1))
        segment = next
        descriptor = open(next.path, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        guard descriptor >= 0 else {
            throw JournalError("\(next.path): cannot create the journal segment (\(String(cString: strerror(errno))))")
        }
        let dir = open(directory.path, O_RDONLY)
        if dir >= 0 {
            fsync(dir)
            close(dir)
        }
    }

    deinit {
        if descriptor >= 0 {
            fsync(descriptor)
            close(descriptor)
        }
    }

    static func segments(_ directory: URL) -> [URL] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return names.filter { $0.hasSuffix(".log") }.sorted().map { directory.appendingPathComponent($0) }
    }

    /// The bytes of one record.
    static func encode(_ record: Record) -> Data {
        var body = Data()
        switch record {
        case .runStarted(let epoch, let time):
            body.append(Kind.runStarted.rawValue)
            body.append(JSONValue.object(["epoch": .integer(epoch), "time": .number(time)]).serialized())
        case .shardRevoked(let revoked):
            body.append(Kind.shardRevoked.rawValue)
            body.append((try? JSONEncoder().encode(revoked)) ?? Data())
        case .shardDone(let done) where ShardDoneCoding.encodable(done):
            body.reserveCapacity(ShardDoneCoding.size(done))
            body.append(Kind.shardDoneBinary.rawValue)
            ShardDoneCoding.encode(done, into: &body)
        case .shardDone(let done):
            body.append(Kind.shardDone.rawValue)
            let header = (try? JSONEncoder().encode(done)) ?? Data()
            var length = UInt32(header.count).littleEndian
            withUnsafeBytes(of: &length) { body.append(contentsOf: $0) }
            body.append(header)
            done.metrics.withUnsafeBytes { body.append(contentsOf: $0) }
        }
        var out = Data(magic)
        var length = UInt32(body.count).littleEndian, crc = CRC32.checksum(body).littleEndian
        withUnsafeBytes(of: &length) { out.append(contentsOf: $0) }
        withUnsafeBytes(of: &crc) { out.append(contentsOf: $0) }
        out.append(body)
        return out
    }

    /// Records of one segment, the length up to the end of its last good record (what follows
    /// is a torn tail), and the damaged stretches between good records.
    static func parse(_ url: URL) throws -> (records: [Record], validLength: Int, damage: [Damage]) {
        let bytes = try contents(url)
        var records: [Record] = []
        var damage: [Damage] = []
        var offset = 0, validLength = 0
        var ids = ShardDoneCoding.RecentID()
        func u32(_ o: Int) -> Int {
            Int(bytes[o]) | Int(bytes[o + 1]) << 8 | Int(bytes[o + 2]) << 16 | Int(bytes[o + 3]) << 24
        }
        /// The record at `o` and its length, or why there is none.
        func record(at o: Int) -> Result<(Record, Int), JournalProblem> {
            if bytes.count - o < 12 { return .failure(.init("a truncated record header")) }
            if bytes[o] != magic[0] || bytes[o + 1] != magic[1] || bytes[o + 2] != magic[2] || bytes[o + 3] != magic[3] {
                return .failure(.init("no record magic"))
            }
            let length = u32(o + 4)
            if bytes.count - o - 12 < length || length < 1 { return .failure(.init("a truncated record")) }
            let body = bytes[(o + 12)..<(o + 12 + length)]
            if CRC32.checksum(body) != UInt32(u32(o + 8)) { return .failure(.init("a record that fails its CRC-32")) }
            guard let decoded = decode(body, ids: &ids) else { return .failure(.init("a record it cannot decode")) }
            return .success((decoded, 12 + length))
        }
        while offset < bytes.count {
            switch record(at: offset) {
            case .success(let (decoded, length)):
                records.append(decoded)
                offset += length
                validLength = offset
            case .failure(let problem):
                // Resynchronize at the next magic whose record verifies; none: a torn tail.
                var next = offset + 1
                var resumed = false
                while next + 12 <= bytes.count {
                    if bytes[next] == magic[0], bytes[next + 1] == magic[1], bytes[next + 2] == magic[2],
                        bytes[next + 3] == magic[3], case .success = record(at: next)
                    {
                        resumed = true
                        break
                    }
                    next += 1
                }
                guard resumed else { return (records, validLength, damage) }
                damage.append(
                    Damage(segment: url.lastPathComponent, offset: offset, length: next - offset, problem: problem.text))
                offset = next
            }
        }
        return (records, validLength, damage)
    }

    /// A segment's bytes, read straight into an array (no intermediate copy).
    static func contents(_ url: URL) throws -> [UInt8] {
        let descriptor = open(url.path, O_RDONLY)
        guard descriptor >= 0 else {
            throw JournalError("\(url.path): cannot read the journal segment (\(String(cString: strerror(errno))))")
        }
        defer { close(descriptor) }
        var info = stat()
        guard fstat(descriptor, &info) == 0 else {
            throw JournalError("\(url.path): cannot read the journal segment (\(String(cString: strerror(errno))))")
        }
        let size = Int(info.st_size)
        var failure: Int32 = 0
        let bytes = [UInt8](unsafeUninitializedCapacity: size) { buffer, count in
            count = 0
            guard let base = buffer.baseAddress else { return }
            var done = 0
            while done < size {
                let n = SwiftGlibc.read(descriptor, base + done, size - done)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 {
                    failure = n < 0 ? errno : 0
                    break
                }
                done += n
            }
            count = done
        }
        if failure != 0 {
            throw JournalError("\(url.path): cannot read the journal segment (\(String(cString: strerror(failure))))")
        }
        return bytes
    }

    struct JournalProblem: Error {
        let text: String
        init(_ text: String) { self.text = text }
    }

    static func decode(_ body: ArraySlice<UInt8>) -> Record? {
        var ids = ShardDoneCoding.RecentID()
        return decode(body, ids: &ids)
    }

    /// `ids`: the last job id read, so a run of one job's records shares one string.
    static func decode(_ body: ArraySlice<UInt8>, ids: inout ShardDoneCoding.RecentID) -> Record? {
        guard let kind = body.first.flatMap(Kind.init(rawValue:)) else { return nil }
        switch kind {
        case .runStarted:
            guard let value = try? JSONDecoder().decode(JSONValue.self, from: Data(body.dropFirst())),
                let epoch = value["epoch"]?.doubleValue.flatMap({ Int(exactly: $0) }), let time = value["time"]?.doubleValue
            else { return nil }
            return .runStarted(epoch: epoch, time: time)
        case .shardRevoked:
            guard let revoked = try? JSONDecoder().decode(ShardRevoked.self, from: Data(body.dropFirst())) else {
                return nil
            }
            return .shardRevoked(revoked)
        case .shardDoneBinary:
            return ShardDoneCoding.decode(body.dropFirst(), ids: &ids).map(Record.shardDone)
        case .shardDone:
            let body = Array(body)
            guard body.count >= 5 else { return nil }
            let length = Int(body[1]) | Int(body[2]) << 8 | Int(body[3]) << 16 | Int(body[4]) << 24
            guard body.count >= 5 + length, (body.count - 5 - length) % 8 == 0,
                var done = try? JSONDecoder().decode(ShardDone.self, from: Data(body[5..<(5 + length)]))
            else { return nil }
            let raw = Data(body[(5 + length)...])
            var metrics = [Double](repeating: 0, count: raw.count / 8)
            metrics.withUnsafeMutableBytes { target in _ = raw.copyBytes(to: target) }
            done.metrics = metrics
            return .shardDone(done)
        }
    }

    /// Hands a record to the kernel (not yet durable).
    public func append(_ record: Record) throws {
        let data = Self.encode(record)
        let written = data.withUnsafeBytes { raw -> Int in
            guard let base = raw.baseAddress else { return 0 }
            var done = 0
            while done < raw.count {
                let n = files.write(descriptor, base + done, raw.count - done)
                if n < 0 {
                    if errno == EINTR { continue }
                    return -1
                }
                done += n
            }
            return done
        }
        guard written == data.count else {
            throw JournalError("\(segment.path): journal write failed (\(String(cString: strerror(errno))))")
        }
        unsynced += 1
    }

    /// Makes every appended record durable.
    public func sync() throws {
        guard unsynced > 0 else { return }
        guard files.sync(descriptor) == 0 else {
            throw JournalError("\(segment.path): journal fsync failed (\(String(cString: strerror(errno))))")
        }
        unsynced = 0
    }
}

/// A journal that cannot be written or read, in one sentence naming the file.
public struct JournalError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
