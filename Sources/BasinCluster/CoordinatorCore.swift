import BasinSweep
import Foundation
import Logging

/// The coordinator's protocol logic as a plain state machine: events in (messages, clock
/// ticks, "journal is durable"), actions out (messages to send, records to journal, log
/// lines). No sockets, no clock of its own: the I/O loop owns both, tests drive it directly.
public struct CoordinatorCore {
    public struct Settings: Sendable {
        public var heartbeatInterval = 1.0
        /// A worker silent this long is dead.
        public var deadAfter = 5.0
        public var leaseSeconds = 120.0
        /// Failures (FAIL or a worker dying with the lease) after which a shard is quarantined.
        public var maxFailures = 3
        public var epoch = 1

        public init() {}
    }

    public enum Action: Equatable {
        case send(peer: Data, WireMessage)
        case journal(Journal.ShardDone)
        case log(Logger.Level, String)
    }

    struct ShardKey: Hashable {
        var job: Int
        var shard: Int
    }

    struct Lease {
        var id: Int
        var peer: Data
        var key: ShardKey
        var issued: Double
        var deadline: Double
        var expired = false
    }

    struct Worker {
        var name: String
        var slots: Int
        var lastHeard: Double
        var lastSent: Double
        var leases: Set<Int> = []
        var knownJobs: Set<Int> = []
        var awaitingAck: Set<Int> = []
        /// Job kinds this worker evaluates (HELLO `kinds`); nil: every kind.
        var kinds: Set<String>?
    }

    public let study: Study
    let spec: JSONValue
    let base: String
    public var settings: Settings
    var done: [[Bool]]
    var queue: [ShardKey] = []
    var leases: [Int: Lease] = [:]
    var workers: [Data: Worker] = [:]
    /// Workers (by name) that joined this run and have not said BYE: once the sweep is done the
    /// coordinator stays a moment for them to hear DONE.
    public private(set) var yetToLeave: Set<String> = []
    /// Whether `finish()` has spoken, and the connections it or a later message told DONE.
    var over = false
    var toldDone: Set<Data> = []
    var failures: [ShardKey: [String]] = [:]
    var quarantined: Set<ShardKey> = []
    /// Metrics of finished shards this run, to check duplicates bit for bit.
    var finished: [ShardKey: [Double]] = [:]
    var pendingAcks: [(peer: Data, lease: Int)] = []
    /// Jobs whose inputs are not all made yet; their shards join the queue when they are.
    var waiting: Set<Int> = []
    /// The artifact of every finished job that made one, by job name.
    public private(set) var outputs: [String: String]
    /// Where artifacts are kept (the run directory's `artifacts/`).
    let store: ArtifactStore
    /// The files the spec names (data, checkpoints, curves) as artifacts, by the path the spec
    /// writes; sent with the spec.
    public var fileArtifacts: [String: String] = [:]
    /// Artifacts arriving from workers, by peer and hash.
    var uploads: [Data: [String: ArtifactStore.Upload]] = [:]
    var nextLease = 1
    /// Points computed this run (for rates).
    public private(set) var pointsThisRun = 0

    /// - Parameters:
    ///   - completed: shards already journaled (job id → shard indices).
    ///   - spec: the study spec as JSON, sent to workers with each job they have not seen.
    ///   - base: the directory relative paths in the spec start from.
    ///   - outputs: the artifact of every finished job that made one, by job name.
    ///   - store: where artifacts live; workers upload into it and fetch from it.
    public init(
        study: Study, spec: JSONValue, base: String, completed: [String: Set<Int>], outputs: [String: String] = [:],
        store: ArtifactStore, settings: Settings = Settings()
    ) {
        self.study = study
        self.spec = spec
        self.base = base
        self.settings = settings
        self.outputs = outputs
        self.store = store
        done = study.jobs.map { job in job.shards.indices.map { completed[job.id]?.contains($0) ?? false } }
        waiting = Set(study.jobs.indices.filter { !ready($0) })
        // Fair across jobs: shard i of every job before shard i + 1 of any.
        let longest = study.jobs.map(\.shards.count).max() ?? 0
        for i in 0..<longest {
            for (j, job) in study.jobs.enumerated() where i < job.shards.count && !done[j][i] && !waiting.contains(j) {
                queue.append(ShardKey(job: j, shard: i))
            }
        }
    }

