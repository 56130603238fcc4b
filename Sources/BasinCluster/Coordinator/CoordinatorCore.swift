import BasinSweep
import Foundation

/// The coordinator's protocol logic as a plain state machine: events in (messages, clock
/// ticks, "the journal is durable", the outcome of disk I/O), actions out (messages, records
/// to journal, disk I/O, events to log). No sockets, no clock, no disk: the server owns them,
/// tests drive it directly.
///
/// It decodes and checks what peers send and routes it to its parts: the `ShardScheduler`
/// (which shard goes to whom, what results and failures mean), the `WorkerRegistry`
/// (connections, liveness) and the `ArtifactTransfer` (uploads and downloads).
public struct CoordinatorCore {
    public struct Settings: Sendable {
        public var heartbeatInterval = 1.0
        /// A worker silent this long is dead.
        public var deadAfter = 5.0
        public var leaseSeconds = 120.0
        /// Failures (FAIL or a worker dying with the lease) after which a shard is quarantined.
        public var maxFailures = 3
        public var epoch = 1
        /// Workers connected at once; a HELLO beyond it is refused (and logged once a minute).
        public var maxWorkers = 4096
        /// Largest artifact a worker may upload, and the bytes of open uploads one peer may hold.
        public var maxArtifactBytes = 4 << 30
        public var uploadBudgetBytes = 8 << 30
        /// Bad-message log lines: one in full per peer per window, at most `badMessageLines` in
        /// full per window in all; the rest are counted and summarized when the window ends.
        public var badMessageWindow = 60.0
        public var badMessageLines = 20
        /// Fraction of shards (seeded by job id and shard) computed again by a different worker
        /// and compared bit for bit (`sweep: {verify: F}`).
        public var verify = 0.0
        /// Join and leave lines per window; beyond it they are counted.
        public var membershipLines = 300

        public init() {}

        var schedule: ShardScheduler.Settings {
            var s = ShardScheduler.Settings()
            s.leaseSeconds = leaseSeconds
            s.maxFailures = maxFailures
            s.verify = verify
            return s
        }
    }

    public enum Action: Equatable {
        case send(peer: Data, WireMessage)
        /// Journal a result; the server stamps its `time` as it writes it.
        case journal(Journal.ShardDone)
        /// A journaled result found false: void it (its shard is computed again).
        case revoke(Journal.ShardRevoked)
        case event(CoordinatorEvent)
        /// Disk I/O for artifacts: answer with `wrote` / `read` (`ArtifactDisk` does both).
        case write(peer: Data, ArtifactChunk)
        case read(peer: Data, artifact: String, offset: Int, length: Int)
        case discard(peer: Data, artifact: String)
    }

    /// Where the sweep stands.
    public enum State: Equatable {
        /// Handing out work; `joined`: names of workers that joined and have not said BYE.
        case running(joined: Set<String>)
        /// The work is done and workers are told DONE (each connection once: `told`); the
        /// coordinator stays a moment for those in `yetToLeave` to hear it.
        case finishing(told: Set<Data>, yetToLeave: Set<String>)
        /// Every worker that joined has left; one that speaks still hears DONE.
        case finished(told: Set<Data>)
    }

    public private(set) var state: State = .running(joined: [])
    public private(set) var scheduler: ShardScheduler
    var registry = WorkerRegistry()
    var transfer: ArtifactTransfer
    public var settings: Settings {
        didSet {
            scheduler.settings = settings.schedule
            transfer.maxArtifactBytes = settings.maxArtifactBytes
            transfer.budgetBytes = settings.uploadBudgetBytes
        }
    }
    let spec: StudySpec
    let base: String
    /// The files the spec names (data, checkpoints, curves) as artifacts, by the path the spec
    /// writes; sent with the spec.
    public var fileArtifacts: [String: String] = [:]
    var heartbeatCache: (epoch: Int, message: WireMessage)?
    var badMessages: BadMessageLog
    /// Join and leave events this window, and when it started: at most `membershipLines` a
    /// window, the rest counted, so peers that join and leave in a loop cannot flood the log.
    var membershipLogged = 0
    var membershipUnlogged = 0
    var membershipSince = 0.0
    /// HELLOs refused at the worker limit since it was last logged, and when that was.
    var refusedAtLimit = 0
    var refusedSince = 0.0

