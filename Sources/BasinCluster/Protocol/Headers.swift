import BasinSweep
import Foundation

/// The typed header of one command. Its `CodingKeys` are the only place that names the
/// command's fields (PROTOCOL.md lists exactly these); decoding checks every range, so what a
/// peer sent cannot trap anything behind it. Unknown fields are ignored.
public protocol WireHeader: Codable, Sendable, Equatable {
    associatedtype CodingKeys: CodingKey & CaseIterable & RawRepresentable<String>
    static var command: WireMessage.Command { get }
    /// The header's field names, as PROTOCOL.md lists them.
    static var fields: [String] { get }
}

extension WireHeader {
    public static var fields: [String] { CodingKeys.allCases.map(\.rawValue) }

    /// This header as a message.
    public func message(binary: [Data] = []) -> WireMessage {
        WireMessage(Self.command, header: self, binary: binary)
    }
}

/// A header with a quick reading of its flat form beside the full one (`FlatJSON`): nil from
/// it sends the header to `JSONDecoder`.
protocol QuickHeader {
    init?(quick: FlatJSON)
}

/// Ranges the headers check (PROTOCOL.md states them).
public enum WireLimits {
    public static let slots = 1...64
    public static let workerName = 128
    public static let host = 255
    public static let version = 64
    public static let kinds = 16
    /// Error text in FAIL is cut to this many bytes, not refused.
    public static let errorText = 2000
    /// Lease ids, job and shard indices, point indices: non-negative and below 2^53.
    public static let index = 0...(1 << 53)
    public static let artifactSize = 0...(1 << 40)
    public static let chunkLength = 1...WireMessage.artifactChunk
    public static let seconds = 0.0...1e9
    public static let path = 4096
    public static let mapEntries = 4096
}

// MARK: Worker → coordinator

public struct HelloHeader: WireHeader {
    public static let command = WireMessage.Command.hello
    public var worker: String
    public var host: String?
    public var pid: Int?
    public var slots: Int
    public var version: String?
    /// The job kinds this worker evaluates; nil: every kind.
    public var kinds: [String]?

    public init(
        worker: String, host: String? = nil, pid: Int? = nil, slots: Int = 1, version: String? = nil,
        kinds: [String]? = nil
    ) {
        self.worker = worker
        self.host = host
        self.pid = pid
        self.slots = slots
        self.version = version
        self.kinds = kinds
    }

    public enum CodingKeys: String, CodingKey, CaseIterable { case worker, host, pid, slots, version, kinds }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        worker = try c.text(.worker, bytes: 1...WireLimits.workerName)
        host = try c.textIfPresent(.host, bytes: 0...WireLimits.host)
        pid = try c.intIfPresent(.pid, in: 0...Int(Int32.max))
        slots = try c.intIfPresent(.slots, in: WireLimits.slots) ?? 1
        version = try c.textIfPresent(.version, bytes: 0...WireLimits.version)
        if let kinds = try c.decodeIfPresent([String].self, forKey: .kinds) {
            guard kinds.count <= WireLimits.kinds, kinds.allSatisfy({ (1...32).contains($0.utf8.count) }) else {
                throw DecodingError.dataCorruptedError(
                    forKey: .kinds, in: c, debugDescription: "must list at most \(WireLimits.kinds) job kinds")
            }
            self.kinds = kinds
        }
    }
}

public struct HeartbeatHeader: WireHeader {
    public static let command = WireMessage.Command.heartbeat
    /// Coordinator → worker: its epoch.
    public var epoch: Int?
    /// Worker → coordinator: the lease it is computing (0: none) and how many wait.
    public var computing: Int?
    public var queued: Int?

    public init(epoch: Int? = nil, computing: Int? = nil, queued: Int? = nil) {
        self.epoch = epoch
        self.computing = computing
        self.queued = queued
    }

    public enum CodingKeys: String, CodingKey, CaseIterable { case epoch, computing, queued }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        epoch = try c.intIfPresent(.epoch, in: WireLimits.index)
        computing = try c.intIfPresent(.computing, in: WireLimits.index)
        queued = try c.intIfPresent(.queued, in: WireLimits.index)
    }

    /// JSON for this header written without JSONEncoder (keys sorted): one per worker a second.
    public func message(binary: [Data] = []) -> WireMessage {
        let fields = [("computing", computing), ("epoch", epoch), ("queued", queued)].compactMap { key, value in
            value.map { (key, String($0)) }
        }
        return WireMessage(Self.command, headerFrame: FlatJSONWriter.object(fields), binary: binary)
    }
}