    func complete(_ j: Int) -> Bool { done[j].allSatisfy { $0 } }

    /// Whether every job `j` reads has finished (and left its artifact, if it makes one).
    func ready(_ j: Int) -> Bool {
        study.jobs[j].dependencies.allSatisfy { d in
            complete(d) && (study.jobs[d].isGrid || outputs[study.jobs[d].name] != nil)
        }
    }

    /// Jobs that can never run because a job they read (directly or not) has quarantined shards.
    public var blockedJobs: [(job: String, because: String)] {
        // Checked on every loop of the I/O thread: nothing to walk until a shard is quarantined.
        guard !quarantined.isEmpty else { return [] }
        var blocked: [Int: String] = [:]
        for (j, job) in study.jobs.enumerated() {
            for d in job.dependencies {
                if let reason = blocked[d] {
                    blocked[j] = reason
                } else if quarantined.contains(where: { $0.job == d }) {
                    blocked[j] = study.jobs[d].name
                }
            }
        }
        return blocked.keys.sorted().map { (study.jobs[$0].name, blocked[$0]!) }
    }

    /// Queues the shards of waiting jobs whose inputs now exist.
    mutating func release(readyAfter j: Int) -> [Action] {
        guard complete(j) else { return [] }
        var actions: [Action] = []
        for w in waiting.sorted() where ready(w) {
            waiting.remove(w)
            for s in study.jobs[w].shards.indices where !done[w][s] { queue.append(ShardKey(job: w, shard: s)) }
            actions.append(.log(.debug, "job \(study.jobs[w].name) is ready"))
        }
        return actions
    }

    // MARK: Progress

    public var isFinished: Bool {
        let blocked = Set(blockedJobs.map(\.job))
        return done.indices.allSatisfy { j in
            blocked.contains(study.jobs[j].name)
                || done[j].indices.allSatisfy { done[j][$0] || quarantined.contains(ShardKey(job: j, shard: $0)) }
        }
            && pendingAcks.isEmpty
    }

    public var pointsDone: Int {
        study.jobs.indices.reduce(0) { sum, j in
            sum + study.jobs[j].shards.indices.filter { done[j][$0] }.reduce(0) { $0 + study.jobs[j].shards[$1].count }
        }
    }

    public var pointsTotal: Int { study.jobs.reduce(0) { $0 + $1.pointCount } }
    public var workersAlive: Int { workers.count }
    public var leasesOutstanding: Int { leases.count }

    /// Quarantined shards with the reasons they failed.
    public var quarantine: [(job: String, shard: Int, points: Range<Int>, reasons: [String])] {
        quarantined.sorted { ($0.job, $0.shard) < ($1.job, $1.shard) }.map { key in
            (study.jobs[key.job].name, key.shard, study.jobs[key.job].shards[key.shard], failures[key] ?? [])
        }
    }

    // MARK: Events

    /// A message from `peer` (the ROUTER routing id) at time `now`.
    public mutating func receive(peer: Data, frames: [Data], now: Double) -> [Action] {
        var actions = handle(peer: peer, frames: frames, now: now)
        // Once the sweep is over, a worker that speaks hears DONE (once per connection): one
        // that was reconnecting when `finish()` spoke, or one that joins late.
        if over, workers[peer] != nil, toldDone.insert(peer).inserted {
            actions.append(.send(peer: peer, WireMessage(.done)))
        }
        return actions
    }