    /// - Parameters:
    ///   - completed: shards already journaled (job id → shard indices).
    ///   - spec: the study spec as JSON, sent to workers with each job they have not seen.
    ///   - base: the directory relative paths in the spec start from.
    ///   - outputs: the artifact of every finished job that made one, by job name.
    ///   - artifacts: the artifacts the run already stores.
    public init(
        study: Study, spec: StudySpec, base: String, completed: [String: Set<Int>], outputs: [String: String] = [:],
        artifacts: Set<String>, settings: Settings = Settings()
    ) {
        self.spec = spec
        self.base = base
        self.settings = settings
        scheduler = ShardScheduler(study: study, completed: completed, outputs: outputs, settings: settings.schedule)
        transfer = ArtifactTransfer(
            stored: artifacts, maxArtifactBytes: settings.maxArtifactBytes, budgetBytes: settings.uploadBudgetBytes)
        badMessages = BadMessageLog(window: settings.badMessageWindow, lines: settings.badMessageLines)
    }

    // MARK: Progress

    public var study: Study { scheduler.study }
    /// Every shard done, quarantined or behind a quarantined job, and every result acknowledged.
    public var isFinished: Bool { scheduler.isFinished }
    public var pointsDone: Int { scheduler.pointsDone }
    public var pointsTotal: Int { scheduler.pointsTotal }
    public var pointsThisRun: Int { scheduler.pointsThisRun }
    public var workersAlive: Int { registry.count }
    public var leasesOutstanding: Int { scheduler.leasesOutstanding }
    public var quarantine: [(job: String, shard: Int, points: Range<Int>, reasons: [String])] { scheduler.quarantine }
    public var blockedJobs: [(job: String, because: String)] { scheduler.blockedJobs }
    public var quarantinedWorkers: [String: String] { scheduler.quarantinedWorkers }
    public var outputs: [String: String] { scheduler.outputs }
    public var verification: Verification.Tally { scheduler.verification }
    public var unverifiable: Int { scheduler.unverifiable }

    /// Whether workers that joined have yet to say BYE after DONE.
    public var awaitingGoodbyes: Bool {
        if case .finishing = state { return true }
        return false
    }

    // MARK: Events

    /// A message from `peer` (the ROUTER routing id) at time `now`.
    public mutating func receive(peer: Data, frames: [Data], now: Double) -> [Action] {
        var actions = handle(peer: peer, frames: frames, now: now)
        // Once the sweep is over, a worker that speaks hears DONE (once per connection): one
        // that was reconnecting when `finish()` spoke, or one that joins late.
        if registry[peer] != nil, tellDone(peer) { actions.append(.send(peer: peer, WireMessage(.done))) }
        return actions
    }

    /// After the work is done: whether `peer` is yet to hear DONE on this connection (it is
    /// marked as told).
    private mutating func tellDone(_ peer: Data) -> Bool {
        switch state {
        case .running: return false
        case .finishing(var told, let yetToLeave):
            guard told.insert(peer).inserted else { return false }
            state = .finishing(told: told, yetToLeave: yetToLeave)
        case .finished(var told):
            guard told.insert(peer).inserted else { return false }
            state = .finished(told: told)
        }
        return true
    }

