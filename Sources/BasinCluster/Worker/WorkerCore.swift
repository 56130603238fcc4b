import BasinSweep
import Foundation

/// The worker's protocol logic as a state machine: HELLO until WELCOME, tasks queued up to its
/// slots and computed one at a time, results sent, heartbeats, reconnection with backoff when
/// the coordinator goes silent or says DISCONNECT. It does no I/O: the cache's reads and
/// writes are `.read` / `.write` / `.discard` / `.adopt` actions, which the client performs
/// (`ArtifactDisk`) and hands back (`read`, `wrote`, `adopted`).
public struct WorkerCore {
    public struct Task: Sendable, Equatable {
        public var lease: Int
        public var job: String
        public var jobIndex: Int
        public var shard: Int
        public var range: Range<Int>
        public var definition: JobDefinition
        public var specKey: String
        /// Artifacts of the jobs this one reads, by job name (fetched into the cache first).
        public var inputs: [String: String] = [:]
        /// The connection it came on: a result for an earlier one is dropped (its lease is gone).
        public var connection = 0
    }

    /// An artifact coming from the coordinator, chunk by chunk.
    struct Fetch {
        /// The size the first chunk announced (nil before it).
        var size: Int?
        /// Where the next chunk must start.
        var expected = 0
        var requested = 0
        var inFlight = 0
        var started = 0.0
    }

    /// An artifact going to the coordinator, and the results waiting for it to be stored.
    struct Send {
        /// Learnt from the first read of the cache.
        var size: Int?
        var started: Double
        /// Bytes asked of the cache, and bytes sent in PUTs.
        var requested = 0
        var sent = 0
        var reading = 0
        var inFlight = 0
        var results: [WireMessage] = []
        var leases: [Int] = []
    }

    public enum Action: Equatable {
        case send(WireMessage)
        case compute(Task)
        /// Drop the connection and connect again after this many seconds.
        case reconnect(after: Double)
        case exit(String)
        /// The coordinator quarantined this worker: leave with an error.
        case quarantined(String)
        /// No coordinator has answered for `giveUpAfter` seconds: leave, unfinished.
        case giveUp(after: Double)
        /// No coordinator has answered a HELLO for this many seconds (said once per connection):
        /// the client says so, with what it knows of the link.
        case unanswered(seconds: Double)
        /// A file the spec names may be readable here under the coordinator's path (a shared
        /// file system, or the same machine): copy it into the cache if its bytes hash to
        /// `artifact`, and say `adopted(_:found:)`. Otherwise it is fetched.
        case adopt(artifact: String, path: String)
        /// Bytes of an artifact being fetched, for the cache; say `wrote(_:_:now:)`.
        case write(ArtifactChunk)
        /// Read at most `length` bytes of a cached artifact from `offset`; say `read(_:offset:_:)`.
        case read(artifact: String, offset: Int, length: Int)
        /// Drop the partial file of a fetch that will not finish.
        case discard(artifact: String)
        case event(WorkerEvent)
    }

    public let name: String
    public let slots: Int
    /// Host name and process id, said in HELLO.
    public let host: String
    public let pid: Int
    /// Artifacts in this worker's cache (`--cache`): found there at the start, fetched, adopted
    /// or made since.
    public private(set) var cached: Set<String>
    public var heartbeatInterval = 1.0
    public var deadAfter = 5.0
    /// Leave when the coordinator says DONE.
    public var exitWhenDone = true
    /// Seconds without a word from any coordinator after which an idle worker gives up (nil:
    /// never). A worker that joins after its sweep finished would otherwise wait forever.
    public var giveUpAfter: Double?
    /// When a coordinator last spoke, or this worker first said HELLO.
    var lastContact: Double?

    var welcomed = false
    /// Whether this wait for a WELCOME has been logged.
    var saidWaiting = false
    var lastHeard = 0.0
    var lastSent = 0.0
    var backoff = 1.0
    var queue: [Task] = []
    var computing: Task?
    /// Job definitions and specs seen on this connection (the coordinator sends each once).
    var definitions: [String: (JobDefinition, String)] = [:]
    /// Spec JSON, base directory and the files it names (path → artifact) by spec key.
    public private(set) var specs: [String: (spec: StudySpec, base: String, files: [String: String])] = [:]
    var fetches: [String: Fetch] = [:]
    /// Spec files being looked for under the coordinator's path, and those not found there
    /// (fetched instead, and not looked for again).
    var adopting: [String: String] = [:]
    var notLocal: Set<String> = []
    var sends: [String: Send] = [:]
    /// Counts connections, so a result computed for an earlier one is not sent on this one.
    var connection = 0
    var badMessages = BadMessageLog(window: 60, lines: 20)