    private mutating func handle(peer: Data, frames: [Data], now: Double) -> [Action] {
        let name = workers[peer]?.name ?? Self.printable(peer)
        let message: WireMessage
        do {
            message = try WireMessage(frames: frames)
        } catch let error as WireMessage.DecodeError {
            var actions: [Action] = [.log(.warning, "dropped a message from \(name): \(error)")]
            if case .version = error {
                actions.append(
                    .send(
                        peer: peer,
                        WireMessage(
                            .disconnect, ["reason": .string("\(error); this coordinator speaks \(WireMessage.version)")]
                        )))
            } else if case .unknownCommand = error {
                actions.append(.send(peer: peer, WireMessage(.disconnect, ["reason": .string("\(error)")])))
            }
            return actions
        } catch {
            return [.log(.warning, "dropped a message from \(name): \(error)")]
        }
        if message.command == .hello { return hello(peer: peer, message, now: now) }
        guard workers[peer] != nil else {
            return [
                .log(.info, "\(name) sent \(message.command.rawValue) without HELLO; told to reconnect"),
                .send(peer: peer, WireMessage(.disconnect, ["reason": .string("unknown worker: say HELLO first")])),
            ]
        }
        workers[peer]!.lastHeard = now
        switch message.command {
        case .heartbeat:
            // A training, fitting, alignment or Hessian job is one long shard: while its worker
            // says it is computing it, its deadline moves on (grid shards are a few seconds and
            // keep theirs, so a slow worker's shard is re-issued).
            if let id = message.int("computing"), let lease = leases[id], lease.peer == peer, !lease.expired,
                !study.jobs[lease.key.job].isGrid
            {
                leases[id]!.deadline = max(lease.deadline, now + settings.leaseSeconds)
            }
            return []
        case .result:
            return result(peer: peer, message, now: now) + dispatch(now: now)
        case .fail:
            guard let id = message.int("lease"), let lease = leases[id], lease.peer == peer else {
                return [.log(.warning, "\(name) sent FAIL for a lease it does not hold")]
            }
            let reason = message.string("error") ?? "unspecified error"
            return release(id, failure: "\(name): \(reason)") + dispatch(now: now)
        case .bye:
            yetToLeave.remove(workers[peer]!.name)
            return retire(peer, reason: "said BYE") + dispatch(now: now)
        case .put:
            return put(peer: peer, message)
        case .fetch:
            return fetch(peer: peer, message)
        default:
            return [.log(.warning, "\(name) sent \(message.command.rawValue), which only a coordinator sends; dropped")]
        }
    }

    private mutating func hello(peer: Data, _ message: WireMessage, now: Double) -> [Action] {
        var actions: [Action] = []
        if workers[peer] != nil { actions += retire(peer, reason: "said HELLO again") }
        let name = message.string("worker") ?? Self.printable(peer)
        let slots = max(1, min(64, message.int("slots") ?? 1))
        var kinds: Set<String>?
        if case .array(let values)? = message.header["kinds"] {
            kinds = Set(values.compactMap(\.stringValue))
        }
        workers[peer] = Worker(name: name, slots: slots, lastHeard: now, lastSent: now, kinds: kinds)
        yetToLeave.insert(name)
        let only = kinds.map { ", \($0.sorted().joined(separator: "/")) jobs only" } ?? ""
        actions.append(
            .log(
                .info,
                "worker \(name) joined (host \(message.string("host") ?? "?"), pid \(message.int("pid") ?? 0), \(slots) slots\(only))"
            ))
        actions.append(
            .send(
                peer: peer,
                WireMessage(
                    .welcome,
                    [
                        "epoch": .integer(settings.epoch),
                        "heartbeat_ms": .integer(Int(settings.heartbeatInterval * 1000)),
                    ])))
        return actions + dispatch(now: now)
    }