extension HeartbeatHeader: QuickHeader {
    init?(quick f: FlatJSON) {
        guard f.only(["epoch", "computing", "queued"]), let epoch = f.intIfPresent("epoch", in: WireLimits.index),
            let computing = f.intIfPresent("computing", in: WireLimits.index),
            let queued = f.intIfPresent("queued", in: WireLimits.index)
        else { return nil }
        self.init(epoch: epoch, computing: computing, queued: queued)
    }
}

public struct ResultHeader: WireHeader {
    public static let command = WireMessage.Command.result
    public var lease: Int
    public var job: String
    public var jobIndex: Int
    public var shard: Int
    public var seconds: Double
    public var artifact: String?

    public init(lease: Int, job: String, jobIndex: Int, shard: Int, seconds: Double, artifact: String? = nil) {
        self.lease = lease
        self.job = job
        self.jobIndex = jobIndex
        self.shard = shard
        self.seconds = seconds
        self.artifact = artifact
    }

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case lease, job, jobIndex = "job_index", shard, seconds, artifact
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        lease = try c.int(.lease, in: WireLimits.index)
        job = try c.hash(.job)
        jobIndex = try c.int(.jobIndex, in: WireLimits.index)
        shard = try c.int(.shard, in: WireLimits.index)
        seconds = try c.numberIfPresent(.seconds, in: WireLimits.seconds) ?? 0
        artifact = try c.hashIfPresent(.artifact)
    }

    /// JSON for this header written without JSONEncoder (keys sorted): one per shard.
    public func message(binary: [Data] = []) -> WireMessage {
        var fields: [(String, String)] = []
        if let artifact { fields.append(("artifact", "\"\(artifact)\"")) }
        fields += [
            ("job", "\"\(job)\""), ("job_index", String(jobIndex)), ("lease", String(lease)),
            ("seconds", FlatJSONWriter.number(seconds)), ("shard", String(shard)),
        ]
        // A job id is hex; anything else (only a test sends it) goes through the encoder.
        guard ArtifactStore.isHash(job), artifact.map(ArtifactStore.isHash) != false else {
            return WireMessage(Self.command, header: self, binary: binary)
        }
        return WireMessage(Self.command, headerFrame: FlatJSONWriter.object(fields), binary: binary)
    }
}

extension ResultHeader: QuickHeader {
    init?(quick f: FlatJSON) {
        guard f.only(["lease", "job", "job_index", "shard", "seconds", "artifact"]),
            let lease = f.int("lease", in: WireLimits.index), let job = f.hash("job"),
            let jobIndex = f.int("job_index", in: WireLimits.index), let shard = f.int("shard", in: WireLimits.index)
        else { return nil }
        var seconds = 0.0
        if let value = f.value("seconds") {
            guard case .number(let number) = value, WireLimits.seconds.contains(number) else { return nil }
            seconds = number
        }
        var artifact: String?
        if f.value("artifact") != nil {
            guard let hash = f.hash("artifact") else { return nil }
            artifact = hash
        }
        self.init(lease: lease, job: job, jobIndex: jobIndex, shard: shard, seconds: seconds, artifact: artifact)
    }
}

public struct FailHeader: WireHeader {
    public static let command = WireMessage.Command.fail
    public var lease: Int
    /// One sentence; cut to `WireLimits.errorText` bytes.
    public var error: String
    /// True: the worker cannot compute this kind of job (it declined before starting); not a
    /// failure of the shard, and the job is not offered to this worker again.
    public var declined: Bool?

    public init(lease: Int, error: String, declined: Bool? = nil) {
        self.lease = lease
        self.error = error
        self.declined = declined
    }

    public enum CodingKeys: String, CodingKey, CaseIterable { case lease, error, declined }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        lease = try c.int(.lease, in: WireLimits.index)
        let text = try c.decodeIfPresent(String.self, forKey: .error) ?? "unspecified error"
        error = String(decoding: Data(text.utf8).prefix(WireLimits.errorText), as: UTF8.self)
        declined = try c.decodeIfPresent(Bool.self, forKey: .declined)
    }
}

public struct ByeHeader: WireHeader {
    public static let command = WireMessage.Command.bye
    public static var fields: [String] { [] }
    public init() {}
    public enum CodingKeys: String, CodingKey, CaseIterable { case none }
    public init(from decoder: any Decoder) throws {}
    public func encode(to encoder: any Encoder) throws { _ = encoder.container(keyedBy: CodingKeys.self) }
}

public struct PutHeader: WireHeader {
    public static let command = WireMessage.Command.put
    public var artifact: String
    public var size: Int
    public var offset: Int

    public init(artifact: String, size: Int, offset: Int) {
        self.artifact = artifact
        self.size = size
        self.offset = offset
    }

