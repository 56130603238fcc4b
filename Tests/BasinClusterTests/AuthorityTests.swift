import BasinCluster
import BasinNN
import BasinSweep
import BasinTestSupport
import Foundation
import Testing

/// A peer speaks only for what it holds, within limits; a worker that vanishes is not evidence
/// against its shard. Asserted on what the coordinator sends and journals.
@Suite struct AuthorityTests {
    let fixture = try! StudyFixture()

    func tasks(_ actions: [CoordinatorCore.Action], to peer: String) -> [WireMessage] {
        sent(actions).filter { $0.peer == peer && $0.message.command == .task }.map(\.message)
    }

    func journaled(_ actions: [CoordinatorCore.Action]) -> Bool {
        actions.contains { if case .journal = $0 { true } else { false } }
    }

    func result(_ task: WireMessage, values: [Double]? = nil, lease: Int? = nil) -> [Data] {
        let count = (task.int("end") ?? 0) - (task.int("start") ?? 0)
        let header = ResultHeader(
            lease: lease ?? task.int("lease") ?? 0, job: task.string("job") ?? "", jobIndex: task.int("job_index") ?? 0,
            shard: task.int("shard") ?? 0, seconds: 0.1)
        let metrics = values ?? [Double](repeating: 0.5, count: 4 * count)
        return header.message(binary: [metrics.withUnsafeBytes { Data($0) }]).frames()
    }

    @Test func resultsAndFailsOnlyFromTheLeaseHolderWithValuesTheJobCanProduce() throws {
        var core = try fixture.core()
        let a = Data("a".utf8), b = Data("b".utf8)
        let taskA = try #require(tasks(core.receive(peer: a, frames: hello("a", slots: 1), now: 0), to: "a").first)
        _ = core.receive(peer: b, frames: hello("b", slots: 1), now: 0)
        // b answers a's lease: refused, nothing journaled, a's lease still stands.
        let stolen = core.receive(peer: b, frames: result(taskA), now: 0.1)
        #expect(!journaled(stolen) && sent(stolen).map(\.message.command) == [.disconnect])
        #expect(sent(stolen).first?.message.string("reason")?.contains("does not hold") == true)
        // An invented lease, and a FAIL for it.
        let invented = core.receive(peer: a, frames: result(taskA, lease: 999), now: 0.2)
        #expect(!journaled(invented) && sent(invented).map(\.message.command) == [.disconnect])
        let a2 = Data("a2".utf8)
        let taskA2 = try #require(tasks(core.receive(peer: a2, frames: hello("a2", slots: 1), now: 0.3), to: "a2").first)
        let fail = core.receive(
            peer: a2, frames: FailHeader(lease: taskA2.int("lease")! + 100, error: "x").message().frames(), now: 0.3)
        #expect(sent(fail).map(\.message.command) == [.disconnect])
        // Values a surface cannot produce: each refused and never journaled.
        let count = 4 * ((taskA2.int("end") ?? 0) - (taskA2.int("start") ?? 0))
        for (values, words) in [
            ([0.5, 1.5] + [Double](repeating: 0.5, count: count - 2), "outside [0, 1]"),
            ([-0.1] + [Double](repeating: 0.5, count: count - 1), "negative"),
            ([Double](repeating: 0.5, count: count + 4), "values where"),
        ] {
            var fresh = try fixture.core()
            let peer = Data("w".utf8)
            let task = try #require(tasks(fresh.receive(peer: peer, frames: hello("w", slots: 1), now: 0), to: "w").first)
            let actions = fresh.receive(peer: peer, frames: result(task, values: values), now: 0.1)
            #expect(!journaled(actions))
            #expect(sent(actions).first?.message.string("reason")?.contains(words) == true, "\(sent(actions))")
        }
        // Refused values count against the shard: workers that keep answering it with values
        // the coordinator cannot take (here each new worker in turn) end with it quarantined,
        // instead of it being issued forever.
        var looping = try fixture.core()
        var quarantined = false
        for round in 0..<10 where !quarantined {
            let peer = Data("w\(round)".utf8)
            guard let task = tasks(looping.receive(peer: peer, frames: hello("w\(round)", slots: 1), now: Double(round)), to: "w\(round)").first
            else { break }
            let actions = looping.receive(peer: peer, frames: result(task, values: [-1] + [Double](repeating: 0.5, count: count - 1)), now: Double(round) + 0.5)
            #expect(!journaled(actions) && sent(actions).contains { $0.message.command == .disconnect })
            quarantined = !looping.quarantine.isEmpty
        }
        #expect(quarantined, "a shard whose values are refused on every worker must end quarantined")
        // The holder's honest answer is taken.
        var honest = try fixture.core()
        let task = try #require(tasks(honest.receive(peer: a, frames: hello("a", slots: 1), now: 0), to: "a").first)
        #expect(journaled(honest.receive(peer: a, frames: result(task), now: 0.1)))
    }