    private mutating func result(peer: Data, _ message: WireMessage, now: Double) -> [Action] {
        let name = workers[peer]!.name
        guard let id = message.int("lease"), let j = message.int("job_index"), let s = message.int("shard"),
            j >= 0, j < study.jobs.count, s >= 0, s < study.jobs[j].shards.count,
            message.string("job") == study.jobs[j].id,
            let metrics = message.binary.first.flatMap([Double].init(littleEndian:)),
            !study.jobs[j].isGrid || metrics.count == 4 * study.jobs[j].shards[s].count
        else {
            return [.log(.warning, "\(name) sent a malformed RESULT; dropped")]
        }
        let key = ShardKey(job: j, shard: s)
        let artifact = message.string("artifact")
        if let artifact, !store.contains(artifact) {
            return release(id, failure: "\(name) named artifact \(artifact.prefix(12)) it never uploaded")
        }
        workers[peer]!.leases.remove(id)
        var actions: [Action] = []
        if let lease = leases[id], lease.key == key { leases[id] = nil }
        if done[j][s] {
            if let first = finished[key], first != metrics {
                actions.append(
                    .log(
                        .error,
                        "DUPLICATE MISMATCH: shard \(s) of \(study.jobs[j].name) from \(name) differs bit for bit from the first result; the first is kept"
                    ))
            }
            actions.append(.send(peer: peer, WireMessage(.ack, ["lease": .integer(id)])))
            workers[peer]!.lastSent = now
            return actions
        }
        done[j][s] = true
        finished[key] = metrics
        pointsThisRun += study.jobs[j].shards[s].count
        if let artifact { outputs[study.jobs[j].name] = artifact }
        queue.removeAll { $0 == key }
        quarantined.remove(key)
        let range = study.jobs[j].shards[s]
        actions.append(
            .journal(
                Journal.ShardDone(
                    job: study.jobs[j].id, shard: s, start: range.lowerBound, end: range.upperBound, worker: name,
                    seconds: message.double("seconds") ?? 0, time: Date().timeIntervalSince1970, metrics: metrics,
                    artifact: artifact)))
        workers[peer]!.awaitingAck.insert(id)
        pendingAcks.append((peer, id))
        actions += release(readyAfter: j)
        // Other leases of the same shard are now useless.
        for (other, lease) in leases where lease.key == key {
            leases[other] = nil
            workers[lease.peer]?.leases.remove(other)
            actions.append(.send(peer: lease.peer, WireMessage(.cancel, ["lease": .integer(other)])))
        }
        return actions
    }

    /// The journal holds every record handed out so far: acknowledge their results.
    public mutating func durable(now: Double) -> [Action] {
        let acks = pendingAcks
        pendingAcks = []
        var actions: [Action] = []
        for (peer, lease) in acks where workers[peer] != nil {
            workers[peer]!.awaitingAck.remove(lease)
            workers[peer]!.lastSent = now
            actions.append(.send(peer: peer, WireMessage(.ack, ["lease": .integer(lease)])))
        }
        return actions
    }

    /// Heartbeats, dead workers, expired leases, then new work.
    public mutating func tick(now: Double) -> [Action] {
        var actions: [Action] = []
        for (peer, worker) in workers.sorted(by: { $0.value.name < $1.value.name }) {
            if now - worker.lastHeard > settings.deadAfter {
                actions += retire(peer, reason: "silent for \(Int(now - worker.lastHeard)) s", died: true)
            } else if now - worker.lastSent >= settings.heartbeatInterval {
                workers[peer]!.lastSent = now
                actions.append(.send(peer: peer, WireMessage(.heartbeat, ["epoch": .integer(settings.epoch)])))
            }
        }
        for (id, lease) in leases.sorted(by: { $0.key < $1.key }) where !lease.expired && now > lease.deadline {
            leases[id]!.expired = true
            let key = lease.key
            if !done[key.job][key.shard] && !queue.contains(key) {
                queue.insert(key, at: 0)
                actions.append(
                    .log(
                        .warning,
                        "lease \(id) (shard \(key.shard) of \(study.jobs[key.job].name)) passed its deadline on \(workers[lease.peer]?.name ?? "?"); re-issuing"
                    ))
            }
        }
        return actions + dispatch(now: now)
    }

    /// Removes a worker; its leases go back to the queue. A worker that died (went silent)
    /// counts as a failure of each shard it held; one that said goodbye does not.
    mutating func retire(_ peer: Data, reason: String, died: Bool = false) -> [Action] {
        guard let worker = workers.removeValue(forKey: peer) else { return [] }
        toldDone.remove(peer)
        for upload in (uploads.removeValue(forKey: peer) ?? [:]).values { upload.abandon() }
        var actions: [Action] = [.log(died ? .warning : .info, "worker \(worker.name) left: \(reason)")]
        for id in worker.leases.sorted() {
            actions += release(id, failure: died ? "worker \(worker.name) died holding it (\(reason))" : nil)
        }
        return actions
    }