    private mutating func handle(peer: Data, frames: [Data], now: Double) -> [Action] {
        do throws(ProtocolError) {
            // A worker's headers are a few fields: a large one is refused before it is parsed.
            let message = try WireMessage(frames: frames, maxHeader: 64 << 10)
            if message.command == .hello { return try hello(peer: peer, message.decode(HelloHeader.self), now: now) }
            guard let connection = registry[peer] else {
                return refuse(
                    peer, ProtocolError(.authority, "\(message.command.rawValue) from a peer that has not said HELLO"),
                    reason: "unknown worker: say HELLO first", now: now)
            }
            registry.heard(peer, now: now)
            let taker = connection.number
            switch message.command {
            case .heartbeat:
                if let lease = try message.decode(HeartbeatHeader.self).computing {
                    scheduler.computing(lease, by: taker, now: now)
                }
                return []
            case .result:
                return try result(
                    peer, connection, message.decode(ResultHeader.self), values: message.binary[0], now: now)
                    + dispatch(now: now)
            case .fail:
                return try fail(connection, message.decode(FailHeader.self), now: now) + dispatch(now: now)
            case .bye:
                left(connection.name)
                return retire(peer, reason: .bye) + dispatch(now: now)
            case .put:
                return try transfer.put(
                    peer: peer, message.decode(PutHeader.self), chunk: message.binary[0],
                    makers: scheduler.artifactLeases(of: taker), worker: connection.label)
            case .fetch:
                return transfer.fetch(peer: peer, try message.decode(FetchHeader.self))
            default:
                throw ProtocolError(.envelope, "\(message.command.rawValue) is a command only a coordinator sends")
            }
        } catch {
            return refuse(peer, error, reason: nil, now: now)
        }
    }

    /// A worker named `name` said BYE.
    private mutating func left(_ name: String) {
        switch state {
        case .running(var joined):
            joined.remove(name)
            state = .running(joined: joined)
        case .finishing(let told, var yetToLeave):
            yetToLeave.remove(name)
            state = yetToLeave.isEmpty ? .finished(told: told) : .finishing(told: told, yetToLeave: yetToLeave)
        case .finished: break
        }
    }

    /// A message that breaks the protocol: DISCONNECT with the sentence, the sender retired
    /// (its leases go back to the queue, not counted against their shards), and an event
    /// within the bad-message rate limit.
    mutating func refuse(_ peer: Data, _ error: ProtocolError, reason: String?, now: Double) -> [Action] {
        let label = registry[peer]?.label ?? LogText.peer(peer)
        var actions: [Action] = []
        if badMessages.admit(label, now: now) {
            actions.append(.event(.messageRefused(peer: label, error: error.description)))
        }
        if registry[peer] != nil { actions += retire(peer, reason: nil) }
        actions.append(.send(peer: peer, DisconnectHeader(reason: reason ?? error.description).message()))
        return actions
    }

    /// `event` if the membership budget allows it; nothing (counted) otherwise.
    mutating func membership(_ event: CoordinatorEvent, now: Double) -> [Action] {
        if membershipLogged == 0 && membershipUnlogged == 0 { membershipSince = now }
        guard membershipLogged < settings.membershipLines else {
            membershipUnlogged += 1
            return []
        }
        membershipLogged += 1
        return [.event(event)]
    }

    private mutating func hello(peer: Data, _ hello: HelloHeader, now: Double) -> [Action] {
        let label = LogText.escaped(hello.worker, limit: WireLimits.workerName)
        let host = hello.host.map { LogText.escaped($0, limit: 64) } ?? "?"
        let identity = "\(label)@\(host):\(hello.pid ?? 0)"
        var actions: [Action] = []
        if let why = scheduler.quarantinedWorkers[identity] {
            if badMessages.admit(label, now: now) { actions.append(.event(.quarantinedHello(identity: identity))) }
            if registry[peer] != nil { actions += retire(peer, reason: nil) }
            return actions + [
                .send(peer: peer, DisconnectHeader(reason: "this worker is quarantined: \(why)", quarantined: true).message())
            ]
        }
        let welcome = WelcomeHeader(
            epoch: settings.epoch, heartbeatMilliseconds: Int((settings.heartbeatInterval * 1000).rounded())
        ).message()
        if registry[peer] != nil {
            // A worker says HELLO each second until a WELCOME reaches it, and a new connection
            // has a new routing id: a second HELLO here is that repeat. Answered again, with
            // the worker's leases kept (retiring it would void the tasks already on their way).
            return [.send(peer: peer, welcome)]
        } else if registry.count >= settings.maxWorkers {
            refusedAtLimit += 1
            if refusedAtLimit == 1 {
                refusedSince = now
                actions.append(.event(.workerLimit(worker: label, limit: settings.maxWorkers)))
            }
            return actions + [
                .send(
                    peer: peer,
                    DisconnectHeader(reason: "the coordinator holds its limit of \(settings.maxWorkers) workers").message())
            ]
        }
        let number = registry.add(peer, name: hello.worker, label: label, identity: identity, now: now)
        _ = scheduler.join(
            number, name: hello.worker, identity: identity, label: label, slots: hello.slots,
            kinds: hello.kinds.map(Set.init), exact: hello.version == WireMessage.version)
        if case .running(var joined) = state {
            joined.insert(hello.worker)
            state = .running(joined: joined)
        }
        let kinds = hello.kinds.map { $0.sorted().map { LogText.escaped($0, limit: 32) } }
        actions += membership(
            .workerJoined(worker: label, host: host, pid: hello.pid ?? 0, slots: hello.slots, kinds: kinds), now: now)
        actions.append(.send(peer: peer, welcome))
        return actions + dispatch(now: now)
    }