    /// A worker repeats HELLO each second until a WELCOME reaches it; when the first HELLO was
    /// answered after all, the repeat gets another WELCOME and the tasks already sent stand, so
    /// their results are taken (a slow coordinator must not void its own leases).
    @Test func aRepeatedHelloIsWelcomedAgainAndTheLeasesStand() throws {
        var core = try fixture.core()
        let a = Data("a".utf8)
        let first = try #require(tasks(core.receive(peer: a, frames: hello("a", slots: 2), now: 0), to: "a").first)
        let again = core.receive(peer: a, frames: hello("a", slots: 2), now: 0.5)
        #expect(sent(again).map(\.message.command) == [.welcome])
        #expect(!again.contains { if case .event = $0 { true } else { false } }, "\(again)")
        let answered = core.receive(peer: a, frames: result(first), now: 1)
        #expect(journaled(answered))
        #expect(!sent(answered).contains { $0.message.command == .disconnect })
    }

    @Test func uploadsAndWorkersStayWithinTheirLimits() throws {
        var settings = CoordinatorCore.Settings()
        settings.maxWorkers = 2
        var core = try fixture.core(settings: settings)
        _ = core.receive(peer: Data("a".utf8), frames: hello("a"), now: 0)
        _ = core.receive(peer: Data("b".utf8), frames: hello("b"), now: 0)
        let third = sent(core.receive(peer: Data("c".utf8), frames: hello("c"), now: 0))
        #expect(third.map(\.message.command) == [.disconnect])
        #expect(third.first?.message.string("reason")?.contains("limit of 2 workers") == true)
        #expect(core.workersAlive == 2)

        let training = try StudyFixture(training: true)
        var limited = CoordinatorCore.Settings()
        limited.maxArtifactBytes = 1000
        var trainer = try training.core(settings: limited)
        _ = trainer.receive(peer: Data("t".utf8), frames: hello("t", slots: 1), now: 0)
        let big = PutHeader(artifact: String(repeating: "ab", count: 32), size: 5000, offset: 0)
            .message(binary: [Data(count: 10)])
        let refused = sent(trainer.receive(peer: Data("t".utf8), frames: big.frames(), now: 0.1))
        #expect(refused.first?.message.string("reason")?.contains("larger than the limit of 1000") == true)
        // A second upload while the one job that makes an artifact has one open.
        _ = trainer.receive(peer: Data("u".utf8), frames: hello("u", slots: 1), now: 0.2)
        let first = PutHeader(artifact: String(repeating: "cd", count: 32), size: 100, offset: 0)
            .message(binary: [Data(count: 10)])
        let second = PutHeader(artifact: String(repeating: "ef", count: 32), size: 100, offset: 0)
            .message(binary: [Data(count: 10)])
        // The first chunk of a 100-byte upload is written (to the run's store) and TAKEN says so.
        let disk = ArtifactDisk(store: training.store)
        let taken = sent(disk.settle(trainer.receive(peer: Data("u".utf8), frames: first.frames(), now: 0.3), into: &trainer))
        #expect(taken.first?.message.command == .taken && taken.first?.message.int("offset") == 10, "\(taken)")
        let again = sent(trainer.receive(peer: Data("u".utf8), frames: second.frames(), now: 0.3))
        #expect(again.first?.message.string("reason")?.contains("are open") == true, "\(again)")
    }

    /// Five workers vanish in turn holding the same shard: it goes back to the queue each time,
    /// uncounted, and the sixth computes it. A worker that keeps vanishing is quarantined.
    @Test func vanishingIsNotTheShardsFaultButCountsAgainstTheWorker() throws {
        var core = try fixture.core()
        var now = 0.0
        var target: (job: Int?, shard: Int?) = (nil, nil)
        for round in 0..<5 {
            let name = "v\(round)"
            let peer = Data(name.utf8)
            let given = tasks(core.receive(peer: peer, frames: hello(name, slots: 1), now: now), to: name)
            let task = try #require(given.first)
            if round == 0 { target = (task.int("job_index"), task.int("shard")) }
            #expect(task.int("job_index") == target.job && task.int("shard") == target.shard)
            now += 6
            _ = core.tick(now: now)
        }
        #expect(core.quarantine.isEmpty && core.quarantinedWorkers.isEmpty)
        // One process (same name, host and pid) that vanishes holding leases three times.
        var flaky = try fixture.core()
        var t = 0.0
        for generation in 0..<3 {
            _ = flaky.receive(peer: Data("f#\(generation)".utf8), frames: hello("f", slots: 1), now: t)
            t += 6
            _ = flaky.tick(now: t)
        }
        #expect(flaky.quarantinedWorkers.keys.contains { $0.hasPrefix("f@") })
        #expect(flaky.quarantine.isEmpty)
    }
}