    /// Ends a lease that did not produce a result; `failure` (nil: not the shard's fault) counts
    /// towards quarantine.
    mutating func release(_ id: Int, failure: String?) -> [Action] {
        guard let lease = leases.removeValue(forKey: id) else { return [] }
        workers[lease.peer]?.leases.remove(id)
        let key = lease.key
        guard !done[key.job][key.shard] else { return [] }
        guard let failure else {
            if !queue.contains(key) { queue.insert(key, at: 0) }
            return []
        }
        failures[key, default: []].append(failure)
        if failures[key]!.count >= settings.maxFailures {
            quarantined.insert(key)
            queue.removeAll { $0 == key }
            for (other, l) in leases where l.key == key {
                leases[other] = nil
                workers[l.peer]?.leases.remove(other)
            }
            return [
                .log(
                    .error,
                    "quarantined shard \(key.shard) of \(study.jobs[key.job].name) (points \(study.jobs[key.job].shards[key.shard])) after \(failures[key]!.count) failures: \(failures[key]!.joined(separator: "; "))"
                )
            ]
        }
        if !queue.contains(key) && !leases.values.contains(where: { $0.key == key && !$0.expired }) {
            queue.insert(key, at: 0)
        }
        return [.log(.warning, "shard \(key.shard) of \(study.jobs[key.job].name) back in the queue: \(failure)")]
    }

    /// Hands out work while workers have credit: queued shards first; when the queue is empty,
    /// a second copy of the oldest outstanding lease to an idle worker (the first result wins).
    mutating func dispatch(now: Double) -> [Action] {
        var actions: [Action] = []
        for peer in workers.keys.sorted(by: { workers[$0]!.name < workers[$1]!.name }) {
            while let worker = workers[peer], worker.leases.count + worker.awaitingAck.count < worker.slots {
                var key: ShardKey
                let jobs = study.jobs, kinds = worker.kinds
                let accepts = { (key: ShardKey) in kinds?.contains(jobs[key.job].definition.kind.rawValue) ?? true }
                if let index = queue.firstIndex(where: accepts) {
                    key = queue.remove(at: index)
                } else if worker.leases.isEmpty,
                    let straggler = leases.values.filter({ lease in
                        lease.peer != peer && accepts(lease.key)
                            && leases.values.filter { $0.key == lease.key }.count == 1
                            && !done[lease.key.job][lease.key.shard]
                    }).min(by: { ($0.issued, $0.id) < ($1.issued, $1.id) })
                {
                    key = straggler.key
                    actions.append(
                        .log(
                            .info,
                            "duplicating straggling shard \(key.shard) of \(study.jobs[key.job].name) on \(worker.name)"
                        ))
                } else {
                    break
                }
                let id = nextLease
                nextLease += 1
                leases[id] = Lease(id: id, peer: peer, key: key, issued: now, deadline: now + settings.leaseSeconds)
                workers[peer]!.leases.insert(id)
                workers[peer]!.lastSent = now
                let job = study.jobs[key.job], range = job.shards[key.shard]
                var header: [String: JSONValue] = [
                    "lease": .integer(id), "job": .string(job.id), "job_index": .integer(key.job),
                    "shard": .integer(key.shard),
                    "start": .integer(range.lowerBound), "end": .integer(range.upperBound),
                    "deadline_ms": .integer(Int(settings.leaseSeconds * 1000)),
                ]
                var inputs: [String: JSONValue] = [:]
                for d in job.dependencies {
                    if let hash = outputs[study.jobs[d].name] { inputs[study.jobs[d].name] = .string(hash) }
                }
                if !inputs.isEmpty { header["inputs"] = .object(inputs) }
                if !worker.knownJobs.contains(key.job) {
                    workers[peer]!.knownJobs.insert(key.job)
                    header["definition"] = (try? JSONValue(encoding: job.definition)) ?? .null
                    header["spec"] = spec
                    header["base"] = .string(base)
                    if !fileArtifacts.isEmpty {
                        header["files"] = .object(fileArtifacts.mapValues { .string($0) })
                    }
                }
                actions.append(.send(peer: peer, WireMessage(.task, header)))
            }
        }
        return actions
    }