    private mutating func result(
        _ peer: Data, _ connection: WorkerRegistry.Connection, _ header: ResultHeader, values: Data, now: Double
    ) throws(ProtocolError) -> [Action] {
        let jobs = scheduler.study.jobs
        guard header.jobIndex < jobs.count else {
            throw .field(.result, "job_index", "must be below \(jobs.count), got \(header.jobIndex)")
        }
        let j = header.jobIndex, job = jobs[j]
        guard header.job == job.id else {
            throw .field(.result, "job", "is not the id of job \(j)")
        }
        guard header.shard < job.shards.count else {
            throw .field(.result, "shard", "must be below \(job.shards.count), got \(header.shard)")
        }
        let key = ShardScheduler.ShardKey(job: j, shard: header.shard)
        let holding = scheduler.holding(header.lease, by: connection.number)
        if holding == .never {
            throw ProtocolError(.authority, "RESULT for lease \(header.lease), which this worker does not hold")
        }
        if case .held(let leased) = holding, leased != key {
            throw ProtocolError(.authority, "RESULT for lease \(header.lease) names another shard than it was issued for")
        }
        guard let metrics = [Double](littleEndian: values) else {
            throw ProtocolError(.values, "RESULT values are \(values.count) bytes, not a whole number of Float64")
        }
        if let problem = OutputCheck.problem(metrics, job: job, points: job.shards[header.shard].count) {
            let error = ProtocolError(.values, "RESULT for shard \(header.shard) of \(job.name) \(problem)")
            guard case .held = holding else { throw error }
            // Refused values also count against the shard, from this worker: values refused
            // again and again (a worker of another version, a bad build) quarantine the shard
            // instead of having it issued to every worker that rejoins, forever.
            let failed = scheduler.fail(
                lease: header.lease, by: connection.number, reason: "its values were refused: \(problem)")
            return effects(failed, now: now) + refuse(peer, error, reason: nil, now: now)
        }
        let makesArtifact = job.definition.kind.makesArtifact
        if makesArtifact != (header.artifact != nil) {
            throw .field(
                .result, "artifact", makesArtifact ? "is missing for a job that makes one" : "is set for a job that makes none")
        }
        guard holding != .revoked else {
            return effects(scheduler.late(lease: header.lease, by: connection.number, key: key, metrics: metrics), now: now)
        }
        if let artifact = header.artifact, !transfer.stored.contains(artifact) {
            return effects(
                scheduler.fail(
                    lease: header.lease, by: connection.number, reason: "named artifact \(artifact.prefix(12)) it never uploaded"),
                now: now)
        }
        return effects(
            scheduler.deliver(
                lease: header.lease, by: connection.number, metrics: metrics, artifact: header.artifact,
                seconds: header.seconds), now: now)
    }

