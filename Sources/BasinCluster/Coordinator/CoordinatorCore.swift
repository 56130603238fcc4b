import BasinSweep
import DequeModule
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

        public init() {}
    }

    public enum Action: Equatable {
        case send(peer: Data, WireMessage)
        case journal(Journal.ShardDone)
        /// A journaled result found false: void it (its shard is computed again).
        case revoke(Journal.ShardRevoked)
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
        /// A verification copy of a shard that is already done.
        var verifies = false
    }

    /// A shard being verified: the result stored, and a disagreeing one awaiting a third.
    struct Verification {
        struct Answer {
            var identity: String
            var label: String
            var metrics: [Double]
            var artifact: String?
            var exact = true
        }

        /// Relative and absolute tolerance when either answer is not from a Basin worker.
        static let relativeTolerance = 1e-4
        static let absoluteTolerance = 1e-6

        /// Equal bit for bit (values and artifact) when both come from Basin workers; else
        /// every value within the tolerance (NaN where the other is NaN).
        static func agree(_ a: Answer, _ b: Answer) -> Bool {
            if a.exact && b.exact {
                return a.metrics.map(\.bitPattern) == b.metrics.map(\.bitPattern) && a.artifact == b.artifact
            }
            guard a.metrics.count == b.metrics.count else { return false }
            return zip(a.metrics, b.metrics).allSatisfy { x, y in
                (x.isNaN && y.isNaN) || x == y
                    || abs(x - y) <= absoluteTolerance + relativeTolerance * max(abs(x), abs(y))
            }
        }
        var first: Answer
        var second: Answer?
        /// Identities that computed it: the next copy goes to another.
        var workers: Set<String>
    }

    /// What verification found this run.
    public struct VerificationTally: Sendable, Equatable {
        public var selected = 0
        public var matched = 0
        public var mismatched = 0
        /// Shards whose stored result was voided because a worker lied.
        public var revoked = 0
        public var liars: [String] = []
    }

    struct Worker {
        /// The name it gave (journaled with its results) and the same, escaped, for log lines.
        var name: String
        var label: String
        /// Name, host and pid: what quarantine and distinct-worker counts go by.
        var identity: String
        var slots: Int
        var lastHeard: Double
        var lastSent: Double
        var leases: Set<Int> = []
        var knownJobs: Set<Int> = []
        var awaitingAck: Set<Int> = []
        /// Job kinds this worker evaluates (HELLO `kinds`); nil: every kind.
        var kinds: Set<String>?
        /// A Basin worker (HELLO `version` BASIN/1), whose results are bit for bit those of
        /// any other; results from other workers (PyTorch) are verified within a tolerance.
        var exact = true
        /// The work version at which it last found nothing it could take (see `dispatch`).
        var starved: Int?
        /// Jobs it declined (FAIL with `declined`): not offered to it again.
        var declined: Set<Int> = []
        /// Leases taken from it while it may still be computing them (done elsewhere, a shard
        /// quarantined): a RESULT or FAIL for one is a race, not a lie. The most recent 64.
        var revoked: [Int] = []

        mutating func revoke(_ id: Int) {
            leases.remove(id)
            revoked.append(id)
            if revoked.count > 64 { revoked.removeFirst(revoked.count - 64) }
        }
    }

    /// What the coordinator has seen of one worker identity across its connections.
    struct Record {
        var successes = 0
        /// FAILs on shards another worker then finished.
        var refuted = 0
        /// Times it vanished holding leases since its last result.
        var vanishings = 0
    }

    public let study: Study
    let spec: JSONValue
    let base: String
    public var settings: Settings
    var done: [[Bool]]
    /// Shards done per job, points done, and shards neither done nor quarantined: kept as
    /// `done` and `quarantined` change, so progress and the end are O(1) questions.
    var doneCount: [Int]
    var pointsDoneCount = 0
    var open = 0
    var queue = ShardQueue<ShardKey>()
    var leases: [Int: Lease] = [:]
    /// Lease ids by shard (a shard has more than one while a copy is out).
    var leasesByShard: [ShardKey: [Int]] = [:]
    /// Issue order of leases, for the oldest straggler (ids of ended leases are skipped).
    var leaseOrder = Deque<Int>()
    var verifyLeaseCount = 0
    var workers: [Data: Worker] = [:]
    var heartbeatCache: (epoch: Int, message: WireMessage)?
    /// Bumped when leases are issued and workers leave (what stragglers and retries depend on).
    var leaseVersion = 0
    var workVersion: Int { queue.version &+ verifyQueue.version &* 31 &+ leaseVersion &* 1009 }
    /// Workers with free credit: the only ones dispatch looks at.
    var hungry: Set<Data> = []
    /// Workers (by name) that joined this run and have not said BYE: once the sweep is done the
    /// coordinator stays a moment for them to hear DONE.
    public private(set) var yetToLeave: Set<String> = []
    /// Whether `finish()` has spoken, and the connections it or a later message told DONE.
    var over = false
    var toldDone: Set<Data> = []
    /// Evidence against each shard: the worker identities it failed on, with their reasons.
    var failures: [ShardKey: [(identity: String, reason: String)]] = [:]
    var quarantined: Set<ShardKey> = []
    var records: [String: Record] = [:]
    /// Worker identities quarantined, with the reason.
    public private(set) var quarantinedWorkers: [String: String] = [:]
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
    /// Shards awaiting a verification copy, and the copies' queue.
    var verifying: [ShardKey: Verification] = [:]
    var verifyQueue = ShardQueue<ShardKey>()
    public private(set) var verification = VerificationTally()
    /// Which identity delivered each stored result this run, and the shards each delivered.
    var storedBy: [ShardKey: String] = [:]
    var delivered: [String: [ShardKey]] = [:]
    /// Shards verification cannot reach: every connected worker already computed them.
    public var unverifiable: Int {
        verifying.filter { entry in !workers.values.contains { !entry.value.workers.contains($0.identity) } }.count
    }
    var badMessages: BadMessageLog
    /// Join and leave lines this window, and when it started: at most `membershipLines` a
    /// window, the rest counted, so peers that join and leave in a loop cannot flood the log.
    var membershipLogged = 0
    var membershipUnlogged = 0
    var membershipSince = 0.0
    let membershipLines = 300

    /// `line` if the membership budget allows it; nil (counted) otherwise.
    mutating func membership(_ line: String, now: Double) -> String? {
        if membershipLogged == 0 && membershipUnlogged == 0 { membershipSince = now }
        guard membershipLogged < membershipLines else {
            membershipUnlogged += 1
            return nil
        }
        membershipLogged += 1
        return line
    }

    /// HELLOs refused at the worker limit since it was last logged, and when that was.
    var refusedAtLimit = 0
    var refusedSince = 0.0

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
        badMessages = BadMessageLog(window: settings.badMessageWindow, lines: settings.badMessageLines)
        done = study.jobs.map { job in job.shards.indices.map { completed[job.id]?.contains($0) ?? false } }
        doneCount = done.map { $0.filter { $0 }.count }
        for (j, job) in study.jobs.enumerated() {
            for (s, range) in job.shards.enumerated() {
                if done[j][s] { pointsDoneCount += range.count } else { open += 1 }
            }
        }
        waiting = Set(study.jobs.indices.filter { !ready($0) })
        // Fair across jobs: shard i of every job before shard i + 1 of any.
        let longest = study.jobs.map(\.shards.count).max() ?? 0
        for i in 0..<longest {
            for (j, job) in study.jobs.enumerated() where i < job.shards.count && !done[j][i] && !waiting.contains(j) {
                queue.append(ShardKey(job: j, shard: i))
            }
        }
    }

    func complete(_ j: Int) -> Bool { doneCount[j] == done[j].count }

    /// Marks a shard done or not, keeping the counts.
    mutating func setDone(_ key: ShardKey, _ value: Bool) {
        guard done[key.job][key.shard] != value else { return }
        done[key.job][key.shard] = value
        let points = study.jobs[key.job].shards[key.shard].count
        doneCount[key.job] += value ? 1 : -1
        pointsDoneCount += value ? points : -points
        if !quarantined.contains(key) { open += value ? -1 : 1 }
    }

    mutating func setQuarantined(_ key: ShardKey, _ value: Bool) {
        if value {
            if quarantined.insert(key).inserted && !done[key.job][key.shard] { open -= 1 }
        } else if quarantined.remove(key) != nil && !done[key.job][key.shard] {
            open += 1
        }
    }

    /// Adds a lease to the books (and the worker's).
    mutating func addLease(_ lease: Lease) {
        leases[lease.id] = lease
        leasesByShard[lease.key, default: []].append(lease.id)
        leaseOrder.append(lease.id)
        if lease.verifies { verifyLeaseCount += 1 }
        leaseVersion &+= 1
        workers[lease.peer]?.leases.insert(lease.id)
        credit(lease.peer)
    }

    /// Takes a lease off the books; the worker's credit is freed.
    @discardableResult
    mutating func dropLease(_ id: Int) -> Lease? {
        guard let lease = leases.removeValue(forKey: id) else { return nil }
        leasesByShard[lease.key]?.removeAll { $0 == id }
        if leasesByShard[lease.key]?.isEmpty == true { leasesByShard[lease.key] = nil }
        if lease.verifies { verifyLeaseCount -= 1 }
        workers[lease.peer]?.leases.remove(id)
        credit(lease.peer)
        while let first = leaseOrder.first, leases[first] == nil { leaseOrder.removeFirst() }
        return lease
    }

    /// Whether a live (unexpired) lease of `key` is out.
    func leased(_ key: ShardKey) -> Bool {
        (leasesByShard[key] ?? []).contains { leases[$0]?.expired == false }
    }

    /// Keeps `hungry` true to a worker's credit.
    mutating func credit(_ peer: Data) {
        if let w = workers[peer], w.leases.count + w.awaitingAck.count < w.slots {
            hungry.insert(peer)
        } else {
            hungry.remove(peer)
        }
    }

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
        return blocked.keys.sorted().map { (study.jobs[$0].name, blocked[$0] ?? "") }
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

    /// Every shard done, quarantined or behind a quarantined job, every result acknowledged,
    /// and no verification copy out or takeable.
    public var isFinished: Bool {
        guard pendingAcks.isEmpty, verifyLeaseCount == 0 else { return false }
        var left = open
        if left > 0 && !quarantined.isEmpty {
            let blocked = Set(blockedJobs.map(\.job))
            for (j, job) in study.jobs.enumerated() where blocked.contains(job.name) {
                left -= job.shards.indices.filter { !done[j][$0] && !quarantined.contains(ShardKey(job: j, shard: $0)) }
                    .count
            }
        }
        // A copy a connected worker could take holds the end back.
        return left == 0 && (verifying.isEmpty || verifying.count <= unverifiable)
    }

    public var pointsDone: Int { pointsDoneCount }

    public var pointsTotal: Int { study.jobs.reduce(0) { $0 + $1.pointCount } }
    public var workersAlive: Int { workers.count }
    public var leasesOutstanding: Int { leases.count }

    /// Quarantined shards with the reasons they failed.
    public var quarantine: [(job: String, shard: Int, points: Range<Int>, reasons: [String])] {
        quarantined.sorted { ($0.job, $0.shard) < ($1.job, $1.shard) }.map { key in
            (
                study.jobs[key.job].name, key.shard, study.jobs[key.job].shards[key.shard],
                (failures[key] ?? []).map(\.reason)
            )
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
        do throws(ProtocolError) {
            // A worker's headers are a few fields: a large one is refused before it is parsed.
            let message = try WireMessage(frames: frames, maxHeader: 64 << 10)
            if message.command == .hello { return try hello(peer: peer, message.decode(HelloHeader.self), now: now) }
            guard workers[peer] != nil else {
                return refuse(
                    peer, ProtocolError(.authority, "\(message.command.rawValue) from a peer that has not said HELLO"),
                    reason: "unknown worker: say HELLO first", now: now)
            }
            workers[peer]?.lastHeard = now
            switch message.command {
            case .heartbeat:
                heartbeat(peer: peer, try message.decode(HeartbeatHeader.self), now: now)
                return []
            case .result:
                return try result(peer: peer, message.decode(ResultHeader.self), values: message.binary[0], now: now)
                    + dispatch(now: now)
            case .fail:
                return try fail(peer: peer, message.decode(FailHeader.self)) + dispatch(now: now)
            case .bye:
                if let name = workers[peer]?.name { yetToLeave.remove(name) }
                return retire(peer, reason: "said BYE") + dispatch(now: now)
            case .put:
                return try put(peer: peer, message.decode(PutHeader.self), chunk: message.binary[0])
            case .fetch:
                return fetch(peer: peer, try message.decode(FetchHeader.self))
            default:
                throw ProtocolError(.envelope, "\(message.command.rawValue) is a command only a coordinator sends")
            }
        } catch {
            return refuse(peer, error, reason: nil, now: now)
        }
    }

    /// A message that breaks the protocol: DISCONNECT with the sentence, the sender retired
    /// (its leases go back to the queue, not counted against their shards), and a log line
    /// within the bad-message rate limit.
    mutating func refuse(_ peer: Data, _ error: ProtocolError, reason: String?, now: Double) -> [Action] {
        let label = workers[peer]?.label ?? LogText.peer(peer)
        var actions: [Action] = []
        if badMessages.admit(label, now: now) {
            actions.append(.log(.warning, "refused a message from \(label): \(error); disconnected"))
        }
        if workers[peer] != nil { actions += retire(peer, reason: "broke the protocol (\(error))", logged: false) }
        let text = reason ?? error.description
        actions.append(.send(peer: peer, DisconnectHeader(reason: text).message()))
        return actions
    }

    private mutating func hello(peer: Data, _ hello: HelloHeader, now: Double) -> [Action] {
        let label = LogText.escaped(hello.worker, limit: WireLimits.workerName)
        let host = hello.host.map { LogText.escaped($0, limit: 64) } ?? "?"
        let identity = "\(label)@\(host):\(hello.pid ?? 0)"
        if let why = quarantinedWorkers[identity] {
            var actions: [Action] = []
            if badMessages.admit(label, now: now) {
                actions.append(.log(.warning, "refused HELLO from quarantined worker \(identity)"))
            }
            if workers[peer] != nil { actions += retire(peer, reason: "quarantined", logged: false) }
            return actions + [
                .send(peer: peer, DisconnectHeader(reason: "this worker is quarantined: \(why)", quarantined: true).message())
            ]
        }
        var actions: [Action] = []
        if workers[peer] != nil {
            actions += retire(peer, reason: "said HELLO again")
        } else if workers.count >= settings.maxWorkers {
            refusedAtLimit += 1
            if refusedAtLimit == 1 {
                refusedSince = now
                actions.append(
                    .log(
                        .warning,
                        "refused HELLO from \(label): the coordinator holds its limit of \(settings.maxWorkers) workers (further refusals are counted once a minute)"
                    ))
            }
            return actions + [
                .send(
                    peer: peer,
                    DisconnectHeader(reason: "the coordinator holds its limit of \(settings.maxWorkers) workers").message())
            ]
        }
        let kinds = hello.kinds.map(Set.init)
        workers[peer] = Worker(
            name: hello.worker, label: label, identity: identity, slots: hello.slots, lastHeard: now, lastSent: now,
            kinds: kinds, exact: hello.version == WireMessage.version)
        credit(peer)
        yetToLeave.insert(hello.worker)
        let only = kinds.map { ", \($0.sorted().map { LogText.escaped($0, limit: 32) }.joined(separator: "/")) jobs only" } ?? ""
        if let line = membership("worker \(label) joined (host \(host), pid \(hello.pid ?? 0), \(hello.slots) slots\(only))", now: now) {
            actions.append(.log(.info, line))
        }
        actions.append(
            .send(
                peer: peer,
                WelcomeHeader(
                    epoch: settings.epoch, heartbeatMilliseconds: Int((settings.heartbeatInterval * 1000).rounded())
                ).message()))
        return actions + dispatch(now: now)
    }

    private mutating func heartbeat(peer: Data, _ header: HeartbeatHeader, now: Double) {
        // A training, fitting, alignment or Hessian job is one long shard: while its worker
        // says it is computing it, its deadline moves on (grid shards are a few seconds and
        // keep theirs, so a slow worker's shard is re-issued).
        if let id = header.computing, let lease = leases[id], lease.peer == peer, !lease.expired,
            !study.jobs[lease.key.job].isGrid
        {
            leases[id]?.deadline = max(lease.deadline, now + settings.leaseSeconds)
        }
    }

    /// Whether `id` is a lease `peer` holds; nil when it was revoked from it (a race, to drop),
    /// and a `ProtocolError` when it never held it.
    private func held(_ id: Int, by peer: Data, command: WireMessage.Command) throws(ProtocolError) -> Lease? {
        if let lease = leases[id], lease.peer == peer { return lease }
        if workers[peer]?.revoked.contains(id) == true { return nil }
        throw ProtocolError(.authority, "\(command.rawValue) for lease \(id), which this worker does not hold")
    }

    private mutating func result(peer: Data, _ header: ResultHeader, values: Data, now: Double) throws(ProtocolError)
        -> [Action]
    {
        guard header.jobIndex < study.jobs.count else {
            throw .field(.result, "job_index", "must be below \(study.jobs.count), got \(header.jobIndex)")
        }
        let j = header.jobIndex, job = study.jobs[j]
        guard header.job == job.id else {
            throw .field(.result, "job", "is not the id of job \(j)")
        }
        guard header.shard < job.shards.count else {
            throw .field(.result, "shard", "must be below \(job.shards.count), got \(header.shard)")
        }
        let key = ShardKey(job: j, shard: header.shard)
        let lease = try held(header.lease, by: peer, command: .result)
        if let lease, lease.key != key {
            throw ProtocolError(
                .authority, "RESULT for lease \(header.lease) names another shard than it was issued for")
        }
        guard let metrics = [Double](littleEndian: values) else {
            throw ProtocolError(.values, "RESULT values are \(values.count) bytes, not a whole number of Float64")
        }
        if let problem = OutputCheck.problem(metrics, job: job, points: job.shards[header.shard].count) {
            throw ProtocolError(.values, "RESULT for shard \(header.shard) of \(job.name) \(problem)")
        }
        let makesArtifact = job.definition.kind.makesArtifact
        if makesArtifact != (header.artifact != nil) {
            throw .field(
                .result, "artifact", makesArtifact ? "is missing for a job that makes one" : "is set for a job that makes none")
        }
        guard let worker = workers[peer] else { return [] }
        if let artifact = header.artifact, !store.contains(artifact) {
            return release(
                header.lease, failure: "\(worker.label) named artifact \(artifact.prefix(12)) it never uploaded",
                by: worker.identity)
        }
        var actions: [Action] = []
        if lease != nil { dropLease(header.lease) }
        if let lease, lease.verifies {
            let answer = Verification.Answer(
                identity: worker.identity, label: worker.label, metrics: metrics, artifact: header.artifact,
                exact: worker.exact)
            actions += verified(key, answer, now: now)
            actions.append(.send(peer: peer, AckHeader(lease: header.lease).message()))
            workers[peer]?.lastSent = now
            return actions
        }
        if done[j][header.shard] || lease == nil {
            // A copy: a straggler's, or one whose lease was revoked as another finished first
            // (acknowledged, compared when the first is known, never stored).
            if let first = finished[key], first != metrics {
                actions.append(
                    .log(
                        .error,
                        "DUPLICATE MISMATCH: shard \(header.shard) of \(job.name) from \(worker.label) differs bit for bit from the first result; the first is kept"
                    ))
            }
            if lease == nil { workers[peer]?.revoked.removeAll { $0 == header.lease } }
            actions.append(.send(peer: peer, AckHeader(lease: header.lease).message()))
            workers[peer]?.lastSent = now
            return actions
        }
        setDone(key, true)
        finished[key] = metrics
        storedBy[key] = worker.identity
        delivered[worker.identity, default: []].append(key)
        pointsThisRun += job.shards[header.shard].count
        if settings.verify > 0, Self.selected(job: job.id, shard: header.shard, fraction: settings.verify) {
            verification.selected += 1
            verifying[key] = Verification(
                first: .init(
                    identity: worker.identity, label: worker.label, metrics: metrics, artifact: header.artifact,
                    exact: worker.exact),
                workers: [worker.identity])
            verifyQueue.append(key)
        }
        records[worker.identity, default: Record()].successes += 1
        records[worker.identity]?.vanishings = 0
        if let artifact = header.artifact { outputs[job.name] = artifact }
        queue.remove(key)
        setQuarantined(key, false)
        actions += refute(key, finishedBy: worker.identity)
        let range = job.shards[header.shard]
        actions.append(
            .journal(
                Journal.ShardDone(
                    job: job.id, shard: header.shard, start: range.lowerBound, end: range.upperBound, worker: worker.name,
                    seconds: header.seconds, time: Date().timeIntervalSince1970, metrics: metrics,
                    artifact: header.artifact)))
        workers[peer]?.awaitingAck.insert(header.lease)
        credit(peer)
        pendingAcks.append((peer, header.lease))
        actions += release(readyAfter: j)
        // Other leases of the same shard are now useless.
        for other in leasesByShard[key] ?? [] {
            guard let lease = dropLease(other) else { continue }
            workers[lease.peer]?.revoke(other)
            actions.append(.send(peer: lease.peer, CancelHeader(lease: other).message()))
        }
        return actions
    }

    /// Whether shard `shard` of job `job` is among the seeded fraction that is verified: the
    /// same shards on every run and machine.
    static func selected(job: String, shard: Int, fraction: Double) -> Bool {
        guard fraction > 0 else { return false }
        guard fraction < 1 else { return true }
        let hash = ArtifactStore.hash(Data("verify:\(job):\(shard)".utf8))
        let draw = UInt64(hash.prefix(16), radix: 16) ?? 0
        return Double(draw >> 11) / Double(1 << 53) < fraction
    }

    /// A verification copy's answer. Equal to the stored one: verified. Different: a third
    /// worker decides, and the one that disagreed with the other two is quarantined and every
    /// result it delivered this run is voided and computed again.
    private mutating func verified(_ key: ShardKey, _ answer: Verification.Answer, now: Double) -> [Action] {
        guard var entry = verifying[key] else { return [] }
        let name = "shard \(key.shard) of \(study.jobs[key.job].name)"
        func same(_ a: Verification.Answer, _ b: Verification.Answer) -> Bool { Verification.agree(a, b) }
        guard let second = entry.second else {
            if same(entry.first, answer) {
                verifying[key] = nil
                verification.matched += 1
                return [.log(.debug, "verified \(name): \(answer.label) agrees with \(entry.first.label) bit for bit")]
            }
            verification.mismatched += 1
            entry.second = answer
            entry.workers.insert(answer.identity)
            verifying[key] = entry
            verifyQueue.prepend(key)
            return [
                .log(
                    .error,
                    "VERIFY MISMATCH: \(name) from \(answer.label) differs from \(entry.first.label)'s bit for bit; a third worker decides"
                )
            ]
        }
        verifying[key] = nil
        var actions: [Action] = []
        if same(answer, second) && !same(answer, entry.first) {
            // The stored result was the lie: replace it with the agreeing answer.
            let job = study.jobs[key.job], range = job.shards[key.shard]
            actions.append(
                .revoke(
                    Journal.ShardRevoked(
                        job: job.id, shard: key.shard, digest: Journal.digest(entry.first.metrics),
                        reason: "\(entry.first.identity) disagreed with two workers")))
            actions.append(
                .journal(
                    Journal.ShardDone(
                        job: job.id, shard: key.shard, start: range.lowerBound, end: range.upperBound,
                        worker: answer.label, seconds: 0, time: Date().timeIntervalSince1970, metrics: answer.metrics,
                        artifact: answer.artifact)))
            finished[key] = answer.metrics
            storedBy[key] = answer.identity
            if let artifact = answer.artifact { outputs[job.name] = artifact }
            verification.revoked += 1
            actions += unmask(entry.first.identity, because: "its result for \(name) disagreed with two other workers'")
        } else if same(answer, entry.first) {
            actions += unmask(second.identity, because: "its result for \(name) disagreed with two other workers'")
        } else {
            actions.append(
                .log(.error, "VERIFY: no two of three workers agree on \(name); the first result is kept"))
        }
        return actions
    }

    /// A worker found lying: quarantined, and every other result it delivered this run voided,
    /// so its shards (and the jobs that read what it made) are computed again.
    private mutating func unmask(_ identity: String, because reason: String) -> [Action] {
        guard !verification.liars.contains(identity) else { return [] }
        verification.liars.append(identity)
        var actions = quarantineWorker(identity, reason: reason)
        var voided: [ShardKey] = []
        for key in delivered[identity] ?? [] where storedBy[key] == identity && done[key.job][key.shard] {
            voided.append(key)
        }
        // Jobs that read an artifact it made are voided too, transitively.
        var tainted = Set(voided.filter { study.jobs[$0.job].definition.kind.makesArtifact }.map(\.job))
        var grew = !tainted.isEmpty
        while grew {
            grew = false
            for (j, job) in study.jobs.enumerated() where !tainted.contains(j) && job.dependencies.contains(where: tainted.contains) {
                tainted.insert(j)
                grew = true
            }
        }
        for j in tainted.sorted() {
            for s in study.jobs[j].shards.indices where done[j][s] && !voided.contains(ShardKey(job: j, shard: s)) {
                voided.append(ShardKey(job: j, shard: s))
            }
        }
        for key in voided {
            let job = study.jobs[key.job]
            guard let metrics = finished[key] else { continue }
            actions.append(
                .revoke(
                    Journal.ShardRevoked(
                        job: job.id, shard: key.shard, digest: Journal.digest(metrics),
                        reason: storedBy[key] == identity ? "delivered by \(identity), which failed verification"
                            : "reads the output of a job \(identity) made")))
            setDone(key, false)
            finished[key] = nil
            storedBy[key] = nil
            verifying[key] = nil
            verifyQueue.remove(key)
            pointsThisRun -= job.shards[key.shard].count
            verification.revoked += 1
            if job.definition.kind.makesArtifact { outputs[job.name] = nil }
        }
        // Jobs whose inputs are gone wait for them again; the rest are queued at once.
        for j in Set(voided.map(\.job)).sorted() where !ready(j) { waiting.insert(j) }
        for key in voided where !waiting.contains(key.job) { queue.prepend(key) }
        let stalled = waiting
        queue.removeAll { stalled.contains($0.job) }
        if !voided.isEmpty {
            actions.append(
                .log(.error, "voided \(voided.count) result(s) of \(identity) (and of jobs that read its outputs); computing them again"))
        }
        return actions
    }

    private mutating func fail(peer: Data, _ header: FailHeader) throws(ProtocolError) -> [Action] {
        guard let lease = try held(header.lease, by: peer, command: .fail), let worker = workers[peer] else {
            workers[peer]?.revoked.removeAll { $0 == header.lease }
            return []
        }
        if header.declined == true {
            workers[peer]?.declined.insert(lease.key.job)
            return [
                .log(
                    .info,
                    "\(worker.label) declined \(study.jobs[lease.key.job].name): \(LogText.escaped(header.error, limit: 300))")
            ] + release(header.lease, failure: nil, by: worker.identity)
        }
        return release(
            header.lease, failure: "\(worker.label): \(LogText.escaped(header.error, limit: 500))", by: worker.identity)
    }

    /// The shard `key` was finished by `identity`: every other worker that failed it was wrong,
    /// and one that fails everything it is given (no success, `maxFailures` refuted failures)
    /// is quarantined.
    private mutating func refute(_ key: ShardKey, finishedBy identity: String) -> [Action] {
        guard let evidence = failures.removeValue(forKey: key) else { return [] }
        var actions: [Action] = []
        for other in Set(evidence.map(\.identity)) where other != identity {
            records[other, default: Record()].refuted += 1
            if let record = records[other], record.successes == 0, record.refuted >= settings.maxFailures {
                actions += quarantineWorker(
                    other, reason: "it failed \(record.refuted) shards that other workers computed, and computed none")
            }
        }
        return actions
    }

    /// Quarantines a worker identity: its connections are told to leave, and its failures no
    /// longer count against any shard.
    mutating func quarantineWorker(_ identity: String, reason: String) -> [Action] {
        guard quarantinedWorkers[identity] == nil else { return [] }
        quarantinedWorkers[identity] = reason
        var actions: [Action] = [.log(.error, "quarantined worker \(identity): \(reason)")]
        for key in failures.keys.sorted(by: { ($0.job, $0.shard) < ($1.job, $1.shard) }) {
            failures[key]?.removeAll { $0.identity == identity }
            let distinct = Set((failures[key] ?? []).map(\.identity)).count
            if quarantined.contains(key) && distinct < settings.maxFailures {
                setQuarantined(key, false)
                if !done[key.job][key.shard] { queue.prepend(key) }
                actions.append(
                    .log(.warning, "shard \(key.shard) of \(study.jobs[key.job].name) leaves quarantine: its evidence came from \(identity)"))
            }
        }
        for (peer, worker) in workers.sorted(by: { $0.value.name < $1.value.name }) where worker.identity == identity {
            actions += retire(peer, reason: "quarantined", logged: false)
            actions.append(
                .send(peer: peer, DisconnectHeader(reason: "this worker is quarantined: \(reason)", quarantined: true).message()))
        }
        return actions
    }

    /// The journal holds every record handed out so far: acknowledge their results.
    public mutating func durable(now: Double) -> [Action] {
        let acks = pendingAcks
        pendingAcks = []
        var actions: [Action] = []
        for (peer, lease) in acks where workers[peer] != nil {
            workers[peer]?.awaitingAck.remove(lease)
            credit(peer)
            workers[peer]?.lastSent = now
            actions.append(.send(peer: peer, AckHeader(lease: lease).message()))
        }
        return actions
    }

    /// The HEARTBEAT every worker gets, encoded once per epoch.
    mutating func heartbeatMessage() -> WireMessage {
        if let cached = heartbeatCache, cached.epoch == settings.epoch { return cached.message }
        let message = HeartbeatHeader(epoch: settings.epoch).message()
        heartbeatCache = (settings.epoch, message)
        return message
    }

    /// Heartbeats, dead workers, expired leases, then new work.
    public mutating func tick(now: Double) -> [Action] {
        var actions: [Action] = []
        let beat = heartbeatMessage()
        for peer in Array(workers.keys) {
            guard let worker = workers[peer] else { continue }
            if now - worker.lastHeard > settings.deadAfter {
                actions += retire(peer, reason: "silent for \(Int(now - worker.lastHeard)) s", died: true)
            } else if now - worker.lastSent >= settings.heartbeatInterval {
                workers[peer]?.lastSent = now
                actions.append(.send(peer: peer, beat))
            }
        }
        for (id, lease) in leases where !lease.expired && now > lease.deadline {
            leases[id]?.expired = true
            let key = lease.key
            if lease.verifies {
                if verifying[key] != nil { verifyQueue.prepend(key) }
                continue
            }
            if !done[key.job][key.shard] && !queue.contains(key) {
                queue.prepend(key)
                actions.append(
                    .log(
                        .warning,
                        "lease \(id) (shard \(key.shard) of \(study.jobs[key.job].name)) passed its deadline on \(workers[lease.peer]?.label ?? "?"); re-issuing"
                    ))
            }
        }
        for summary in badMessages.summaries(now: now) {
            let window = Int(settings.badMessageWindow)
            if let peer = summary.peer {
                actions.append(.log(.warning, "\(summary.count) more bad message(s) from \(peer) in the last \(window) s"))
            } else {
                actions.append(.log(.warning, "\(summary.count) bad message(s) from other peers in the last \(window) s"))
            }
        }
        if membershipLogged > 0 && now - membershipSince >= settings.badMessageWindow {
            if membershipUnlogged > 0 {
                actions.append(
                    .log(.info, "\(membershipUnlogged) more worker join(s) or departure(s) in the last \(Int(settings.badMessageWindow)) s, not logged one by one"))
            }
            (membershipLogged, membershipUnlogged) = (0, 0)
        }
        if refusedAtLimit > 0 && now - refusedSince >= settings.badMessageWindow {
            if refusedAtLimit > 1 {
                actions.append(
                    .log(.warning, "refused \(refusedAtLimit - 1) more HELLO(s) at the limit of \(settings.maxWorkers) workers"))
            }
            refusedAtLimit = 0
        }
        return actions + dispatch(now: now)
    }

    /// Removes a worker; its leases go back to the queue, not counted against their shards:
    /// a worker that vanishes (silence, lost connection, killed from outside) says nothing
    /// about the shard it held. Vanishing counts against the worker: one that vanishes holding
    /// leases `maxFailures` times without delivering a result in between is quarantined.
    mutating func retire(_ peer: Data, reason: String, died: Bool = false, logged: Bool = true) -> [Action] {
        guard let worker = workers.removeValue(forKey: peer) else { return [] }
        hungry.remove(peer)
        leaseVersion &+= 1
        toldDone.remove(peer)
        for upload in (uploads.removeValue(forKey: peer) ?? [:]).values { upload.abandon() }
        var actions: [Action] = []
        if logged, let line = membership("worker \(worker.label) left: \(reason)", now: worker.lastHeard) {
            actions.append(.log(died ? .warning : .info, line))
        }
        for id in worker.leases.sorted() { actions += release(id, failure: nil, by: worker.identity) }
        if died && !worker.leases.isEmpty {
            records[worker.identity, default: Record()].vanishings += 1
            if let count = records[worker.identity]?.vanishings, count >= settings.maxFailures {
                actions += quarantineWorker(
                    worker.identity, reason: "it vanished \(count) times holding leases without delivering a result")
            }
        }
        return actions
    }

    /// Ends a lease that did not produce a result; a `failure` (nil: not the shard's fault)
    /// is evidence against the shard from `identity`, and `maxFailures` distinct workers'
    /// evidence quarantines it.
    mutating func release(_ id: Int, failure: String?, by identity: String) -> [Action] {
        guard let lease = dropLease(id) else { return [] }
        let key = lease.key
        if lease.verifies {
            // A copy that did not come back: another worker may take it.
            if verifying[key] != nil { verifyQueue.prepend(key) }
            return []
        }
        guard !done[key.job][key.shard] else { return [] }
        guard let failure else {
            if !leased(key) { queue.prepend(key) }
            return []
        }
        failures[key, default: []].append((identity, failure))
        let evidence = failures[key] ?? []
        let distinct = Set(evidence.map(\.identity)).count
        // Distinct workers, so one broken or hostile worker cannot quarantine a sweep; with
        // fewer workers than that, enough failures on every worker there is.
        if distinct >= settings.maxFailures || (evidence.count >= settings.maxFailures && everyoneFailed(key)) {
            setQuarantined(key, true)
            queue.remove(key)
            for other in leasesByShard[key] ?? [] {
                guard let l = dropLease(other) else { continue }
                workers[l.peer]?.revoke(other)
            }
            return [
                .log(
                    .error,
                    "quarantined shard \(key.shard) of \(study.jobs[key.job].name) (points \(study.jobs[key.job].shards[key.shard])) after failing on \(distinct) workers: \(evidence.map(\.reason).joined(separator: "; "))"
                )
            ]
        }
        if !leased(key) { queue.prepend(key) }
        return [.log(.warning, "shard \(key.shard) of \(study.jobs[key.job].name) back in the queue: \(failure)")]
    }

    /// Whether every connected worker that can compute `key` has failed it.
    func everyoneFailed(_ key: ShardKey) -> Bool {
        Self.everyoneFailed(key, jobs: study.jobs, failures: failures, workers: Array(workers.values))
    }

    static func everyoneFailed(
        _ key: ShardKey, jobs: [Study.Job], failures: [ShardKey: [(identity: String, reason: String)]],
        workers: [Worker]
    ) -> Bool {
        let kind = jobs[key.job].definition.kind.rawValue
        let evidence = Set((failures[key] ?? []).map(\.identity))
        return workers.allSatisfy {
            !($0.kinds?.contains(kind) ?? true) || $0.declined.contains(key.job) || evidence.contains($0.identity)
        }
    }

    /// Hands out work while workers have credit: queued shards first; when the queue is empty,
    /// a second copy of the oldest outstanding lease to an idle worker (the first result wins).
    /// A shard goes to a worker that has failed it only when no other can take it.
    mutating func dispatch(now: Double) -> [Action] {
        guard !hungry.isEmpty else { return [] }
        var actions: [Action] = []
        // At most one straggler copy per call: near the end, idle workers share them out
        // one event at a time instead of every event walking every lease for every worker.
        var stragglerTried = false
        for peer in hungry {
            if queue.isEmpty && verifyQueue.isEmpty && stragglerTried { break }
            // Nothing new since it last found nothing it could take (a worker of other kinds).
            if let starved = workers[peer]?.starved, starved == workVersion { continue }
            while let worker = workers[peer], worker.leases.count + worker.awaitingAck.count < worker.slots {
                var key: ShardKey
                var verifies = false
                let jobs = study.jobs, kinds = worker.kinds, failures = self.failures, declined = worker.declined
                let identity = worker.identity
                let kindFits = { (key: ShardKey) in
                    (kinds?.contains(jobs[key.job].definition.kind.rawValue) ?? true) && !declined.contains(key.job)
                }
                let accepts = { (key: ShardKey) in
                    kindFits(key) && !(failures[key]?.contains { $0.identity == identity } ?? false)
                }
                if let next = queue.popFirst(limit: 4096, where: accepts) {
                    key = next
                } else if !failures.isEmpty,
                    // A shard it failed goes back to the same worker only when every worker has failed it.
                    let next = { () -> ShardKey? in
                        let others = Array(workers.values)
                        return queue.popFirst(limit: 256) { key in
                            kindFits(key) && Self.everyoneFailed(key, jobs: jobs, failures: failures, workers: others)
                        }
                    }()
                {
                    key = next
                } else if let next = { () -> ShardKey? in
                    let verifying = self.verifying
                    return verifyQueue.popFirst(limit: 4096) { key in
                        accepts(key) && verifying[key].map { !$0.workers.contains(identity) } == true
                    }
                }() {
                    key = next
                    verifies = true
                } else if worker.leases.isEmpty && !stragglerTried,
                    let straggler = oldestStraggler(excluding: peer, accepts: accepts)
                {
                    stragglerTried = true
                    key = straggler
                    actions.append(
                        .log(
                            .info,
                            "duplicating straggling shard \(key.shard) of \(study.jobs[key.job].name) on \(worker.label)"
                        ))
                } else {
                    if worker.leases.isEmpty { stragglerTried = true }
                    let version = workVersion
                    workers[peer]?.starved = version
                    break
                }
                let id = nextLease
                nextLease += 1
                addLease(
                    Lease(
                        id: id, peer: peer, key: key, issued: now, deadline: now + settings.leaseSeconds,
                        verifies: verifies))
                workers[peer]?.lastSent = now
                let job = study.jobs[key.job], range = job.shards[key.shard]
                var header = TaskHeader(
                    lease: id, job: job.id, jobIndex: key.job, shard: key.shard, start: range.lowerBound,
                    end: range.upperBound, deadlineMilliseconds: Int((settings.leaseSeconds * 1000).rounded()))
                var inputs: [String: String] = [:]
                for d in job.dependencies {
                    if let hash = outputs[study.jobs[d].name] { inputs[study.jobs[d].name] = hash }
                }
                if !inputs.isEmpty { header.inputs = inputs }
                if !worker.knownJobs.contains(key.job) {
                    workers[peer]?.knownJobs.insert(key.job)
                    header.definition = job.definition
                    header.spec = spec
                    header.base = base
                    if !fileArtifacts.isEmpty { header.files = fileArtifacts }
                }
                actions.append(.send(peer: peer, header.message()))
            }
        }
        return actions
    }

    /// The shard of the oldest outstanding lease that has no copy yet, is not done, is not
    /// `peer`'s, and that `accepts` takes.
    func oldestStraggler(excluding peer: Data, accepts: (ShardKey) -> Bool) -> ShardKey? {
        for id in leaseOrder {
            guard let lease = leases[id], !lease.verifies, lease.peer != peer,
                leasesByShard[lease.key]?.count == 1, !done[lease.key.job][lease.key.shard], accepts(lease.key)
            else { continue }
            return lease.key
        }
        return nil
    }

    // MARK: Artifacts

    /// A chunk of an artifact a worker made: appended in order, checked and stored when whole.
    /// Answered with TAKEN (the bytes held so far, `complete` once stored, or `error`). Only a
    /// worker holding a lease of a job that makes an artifact may upload, one artifact per such
    /// lease, within `maxArtifactBytes` each and `uploadBudgetBytes` in all.
    mutating func put(peer: Data, _ header: PutHeader, chunk: Data) throws(ProtocolError) -> [Action] {
        guard let worker = workers[peer] else { return [] }
        let hash = header.artifact
        let makers = worker.leases.filter { id in
            leases[id].map { study.jobs[$0.key.job].definition.kind.makesArtifact }
                ?? false
        }.count
        guard makers > 0 else {
            throw ProtocolError(.authority, "PUT of artifact \(hash.prefix(12)) from a worker that holds no job making one")
        }
        guard chunk.count <= WireMessage.artifactChunk, header.offset + chunk.count <= header.size else {
            throw .field(.put, "offset", "with a chunk of \(chunk.count) bytes passes the announced size \(header.size)")
        }
        func reply(_ taken: TakenHeader) -> Action { .send(peer: peer, taken.message()) }
        if store.contains(hash) {
            uploads[peer]?[hash]?.abandon()
            uploads[peer]?[hash] = nil
            return [reply(TakenHeader(artifact: hash, offset: header.size, complete: true))]
        }
        do {
            if header.offset == 0 {
                uploads[peer]?[hash]?.abandon()
                uploads[peer]?[hash] = nil
                let open = uploads[peer] ?? [:]
                guard header.size <= settings.maxArtifactBytes else {
                    throw ProtocolError(.limit, "artifact of \(header.size) bytes is larger than the limit of \(settings.maxArtifactBytes)")
                }
                guard open.count < makers else {
                    throw ProtocolError(.limit, "a new upload while \(open.count) are open for \(makers) job(s) that make artifacts")
                }
                guard open.values.reduce(header.size, { $0 + $1.size }) <= settings.uploadBudgetBytes else {
                    throw ProtocolError(.limit, "uploads beyond this worker's budget of \(settings.uploadBudgetBytes) bytes")
                }
                uploads[peer, default: [:]][hash] = try store.upload(hash, size: header.size)
            }
            guard let upload = uploads[peer]?[hash] else {
                throw ClusterError("a chunk at \(header.offset) of an upload that never started")
            }
            guard upload.size == header.size else {
                throw ClusterError("a chunk announcing \(header.size) bytes for an upload of \(upload.size)")
            }
            try upload.append(chunk, at: header.offset)
            if upload.isComplete {
                uploads[peer]?[hash] = nil
                try upload.finish()
                return [
                    .log(.debug, "stored artifact \(hash.prefix(12)) (\(header.size) bytes) from \(worker.label)"),
                    reply(TakenHeader(artifact: hash, offset: header.size, complete: true)),
                ]
            }
            return [reply(TakenHeader(artifact: hash, offset: upload.received))]
        } catch let error as ProtocolError {
            throw error
        } catch {
            uploads[peer]?[hash]?.abandon()
            uploads[peer]?[hash] = nil
            return [
                .log(.warning, "artifact \(hash.prefix(12)) from \(worker.label) refused: \(error)"),
                reply(TakenHeader(artifact: hash, error: "\(error)")),
            ]
        }
    }

    /// A worker asks for `length` bytes (at most one chunk) of an artifact from `offset`.
    func fetch(peer: Data, _ header: FetchHeader) -> [Action] {
        let hash = header.artifact
        guard let size = store.size(hash) else {
            return [.send(peer: peer, ChunkHeader(artifact: hash, error: "no artifact \(hash) here").message())]
        }
        guard header.offset <= size else {
            return [
                .send(
                    peer: peer,
                    ChunkHeader(artifact: hash, error: "offset \(header.offset) is past the artifact's \(size) bytes")
                        .message())
            ]
        }
        do {
            let bytes = try store.read(hash, offset: header.offset, length: header.length)
            return [
                .send(peer: peer, ChunkHeader(artifact: hash, offset: header.offset, size: size).message(binary: [bytes]))
            ]
        } catch {
            return [.send(peer: peer, ChunkHeader(artifact: hash, error: "\(error)").message())]
        }
    }

    /// Tells every worker the sweep is over; from now on, so is every worker that speaks.
    public mutating func finish() -> [Action] {
        over = true
        toldDone.formUnion(workers.keys)
        return workers.keys.sorted(by: { (workers[$0]?.name ?? "") < (workers[$1]?.name ?? "") }).map {
            .send(peer: $0, WireMessage(.done))
        }
    }

}