@Suite struct HostileCoordinatorTests {
    /// What a broken or hostile coordinator sends: each answered with a FAIL naming the field
    /// (or dropped), never a trap, never a path outside the cache.
    @Test func badTasksAndChunksAreFailsNotTraps() throws {
        let fixture = try StudyFixture()
        let cache = ArtifactDisk(store: ArtifactStore(directory: fixture.directory.appendingPathComponent("cache")))
        var worker = WorkerCore(name: "w", slots: 2)
        func receive(_ frames: [Data], now: Double) -> [WorkerCore.Action] {
            cache.settle(worker.receive(frames: frames, now: now), into: &worker, now: now)
        }
        _ = worker.connected(now: 0)
        _ = worker.receive(frames: WelcomeHeader(epoch: 1, heartbeatMilliseconds: 1000).message().frames(), now: 0)
        let job = fixture.study.jobs[0]
        let spec = try JSONValue(encoding: fixture.spec)
        func task(_ edit: (inout [String: JSONValue]) -> Void) -> [Data] {
            var header: [String: JSONValue] = [
                "lease": .integer(7), "job": .string(job.id), "job_index": .integer(0), "shard": .integer(0),
                "start": .integer(0), "end": .integer(3), "deadline_ms": .integer(1000),
                "definition": (try? JSONValue(encoding: job.definition)) ?? .null, "spec": spec,
                "base": .string(fixture.directory.path),
            ]
            edit(&header)
            return WireMessage(.task, header).frames()
        }
        let hash = String(repeating: "0", count: 64)
        let cases: [(String, (inout [String: JSONValue]) -> Void)] = [
            ("'end'", { $0["end"] = .integer(-5) }),
            ("'start'", { $0["start"] = .number(1e300) }),
            ("'job'", { $0["job"] = .string("../../etc/passwd") }),
            ("'files'", { $0["files"] = .object(["../../outside": .string(hash)]) }),
            ("'files'", { $0["files"] = .object(["/etc/passwd": .string(hash)]) }),
            ("'inputs'", { $0["inputs"] = .object(["train": .string("not-a-hash")]) }),
            ("spec does not parse", { $0["spec"] = .object(["model": .string("x")]) }),
        ]
        var said: [String] = []
        for (words, edit) in cases {
            let actions = worker.receive(frames: task(edit), now: 1)
            let fails = actions.compactMap { if case .send(let m) = $0, m.command == .fail { m } else { nil } }
            #expect(fails.count == 1 && fails[0].string("error")?.contains(words) == true, "\(words): \(actions)")
            for case .event(.messageRefused(let error)) in actions { said.append(error) }
            #expect(!actions.contains { if case .compute = $0 { true } else { false } })
        }
        // Said as values, the refusal and why (the log of bad messages is rate-limited: the
        // first of a burst in full, the rest counted).
        #expect(said.first?.contains("'end'") == true, "\(said)")
        #expect(!FileManager.default.fileExists(atPath: fixture.directory.appendingPathComponent("outside").path))
        // A CHUNK longer than asked and one at the wrong offset fail the task that needs it.
        let blob = Data(count: 3 << 20)
        let name = ArtifactStore.hash(blob)
        let reading = task { $0["inputs"] = .object(["train/x": .string(name)]) }
        _ = receive(reading, now: 2)
        let long = ChunkHeader(artifact: name, offset: 0, size: blob.count).message(binary: [Data(count: 2 << 20)])
        let failed = receive(long.frames(), now: 2)
        #expect(failed.contains { if case .send(let m) = $0 { m.command == .fail } else { false } })
        _ = receive(reading, now: 3)
        let first = ChunkHeader(artifact: name, offset: 0, size: blob.count).message(binary: [Data(count: 1 << 20)])
        _ = receive(first.frames(), now: 3)
        let skipped = ChunkHeader(artifact: name, offset: 2 << 20, size: blob.count).message(binary: [Data(count: 1 << 20)])
        let wrong = receive(skipped.frames(), now: 3)
        #expect(wrong.contains { if case .send(let m) = $0 { m.command == .fail } else { false } })
        #expect(!worker.cached.contains(name) && !cache.store.contains(name))
        // Neither left a partial file behind.
        let left = FileManager.default.enumerator(atPath: cache.store.directory.path)?.compactMap { $0 as? String } ?? []
        #expect(!left.contains { $0.hasSuffix(".part") }, "\(left)")
    }
}

@Suite struct HeaderEncodingTests {
    /// The hand-built ACK and CANCEL headers are the bytes JSONEncoder would write.
    @Test func fastHeadersMatchTheEncoder() throws {
        for lease in [1, 42, 1 << 40] {
            #expect(AckHeader(lease: lease).message() == WireMessage(.ack, header: AckHeader(lease: lease)))
            #expect(CancelHeader(lease: lease).message() == WireMessage(.cancel, header: CancelHeader(lease: lease)))
            #expect(try AckHeader(lease: lease).message().decode(AckHeader.self).lease == lease)
        }
    }
}
