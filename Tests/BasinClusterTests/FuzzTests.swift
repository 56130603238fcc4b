import BasinCluster
import BasinFuzz
import BasinNN
import BasinSweep
import BasinTestSupport
import Foundation
import Testing

/// A genuine worker in process: WorkerCore and an Executor, exchanging messages with a
/// CoordinatorCore until the sweep is finished. Returns every record the coordinator journaled.
func runGenuineSweep(
    _ coordinator: inout CoordinatorCore, worker: inout WorkerCore, fixture: StudyFixture, start: Double,
    peer: Data = Data("genuine#0".utf8)
) throws -> [Journal.ShardDone] {
    let executor = Executor(spec: fixture.spec, base: fixture.directory)
    let disk = ArtifactDisk(store: fixture.store)
    var records: [Journal.ShardDone] = []
    var now = start
    var toCoordinator: [WireMessage] = []
    func fromWorker(_ actions: [WorkerCore.Action]) throws {
        for action in actions {
            switch action {
            case .send(let message): toCoordinator.append(message)
            case .compute(let task):
                let output = try executor.execute(task.definition, id: task.job, range: task.range)
                try fromWorker(worker.computed(task, metrics: output.values, seconds: 0.01, now: now))
            default: break
            }
        }
    }
    try fromWorker(worker.connected(now: now))
    for _ in 0..<10_000 where !coordinator.isFinished {
        now += 0.01
        var replies: [CoordinatorCore.Action] = []
        while !toCoordinator.isEmpty {
            replies += disk.settle(
                coordinator.receive(peer: peer, frames: toCoordinator.removeFirst().frames(), now: now), into: &coordinator)
        }
        replies += coordinator.durable(now: now) + coordinator.tick(now: now)
        for action in replies {
            if case .journal(let record) = action { records.append(record) }
            if case .send(let to, let message) = action, to == peer {
                try fromWorker(worker.receive(frames: message.frames(), now: now))
            }
        }
        try fromWorker(worker.tick(now: now))
    }
    return records
}

/// Metrics by (job id, shard), bit for bit.
func metricsByShard(_ records: [Journal.ShardDone]) -> [String: [UInt64]] {
    Dictionary(records.map { ("\($0.job)/\($0.shard)", $0.metrics.map(\.bitPattern)) }, uniquingKeysWith: { a, _ in a })
}

@Suite struct FuzzTests {
    static let messages = 100_000

    /// Valid messages a worker sends, for leases nobody fuzzing holds.
    static func workerTemplates(_ fixture: StudyFixture) -> [WireMessage] {
        let job = fixture.study.jobs[0]
        let values = [Double](repeating: 0.5, count: 4 * job.shards[0].count).withUnsafeBytes { Data($0) }
        let hash = String(repeating: "ab", count: 32)
        return [
            HelloHeader(worker: "fuzz", host: "h", pid: 7, slots: 2, version: "x", kinds: ["surface"]).message(),
            HeartbeatHeader(computing: 1, queued: 0).message(),
            ResultHeader(lease: 1_000_000, job: job.id, jobIndex: 0, shard: 0, seconds: 0.1).message(binary: [values]),
            FailHeader(lease: 1_000_001, error: "boom").message(),
            PutHeader(artifact: hash, size: 10, offset: 0).message(binary: [Data(count: 10)]),
            FetchHeader(artifact: hash, offset: 0, length: 100).message(),
            ByeHeader().message(),
        ]
    }

    /// 100,000 mutated messages from 40 peers into a live CoordinatorCore (ticks and fsyncs
    /// between them): no trap, no result stored; then a genuine worker finishes the sweep
    /// with results bitwise equal to a clean run.
    @Test func mutatedMessagesCannotHurtTheCoordinator() throws {
        let fixture = try StudyFixture()
        defer { try? FileManager.default.removeItem(at: fixture.directory) }
        var clean = try fixture.core()
        var cleanWorker = WorkerCore(name: "genuine", slots: 2)
        let expected = metricsByShard(try runGenuineSweep(&clean, worker: &cleanWorker, fixture: fixture, start: 0))
        #expect(expected.count == fixture.study.jobs.reduce(0) { $0 + $1.shards.count })

        var core = try fixture.core()
        let disk = ArtifactDisk(store: fixture.store)
        var mutator = MessageMutator(seed: 11, templates: Self.workerTemplates(fixture))
        var now = 0.0
        var journaled: [Journal.ShardDone] = []
        var disconnects = 0, logLines = 0
        let started = Date()
        for i in 0..<Self.messages {
            let peer = Data("fuzz-\(i % 40)".utf8)
            var actions = disk.settle(core.receive(peer: peer, frames: mutator.message(), now: now), into: &core)
            if i % 100 == 0 {
                now += 0.05
                actions += core.durable(now: now) + core.tick(now: now)
            }
            for action in actions {
                switch action {
                case .journal(let record): journaled.append(record)
                case .send(_, let message) where message.command == .disconnect: disconnects += 1
                case .event: logLines += 1
                default: break
                }
            }
        }
        let seconds = Date().timeIntervalSince(started)
        print(
            "fuzz: sent \(mutator.count) mutated messages into CoordinatorCore in \(String(format: "%.1f", seconds)) s (\(disconnects) DISCONNECTs, \(logLines) log lines)"
        )
        #expect(mutator.count == Self.messages)
        #expect(journaled.isEmpty, "a mutated message was journaled as a result")
        #expect(disconnects > Self.messages / 2)
        // The log stays bounded: per window, a line per peer at most and a summary.
        #expect(logLines < 2_000, "\(logLines) log lines")
        // The fuzzing peers fall silent and are retired; a genuine worker finishes the sweep.
        now += 10
        _ = core.tick(now: now)
        var worker = WorkerCore(name: "genuine", slots: 2)
        let records = try runGenuineSweep(&core, worker: &worker, fixture: fixture, start: now)
        #expect(core.isFinished && core.quarantine.isEmpty)
        #expect(metricsByShard(records) == expected)
    }

