import DequeModule
import Foundation

/// Which shard goes to whom, and what a result or failure means: the queue, leases and
/// their deadlines, dependencies between jobs, quarantine of shards and workers, straggler
/// copies and verification. A plain state machine with no clock, no I/O and no knowledge of
/// sockets: methods take events (with the time), return `ScheduleEffect`s. The coordinator
/// drives it for its workers; `basin run --workers 0` drives the same one in process.
///
/// Every event is O(1) or O(log n) in the shards and workers, except what is rare by nature
/// (quarantine, voiding a liar's results).
public struct ShardScheduler {
    public struct Settings: Sendable {
        public var leaseSeconds = 120.0
        /// Failures after which a shard is quarantined (on distinct workers), and after which
        /// a worker that keeps failing or vanishing is.
        public var maxFailures = 3
        /// Fraction of shards (seeded by job id and shard) computed again by a different worker
        /// and compared (`sweep: {verify: F}`).
        public var verify = 0.0

        public init() {}
    }

    public struct ShardKey: Hashable, Sendable, Comparable {
        public var job: Int
        public var shard: Int

        public init(job: Int, shard: Int) {
            self.job = job
            self.shard = shard
        }

        public static func < (a: ShardKey, b: ShardKey) -> Bool { (a.job, a.shard) < (b.job, b.shard) }
    }

    /// A shard handed to a taker.
    public struct Grant: Sendable, Equatable {
        public var lease: Int
        public var taker: Int
        public var key: ShardKey
        /// A verification copy of a shard already done.
        public var verifies: Bool
    }

    struct Lease {
        var id: Int
        var taker: Int
        var key: ShardKey
        var deadline: Double
        var expired = false
        var verifies = false
    }

    /// One worker connection as the scheduler sees it (takers are numbered by the driver).
    struct Taker {
        /// The name it gave (journaled with its results).
        var name: String
        /// Name, host and pid: what quarantine and distinct-worker counts go by.
        var identity: String
        /// The name as log lines show it.
        var label: String
        var slots: Int
        /// Job kinds (or kinds' variants, `surface:random`) it evaluates; nil: every kind.
        var kinds: Set<String>?
        /// Its results are bit for bit those of any other Basin worker (else verified within a tolerance).
        var exact: Bool
        var leases: Set<Int> = []
        /// Results stored and awaiting durability: they hold its credit until acknowledged.
        var unacked: Set<Int> = []
        var declined: Set<Int> = []
        /// The work version at which it last found nothing it could take.
        var starved: Int?
        /// Whether it found nothing while it held a lease (long jobs wait for it to be idle).
        var starvedWhileBusy = false
        /// Leases taken from it while it may still be computing them: an answer for one is a
        /// race, not a lie. The most recent 64.
        var revoked: [Int] = []

        var credit: Int { slots - leases.count - unacked.count }

        mutating func revoke(_ id: Int) {
            leases.remove(id)
            revoked.append(id)
            if revoked.count > 64 { revoked.removeFirst(revoked.count - 64) }
        }
    }

    /// What the scheduler has seen of one worker identity across its connections.
    struct Record {
        var successes = 0
        /// Failures on shards another worker then finished.
        var refuted = 0
        /// Times it vanished holding leases since its last result.
        var vanishings = 0
    }