    public enum CodingKeys: String, CodingKey, CaseIterable { case artifact, size, offset }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        artifact = try c.hash(.artifact)
        size = try c.int(.size, in: WireLimits.artifactSize)
        offset = try c.int(.offset, in: 0...size)
    }
}

public struct FetchHeader: WireHeader {
    public static let command = WireMessage.Command.fetch
    public var artifact: String
    public var offset: Int
    public var length: Int

    public init(artifact: String, offset: Int, length: Int = WireMessage.artifactChunk) {
        self.artifact = artifact
        self.offset = offset
        self.length = length
    }

    public enum CodingKeys: String, CodingKey, CaseIterable { case artifact, offset, length }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        artifact = try c.hash(.artifact)
        offset = try c.int(.offset, in: WireLimits.artifactSize)
        length = try c.intIfPresent(.length, in: WireLimits.chunkLength) ?? WireMessage.artifactChunk
    }
}

// MARK: Coordinator → worker

public struct WelcomeHeader: WireHeader {
    public static let command = WireMessage.Command.welcome
    public var epoch: Int
    public var heartbeatMilliseconds: Int

    public init(epoch: Int, heartbeatMilliseconds: Int) {
        self.epoch = epoch
        self.heartbeatMilliseconds = heartbeatMilliseconds
    }

    public enum CodingKeys: String, CodingKey, CaseIterable { case epoch, heartbeatMilliseconds = "heartbeat_ms" }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        epoch = try c.int(.epoch, in: WireLimits.index)
        heartbeatMilliseconds = try c.intIfPresent(.heartbeatMilliseconds, in: 1...60_000) ?? 1000
    }
}

public struct TaskHeader: WireHeader {
    public static let command = WireMessage.Command.task
    public var lease: Int
    public var job: String
    public var jobIndex: Int
    public var shard: Int
    public var start: Int
    public var end: Int
    public var deadlineMilliseconds: Int
    /// Artifacts of the jobs this one reads, by job name.
    public var inputs: [String: String]?
    /// With the first task of a job on a connection: the job, the study spec, the directory
    /// its paths start from, and the files it names (path as the spec writes it → artifact).
    public var definition: JobDefinition?
    public var spec: StudySpec?
    public var base: String?
    public var files: [String: String]?

    public init(
        lease: Int, job: String, jobIndex: Int, shard: Int, start: Int, end: Int, deadlineMilliseconds: Int,
        inputs: [String: String]? = nil, definition: JobDefinition? = nil, spec: StudySpec? = nil,
        base: String? = nil, files: [String: String]? = nil
    ) {
        self.lease = lease
        self.job = job
        self.jobIndex = jobIndex
        self.shard = shard
        self.start = start
        self.end = end
        self.deadlineMilliseconds = deadlineMilliseconds
        self.inputs = inputs
        self.definition = definition
        self.spec = spec
        self.base = base
        self.files = files
    }

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case lease, job, jobIndex = "job_index", shard, start, end, deadlineMilliseconds = "deadline_ms", inputs,
            definition, spec, base, files
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        lease = try c.int(.lease, in: WireLimits.index)
        job = try c.hash(.job)
        jobIndex = try c.int(.jobIndex, in: WireLimits.index)
        shard = try c.int(.shard, in: WireLimits.index)
        start = try c.int(.start, in: WireLimits.index)
        end = try c.int(.end, in: (start + 1)...(start + 100_000_000))
        deadlineMilliseconds = try c.intIfPresent(.deadlineMilliseconds, in: 1...Int(Int32.max)) ?? 120_000
        inputs = try c.hashMapIfPresent(.inputs)
        definition = try c.decodeIfPresent(JobDefinition.self, forKey: .definition)
        do {
            spec = try c.decodeIfPresent(StudySpec.self, forKey: .spec)
        } catch let error as DecodingError {
            throw DecodingError.dataCorruptedError(
                forKey: .spec, in: c,
                debugDescription: "the task's spec does not parse: \(LogText.escaped(error.readable, limit: 300))")
        }
        base = try c.textIfPresent(.base, bytes: 0...WireLimits.path)
        let files = try c.hashMapIfPresent(.files)
        for path in (files ?? [:]).keys {
            let parts = path.split(separator: "/", omittingEmptySubsequences: false)
            guard !path.isEmpty, !path.utf8.contains(0), !parts.contains("..") else {
                throw DecodingError.dataCorruptedError(
                    forKey: .files, in: c,
                    debugDescription: "names '\(LogText.escaped(path))', which is not a path a spec may name")
            }
            guard let spec, spec.namedFiles.contains(path) else {
                throw DecodingError.dataCorruptedError(
                    forKey: .files, in: c,
                    debugDescription: "names '\(LogText.escaped(path))', which the task's spec does not name")
            }
        }
        self.files = files
    }

    /// JSON for this header written without JSONEncoder (keys sorted) when it is a plain task
    /// (no first-task fields, no inputs): one per shard.
    public func message(binary: [Data] = []) -> WireMessage {
        guard definition == nil, spec == nil, base == nil, files == nil, inputs == nil, ArtifactStore.isHash(job) else {
            return WireMessage(Self.command, header: self, binary: binary)
        }
        let fields = [
            ("deadline_ms", String(deadlineMilliseconds)), ("end", String(end)), ("job", "\"\(job)\""),
            ("job_index", String(jobIndex)), ("lease", String(lease)), ("shard", String(shard)), ("start", String(start)),
        ]
        return WireMessage(Self.command, headerFrame: FlatJSONWriter.object(fields), binary: binary)
    }
}