    public init(name: String, slots: Int, cached: Set<String> = [], host: String = "?", pid: Int = 0) {
        self.name = name
        self.slots = slots
        self.cached = cached
        self.host = host
        self.pid = pid
    }

    public var isComputing: Bool { computing != nil }

    /// A new connection: say HELLO.
    public mutating func connected(now: Double) -> [Action] {
        if lastContact == nil { lastContact = now }
        connection += 1
        welcomed = false
        lastHeard = now
        lastSent = now
        definitions = [:]
        queue = []
        let partial = fetches.filter { $0.value.size != nil }.keys.sorted()
        fetches = [:]
        adopting = [:]
        sends = [:]
        return partial.map { .discard(artifact: $0) } + [
            .send(
                HelloHeader(
                    worker: name, host: String(decoding: host.utf8.prefix(WireLimits.host), as: UTF8.self), pid: pid,
                    slots: slots, version: WireMessage.version
                ).message())
        ]
    }

    /// A message from the coordinator. Whatever it sent, nothing traps: an ill-formed TASK is
    /// a FAIL of its lease (when the lease can be read), anything else ill-formed is logged
    /// (rate-limited) and dropped.
    public mutating func receive(frames: [Data], now: Double) -> [Action] {
        do throws(ProtocolError) {
            let message = try WireMessage(frames: frames)
            lastHeard = now
            lastContact = now
            return try handle(message, now: now)
        } catch {
            var actions: [Action] = []
            if badMessages.admit("coordinator", now: now) {
                actions.append(.event(.messageRefused(error: "\(error)")))
            }
            if let lease = Self.lease(in: frames) {
                actions.append(.send(FailHeader(lease: lease, error: "refused the task: \(error)").message()))
            }
            return actions
        }
    }

    /// The lease of an ill-formed TASK, if it can be read, so it can be failed.
    static func lease(in frames: [Data]) -> Int? {
        struct LeaseOnly: Decodable {
            var lease: Int
            enum CodingKeys: String, CodingKey { case lease }
            init(from decoder: any Decoder) throws {
                lease = try decoder.container(keyedBy: CodingKeys.self).int(.lease, in: WireLimits.index)
            }
        }
        guard frames.count >= 3, frames[1] == Data("TASK".utf8) else { return nil }
        return (try? JSONDecoder().decode(LeaseOnly.self, from: frames[2]))?.lease
    }

    private mutating func handle(_ message: WireMessage, now: Double) throws(ProtocolError) -> [Action] {
        switch message.command {
        case .welcome:
            let welcome = try message.decode(WelcomeHeader.self)
            welcomed = true
            saidWaiting = false
            backoff = 1
            return [.event(.joined(epoch: welcome.epoch))]
        case .heartbeat:
            _ = try message.decode(HeartbeatHeader.self)
            return []
        case .ack:
            _ = try message.decode(AckHeader.self)
            return []
        case .task:
            return try task(message.decode(TaskHeader.self))
        case .chunk:
            return chunk(try message.decode(ChunkHeader.self), bytes: message.binary.first, now: now)
        case .taken:
            return taken(try message.decode(TakenHeader.self), now: now)
        case .cancel:
            let lease = try message.decode(CancelHeader.self).lease
            queue.removeAll { $0.lease == lease }
            return startNext()
        case .disconnect:
            let header = try message.decode(DisconnectHeader.self)
            let reason = LogText.escaped(header.reason, limit: 500)
            if header.quarantined == true { return [.quarantined(reason)] }
            return [
                .event(.disconnected(reason: reason)), .reconnect(after: nextBackoff()),
            ]
        case .done:
            return exitWhenDone ? [.send(WireMessage(.bye)), .exit("the sweep is done")] : []
        default:
            throw ProtocolError(.envelope, "\(message.command.rawValue) is a command only workers send")
        }
    }