    // MARK: Artifacts

    /// A chunk of an artifact a worker made: appended in order, checked and stored when whole.
    /// Answered with TAKEN (the bytes held so far, `complete` once stored, or `error`).
    mutating func put(peer: Data, _ message: WireMessage) -> [Action] {
        let name = workers[peer]!.name
        guard let hash = message.string("artifact"), ArtifactStore.isHash(hash), let size = message.int("size"),
            size >= 0, let offset = message.int("offset"), let chunk = message.binary.first
        else {
            return [.log(.warning, "\(name) sent a malformed PUT; dropped")]
        }
        func reply(_ fields: [String: JSONValue]) -> Action {
            .send(peer: peer, WireMessage(.taken, fields.merging(["artifact": .string(hash)]) { a, _ in a }))
        }
        if store.contains(hash) {
            uploads[peer]?[hash]?.abandon()
            uploads[peer]?[hash] = nil
            return [reply(["offset": .integer(size), "complete": .bool(true)])]
        }
        do {
            if offset == 0 {
                uploads[peer]?[hash]?.abandon()
                uploads[peer, default: [:]][hash] = try store.upload(hash, size: size)
            }
            guard let upload = uploads[peer]?[hash] else {
                throw ClusterError("a chunk at \(offset) of an upload that never started")
            }
            try upload.append(chunk, at: offset)
            if upload.isComplete {
                uploads[peer]![hash] = nil
                try upload.finish()
                return [
                    .log(.debug, "stored artifact \(hash.prefix(12)) (\(size) bytes) from \(name)"),
                    reply(["offset": .integer(size), "complete": .bool(true)]),
                ]
            }
            return [reply(["offset": .integer(upload.received)])]
        } catch {
            uploads[peer]?[hash]?.abandon()
            uploads[peer]?[hash] = nil
            return [
                .log(.warning, "artifact \(hash.prefix(12)) from \(name) refused: \(error)"),
                reply(["error": .string("\(error)")]),
            ]
        }
    }

    /// A worker asks for `length` bytes (at most one chunk) of an artifact from `offset`.
    func fetch(peer: Data, _ message: WireMessage) -> [Action] {
        guard let hash = message.string("artifact"), ArtifactStore.isHash(hash), let offset = message.int("offset"),
            offset >= 0
        else {
            return [.log(.warning, "\(workers[peer]!.name) sent a malformed FETCH; dropped")]
        }
        guard let size = store.size(hash) else {
            return [
                .send(
                    peer: peer,
                    WireMessage(.chunk, ["artifact": .string(hash), "error": .string("no artifact \(hash) here")]))
            ]
        }
        let length = min(WireMessage.artifactChunk, max(0, message.int("length") ?? WireMessage.artifactChunk))
        do {
            let bytes = try store.read(hash, offset: offset, length: length)
            return [
                .send(
                    peer: peer,
                    WireMessage(
                        .chunk, ["artifact": .string(hash), "offset": .integer(offset), "size": .integer(size)],
                        binary: [bytes]))
            ]
        } catch {
            return [
                .send(peer: peer, WireMessage(.chunk, ["artifact": .string(hash), "error": .string("\(error)")]))
            ]
        }
    }

    /// Tells every worker the sweep is over; from now on, so is every worker that speaks.
    public mutating func finish() -> [Action] {
        over = true
        toldDone.formUnion(workers.keys)
        return workers.keys.sorted(by: { workers[$0]!.name < workers[$1]!.name }).map {
            .send(peer: $0, WireMessage(.done))
        }
    }

    static func printable(_ peer: Data) -> String {
        let text = String(decoding: peer, as: UTF8.self)
        return text.allSatisfy({ $0.isASCII && !$0.isNewline }) && !text.isEmpty
            ? text : peer.map { String(format: "%02x", $0) }.joined()
    }
}