extension TaskHeader: QuickHeader {
    /// A plain task only; one with first-task fields or inputs is read in full.
    init?(quick f: FlatJSON) {
        guard f.only(["lease", "job", "job_index", "shard", "start", "end", "deadline_ms"]),
            let lease = f.int("lease", in: WireLimits.index), let job = f.hash("job"),
            let jobIndex = f.int("job_index", in: WireLimits.index), let shard = f.int("shard", in: WireLimits.index),
            let start = f.int("start", in: WireLimits.index),
            let end = f.int("end", in: (start + 1)...(start + 100_000_000)),
            let deadline = f.intIfPresent("deadline_ms", in: 1...Int(Int32.max))
        else { return nil }
        self.init(
            lease: lease, job: job, jobIndex: jobIndex, shard: shard, start: start, end: end,
            deadlineMilliseconds: deadline ?? 120_000)
    }
}

public struct AckHeader: WireHeader {
    public static let command = WireMessage.Command.ack
    public var lease: Int
    public init(lease: Int) { self.lease = lease }
    /// The same bytes JSONEncoder writes, without it: one ACK per result.
    public func message(binary: [Data] = []) -> WireMessage {
        WireMessage(Self.command, headerFrame: Data("{\"lease\":\(lease)}".utf8), binary: binary)
    }
    public enum CodingKeys: String, CodingKey, CaseIterable { case lease }
    public init(from decoder: any Decoder) throws {
        lease = try decoder.container(keyedBy: CodingKeys.self).int(.lease, in: WireLimits.index)
    }
}

public struct CancelHeader: WireHeader {
    public static let command = WireMessage.Command.cancel
    public var lease: Int
    public init(lease: Int) { self.lease = lease }
    /// The same bytes JSONEncoder writes, without it.
    public func message(binary: [Data] = []) -> WireMessage {
        WireMessage(Self.command, headerFrame: Data("{\"lease\":\(lease)}".utf8), binary: binary)
    }
    public enum CodingKeys: String, CodingKey, CaseIterable { case lease }
    public init(from decoder: any Decoder) throws {
        lease = try decoder.container(keyedBy: CodingKeys.self).int(.lease, in: WireLimits.index)
    }
}

public struct DisconnectHeader: WireHeader {
    public static let command = WireMessage.Command.disconnect
    public var reason: String
    /// The coordinator quarantined this worker: it should leave rather than reconnect.
    public var quarantined: Bool?
    public init(reason: String, quarantined: Bool? = nil) {
        self.reason = reason
        self.quarantined = quarantined
    }
    public enum CodingKeys: String, CodingKey, CaseIterable { case reason, quarantined }
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        reason = try c.textIfPresent(.reason, bytes: 0...WireLimits.errorText) ?? "no reason given"
        quarantined = try c.decodeIfPresent(Bool.self, forKey: .quarantined)
    }
}

public struct DoneHeader: WireHeader {
    public static let command = WireMessage.Command.done
    public static var fields: [String] { [] }
    public init() {}
    public enum CodingKeys: String, CodingKey, CaseIterable { case none }
    public init(from decoder: any Decoder) throws {}
    public func encode(to encoder: any Encoder) throws { _ = encoder.container(keyedBy: CodingKeys.self) }
}

public struct TakenHeader: WireHeader {
    public static let command = WireMessage.Command.taken
    public var artifact: String
    /// Bytes held so far.
    public var offset: Int?
    public var complete: Bool?
    public var error: String?

    public init(artifact: String, offset: Int? = nil, complete: Bool? = nil, error: String? = nil) {
        self.artifact = artifact
        self.offset = offset
        self.complete = complete
        self.error = error
    }