    private mutating func task(_ header: TaskHeader) throws(ProtocolError) -> [Action] {
        let lease = header.lease
        func fail(_ error: String) -> [Action] {
            [
                .event(.taskRefused(lease: lease, error: error)),
                .send(FailHeader(lease: lease, error: error).message()),
            ]
        }
        // Bounded whatever the coordinator sends (an honest one keeps within the slots; a
        // revoked lease still computing may briefly take one more).
        guard queue.count < 4 * slots + 16 else { return fail("more tasks queued than this worker's credit allows") }
        if let definition = header.definition, let spec = header.spec, let base = header.base {
            guard definitions.count < 4096, specs.count < 64 else {
                return fail("more job definitions or specs than one connection may carry")
            }
            // The spec arrived decoded (TaskHeader); its canonical JSON and the files name it.
            guard let canonical = try? JSONValue(encoding: spec).serialized() else {
                return fail("the task's spec has a value JSON cannot hold")
            }
            let files = header.files ?? [:]
            let key = ArtifactStore.hash(canonical + JSONValue.object(files.mapValues { .string($0) }).serialized())
            specs[key] = (spec, base, files)
            definitions[header.job] = (definition, key)
        }
        guard let (definition, key) = definitions[header.job] else {
            return fail("no definition received for job \(header.job)")
        }
        queue.append(
            Task(
                lease: lease, job: header.job, jobIndex: header.jobIndex, shard: header.shard,
                range: header.start..<header.end, definition: definition, specKey: key, inputs: header.inputs ?? [:],
                connection: connection))
        return startNext()
    }

    /// Every artifact a task needs: its inputs and the files its spec names.
    func needs(_ task: Task) -> Set<String> {
        Set(task.inputs.values).union(specs[task.specKey]?.files.values ?? [:].values)
    }

    /// Where the coordinator keeps each file a task's spec names (artifact → path).
    func coordinatorPaths(_ task: Task) -> [String: String] {
        guard let spec = specs[task.specKey] else { return [:] }
        var paths: [String: String] = [:]
        for (file, hash) in spec.files {
            paths[hash] = file.hasPrefix("/") ? file : (spec.base as NSString).appendingPathComponent(file)
        }
        return paths
    }

    /// The result of an `.adopt`: the file is in the cache now, or it is fetched.
    public mutating func adopted(_ artifact: String, found: Bool) -> [Action] {
        guard let path = adopting.removeValue(forKey: artifact) else { return [] }
        guard found else {
            notLocal.insert(artifact)
            return startNext()
        }
        cached.insert(artifact)
        return [.event(.tookLocalFile(artifact: artifact, path: path))] + startNext()
    }

    /// Starts the first queued task whose inputs are all in the cache, and fetches the inputs
    /// of queued tasks that are not (a spec file is first looked for under the coordinator's
    /// path).
    private mutating func startNext() -> [Action] {
        var actions: [Action] = []
        for task in queue {
            let paths = coordinatorPaths(task)
            for hash in needs(task).sorted()
            where !cached.contains(hash) && fetches[hash] == nil && adopting[hash] == nil {
                if let path = paths[hash], !notLocal.contains(hash) {
                    adopting[hash] = path
                    actions.append(.adopt(artifact: hash, path: path))
                    continue
                }
                fetches[hash] = Fetch(requested: 0, inFlight: 1, started: lastHeard)
                actions.append(.send(FetchHeader(artifact: hash, offset: 0).message()))
            }
        }
        guard computing == nil, let index = queue.firstIndex(where: { needs($0).isSubset(of: cached) })
        else { return actions }
        let task = queue.remove(at: index)
        computing = task
        return actions + [.compute(task)]
    }

