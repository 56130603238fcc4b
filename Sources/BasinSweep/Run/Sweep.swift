import BasinLandscape
import BasinNN
import DequeModule
import Foundation

/// A run directory opened by a coordinator: locked, the study expanded and compared with the
/// last run's, finished shards read back from the journal, a new journal segment open.
public final class Sweep {
    public let run: RunDirectory
    public let spec: StudySpec
    public let executor: Executor
    public let study: Study
    public let journal: Journal
    /// Shards already journaled, by job id.
    public let completed: [String: Set<Int>]
    /// The run's artifacts (`RUN/artifacts`).
    public let store: ArtifactStore
    /// Artifact of every finished job that made one, by job name.
    public private(set) var outputs: [String: String]
    /// The files the spec names (data files, checkpoints and curves of listed jobs) stored as
    /// artifacts, by the path the spec writes: workers fetch them, so they need no shared
    /// filesystem.
    public let fileArtifacts: [String: String]
    public let epoch: Int
    /// What changed since the last run on this directory, one line each.
    public let changes: [String]
    private let lock: RunLock

    public init(specText: String, spec: StudySpec, base: URL, directory: URL) throws {
        run = RunDirectory(directory)
        lock = try run.lock()
        self.spec = spec
        executor = Executor(spec: spec, base: base)
        study = try Study(spec: spec, executor: executor)
        let previous = Self.readStudy(run.studyFile)
        let (journal, records, damage) = try Journal.resume(directory: run.journal)
        var changes: [String] = damage.map(\.description)
        if !previous.isEmpty {
            let ids = Set(study.jobs.map(\.id))
            let kept = study.jobs.filter { previous[$0.name] == $0.id }
            let changed = study.jobs.filter { previous[$0.name] != nil && previous[$0.name] != $0.id }
            let added = study.jobs.filter { previous[$0.name] == nil }
            let names = Set(study.jobs.map(\.name))
            let removed = previous.filter { !ids.contains($0.value) && !names.contains($0.key) }
            changes.append("\(kept.count) job(s) unchanged keep their results")
            for job in changed { changes.append("job \(job.name) changed: it starts fresh") }
            for job in added { changes.append("job \(job.name) is new") }
            for name in removed.keys.sorted() {
                changes.append("job \(name) is no longer in the spec; its result file stays")
            }
        }
        var completed: [String: Set<Int>] = [:]
        var epoch = 0
        store = ArtifactStore(directory: run.artifacts)
        var outputs: [String: String] = [:]
        var verified: [String: Bool] = [:]
        for record in records {
            switch record {
            case .runStarted(let e, _): epoch = max(epoch, e)
            case .shardRevoked: break
            case .shardDone(let done):
                if let job = study.job(id: done.job), done.shard < job.shards.count,
                    job.shards[done.shard] == done.start..<done.end
                {
                    // A job that makes an artifact is done only while the artifact is there and
                    // hashes to its name; a corrupt one is set aside and the job runs again.
                    if let artifact = done.artifact {
                        guard store.contains(artifact) else { continue }
                        if verified[artifact] == nil { verified[artifact] = store.verify(artifact) }
                        guard verified[artifact] == true else {
                            if store.setAside(artifact) {
                                changes.append(
                                    "artifact \(artifact.prefix(12)) of \(job.name) does not match its SHA-256: set aside, the job runs again")
                            }
                            continue
                        }
                        outputs[job.name] = artifact
                    }
                    completed[done.job, default: []].insert(done.shard)
                }
            }
        }
        self.changes = changes
        self.completed = completed
        self.outputs = outputs
        // Files already stored under the hash the study computed are not read again.
        var fileArtifacts = study.fileHashes
        for (file, hash) in study.fileHashes where !store.contains(hash) {
            fileArtifacts[file] = try store.put(try Data(contentsOf: executor.path(file), options: .mappedIfSafe))
        }
        self.fileArtifacts = fileArtifacts
        // Read those copies from now on, as workers do.
        let artifactStore = store
        executor.localFiles = fileArtifacts.mapValues { artifactStore.url($0) }
        self.epoch = epoch + 1
        executor.readOutputs(outputs, in: store)
        try AtomicFile.write(Data(specText.utf8), to: run.specFile)
        try Self.writeStudy(study, base: base, to: run.studyFile)
        self.journal = journal
        try journal.append(.runStarted(epoch: self.epoch, time: Date().timeIntervalSince1970))
        try journal.sync()
    }