    /// Valid messages a coordinator sends to a worker that has joined.
    static func coordinatorTemplates(_ fixture: StudyFixture) throws -> [WireMessage] {
        var core = try fixture.core()
        let sent = core.receive(
            peer: Data("w".utf8), frames: HelloHeader(worker: "w", slots: 2).message().frames(), now: 0)
        var templates = sent.compactMap { if case .send(_, let m) = $0 { return m } else { return nil } }
        let hash = String(repeating: "cd", count: 32)
        templates += [
            ChunkHeader(artifact: hash, offset: 0, size: 5).message(binary: [Data(count: 5)]),
            ChunkHeader(artifact: hash, error: "no such artifact").message(),
            TakenHeader(artifact: hash, offset: 3, complete: false).message(),
            AckHeader(lease: 1).message(), CancelHeader(lease: 2).message(), HeartbeatHeader(epoch: 1).message(),
            DisconnectHeader(reason: "go away").message(), WelcomeHeader(epoch: 1, heartbeatMilliseconds: 1000).message(),
        ]
        return templates
    }

    /// 100,000 mutated coordinator messages into a WorkerCore: no trap, nothing written
    /// outside its cache; afterwards it still finishes a sweep with results equal to a clean run.
    @Test func mutatedMessagesCannotHurtTheWorker() throws {
        let fixture = try StudyFixture()
        defer { try? FileManager.default.removeItem(at: fixture.directory) }
        let cache = fixture.directory.appendingPathComponent("fuzz-cache")
        let disk = ArtifactDisk(store: ArtifactStore(directory: cache))
        var worker = WorkerCore(name: "genuine", slots: 2)
        _ = worker.connected(now: 0)
        var mutator = MessageMutator(seed: 12, templates: try Self.coordinatorTemplates(fixture))
        let before = try FileManager.default.contentsOfDirectory(atPath: fixture.directory.path).sorted()
        var now = 0.0
        var fails = 0
        let started = Date()
        for i in 0..<Self.messages {
            for action in disk.settle(worker.receive(frames: mutator.message(), now: now), into: &worker, now: now) {
                if case .send(let message) = action, message.command == .fail { fails += 1 }
                if case .compute(let task) = action {
                    // Computing is not fuzzed here: the task is answered as failed.
                    _ = worker.failed(task, error: "not computed", now: now)
                }
            }
            if i % 100 == 0 {
                now += 0.05
                _ = disk.settle(worker.tick(now: now), into: &worker, now: now)
            }
        }
        let seconds = Date().timeIntervalSince(started)
        print(
            "fuzz: sent \(mutator.count) mutated messages into WorkerCore in \(String(format: "%.1f", seconds)) s (\(fails) FAILs)"
        )
        #expect(mutator.count == Self.messages)
        // Nothing appeared beside the cache (no path from a header was written).
        let after = try FileManager.default.contentsOfDirectory(atPath: fixture.directory.path).sorted()
        #expect(Set(after).subtracting(before).isSubset(of: ["fuzz-cache"]))
        let cached = FileManager.default.enumerator(atPath: cache.path)?.compactMap { $0 as? String } ?? []
        #expect(cached.allSatisfy { !$0.contains("..") })

        var coordinator = try fixture.core()
        var reference = try fixture.core()
        var fresh = WorkerCore(name: "genuine", slots: 2)
        let expected = metricsByShard(try runGenuineSweep(&reference, worker: &fresh, fixture: fixture, start: 0))
        let records = try runGenuineSweep(&coordinator, worker: &worker, fixture: fixture, start: now + 100)
        #expect(coordinator.isFinished && metricsByShard(records) == expected)
    }
}