    public enum CodingKeys: String, CodingKey, CaseIterable { case artifact, offset, complete, error }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        artifact = try c.hash(.artifact)
        offset = try c.intIfPresent(.offset, in: WireLimits.artifactSize)
        complete = try c.decodeIfPresent(Bool.self, forKey: .complete)
        error = try c.textIfPresent(.error, bytes: 0...WireLimits.errorText)
    }
}

public struct ChunkHeader: WireHeader {
    public static let command = WireMessage.Command.chunk
    public var artifact: String
    public var offset: Int?
    /// The artifact's total size.
    public var size: Int?
    public var error: String?

    public init(artifact: String, offset: Int? = nil, size: Int? = nil, error: String? = nil) {
        self.artifact = artifact
        self.offset = offset
        self.size = size
        self.error = error
    }

    public enum CodingKeys: String, CodingKey, CaseIterable { case artifact, offset, size, error }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        artifact = try c.hash(.artifact)
        error = try c.textIfPresent(.error, bytes: 0...WireLimits.errorText)
        size = try c.intIfPresent(.size, in: WireLimits.artifactSize)
        offset = try c.intIfPresent(.offset, in: 0...(size ?? 0))
        guard error != nil || (size != nil && offset != nil) else {
            throw DecodingError.keyNotFound(
                size == nil ? CodingKeys.size : CodingKeys.offset,
                .init(codingPath: [], debugDescription: "a CHUNK without error needs size and offset"))
        }
    }
}

// MARK: Checked reading

extension KeyedDecodingContainer {
    func fail(_ key: Key, _ problem: String) -> DecodingError {
        DecodingError.dataCorruptedError(forKey: key, in: self, debugDescription: problem)
    }

    /// An exact integer in `range`; 1e300, 0.5, 2^63 or a string is an error naming the field.
    func int(_ key: Key, in range: ClosedRange<Int>) throws -> Int {
        let value = try decode(Double.self, forKey: key)
        guard let integer = Int(exactly: value), range.contains(integer) else {
            throw fail(key, "must be an integer from \(range.lowerBound) to \(range.upperBound), got \(value)")
        }
        return integer
    }

    func intIfPresent(_ key: Key, in range: ClosedRange<Int>) throws -> Int? {
        guard try decodeIfPresent(Double.self, forKey: key) != nil else { return nil }
        return try int(key, in: range)
    }

    func numberIfPresent(_ key: Key, in range: ClosedRange<Double>) throws -> Double? {
        guard let value = try decodeIfPresent(Double.self, forKey: key) else { return nil }
        guard range.contains(value) else {
            throw fail(key, "must be a number from \(range.lowerBound) to \(range.upperBound), got \(value)")
        }
        return value
    }

    func text(_ key: Key, bytes range: ClosedRange<Int>) throws -> String {
        let value = try decode(String.self, forKey: key)
        guard range.contains(value.utf8.count) else {
            throw fail(key, "must be \(range.lowerBound) to \(range.upperBound) bytes long, got \(value.utf8.count)")
        }
        return value
    }

    func textIfPresent(_ key: Key, bytes range: ClosedRange<Int>) throws -> String? {
        guard try decodeIfPresent(String.self, forKey: key) != nil else { return nil }
        return try text(key, bytes: range)
    }

    /// 64 lowercase hexadecimal digits (an artifact or job id), never a path.
    func hash(_ key: Key) throws -> String {
        let value = try decode(String.self, forKey: key)
        guard ArtifactStore.isHash(value) else {
            throw fail(key, "must be 64 lowercase hexadecimal digits, got '\(LogText.escaped(value, limit: 80))'")
        }
        return value
    }

    func hashIfPresent(_ key: Key) throws -> String? {
        guard try decodeIfPresent(String.self, forKey: key) != nil else { return nil }
        return try hash(key)
    }

    /// `{name: hash}` with bounded names and entries.
    func hashMapIfPresent(_ key: Key) throws -> [String: String]? {
        guard let map = try decodeIfPresent([String: String].self, forKey: key) else { return nil }
        guard map.count <= WireLimits.mapEntries else {
            throw fail(key, "has \(map.count) entries, more than \(WireLimits.mapEntries)")
        }
        for (name, hash) in map {
            guard (1...WireLimits.path).contains(name.utf8.count) else {
                throw fail(key, "has a name of \(name.utf8.count) bytes")
            }
            guard ArtifactStore.isHash(hash) else {
                throw fail(
                    key, "maps '\(LogText.escaped(name, limit: 80))' to '\(LogText.escaped(hash, limit: 80))', not an artifact hash")
            }
        }
        return map
    }
}