    /// A chunk of an input artifact: written to the cache (`.write`). A chunk at another offset
    /// than expected, longer than asked, empty before the end, or announcing another size fails
    /// the tasks that need the artifact.
    mutating func chunk(_ header: ChunkHeader, bytes: Data?, now: Double) -> [Action] {
        let hash = header.artifact
        guard var fetch = fetches[hash] else { return [] }
        if let error = header.error {
            return failFetch(hash, "cannot fetch artifact \(hash.prefix(12)): \(LogText.escaped(error, limit: 300))")
        }
        guard let offset = header.offset, let size = header.size, let bytes else {
            return failFetch(hash, "a CHUNK of artifact \(hash.prefix(12)) without its bytes")
        }
        func refuse(_ why: String) -> [Action] { failFetch(hash, "artifact \(hash.prefix(12)): \(why)") }
        guard bytes.count <= WireMessage.artifactChunk else {
            return refuse("a chunk of \(bytes.count) bytes, more than the \(WireMessage.artifactChunk) asked for")
        }
        if let known = fetch.size {
            guard known == size else { return refuse("a chunk announcing \(size) bytes for an artifact of \(known)") }
        } else {
            guard offset == 0 else { return refuse("a first chunk at offset \(offset), not 0") }
            guard size >= 0 else { return refuse("a chunk announcing a negative size") }
            fetch.size = size
            fetch.requested = min(size, bytes.count)
        }
        guard offset == fetch.expected else { return refuse("a chunk at \(offset), expected \(fetch.expected)") }
        guard bytes.count <= size - offset else { return refuse("more than the announced \(size) bytes") }
        guard !bytes.isEmpty || offset == size else {
            return refuse("the coordinator sent an empty chunk at \(offset) of \(size) bytes")
        }
        fetch.expected += bytes.count
        fetch.inFlight -= 1
        fetches[hash] = fetch
        return [.write(ArtifactChunk(artifact: hash, size: size, offset: offset, bytes: bytes))]
    }

    /// The cache's answer to a `.write`: more chunks are asked for up to the credit; once the
    /// artifact is whole (and checked) the tasks waiting for it may start.
    public mutating func wrote(_ hash: String, _ outcome: WriteOutcome, now: Double) -> [Action] {
        guard var fetch = fetches[hash], let size = fetch.size else { return [] }
        switch outcome {
        case .failed(let error):
            return failFetch(hash, "artifact \(hash.prefix(12)): \(error)")
        case .stored:
            fetches[hash] = nil
            cached.insert(hash)
            return [.event(.fetched(artifact: hash, bytes: size, seconds: now - fetch.started))] + startNext()
        case .received:
            var actions: [Action] = []
            while fetch.inFlight < WireMessage.artifactCredit && fetch.requested < size {
                actions.append(.send(FetchHeader(artifact: hash, offset: fetch.requested).message()))
                fetch.requested += WireMessage.artifactChunk
                fetch.inFlight += 1
            }
            fetches[hash] = fetch
            return actions
        }
    }

    /// Every queued task that needs `hash` fails with `reason`.
    private mutating func failFetch(_ hash: String, _ reason: String) -> [Action] {
        let partial = fetches.removeValue(forKey: hash)?.size != nil
        let failing = queue.filter { needs($0).contains(hash) }
        let leases = Set(failing.map(\.lease))
        queue.removeAll { leases.contains($0.lease) }
        return (partial ? [.discard(artifact: hash)] : [])
            + [.event(.fetchFailed(artifact: hash, error: reason))]
            + failing.map { .send(FailHeader(lease: $0.lease, error: reason).message()) }
            + startNext()
    }

    /// The compute thread finished a task; `artifact` (already in the cache) goes up first.
    public mutating func computed(
        _ task: Task, metrics: [Double], artifact: String? = nil, seconds: Double, now: Double
    ) -> [Action] {
        computing = nil
        lastSent = now
        guard task.connection == connection else {
            return [.event(.staleResult(lease: task.lease))] + startNext()
        }
        var header = ResultHeader(
            lease: task.lease, job: task.job, jobIndex: task.jobIndex, shard: task.shard,
            seconds: seconds.isFinite ? min(max(seconds, 0), 1e9) : 0)
        guard let artifact else {
            return [.send(header.message(binary: [metrics.littleEndianData]))] + startNext()
        }
        header.artifact = artifact
        let result = header.message(binary: [metrics.littleEndianData])
        if sends[artifact] != nil {
            sends[artifact]?.results.append(result)
            sends[artifact]?.leases.append(task.lease)
            return startNext()
        }
        // The compute child put it in the cache; a task that reads it may start at once.
        cached.insert(artifact)
        sends[artifact] = Send(
            started: now, requested: WireMessage.artifactChunk, reading: 1, results: [result], leases: [task.lease])
        return [.read(artifact: artifact, offset: 0, length: WireMessage.artifactChunk)] + startNext()
    }