    private mutating func fail(_ connection: WorkerRegistry.Connection, _ header: FailHeader, now: Double)
        throws(ProtocolError) -> [Action]
    {
        switch scheduler.holding(header.lease, by: connection.number) {
        case .never:
            throw ProtocolError(.authority, "FAIL for lease \(header.lease), which this worker does not hold")
        case .revoked:
            scheduler.forget(header.lease, by: connection.number)
            return []
        case .held:
            let limit = header.declined == true ? 300 : 500
            return effects(
                scheduler.fail(
                    lease: header.lease, by: connection.number, reason: LogText.escaped(header.error, limit: limit),
                    declined: header.declined == true), now: now)
        }
    }

    /// Removes a connection; its leases go back (the scheduler's rules). `reason` nil: not
    /// logged (the caller says why).
    mutating func retire(_ peer: Data, reason: CoordinatorEvent.LeaveReason?, died: Bool = false, now: Double? = nil)
        -> [Action]
    {
        guard let gone = registry.remove(peer) else { return [] }
        var actions = transfer.left(peer)
        untell(peer)
        if let reason {
            actions += membership(.workerLeft(worker: gone.label, reason: reason), now: now ?? gone.lastHeard)
        }
        return actions + effects(scheduler.leave(gone.number, died: died), now: now ?? gone.lastHeard)
    }

    /// A connection gone: a new one from the same routing id hears DONE again.
    private mutating func untell(_ peer: Data) {
        switch state {
        case .running: break
        case .finishing(var told, let yetToLeave):
            told.remove(peer)
            state = .finishing(told: told, yetToLeave: yetToLeave)
        case .finished(var told):
            told.remove(peer)
            state = .finished(told: told)
        }
    }

    /// Turns the scheduler's effects into actions: grants become TASKs, cancels CANCELs, evictions
    /// DISCONNECTs.
    mutating func effects(_ effects: [ScheduleEffect], now: Double) -> [Action] {
        var actions: [Action] = []
        for effect in effects {
            switch effect {
            case .grant(let grant):
                guard let peer = registry.peer(grant.taker) else { continue }
                registry.sent(peer, now: now)
                actions.append(.send(peer: peer, task(grant, peer: peer).message()))
            case .cancel(let taker, let lease):
                guard let peer = registry.peer(taker) else { continue }
                actions.append(.send(peer: peer, CancelHeader(lease: lease).message()))
            case .acknowledge(let taker, let lease):
                guard let peer = registry.peer(taker) else { continue }
                registry.sent(peer, now: now)
                actions.append(.send(peer: peer, AckHeader(lease: lease).message()))
            case .evict(let taker, let reason):
                guard let peer = registry.peer(taker), registry.remove(peer) != nil else { continue }
                actions += transfer.left(peer)
                untell(peer)
                actions.append(
                    .send(peer: peer, DisconnectHeader(reason: "this worker is quarantined: \(reason)", quarantined: true).message()))
            case .journal(let record): actions.append(.journal(record))
            case .revoke(let record): actions.append(.revoke(record))
            case .event(let event): actions.append(.event(.schedule(event)))
            }
        }
        return actions
    }

    /// The TASK for a grant: the job's definition and spec go with the first task of a job a
    /// worker sees.
    private mutating func task(_ grant: ShardScheduler.Grant, peer: Data) -> TaskHeader {
        let study = scheduler.study
        let job = study.jobs[grant.key.job], range = job.shards[grant.key.shard]
        var header = TaskHeader(
            lease: grant.lease, job: job.id, jobIndex: grant.key.job, shard: grant.key.shard, start: range.lowerBound,
            end: range.upperBound, deadlineMilliseconds: Int((settings.leaseSeconds * 1000).rounded()))
        var inputs: [String: String] = [:]
        for d in job.dependencies {
            if let hash = scheduler.outputs[study.jobs[d].name] { inputs[study.jobs[d].name] = hash }
        }
        if !inputs.isEmpty { header.inputs = inputs }
        if registry.learn(peer, job: grant.key.job) {
            header.definition = job.definition
            header.spec = spec
            header.base = base
            if !fileArtifacts.isEmpty { header.files = fileArtifacts }
        }
        return header
    }