    /// Shards still to compute.
    public var remainingShards: Int {
        study.jobs.reduce(0) { sum, job in
            sum + job.shards.indices.filter { !(completed[job.id]?.contains($0) ?? false) }.count
        }
    }

    /// Merges every journaled shard into `results/`, `jobs.csv` and `summary.csv`.
    @discardableResult
    public func merge() throws -> (done: Int, total: Int) {
        try Merger(study: study, executor: executor, run: run).merge(records: try Journal.read(run.journal))
    }

    /// The study summary from the merged result files (nil for a spec without stages).
    public func summary() throws -> StudySummary? {
        try Self.summary(of: study, spec: spec, run: run)
    }

    private static func summary(of study: Study, spec: StudySpec, run: RunDirectory) throws -> StudySummary? {
        guard let stages = spec.stages else { return nil }
        var results: [String: ResultFile] = [:]
        for job in study.jobs where FileManager.default.fileExists(atPath: run.result(job.name).path) {
            results[job.name] = try ResultFile(contentsOf: run.result(job.name))
        }
        return try StudySummary(stages: stages, base: spec.train, results: results)
    }

    /// Records that job `name` made `artifact` (already in `store`), so later jobs can read it.
    public func recordOutput(_ name: String, artifact: String) {
        outputs[name] = artifact
        executor.readOutputs(outputs, in: store)
    }

    /// Computes every remaining shard in this process (`--workers 0`), scheduled by the same
    /// `ShardScheduler` as a cluster, so failures, quarantine, dependencies and progress follow
    /// one set of rules: a shard that fails is tried again and quarantined after
    /// `maxFailures` failures, and the run goes on without it. Results are journaled in groups
    /// (one fsync per 64 shards or per second, and at the end). Returns the scheduler as it
    /// ended (quarantined shards, blocked jobs). `stop` is asked between shards: when true,
    /// the journal is synced and the run ends there (a rerun resumes).
    @discardableResult
    public func runLocally(
        events: (ScheduleEvent) -> Void = { _ in }, progress: (Int, Int) -> Void = { _, _ in },
        until stop: () -> Bool = { false }
    ) throws -> ShardScheduler {
        var settings = ShardScheduler.Settings()
        settings.leaseSeconds = spec.sweep.leaseSeconds
        var scheduler = ShardScheduler(study: study, completed: completed, outputs: outputs, settings: settings)
        // One taker with room for a group of results between fsyncs (its credit comes back
        // as they are made durable).
        _ = scheduler.join(0, name: "local", identity: "local", label: "local", slots: 64)
        let clock = ContinuousClock(), start = clock.now
        var lastSync = clock.now
        let names = Dictionary(study.jobs.map { ($0.id, $0.name) }, uniquingKeysWith: { a, _ in a })
        var pending = Deque(scheduler.dispatch(now: start.secondsSince))
        while true {
            guard let effect = pending.popFirst() else {
                try journal.sync()
                lastSync = clock.now
                pending += scheduler.durable()
                pending += scheduler.dispatch(now: start.secondsSince)
                if pending.isEmpty { break }
                continue
            }
            switch effect {
            case .grant(let grant):
                if stop() {
                    try journal.sync()
                    return scheduler
                }
                let job = study.jobs[grant.key.job], range = job.shards[grant.key.shard]
                let started = clock.now
                do {
                    let output = try executor.execute(job.definition, id: job.id, range: range)
                    let artifact = try output.artifact.map { try store.put($0) }
                    // What a result means (its journal record, newly ready jobs) comes before the
                    // next grant, so the journal is never behind the computation.
                    pending.prepend(
                        contentsOf: scheduler.deliver(
                            lease: grant.lease, by: 0, metrics: output.values, artifact: artifact,
                            seconds: started.secondsSince))
                } catch {
                    pending.prepend(contentsOf: scheduler.fail(lease: grant.lease, by: 0, reason: "\(error)"))
                }
                progress(scheduler.pointsDone, scheduler.pointsTotal)
                if journal.unsynced > 0 && lastSync.secondsSince >= 1 {
                    try journal.sync()
                    lastSync = clock.now
                    pending += scheduler.durable()
                }
            case .journal(var record):
                record.time = Date().timeIntervalSince1970
                try journal.append(.shardDone(record))
                if let artifact = record.artifact, let name = names[record.job] { recordOutput(name, artifact: artifact) }
            case .revoke(let record):
                try journal.append(.shardRevoked(record))
            case .event(let event):
                events(event)
            case .cancel, .acknowledge, .evict:
                // One taker, computing one lease at a time: nothing to tell it.
                break
            }
        }
        return scheduler
    }