    /// Reads of `hash` for PUTs, up to the credit.
    private mutating func pump(_ hash: String) -> [Action] {
        guard var send = sends[hash], let size = send.size else { return [] }
        var actions: [Action] = []
        while send.inFlight + send.reading < WireMessage.artifactCredit && send.requested < size {
            actions.append(.read(artifact: hash, offset: send.requested, length: WireMessage.artifactChunk))
            send.requested += WireMessage.artifactChunk
            send.reading += 1
        }
        sends[hash] = send
        return actions
    }

    /// The cache's answer to a `.read` of an artifact this worker made: a PUT of the bytes. An
    /// artifact that is missing, unreadable or changes while it goes fails the results waiting on it.
    public mutating func read(_ hash: String, offset: Int, _ outcome: ReadOutcome) -> [Action] {
        guard var send = sends[hash] else { return [] }
        func fail(_ error: String) -> [Action] {
            sends[hash] = nil
            return [.event(.uploadFailed(artifact: hash, error: error))]
                + send.leases.map { .send(FailHeader(lease: $0, error: error).message()) }
        }
        switch outcome {
        case .missing:
            cached.remove(hash)
            return fail("the artifact it made is not in the cache")
        case .failed(let error):
            return fail(error)
        case .bytes(let bytes, let size):
            if send.size == nil { send.size = size }
            guard size == send.size, offset == send.sent, !bytes.isEmpty || size == offset,
                bytes.count <= size - offset
            else { return fail("artifact \(hash.prefix(12)) changed in the cache while it was uploaded") }
            send.reading -= 1
            send.inFlight += 1
            send.sent += bytes.count
            sends[hash] = send
            let put = PutHeader(artifact: hash, size: size, offset: offset).message(binary: [bytes])
            return [.send(put)] + pump(hash)
        }
    }

    /// The coordinator took chunks of an artifact; once it is stored, the results go.
    mutating func taken(_ header: TakenHeader, now: Double) -> [Action] {
        let hash = header.artifact
        guard var send = sends[hash] else { return [] }
        if let error = header.error {
            sends[hash] = nil
            let text = LogText.escaped(error, limit: 300)
            return [.event(.uploadRefused(artifact: hash, error: text))]
                + send.leases.map { .send(FailHeader(lease: $0, error: "upload refused: \(text)").message()) }
        }
        if header.complete == true {
            sends[hash] = nil
            let size = send.size ?? 0
            let uploaded = WorkerEvent.uploaded(
                artifact: hash, bytes: size, seconds: now - send.started, alreadyThere: send.sent < size)
            return [.event(uploaded)] + send.results.map { .send($0) }
        }
        send.inFlight = max(0, send.inFlight - 1)
        sends[hash] = send
        return pump(hash)
    }

    public mutating func failed(_ task: Task, error: String, now: Double) -> [Action] {
        computing = nil
        lastSent = now
        let log = Action.event(.shardFailed(job: task.definition.defaultName, shard: task.shard, error: error))
        guard task.connection == connection else { return [log] + startNext() }
        return [log, .send(FailHeader(lease: task.lease, error: error).message())] + startNext()
    }

    public mutating func tick(now: Double) -> [Action] {
        if let giveUpAfter, computing == nil, let lastContact, now - lastContact > giveUpAfter {
            return [.giveUp(after: now - lastContact)]
        }
        if now - lastHeard > deadAfter {
            return [
                .event(.coordinatorSilent(seconds: Int(exactly: (now - lastHeard).rounded(.down)) ?? 0)),
                .reconnect(after: nextBackoff()),
            ]
        }
        if welcomed && now - lastSent >= heartbeatInterval {
            lastSent = now
            return [.send(HeartbeatHeader(computing: computing?.lease ?? 0, queued: queue.count).message())]
        }
        if !welcomed && !saidWaiting, let lastContact, now - lastContact > deadAfter {
            saidWaiting = true
            return [.unanswered(seconds: now - lastContact)]
        }
        if !welcomed && now - lastSent >= heartbeatInterval {
            // HELLO again until a coordinator answers (it may not have been up yet).
            return connected(now: now)
        }
        return []
    }

    mutating func nextBackoff() -> Double {
        defer { backoff = min(32, backoff * 2) }
        return backoff
    }
}
