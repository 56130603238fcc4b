import BasinSweep
import Foundation
import Logging

/// The worker's protocol logic as a state machine: HELLO until WELCOME, tasks queued up to its
/// slots and computed one at a time, results sent, heartbeats, reconnection with backoff when
/// the coordinator goes silent or says DISCONNECT.
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
    }

    /// An artifact coming from the coordinator, chunk by chunk.
    struct Fetch {
        var upload: ArtifactStore.Upload?
        var requested = 0
        var inFlight = 0
        var started = 0.0
    }

    /// An artifact going to the coordinator, and the results waiting for it to be stored.
    struct Send {
        var size: Int
        var started: Double
        var sent = 0
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
        /// No coordinator has answered for `giveUpAfter` seconds: leave, unfinished.
        case giveUp(after: Double)
        case log(Logger.Level, String)
    }

    public let name: String
    public let slots: Int
    /// Artifacts this worker has (fetched inputs, outputs it made): `--cache`.
    public let cache: ArtifactStore
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
    public private(set) var specs: [String: (spec: JSONValue, base: String, files: [String: String])] = [:]
    var fetches: [String: Fetch] = [:]
    var sends: [String: Send] = [:]

    public init(name: String, slots: Int, cache: ArtifactStore) {
        self.name = name
        self.slots = slots
        self.cache = cache
    }

    public var isComputing: Bool { computing != nil }

    /// A new connection: say HELLO.
    public mutating func connected(now: Double) -> [Action] {
        if lastContact == nil { lastContact = now }
        welcomed = false
        lastHeard = now
        lastSent = now
        definitions = [:]
        queue = []
        for fetch in fetches.values { fetch.upload?.abandon() }
        fetches = [:]
        sends = [:]
        let host = ProcessInfo.processInfo.hostName
        return [
            .send(
                WireMessage(
                    .hello,
                    [
                        "worker": .string(name), "host": .string(host), "pid": .integer(Int(getpid())),
                        "slots": .integer(slots),
                        "version": .string(WireMessage.version),
                    ]))
        ]
    }

    public mutating func receive(frames: [Data], now: Double) -> [Action] {
        let message: WireMessage
        do {
            message = try WireMessage(frames: frames)
        } catch {
            return [.log(.warning, "dropped a message from the coordinator: \(error)")]
        }
        lastHeard = now
        lastContact = now
        switch message.command {
        case .welcome:
            welcomed = true
            saidWaiting = false
            backoff = 1
            return [.log(.info, "joined the coordinator (epoch \(message.int("epoch") ?? 0))")]
        case .heartbeat, .ack:
            return []
        case .task:
            guard let lease = message.int("lease"), let job = message.string("job"),
                let jobIndex = message.int("job_index"),
                let shard = message.int("shard"), let start = message.int("start"), let end = message.int("end"),
                end >= start
            else {
                return [.log(.warning, "dropped a malformed TASK")]
            }
            if let value = message.header["definition"], let spec = message.header["spec"],
                let base = message.string("base"),
                let definition = try? JSONDecoder().decode(JobDefinition.self, from: value.serialized())
            {
                guard let files = Self.artifactNames(message.header["files"]) else {
                    return [.log(.warning, "dropped a TASK whose 'files' are not all artifact names")]
                }
                let key = String(spec.serialized().hashValue) + String(files.description.hashValue)
                specs[key] = (spec, base, files)
                definitions[job] = (definition, key)
            }
            guard let (definition, key) = definitions[job] else {
                return [
                    .send(
                        WireMessage(
                            .fail,
                            ["lease": .integer(lease), "error": .string("no definition received for job \(job)")]))
                ]
            }
            guard let inputs = Self.artifactNames(message.header["inputs"]) else {
                return [.log(.warning, "dropped a TASK whose 'inputs' are not all artifact names")]
            }
            queue.append(
                Task(
                    lease: lease, job: job, jobIndex: jobIndex, shard: shard, range: start..<end,
                    definition: definition, specKey: key, inputs: inputs))
            return startNext()
        case .chunk:
            return chunk(message, now: now)
        case .taken:
            return taken(message, now: now)
        case .cancel:
            if let lease = message.int("lease") { queue.removeAll { $0.lease == lease } }
            return startNext()
        case .disconnect:
            let reason = message.string("reason") ?? "no reason given"
            return [
                .log(.warning, "the coordinator disconnected this worker: \(reason)"), .reconnect(after: nextBackoff()),
            ]
        case .done:
            return exitWhenDone ? [.send(WireMessage(.bye)), .exit("the sweep is done")] : []
        default:
            return [
                .log(.warning, "the coordinator sent \(message.command.rawValue), which only workers send; dropped")
            ]
        }
    }

    /// A header's `{name: hash}` object (empty when absent), or nil when a value is not a hash.
    static func artifactNames(_ value: JSONValue?) -> [String: String]? {
        guard case .object(let items)? = value else { return [:] }
        var out: [String: String] = [:]
        for (name, item) in items {
            guard let hash = item.stringValue, ArtifactStore.isHash(hash) else { return nil }
            out[name] = hash
        }
        return out
    }

    /// Every artifact a task needs: its inputs and the files its spec names.
    func needs(_ task: Task) -> Set<String> {
        Set(task.inputs.values).union(specs[task.specKey]?.files.values ?? [:].values)
    }

    /// Starts the first queued task whose inputs are all in the cache, and fetches the inputs
    /// of queued tasks that are not.
    private mutating func startNext() -> [Action] {
        var actions: [Action] = []
        for task in queue {
            for hash in needs(task).sorted() where !cache.contains(hash) && fetches[hash] == nil {
                fetches[hash] = Fetch(requested: 0, inFlight: 1, started: lastHeard)
                actions.append(.send(WireMessage(.fetch, ["artifact": .string(hash), "offset": .integer(0)])))
            }
        }
        guard computing == nil, let index = queue.firstIndex(where: { needs($0).allSatisfy(cache.contains) })
        else { return actions }
        let task = queue.remove(at: index)
        computing = task
        return actions + [.compute(task)]
    }

    /// A chunk of an input artifact: appended to the cache; more are asked for up to the credit.
    mutating func chunk(_ message: WireMessage, now: Double) -> [Action] {
        guard let hash = message.string("artifact"), var fetch = fetches[hash] else { return [] }
        if let error = message.string("error") {
            return failFetch(hash, "cannot fetch artifact \(hash.prefix(12)): \(error)")
        }
        guard let offset = message.int("offset"), let size = message.int("size"), let bytes = message.binary.first
        else {
            return failFetch(hash, "a malformed CHUNK of artifact \(hash.prefix(12))")
        }
        do {
            if fetch.upload == nil {
                fetch.upload = try cache.upload(hash, size: size)
                fetch.requested = min(size, bytes.count)
            }
            try fetch.upload!.append(bytes, at: offset)
            fetch.inFlight -= 1
            if fetch.upload!.isComplete {
                try fetch.upload!.finish()
                fetches[hash] = nil
                return [
                    .log(
                        .info, "fetched artifact \(hash.prefix(12)): \(Self.transfer(size, since: fetch.started, now))")
                ]
                    + startNext()
            }
            guard !bytes.isEmpty || fetch.inFlight > 0 else {
                throw ClusterError("the coordinator sent an empty chunk at \(offset) of \(size) bytes")
            }
            var actions: [Action] = []
            while fetch.inFlight < WireMessage.artifactCredit && fetch.requested < size {
                actions.append(
                    .send(
                        WireMessage(
                            .fetch,
                            [
                                "artifact": .string(hash), "offset": .integer(fetch.requested),
                                "length": .integer(WireMessage.artifactChunk),
                            ])))
                fetch.requested += WireMessage.artifactChunk
                fetch.inFlight += 1
            }
            fetches[hash] = fetch
            return actions
        } catch {
            fetch.upload?.abandon()
            fetches[hash] = nil
            return failFetch(hash, "artifact \(hash.prefix(12)): \(error)")
        }
    }

    /// "N bytes in S s (R MB/s)" for a log line.
    static func transfer(_ bytes: Int, since start: Double, _ now: Double) -> String {
        let seconds = max(now - start, 1e-6)
        return String(
            format: "%d bytes in %.3f s (%.1f MB/s)", bytes, seconds, Double(bytes) / 1_048_576 / seconds)
    }

    /// Every queued task that needs `hash` fails with `reason`.
    private mutating func failFetch(_ hash: String, _ reason: String) -> [Action] {
        fetches[hash]?.upload?.abandon()
        fetches[hash] = nil
        let failing = queue.filter { needs($0).contains(hash) }
        let leases = Set(failing.map(\.lease))
        queue.removeAll { leases.contains($0.lease) }
        return [.log(.error, reason)]
            + failing.map { .send(WireMessage(.fail, ["lease": .integer($0.lease), "error": .string(reason)])) }
            + startNext()
    }

    /// The compute thread finished a task; `artifact` (already in the cache) goes up first.
    public mutating func computed(
        _ task: Task, metrics: [Double], artifact: String? = nil, seconds: Double, now: Double
    ) -> [Action] {
        computing = nil
        lastSent = now
        var header: [String: JSONValue] = [
            "lease": .integer(task.lease), "job": .string(task.job), "job_index": .integer(task.jobIndex),
            "shard": .integer(task.shard), "seconds": .number(seconds),
        ]
        guard let artifact else {
            return [.send(WireMessage(.result, header, binary: [metrics.littleEndianData]))] + startNext()
        }
        header["artifact"] = .string(artifact)
        let result = WireMessage(.result, header, binary: [metrics.littleEndianData])
        if sends[artifact] != nil {
            sends[artifact]!.results.append(result)
            sends[artifact]!.leases.append(task.lease)
            return startNext()
        }
        guard let size = cache.size(artifact) else {
            return failed(task, error: "the artifact it made is not in the cache", now: now)
        }
        sends[artifact] = Send(size: size, started: now, results: [result], leases: [task.lease])
        return pump(artifact) + startNext()
    }

    /// PUTs of `hash` up to the credit.
    private mutating func pump(_ hash: String) -> [Action] {
        guard var send = sends[hash] else { return [] }
        var actions: [Action] = []
        repeat {
            guard send.inFlight < WireMessage.artifactCredit else { break }
            let bytes: Data
            do {
                bytes = try cache.read(hash, offset: send.sent, length: WireMessage.artifactChunk)
            } catch {
                sends[hash] = nil
                return send.leases.map {
                    .send(WireMessage(.fail, ["lease": .integer($0), "error": .string("\(error)")]))
                }
            }
            actions.append(
                .send(
                    WireMessage(
                        .put,
                        ["artifact": .string(hash), "size": .integer(send.size), "offset": .integer(send.sent)],
                        binary: [bytes])))
            send.sent += bytes.count
            send.inFlight += 1
        } while send.sent < send.size
        sends[hash] = send
        return actions
    }

    /// The coordinator took chunks of an artifact; once it is stored, the results go.
    mutating func taken(_ message: WireMessage, now: Double) -> [Action] {
        guard let hash = message.string("artifact"), var send = sends[hash] else { return [] }
        if let error = message.string("error") {
            sends[hash] = nil
            return [.log(.error, "the coordinator refused artifact \(hash.prefix(12)): \(error)")]
                + send.leases.map {
                    .send(WireMessage(.fail, ["lease": .integer($0), "error": .string("upload refused: \(error)")]))
                }
        }
        if case .bool(true)? = message.header["complete"] {
            sends[hash] = nil
            let how =
                send.sent < send.size ? "the coordinator had it" : Self.transfer(send.size, since: send.started, now)
            return [.log(.info, "uploaded artifact \(hash.prefix(12)): \(how)")] + send.results.map { .send($0) }
        }
        send.inFlight -= 1
        sends[hash] = send
        return send.sent < send.size ? pump(hash) : []
    }

    public mutating func failed(_ task: Task, error: String, now: Double) -> [Action] {
        computing = nil
        lastSent = now
        return [
            .log(.error, "shard \(task.shard) of job \(task.definition.defaultName) failed: \(error)"),
            .send(WireMessage(.fail, ["lease": .integer(task.lease), "error": .string(error)])),
        ] + startNext()
    }

    public mutating func tick(now: Double) -> [Action] {
        if let giveUpAfter, computing == nil, let lastContact, now - lastContact > giveUpAfter {
            return [.giveUp(after: now - lastContact)]
        }
        if now - lastHeard > deadAfter {
            return [
                .log(.warning, "the coordinator is silent (\(Int(now - lastHeard)) s); reconnecting"),
                .reconnect(after: nextBackoff()),
            ]
        }
        if welcomed && now - lastSent >= heartbeatInterval {
            lastSent = now
            return [
                .send(
                    WireMessage(
                        .heartbeat, ["computing": .integer(computing?.lease ?? 0), "queued": .integer(queue.count)]))
            ]
        }
        if !welcomed && !saidWaiting, let lastContact, now - lastContact > deadAfter {
            saidWaiting = true
            return [
                .log(
                    .warning,
                    "no coordinator has answered for \(Int(now - lastContact)) s; still saying HELLO"
                )
            ]
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