    // MARK: study.json

    struct StudyEntry: Codable {
        var name: String
        var id: String
        var kind: String
        var points: Int
        /// Points per shard: shards are `0..<n, n..<2n, …` up to `points`.
        var shardPoints: Int?
        /// Each shard's [start, end] (what runs before `shard_points` was written).
        var shards: [[Int]]?

        enum CodingKeys: String, CodingKey {
            case name, id, kind, points, shards
            case shardPoints = "shard_points"
        }

        /// The shard ranges, from whichever form the file holds; nil when neither is sound.
        var ranges: [Range<Int>]? {
            if let shardPoints, shardPoints > 0, points >= 0 {
                return stride(from: 0, to: points, by: shardPoints).map { $0..<min(points, $0 + shardPoints) }
            }
            return shards?.map { pair in
                pair.count == 2 && pair[0] <= pair[1] ? pair[0]..<pair[1] : 0..<0
            }
        }
    }

    /// `study.json`: the expanded jobs and the directory the spec's relative paths start from.
    struct StudyFile: Codable {
        var base: String
        var jobs: [StudyEntry]
    }

    static func writeStudy(_ study: Study, base: URL, to url: URL) throws {
        let entries = study.jobs.map { job in
            // Shards are cut evenly (the last may be short): their size says it all, in a
            // file that stays small at millions of shards.
            let size = job.shards.first?.count ?? 1
            let even = job.shards.enumerated().allSatisfy { $1 == ($0 * size)..<min(job.pointCount, ($0 + 1) * size) }
            return StudyEntry(
                name: job.name, id: job.id, kind: job.definition.kind.rawValue, points: job.pointCount,
                shardPoints: even ? size : nil, shards: even ? nil : job.shards.map { [$0.lowerBound, $0.upperBound] })
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try AtomicFile.write(try encoder.encode(StudyFile(base: base.path, jobs: entries)), to: url)
    }

    static func readStudyFile(_ url: URL) -> StudyFile? {
        guard let data = try? Data(contentsOf: url) else { return nil }
        return try? JSONDecoder().decode(StudyFile.self, from: data)
    }

    /// Job name → id of the study last written to `url` (empty when there is none).
    static func readStudy(_ url: URL) -> [String: String] {
        Dictionary((readStudyFile(url)?.jobs ?? []).map { ($0.name, $0.id) }, uniquingKeysWith: { a, _ in a })
    }

    /// The directory a run's spec paths start from, as recorded in its `study.json`.
    public static func base(of directory: URL) throws -> URL {
        guard let file = readStudyFile(RunDirectory(directory).studyFile) else {
            throw RunDirectoryError.notARun(directory)
        }
        return URL(fileURLWithPath: file.base)
    }

    /// Merges a run directory without taking its lock (a live run keeps going): the spec is
    /// `spec.yaml` there, already parsed by the caller.
    @discardableResult
    public static func merge(directory: URL, spec: StudySpec) throws -> (done: Int, total: Int) {
        let executor = Executor(spec: spec, base: try base(of: directory))
        let study = try Study(spec: spec, executor: executor)
        let run = RunDirectory(directory)
        return try Merger(study: study, executor: executor, run: run).merge(records: try Journal.read(run.journal))
    }

    /// The study summary of a run directory from its merged result files, without its lock (nil
    /// for a spec without stages): what `basin summary` prints.
    public static func summary(directory: URL, spec: StudySpec) throws -> StudySummary? {
        guard spec.stages != nil else { return nil }
        let study = try Study(spec: spec, executor: Executor(spec: spec, base: try base(of: directory)))
        return try summary(of: study, spec: spec, run: RunDirectory(directory))
    }

    /// Progress of a run directory from its files alone (works while it runs and after).
    /// `records`: the journal when the caller has read it already.
    public static func status(_ directory: URL, records given: [Journal.Record]? = nil) throws -> RunStatus {
        let run = RunDirectory(directory)
        guard let entries = readStudyFile(run.studyFile)?.jobs else {
            throw RunDirectoryError.notARun(directory)
        }
        let records = try given ?? Journal.read(run.journal)
        var donePoints: [String: Set<Int>] = [:]
        var times: [(Double, Int)] = []
        var voided: [String] = []
        for case .shardRevoked(let revoked) in records { voided.append(revoked.reason) }
        for case .shardDone(let done) in records {
            donePoints[done.job, default: []].insert(done.shard)
            times.append((done.time, done.end - done.start))
        }
        let jobs = entries.map { entry in
            let shards = donePoints[entry.id] ?? []
            let ranges = entry.ranges ?? []
            let points = shards.filter { $0 >= 0 && $0 < ranges.count }.reduce(0) { $0 + ranges[$1].count }
            return RunStatus.Job(name: entry.name, kind: entry.kind, done: points, total: entry.points)
        }
        // Rate over the last 30 s of journaled shards.
        let latest = times.map(\.0).max() ?? 0
        let recent = times.filter { $0.0 >= latest - 30 }
        let span = (recent.map(\.0).max() ?? 0) - (recent.map(\.0).min() ?? 0)
        let rate = span > 0 ? Double(recent.dropFirst().reduce(0) { $0 + $1.1 }) / span : 0
        let live = LiveStatus.read(run.statusFile, now: Date().timeIntervalSince1970)
        return RunStatus(
            jobs: jobs, pointsPerSecond: rate, live: live, voided: voided, problems: try RunProblems.read(run.problemsFile))
    }
}

/// What `basin status` prints.
public struct RunStatus: Sendable {
    public struct Job: Sendable {
        public var name: String
        public var kind: String
        public var done: Int
        public var total: Int
    }

    public var jobs: [Job]
    public var pointsPerSecond: Double
    /// What the live coordinator says of itself; nil when none is running.
    public var live: LiveStatus?
    /// Workers connected to a live coordinator; nil when none is running.
    public var workersAlive: Int? { live?.workers }
    /// Why each voided result was voided (a worker failed verification), in journal order.
    public var voided: [String] = []
    /// What the last run to end left undone: quarantined shards, jobs not run.
    public var problems = RunProblems()

    public var done: Int { jobs.reduce(0) { $0 + $1.done } }
    public var total: Int { jobs.reduce(0) { $0 + $1.total } }
    public var eta: Double? { pointsPerSecond > 0 && done < total ? Double(total - done) / pointsPerSecond : nil }
}