    public let study: Study
    public var settings: Settings
    var done: [[Bool]]
    /// Shards done per job, points done, shards neither done nor quarantined: kept as `done`
    /// and `quarantined` change, so progress and the end are O(1) questions.
    var doneCount: [Int]
    public private(set) var pointsDone = 0
    var open = 0
    var queue = ShardQueue<ShardKey>()
    var leases: [Int: Lease] = [:]
    /// Lease ids by shard (more than one while a copy is out).
    var leasesByShard: [ShardKey: [Int]] = [:]
    /// Issue order of leases, for the oldest straggler (ids of ended leases are skipped).
    var leaseOrder = Deque<Int>()
    var verifyLeaseCount = 0
    var nextLease = 1
    var takers: [Int: Taker] = [:]
    /// Takers with free credit: the only ones dispatch looks at.
    var hungry: Set<Int> = []
    /// Bumped when leases are issued and takers leave (what stragglers and retries depend on).
    var leaseVersion = 0
    var workVersion: Int { queue.version &+ verifyQueue.version &* 31 &+ leaseVersion &* 1009 }
    /// Evidence against each shard: the identities it failed on, with their reasons.
    var failures: [ShardKey: [(identity: String, reason: String)]] = [:]
    var quarantined: Set<ShardKey> = []
    var records: [String: Record] = [:]
    /// Worker identities quarantined, with the reason.
    public private(set) var quarantinedWorkers: [String: String] = [:]
    /// Metrics of shards finished this run, to compare copies and to void a liar's results.
    var finished: [ShardKey: [Double]] = [:]
    var pendingAcks: [(taker: Int, lease: Int)] = []
    /// Jobs whose inputs are not all made yet; their shards join the queue when they are.
    var waiting: Set<Int> = []
    /// The artifact of every finished job that made one, by job name.
    public private(set) var outputs: [String: String]
    /// Points computed this run (for rates).
    public private(set) var pointsThisRun = 0
    var verifying: [ShardKey: Verification] = [:]
    var verifyQueue = ShardQueue<ShardKey>()
    public private(set) var verification = Verification.Tally()
    /// Which identity delivered each stored result this run, and the shards each delivered.
    var storedBy: [ShardKey: String] = [:]
    var delivered: [String: [ShardKey]] = [:]