    mutating func dispatch(now: Double) -> [Action] {
        effects(scheduler.dispatch(now: now), now: now)
    }

    // MARK: Artifacts

    /// The disk's answer to a `.write`.
    public mutating func wrote(peer: Data, artifact: String, _ outcome: WriteOutcome) -> [Action] {
        transfer.wrote(peer: peer, artifact: artifact, outcome, worker: registry[peer]?.label ?? LogText.peer(peer))
    }

    /// The disk's answer to a `.read`.
    public mutating func read(peer: Data, artifact: String, offset: Int, _ outcome: ReadOutcome) -> [Action] {
        transfer.read(peer: peer, artifact: artifact, offset: offset, outcome)
    }

    // MARK: Time and the journal

    /// Tells every worker the sweep is over; from now on, so is every worker that speaks.
    public mutating func finish() -> [Action] {
        guard case .running(let joined) = state else { return [] }
        let told = Set(registry.routingIds)
        state = joined.isEmpty ? .finished(told: told) : .finishing(told: told, yetToLeave: joined)
        return registry.connections.sorted { $0.value.name < $1.value.name }.map { .send(peer: $0.key, WireMessage(.done)) }
    }

    /// The journal holds every record handed out so far: acknowledge their results.
    public mutating func durable(now: Double) -> [Action] {
        Self.byPeer(effects(scheduler.durable(), now: now) + dispatch(now: now))
    }

    /// The same actions with each peer's messages together (its ACK, then the TASK its freed
    /// credit bought), in the order each peer first appears; the rest keep their place. A
    /// peer's messages keep their order, and there is no order between peers, so this changes
    /// nothing a worker sees but lets the socket carry both in one write.
    static func byPeer(_ actions: [Action]) -> [Action] {
        var order: [Data] = []
        var messages: [Data: [Action]] = [:]
        var rest: [Action] = []
        for action in actions {
            guard case .send(let peer, _) = action else {
                rest.append(action)
                continue
            }
            if messages[peer] == nil { order.append(peer) }
            messages[peer, default: []].append(action)
        }
        guard order.count > 1 else { return actions }
        return rest + order.flatMap { messages[$0] ?? [] }
    }

    /// The HEARTBEAT every worker gets, encoded once per epoch.
    mutating func heartbeatMessage() -> WireMessage {
        if let cached = heartbeatCache, cached.epoch == settings.epoch { return cached.message }
        let message = HeartbeatHeader(epoch: settings.epoch).message()
        heartbeatCache = (settings.epoch, message)
        return message
    }

    /// Heartbeats, dead workers, expired leases, log summaries, then new work.
    public mutating func tick(now: Double) -> [Action] {
        var actions: [Action] = []
        let beat = heartbeatMessage()
        let (silent, due) = registry.check(
            now: now, deadAfter: settings.deadAfter, heartbeat: settings.heartbeatInterval)
        for peer in due { actions.append(.send(peer: peer, beat)) }
        for (peer, seconds) in silent {
            let whole = Int(exactly: seconds.rounded(.down)) ?? 0
            actions += retire(peer, reason: .silent(seconds: whole), died: true, now: now)
        }
        actions += effects(scheduler.expire(now: now), now: now)
        let window = Int(settings.badMessageWindow)
        for summary in badMessages.summaries(now: now) {
            actions.append(.event(.badMessagesCounted(peer: summary.peer, count: summary.count, seconds: window)))
        }
        if membershipLogged > 0 && now - membershipSince >= settings.badMessageWindow {
            if membershipUnlogged > 0 { actions.append(.event(.membershipCounted(count: membershipUnlogged, seconds: window))) }
            (membershipLogged, membershipUnlogged) = (0, 0)
        }
        if refusedAtLimit > 0 && now - refusedSince >= settings.badMessageWindow {
            if refusedAtLimit > 1 {
                actions.append(.event(.moreAtWorkerLimit(count: refusedAtLimit - 1, limit: settings.maxWorkers)))
            }
            refusedAtLimit = 0
        }
        return actions + dispatch(now: now)
    }
}
