import BasinNN
import Foundation

/// The run's append-only journal: `journal/000001.log`, `000002.log`, … one segment per
/// coordinator start. Each record is
///
///     magic "BSJ1" | length u32 LE | CRC-32 u32 LE (zlib, over kind + payload) | kind u8 | payload
///
/// Opening for writing verifies every record and truncates a torn tail of the last segment
/// (a crash mid-append); a bad record anywhere else is an error. Appends go to the kernel at
/// once; `sync()` makes them durable (group commit: the caller decides how often).
public final class Journal {
    public enum Kind: UInt8, Sendable {
        case runStarted = 1
        case shardDone = 2
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
    }

    static let magic: [UInt8] = Array("BSJ1".utf8)

    public let directory: URL
    private var descriptor: Int32 = -1
    public private(set) var unsynced = 0

    /// Reads every record of every segment. Read-only: a torn tail is skipped, not truncated
    /// (a live run may be appending to it).
    public static func read(_ directory: URL) throws -> [Record] {
        var records: [Record] = []
        let all = segments(directory)
        for (index, url) in all.enumerated() {
            records += try parse(url, isLast: index == all.count - 1).0
        }
        return records
    }

    /// The records of one segment file (a torn tail skipped).
    public static func read(segmentOnly url: URL) throws -> [Record] {
        try parse(url, isLast: true).0
    }

    /// Opens the journal for appending: verifies it, truncates a torn tail, starts a new segment.
    public init(directory: URL) throws {
        self.directory = directory
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let existing = Self.segments(directory)
        if let last = existing.last {
            let (_, validLength) = try Self.parse(last, isLast: true)
            guard truncate(last.path, off_t(validLength)) == 0 else {
                throw NNError("\(last.path): cannot truncate the torn tail (\(String(cString: strerror(errno))))")
            }
        }
        let next = directory.appendingPathComponent(String(format: "%06d.log", existing.count + 1))
        descriptor = open(next.path, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        guard descriptor >= 0 else {
            throw NNError("\(next.path): cannot create the journal segment (\(String(cString: strerror(errno))))")
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

    /// Records of one segment and the length of its valid prefix.
    static func parse(_ url: URL, isLast: Bool) throws -> ([Record], Int) {
        let bytes = [UInt8](try AtomicFile.read(url))
        var records: [Record] = []
        var offset = 0
        func u32(_ o: Int) -> Int {
            Int(bytes[o]) | Int(bytes[o + 1]) << 8 | Int(bytes[o + 2]) << 16 | Int(bytes[o + 3]) << 24
        }
        while offset < bytes.count {
            let problem: String?
            if bytes.count - offset < 12 {
                problem = "a truncated record header"
            } else if Array(bytes[offset..<(offset + 4)]) != magic {
                problem = "no record magic"
            } else {
                let length = u32(offset + 4)
                if bytes.count - offset - 12 < length || length < 1 {
                    problem = "a truncated record"
                } else {
                    let body = bytes[(offset + 12)..<(offset + 12 + length)]
                    if CRC32.checksum(body) != UInt32(u32(offset + 8)) {
                        problem = "a record that fails its CRC-32"
                    } else if let record = decode(Array(body)) {
                        records.append(record)
                        offset += 12 + length
                        continue
                    } else {
                        problem = "a record it cannot decode"
                    }
                }
            }
            if isLast { return (records, offset) }
            throw NNError("\(url.path): \(problem!) at byte offset \(offset); the journal is corrupt")
        }
        return (records, offset)
    }

    static func decode(_ body: [UInt8]) -> Record? {
        guard let kind = body.first.flatMap(Kind.init(rawValue:)) else { return nil }
        switch kind {
        case .runStarted:
            guard let value = try? JSONDecoder().decode(JSONValue.self, from: Data(body.dropFirst())),
                let epoch = value["epoch"]?.doubleValue, let time = value["time"]?.doubleValue
            else { return nil }
            return .runStarted(epoch: Int(epoch), time: time)
        case .shardDone:
            guard body.count >= 5 else { return nil }
            let length = Int(body[1]) | Int(body[2]) << 8 | Int(body[3]) << 16 | Int(body[4]) << 24
            guard body.count >= 5 + length, (body.count - 5 - length) % 8 == 0,
                var done = try? JSONDecoder().decode(ShardDone.self, from: Data(body[5..<(5 + length)]))
            else { return nil }
            let raw = Data(body[(5 + length)...])
            done.metrics = raw.withUnsafeBytes { Array($0.bindMemory(to: Double.self)) }
            return .shardDone(done)
        }
    }

    /// Hands a record to the kernel (not yet durable).
    public func append(_ record: Record) throws {
        let data = Self.encode(record)
        let written = data.withUnsafeBytes { raw -> Int in
            var done = 0
            while done < raw.count {
                let n = write(descriptor, raw.baseAddress! + done, raw.count - done)
                if n < 0 {
                    if errno == EINTR { continue }
                    return -1
                }
                done += n
            }
            return done
        }
        guard written == data.count else {
            throw NNError("\(directory.path): journal write failed (\(String(cString: strerror(errno))))")
        }
        unsynced += 1
    }

    /// Makes every appended record durable.
    public func sync() throws {
        guard unsynced > 0 else { return }
        guard fsync(descriptor) == 0 else {
            throw NNError("\(directory.path): journal fsync failed (\(String(cString: strerror(errno))))")
        }
        unsynced = 0
    }
}