    /// - Parameters:
    ///   - completed: shards already journaled (job id → shard indices).
    ///   - outputs: the artifact of every finished job that made one, by job name.
    public init(study: Study, completed: [String: Set<Int>], outputs: [String: String] = [:], settings: Settings) {
        self.study = study
        self.settings = settings
        self.outputs = outputs
        done = study.jobs.map { job in job.shards.indices.map { completed[job.id]?.contains($0) ?? false } }
        doneCount = done.map { $0.filter { $0 }.count }
        for (j, job) in study.jobs.enumerated() {
            for (s, range) in job.shards.enumerated() {
                if done[j][s] { pointsDone += range.count } else { open += 1 }
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

    // MARK: Books

    func complete(_ j: Int) -> Bool { doneCount[j] == done[j].count }

    /// Marks a shard done or not, keeping the counts.
    mutating func setDone(_ key: ShardKey, _ value: Bool) {
        guard done[key.job][key.shard] != value else { return }
        done[key.job][key.shard] = value
        let points = study.jobs[key.job].shards[key.shard].count
        doneCount[key.job] += value ? 1 : -1
        pointsDone += value ? points : -points
        if !quarantined.contains(key) { open += value ? -1 : 1 }
    }

    mutating func setQuarantined(_ key: ShardKey, _ value: Bool) {
        if value {
            if quarantined.insert(key).inserted && !done[key.job][key.shard] { open -= 1 }
        } else if quarantined.remove(key) != nil && !done[key.job][key.shard] {
            open += 1
        }
    }

    mutating func addLease(_ lease: Lease) {
        leases[lease.id] = lease
        leasesByShard[lease.key, default: []].append(lease.id)
        leaseOrder.append(lease.id)
        if lease.verifies { verifyLeaseCount += 1 }
        leaseVersion &+= 1
        takers[lease.taker]?.leases.insert(lease.id)
        credit(lease.taker)
    }

    /// Takes a lease off the books; its taker's credit is freed.
    @discardableResult
    mutating func dropLease(_ id: Int) -> Lease? {
        guard let lease = leases.removeValue(forKey: id) else { return nil }
        leasesByShard[lease.key]?.removeAll { $0 == id }
        if leasesByShard[lease.key]?.isEmpty == true { leasesByShard[lease.key] = nil }
        if lease.verifies { verifyLeaseCount -= 1 }
        takers[lease.taker]?.leases.remove(id)
        credit(lease.taker)
        while let first = leaseOrder.first, leases[first] == nil { leaseOrder.removeFirst() }
        return lease
    }

    /// Drops a lease whose taker may still be computing it (so its answer is a race, not a lie).
    mutating func revokeLease(_ id: Int) -> Lease? {
        guard let lease = dropLease(id) else { return nil }
        takers[lease.taker]?.revoke(id)
        return lease
    }

    /// Whether a live (unexpired) lease of `key` is out.
    func leased(_ key: ShardKey) -> Bool {
        (leasesByShard[key] ?? []).contains { leases[$0]?.expired == false }
    }

    /// Keeps `hungry` true to a taker's credit.
    mutating func credit(_ taker: Int) {
        if let t = takers[taker], t.credit > 0 { hungry.insert(taker) } else { hungry.remove(taker) }
    }

    /// Whether every job `j` reads has finished (and left its artifact, if it makes one).
    func ready(_ j: Int) -> Bool {
        study.jobs[j].dependencies.allSatisfy { d in
            complete(d) && (study.jobs[d].isGrid || outputs[study.jobs[d].name] != nil)
        }
    }

    /// Queues the shards of waiting jobs whose inputs now exist.
    mutating func release(readyAfter j: Int) -> [ScheduleEffect] {
        guard complete(j) else { return [] }
        var effects: [ScheduleEffect] = []
        for w in waiting.sorted() where ready(w) {
            waiting.remove(w)
            for s in study.jobs[w].shards.indices where !done[w][s] { queue.append(ShardKey(job: w, shard: s)) }
            effects.append(.event(.jobReady(job: study.jobs[w].name)))
        }
        return effects
    }

    func name(_ key: ShardKey) -> String { study.jobs[key.job].name }

    // MARK: Progress

    /// Jobs that can never run because a job they read (directly or not) has quarantined shards.
    public var blockedJobs: [(job: String, because: String)] {
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

    /// Shards verification cannot reach: every connected worker already computed them.
    public var unverifiable: Int {
        verifying.filter { entry in !takers.values.contains { !entry.value.workers.contains($0.identity) } }.count
    }

    public var pointsTotal: Int { study.jobs.reduce(0) { $0 + $1.pointCount } }
    public var leasesOutstanding: Int { leases.count }

    /// Quarantined shards with the reasons they failed.
    public var quarantine: [(job: String, shard: Int, points: Range<Int>, reasons: [String])] {
        quarantined.sorted().map { key in
            (name(key), key.shard, study.jobs[key.job].shards[key.shard], (failures[key] ?? []).map(\.reason))
        }
    }

    // MARK: Takers

    /// A worker connection joins; nil when its identity is quarantined (with the reason).
    public mutating func join(
        _ taker: Int, name: String, identity: String, label: String, slots: Int, kinds: Set<String>? = nil,
        exact: Bool = true
    ) -> String? {
        if let why = quarantinedWorkers[identity] { return why }
        takers[taker] = Taker(name: name, identity: identity, label: label, slots: slots, kinds: kinds, exact: exact)
        credit(taker)
        return nil
    }

    /// The taker's identity when it is on the books.
    public func identity(of taker: Int) -> String? { takers[taker]?.identity }

    /// A taker is gone; its leases go back to the queue, not counted against their shards: a
    /// worker that vanishes (silence, lost connection, killed from outside) says nothing about
    /// the shard it held. Vanishing (`died`) counts against the worker: one that vanishes
    /// holding leases `maxFailures` times without a result in between is quarantined.
    public mutating func leave(_ taker: Int, died: Bool = false) -> [ScheduleEffect] {
        guard let gone = takers.removeValue(forKey: taker) else { return [] }
        hungry.remove(taker)
        leaseVersion &+= 1
        var effects: [ScheduleEffect] = []
        for id in gone.leases.sorted() { effects += release(id, failure: nil, by: gone.identity) }
        if died && !gone.leases.isEmpty {
            records[gone.identity, default: Record()].vanishings += 1
            if let count = records[gone.identity]?.vanishings, count >= settings.maxFailures {
                effects += quarantineWorker(
                    gone.identity, reason: "it vanished \(count) times holding leases without delivering a result")
            }
        }
        return effects
    }

    /// What a lease is to `taker`: one it holds (its shard), one taken from it (an answer is a
    /// race, to drop), or one it never held.
    public enum Holding: Equatable { case held(ShardKey), revoked, never }

    public func holding(_ lease: Int, by taker: Int) -> Holding {
        if let l = leases[lease], l.taker == taker { return .held(l.key) }
        if takers[taker]?.revoked.contains(lease) == true { return .revoked }
        return .never
    }

    /// Drops a revoked lease's memory once its late answer came.
    public mutating func forget(_ lease: Int, by taker: Int) {
        takers[taker]?.revoked.removeAll { $0 == lease }
    }

    /// Leases `taker` holds of jobs that make an artifact (each may upload one).
    public func artifactLeases(of taker: Int) -> Int {
        (takers[taker]?.leases ?? []).filter { id in
            leases[id].map { study.jobs[$0.key.job].definition.kind.makesArtifact } ?? false
        }.count
    }

    /// The taker says it is computing `lease`: a training, fitting, alignment or Hessian job is
    /// one long shard whose deadline moves on while its worker works (grid shards are a few
    /// seconds and keep theirs, so a slow worker's shard is re-issued).
    public mutating func computing(_ lease: Int, by taker: Int, now: Double) {
        if let l = leases[lease], l.taker == taker, !l.expired, !study.jobs[l.key.job].isGrid {
            leases[lease]?.deadline = max(l.deadline, now + settings.leaseSeconds)
        }
    }

    // MARK: Dispatch

    /// Whether every connected taker that can compute `key` has failed it.
    func everyoneFailed(_ key: ShardKey) -> Bool {
        let job = study.jobs[key.job]
        let evidence = Set((failures[key] ?? []).map(\.identity))
        return takers.values.allSatisfy {
            !job.isComputed(by: $0.kinds) || $0.declined.contains(key.job) || evidence.contains($0.identity)
        }
    }

    /// Hands out work while takers have credit: queued shards first; then verification copies;
    /// when the queue is empty, a second copy of the oldest outstanding lease to an idle taker
    /// (the first result wins). A shard goes to a taker that failed it only when no other can.
    public mutating func dispatch(now: Double) -> [ScheduleEffect] {
        guard !hungry.isEmpty else { return [] }
        var effects: [ScheduleEffect] = []
        // At most one straggler copy per call: near the end, idle takers share them out one
        // event at a time instead of every event walking every lease for every taker.
        var stragglerTried = false
        for t in hungry {
            if queue.isEmpty && verifyQueue.isEmpty && stragglerTried { break }
            // Nothing new since it last found nothing it could take (a worker of other kinds).
            if let taker = takers[t], let starved = taker.starved, starved == workVersion,
                !taker.starvedWhileBusy || !taker.leases.isEmpty
            {
                continue
            }
            while let taker = takers[t], taker.credit > 0 {
                var key: ShardKey
                var verifies = false
                let jobs = study.jobs, failures = self.failures
                // A long job (training, alignment, a fit, a Hessian: one shard) goes only to a
                // taker with nothing else: queued behind another on a busy worker it would wait
                // while an idle one could run it. Grid shards fill the spare credit instead.
                let busy = !taker.leases.isEmpty
                let kindFits = { (key: ShardKey) in
                    jobs[key.job].isComputed(by: taker.kinds)
                        && !taker.declined.contains(key.job) && !(busy && !jobs[key.job].isGrid)
                }
                let accepts = { (key: ShardKey) in
                    kindFits(key) && !(failures[key]?.contains { $0.identity == taker.identity } ?? false)
                }
                if let next = queue.popFirst(limit: 4096, where: accepts) {
                    key = next
                } else if !failures.isEmpty, let next = retry(kindFits) {
                    key = next
                } else if let next = verificationCopy(accepts, identity: taker.identity) {
                    key = next
                    verifies = true
                } else if taker.leases.isEmpty && !stragglerTried, let straggler = oldestStraggler(excluding: t, accepts) {
                    stragglerTried = true
                    key = straggler
                    effects.append(.event(.stragglerCopied(job: name(key), shard: key.shard, worker: taker.label)))
                } else {
                    if taker.leases.isEmpty { stragglerTried = true }
                    let version = workVersion
                    takers[t]?.starved = version
                    takers[t]?.starvedWhileBusy = busy
                    break
                }
                let id = nextLease
                nextLease += 1
                addLease(Lease(id: id, taker: t, key: key, deadline: now + settings.leaseSeconds, verifies: verifies))
                effects.append(.grant(Grant(lease: id, taker: t, key: key, verifies: verifies)))
            }
        }
        return effects
    }

    /// A queued shard every taker has failed (so this one may take it again).
    mutating func retry(_ kindFits: (ShardKey) -> Bool) -> ShardKey? {
        let scheduler = self
        return queue.popFirst(limit: 256) { key in kindFits(key) && scheduler.everyoneFailed(key) }
    }

    mutating func verificationCopy(_ accepts: (ShardKey) -> Bool, identity: String) -> ShardKey? {
        let verifying = self.verifying
        return verifyQueue.popFirst(limit: 4096) { key in
            accepts(key) && verifying[key].map { !$0.workers.contains(identity) } == true
        }
    }

    /// The shard of the oldest outstanding lease that has no copy yet, is not done, is not
    /// `taker`'s, and that `accepts` takes.
    func oldestStraggler(excluding taker: Int, _ accepts: (ShardKey) -> Bool) -> ShardKey? {
        for id in leaseOrder {
            guard let lease = leases[id], !lease.verifies, lease.taker != taker,
                leasesByShard[lease.key]?.count == 1, !done[lease.key.job][lease.key.shard], accepts(lease.key)
            else { continue }
            return lease.key
        }
        return nil
    }

    // MARK: Results

    /// A result for a lease `taker` holds (check `holding` first), with values already checked
    /// against the job's output contract and its artifact (if any) stored. Stored results are
    /// journaled and acknowledged once durable; copies are compared and acknowledged at once.
    public mutating func deliver(
        lease id: Int, by t: Int, metrics: [Double], artifact: String?, seconds: Double
    ) -> [ScheduleEffect] {
        guard let lease = leases[id], lease.taker == t, let taker = takers[t] else { return [] }
        let key = lease.key, job = study.jobs[key.job]
        dropLease(id)
        if lease.verifies {
            let answer = Verification.Answer(
                identity: taker.identity, label: taker.label, metrics: metrics, artifact: artifact, exact: taker.exact)
            return verified(key, answer) + [.acknowledge(taker: t, lease: id)]
        }
        if done[key.job][key.shard] {
            // A straggler's copy: compared with the first, acknowledged, never stored.
            var effects: [ScheduleEffect] = []
            if let first = finished[key], first != metrics {
                effects.append(.event(.duplicateMismatch(job: job.name, shard: key.shard, worker: taker.label)))
            }
            return effects + [.acknowledge(taker: t, lease: id)]
        }
        setDone(key, true)
        finished[key] = metrics
        storedBy[key] = taker.identity
        delivered[taker.identity, default: []].append(key)
        pointsThisRun += job.shards[key.shard].count
        if settings.verify > 0, Verification.selected(job: job.id, shard: key.shard, fraction: settings.verify) {
            verification.selected += 1
            verifying[key] = Verification(
                first: .init(
                    identity: taker.identity, label: taker.label, metrics: metrics, artifact: artifact,
                    exact: taker.exact),
                workers: [taker.identity])
            verifyQueue.append(key)
        }
        records[taker.identity, default: Record()].successes += 1
        records[taker.identity]?.vanishings = 0
        if let artifact { outputs[job.name] = artifact }
        queue.remove(key)
        setQuarantined(key, false)
        var effects = refute(key, finishedBy: taker.identity)
        let range = job.shards[key.shard]
        effects.append(
            .journal(
                Journal.ShardDone(
                    job: job.id, shard: key.shard, start: range.lowerBound, end: range.upperBound, worker: taker.name,
                    seconds: seconds, time: 0, metrics: metrics, artifact: artifact)))
        takers[t]?.unacked.insert(id)
        credit(t)
        pendingAcks.append((t, id))
        effects += release(readyAfter: key.job)
        // Other leases of the same shard are now useless.
        for other in leasesByShard[key] ?? [] {
            guard let l = revokeLease(other) else { continue }
            effects.append(.cancel(taker: l.taker, lease: other))
        }
        return effects
    }

    /// An answer for a lease taken from `taker` (its shard was done elsewhere or quarantined):
    /// compared with the stored result when there is one, acknowledged, never stored.
    public mutating func late(lease id: Int, by t: Int, key: ShardKey, metrics: [Double]) -> [ScheduleEffect] {
        forget(id, by: t)
        var effects: [ScheduleEffect] = []
        if let first = finished[key], first != metrics {
            effects.append(
                .event(.duplicateMismatch(job: name(key), shard: key.shard, worker: takers[t]?.label ?? "?")))
        }
        return effects + [.acknowledge(taker: t, lease: id)]
    }

    /// Every result handed out for journaling so far is durable: acknowledge them.
    public mutating func durable() -> [ScheduleEffect] {
        let acks = pendingAcks
        pendingAcks = []
        var effects: [ScheduleEffect] = []
        for (t, lease) in acks where takers[t] != nil {
            takers[t]?.unacked.remove(lease)
            credit(t)
            effects.append(.acknowledge(taker: t, lease: lease))
        }
        return effects
    }

    /// The taker could not compute a lease it holds. `declined`: it does not evaluate this
    /// job (not the shard's fault; the job is not offered to it again).
    public mutating func fail(lease id: Int, by t: Int, reason: String, declined: Bool = false) -> [ScheduleEffect] {
        guard let lease = leases[id], lease.taker == t, let taker = takers[t] else { return [] }
        if declined {
            takers[t]?.declined.insert(lease.key.job)
            return [.event(.declined(worker: taker.label, job: name(lease.key), reason: reason))]
                + release(id, failure: nil, by: taker.identity)
        }
        return release(id, failure: "\(taker.label): \(reason)", by: taker.identity)
    }

    /// Ends a lease that did not produce a result; a `failure` (nil: not the shard's fault) is
    /// evidence against the shard from `identity`, and `maxFailures` distinct workers' evidence
    /// quarantines it.
    mutating func release(_ id: Int, failure: String?, by identity: String) -> [ScheduleEffect] {
        guard let lease = dropLease(id) else { return [] }
        let key = lease.key
        if lease.verifies {
            // A copy that did not come back: another taker may take it.
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
            var effects: [ScheduleEffect] = []
            for other in leasesByShard[key] ?? [] {
                guard let l = revokeLease(other) else { continue }
                effects.append(.cancel(taker: l.taker, lease: other))
            }
            return effects + [
                .event(
                    .shardQuarantined(
                        job: name(key), shard: key.shard, points: study.jobs[key.job].shards[key.shard],
                        workers: distinct, reasons: evidence.map(\.reason)))
            ]
        }
        if !leased(key) { queue.prepend(key) }
        return [.event(.shardRequeued(job: name(key), shard: key.shard, failure: failure))]
    }

    /// Leases past their deadline: their shards are queued again (the lease stays out, so a
    /// late result is still taken).
    public mutating func expire(now: Double) -> [ScheduleEffect] {
        var effects: [ScheduleEffect] = []
        for (id, lease) in leases where !lease.expired && now > lease.deadline {
            leases[id]?.expired = true
            let key = lease.key
            if lease.verifies {
                if verifying[key] != nil { verifyQueue.prepend(key) }
                continue
            }
            if !done[key.job][key.shard] && !queue.contains(key) {
                queue.prepend(key)
                effects.append(
                    .event(
                        .leaseExpired(lease: id, job: name(key), shard: key.shard, worker: takers[lease.taker]?.label ?? "?")))
            }
        }
        return effects
    }

    // MARK: Trust

    /// The shard `key` was finished by `identity`: every other worker that failed it was wrong,
    /// and one that fails everything it is given (no success, `maxFailures` refuted failures)
    /// is quarantined.
    mutating func refute(_ key: ShardKey, finishedBy identity: String) -> [ScheduleEffect] {
        guard let evidence = failures.removeValue(forKey: key) else { return [] }
        var effects: [ScheduleEffect] = []
        for other in Set(evidence.map(\.identity)).sorted() where other != identity {
            records[other, default: Record()].refuted += 1
            if let record = records[other], record.successes == 0, record.refuted >= settings.maxFailures {
                effects += quarantineWorker(
                    other, reason: "it failed \(record.refuted) shards that other workers computed, and computed none")
            }
        }
        return effects
    }

    /// Quarantines a worker identity: its takers leave the books (`.evict`), and its failures
    /// no longer count against any shard.
    mutating func quarantineWorker(_ identity: String, reason: String) -> [ScheduleEffect] {
        guard quarantinedWorkers[identity] == nil else { return [] }
        quarantinedWorkers[identity] = reason
        var effects: [ScheduleEffect] = [.event(.workerQuarantined(identity: identity, reason: reason))]
        for key in failures.keys.sorted() {
            failures[key]?.removeAll { $0.identity == identity }
            let distinct = Set((failures[key] ?? []).map(\.identity)).count
            if quarantined.contains(key) && distinct < settings.maxFailures {
                setQuarantined(key, false)
                if !done[key.job][key.shard] { queue.prepend(key) }
                effects.append(.event(.shardReleased(job: name(key), shard: key.shard, evidenceFrom: identity)))
            }
        }
        for t in takers.keys.sorted() where takers[t]?.identity == identity {
            effects += leave(t)
            effects.append(.evict(taker: t, reason: reason))
        }
        return effects
    }

    /// A verification copy's answer. Equal to the stored one: verified. Different: a third
    /// worker decides, and the one that disagreed with the other two is quarantined and every
    /// result it delivered this run is voided and computed again.
    mutating func verified(_ key: ShardKey, _ answer: Verification.Answer) -> [ScheduleEffect] {
        guard var entry = verifying[key] else { return [] }
        let job = study.jobs[key.job]
        guard let second = entry.second else {
            if Verification.agree(entry.first, answer) {
                verifying[key] = nil
                verification.matched += 1
                return [.event(.verified(job: job.name, shard: key.shard, worker: answer.label, against: entry.first.label))]
            }
            verification.mismatched += 1
            entry.second = answer
            entry.workers.insert(answer.identity)
            verifying[key] = entry
            verifyQueue.prepend(key)
            return [
                .event(.verifyMismatch(job: job.name, shard: key.shard, worker: answer.label, against: entry.first.label))
            ]
        }
        verifying[key] = nil
        let lie = "disagreed with two other workers'"
        if Verification.agree(answer, second) && !Verification.agree(answer, entry.first) {
            // The stored result was the lie: replace it with the agreeing answer.
            let range = job.shards[key.shard]
            var effects: [ScheduleEffect] = [
                .revoke(
                    Journal.ShardRevoked(
                        job: job.id, shard: key.shard, digest: Journal.digest(entry.first.metrics),
                        reason: "\(entry.first.identity) disagreed with two workers")),
                .journal(
                    Journal.ShardDone(
                        job: job.id, shard: key.shard, start: range.lowerBound, end: range.upperBound,
                        worker: answer.label, seconds: 0, time: 0, metrics: answer.metrics, artifact: answer.artifact)),
            ]
            finished[key] = answer.metrics
            storedBy[key] = answer.identity
            if let artifact = answer.artifact { outputs[job.name] = artifact }
            verification.revoked += 1
            effects += unmask(entry.first.identity, because: "its result for shard \(key.shard) of \(job.name) \(lie)")
            return effects
        }
        if Verification.agree(answer, entry.first) {
            return unmask(second.identity, because: "its result for shard \(key.shard) of \(job.name) \(lie)")
        }
        return [.event(.verifyUndecided(job: job.name, shard: key.shard))]
    }

    /// A worker found lying: quarantined, and every other result it delivered this run voided,
    /// so its shards (and the jobs that read what it made) are computed again.
    mutating func unmask(_ identity: String, because reason: String) -> [ScheduleEffect] {
        guard !verification.liars.contains(identity) else { return [] }
        verification.liars.append(identity)
        var effects = quarantineWorker(identity, reason: reason)
        var voided: [ShardKey] = []
        for key in delivered[identity] ?? [] where storedBy[key] == identity && done[key.job][key.shard] {
            voided.append(key)
        }
        // Jobs that read an artifact it made are voided too, transitively.
        var tainted = Set(voided.filter { study.jobs[$0.job].definition.kind.makesArtifact }.map(\.job))
        var grew = !tainted.isEmpty
        while grew {
            grew = false
            for (j, job) in study.jobs.enumerated()
            where !tainted.contains(j) && job.dependencies.contains(where: tainted.contains) {
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
            effects.append(
                .revoke(
                    Journal.ShardRevoked(
                        job: job.id, shard: key.shard, digest: Journal.digest(metrics),
                        reason: storedBy[key] == identity
                            ? "delivered by \(identity), which failed verification"
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
        if !voided.isEmpty { effects.append(.event(.resultsVoided(count: voided.count, identity: identity))) }
        return effects
    }
}
