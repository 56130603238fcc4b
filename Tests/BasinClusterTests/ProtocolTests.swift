import BasinCluster
import BasinNN
import BasinSweep
import BasinTestSupport
import Foundation
import Testing

/// A small study on disk: a spirals MLP checkpoint and a spec with two jobs.
struct StudyFixture {
    let directory = TestSupport.temporaryDirectory("basin-cluster")
    let spec: StudySpec
    let study: Study

    /// `training`: a study whose stages train two seeds (3 epochs) and map a surface around each.
    init(shardPoints: Int = 5, training: Bool = false) throws {
        let network = try Network(
            ModelDescription(
                input: [2],
                layers: [
                    .linear(inFeatures: nil, outFeatures: 8, bias: true), .relu,
                    .linear(inFeatures: nil, outFeatures: 2, bias: true),
                ]))
        try Checkpoint.save(network.initialize(seed: 1), to: directory.appendingPathComponent("a.safetensors"))
        try Checkpoint.save(network.initialize(seed: 2), to: directory.appendingPathComponent("b.safetensors"))
        let json = """
            {"model": {"input": [2], "layers": [{"type": "linear", "out_features": 8}, "relu", {"type": "linear", "out_features": 2}]},
             "data": {"source": "spirals", "samples": 100},
             "jobs": [{"surface": {"checkpoint": "a.safetensors", "x": "-1:1:4", "y": "-1:1:3"}},
                      {"interpolate": {"from": "a.safetensors", "to": "b.safetensors", "t": "0:1:5"}}],
             "sweep": {"shard_points": \(shardPoints)}}
            """
        let stages = """
            {"model": {"input": [2], "layers": [{"type": "linear", "out_features": 8}, "relu", {"type": "linear", "out_features": 2}]},
             "data": {"source": "spirals", "samples": 100},
             "train": {"epochs": 3},
             "stages": {"train": {"seeds": [0, 1]}, "surface": {"x": "-1:1:3", "y": "-1:1:3"}},
             "sweep": {"shard_points": \(shardPoints)}}
            """
        spec = try JSONDecoder().decode(StudySpec.self, from: Data((training ? stages : json).utf8))
        study = try Study(spec: spec, executor: Executor(spec: spec, base: directory))
    }

    func core(completed: [String: Set<Int>] = [:], settings: CoordinatorCore.Settings = .init()) throws
        -> CoordinatorCore
    {
        CoordinatorCore(
            study: study, spec: spec, base: directory.path, completed: completed,
            artifacts: store.hashes(), settings: settings)
    }

    /// The run's artifact store, which `disk` reads and writes for the core.
    var store: ArtifactStore { ArtifactStore(directory: directory.appendingPathComponent("artifacts")) }
}

/// The events among `actions`.
func events(_ actions: [CoordinatorCore.Action]) -> [CoordinatorEvent] {
    actions.compactMap { if case .event(let event) = $0 { event } else { nil } }
}

/// The scheduler's events among `actions`.
func scheduled(_ actions: [CoordinatorCore.Action]) -> [ScheduleEvent] {
    events(actions).compactMap { if case .schedule(let event) = $0 { event } else { nil } }
}

func frames(_ command: WireMessage.Command, _ header: [String: JSONValue] = [:], binary: [Data] = []) -> [Data] {
    WireMessage(command, header, binary: binary).frames()
}

func sent(_ actions: [CoordinatorCore.Action]) -> [(peer: String, message: WireMessage)] {
    actions.compactMap {
        if case .send(let peer, let message) = $0 { return (String(decoding: peer, as: UTF8.self), message) }
        return nil
    }
}

func hello(_ name: String, slots: Int = 2) -> [Data] {
    frames(.hello, ["worker": .string(name), "slots": .integer(slots), "host": .string("h"), "pid": .integer(1)])
}

@Suite struct WireMessageTests {
    @Test func roundTripAndErrors() throws {
        let message = ResultHeader(lease: 3, job: String(repeating: "a", count: 64), jobIndex: 0, shard: 0, seconds: 0.5)
            .message(binary: [Data([1, 2, 3])])
        let decoded = try WireMessage(frames: message.frames())
        #expect(decoded == message)
        #expect(try decoded.decode(ResultHeader.self).lease == 3)
        func kind(_ frames: [Data]) -> ProtocolError.Kind? {
            do {
                _ = try WireMessage(frames: frames)
                return nil
            } catch { return error.kind }
        }
        #expect(kind([Data("BASIN/1".utf8)]) == .envelope)
        #expect(kind([Data("BASIN/0".utf8), Data("HELLO".utf8), Data("{}".utf8)]) == .envelope)
        #expect(kind([Data("BASIN/1".utf8), Data("JUMP".utf8), Data("{}".utf8)]) == .envelope)
        // A HELLO with a binary frame appended, a RESULT without its values.
        #expect(kind([Data("BASIN/1".utf8), Data("HELLO".utf8), Data("{}".utf8), Data()]) == .envelope)
        #expect(kind([Data("BASIN/1".utf8), Data("RESULT".utf8), Data("{}".utf8)]) == .envelope)
        let array = try WireMessage(frames: [Data("BASIN/1".utf8), Data("HELLO".utf8), Data("[1]".utf8)])
        #expect(throws: ProtocolError.self) { try array.decode(HelloHeader.self) }
    }

    /// The HELLO of the report that killed the coordinator, and its relatives: each is a
    /// sentence naming the field.
    @Test func numbersThatWouldTrapAreFieldErrors() throws {
        for (slots, expected) in [
            ("1e300", "1e+300"), ("-1", "-1.0"), ("0.5", "0.5"), ("9223372036854775808", "9.223372036854776e+18"),
            ("65", "65.0"), ("\"2\"", "a number"), ("{\"a\": 1}", "a number"),
        ] {
            let frames = [
                Data("BASIN/1".utf8), Data("HELLO".utf8),
                Data(#"{"worker":"x","host":"h","pid":1,"slots":\#(slots),"version":"x"}"#.utf8),
            ]
            let message = try WireMessage(frames: frames)
            do {
                _ = try message.decode(HelloHeader.self)
                Issue.record("slots \(slots) was accepted")
            } catch {
                #expect(error.kind == .field)
                #expect(error.description.contains("HELLO field 'slots'"), "\(error)")
                #expect(error.description.contains(expected), "\(error)")
            }
        }
    }

    /// PROTOCOL.md lists exactly the fields each typed header reads.
    @Test func protocolPageListsExactlyTheHeaderFields() throws {
        let page = try String(
            contentsOf: URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
                "../../Sources/BasinCluster/Protocol/PROTOCOL.md"), encoding: .utf8)
        let headers: [any WireHeader.Type] = [
            HelloHeader.self, HeartbeatHeader.self, ResultHeader.self, FailHeader.self, ByeHeader.self, PutHeader.self,
            FetchHeader.self, WelcomeHeader.self, TaskHeader.self, AckHeader.self, CancelHeader.self,
            DisconnectHeader.self, DoneHeader.self, TakenHeader.self, ChunkHeader.self,
        ]
        #expect(Set(headers.map { $0.command }) == Set(WireMessage.Command.allCases))
        for header in headers {
            let rows = page.split(separator: "\n").filter { $0.hasPrefix("| `\(header.command.rawValue)` |") }
            #expect(rows.count >= 1, "no row for \(header.command.rawValue)")
            // The row's header column names its fields as `name`.
            let listed = Set(
                rows.flatMap { row -> [String] in
                    let columns = row.split(separator: "|", omittingEmptySubsequences: false)
                    guard columns.count > 2 else { return [] }
                    return columns[2].split(separator: "`").enumerated().filter { $0.offset % 2 == 1 }.map {
                        String($0.element)
                    }
                })
            #expect(listed == Set(header.fields), "\(header.command.rawValue): page \(listed.sorted()), code \(header.fields.sorted())")
        }
    }
}

@Suite struct CoordinatorCoreTests {
    let fixture = try! StudyFixture()

    private func result(_ task: WireMessage, metrics value: Double = 0.5) -> [Data] {
        let count = task.int("end")! - task.int("start")!
        return frames(
            .result,
            [
                "lease": task.header["lease"]!, "job": task.header["job"]!, "job_index": task.header["job_index"]!,
                "shard": task.header["shard"]!, "seconds": .number(0.1),
            ],
            binary: [[Double](repeating: value, count: 4 * count).withUnsafeBytes { Data($0) }])
    }

    @Test func helloGetsWelcomeAndWorkUpToItsSlots() throws {
        var core = try fixture.core()
        let out = sent(core.receive(peer: Data("w1".utf8), frames: hello("w1", slots: 2), now: 0))
        #expect(out.map(\.message.command) == [.welcome, .task, .task])
        // Fair across jobs: the first shard of each job before the second of any.
        #expect(out[1].message.int("job_index") == 0 && out[2].message.int("job_index") == 1)
        // The job's definition and spec come with the first task of each job only.
        #expect(out[1].message.header["definition"] != nil && out[1].message.header["spec"] != nil)
    }

    @Test func aWorkerThatNamesItsKindsGetsOnlyThoseJobs() throws {
        var core = try fixture.core()
        var header: [String: JSONValue] = ["worker": .string("py"), "slots": .integer(64)]
        header["kinds"] = .array([.string("interpolate")])
        let out = sent(core.receive(peer: Data("py".utf8), frames: frames(.hello, header), now: 0))
        let tasks = out.filter { $0.message.command == .task }
        // Job 1 (interpolate, 7 points in shards of 5) only; the surface waits for another worker.
        #expect(tasks.count == 2 && tasks.allSatisfy { $0.message.int("job_index") == 1 })
        let other = sent(core.receive(peer: Data("any".utf8), frames: hello("any", slots: 64), now: 0))
        #expect(other.filter { $0.message.command == .task }.allSatisfy { $0.message.int("job_index") == 0 })
        #expect(other.contains { $0.message.command == .task })
    }

    @Test func aWorkerThatNamesAVariantGetsOnlyJobsOfThatVariant() throws {
        var core = try fixture.core()
        func join(_ name: String, _ kinds: [String]) -> [(peer: String, message: WireMessage)] {
            var header: [String: JSONValue] = ["worker": .string(name), "slots": .integer(64)]
            header["kinds"] = .array(kinds.map { .string($0) })
            return sent(core.receive(peer: Data(name.utf8), frames: frames(.hello, header), now: 0)).filter {
                $0.message.command == .task
            }
        }
        // The fixture's surface draws random directions: a worker of trajectory surfaces (and
        // raw planes) is leased nothing of it, one of random surfaces all of it.
        #expect(join("pca", ["surface:trajectory", "plane:raw"]).isEmpty)
        let random = join("random", ["surface:random"])
        #expect(!random.isEmpty && random.allSatisfy { $0.message.int("job_index") == 0 })
    }

    @Test func resultsAreAcknowledgedOnlyWhenDurable() throws {
        var core = try fixture.core()
        let tasks = sent(core.receive(peer: Data("w1".utf8), frames: hello("w1", slots: 1), now: 0)).filter {
            $0.message.command == .task
        }
        let actions = core.receive(peer: Data("w1".utf8), frames: result(tasks[0].message), now: 1)
        #expect(actions.contains { if case .journal = $0 { return true } else { return false } })
        #expect(!sent(actions).contains { $0.message.command == .ack })
        // Its credit is still taken until the ACK: no new task yet.
        #expect(!sent(actions).contains { $0.message.command == .task })
        // The ACK frees it, and the next TASK follows the ACK.
        let durable = sent(core.durable(now: 1))
        #expect(durable.map(\.message.command) == [.ack, .task])
    }

    @Test func finishesWhenEveryShardIsDone() throws {
        var core = try fixture.core()
        var outstanding = sent(core.receive(peer: Data("w1".utf8), frames: hello("w1", slots: 3), now: 0)).filter {
            $0.message.command == .task
        }
        var now = 0.0
        while !outstanding.isEmpty {
            now += 0.01
            let task = outstanding.removeFirst().message
            _ = core.receive(peer: Data("w1".utf8), frames: result(task), now: now)
            outstanding += sent(core.durable(now: now) + core.tick(now: now)).filter { $0.message.command == .task }
        }
        #expect(core.isFinished && core.pointsDone == core.pointsTotal && core.quarantine.isEmpty)
        #expect(sent(core.finish()).map(\.message.command) == [.done])
    }

    @Test func deadWorkersLeasesGoToAnotherWorker() throws {
        var core = try fixture.core()
        let first = sent(core.receive(peer: Data("w1".utf8), frames: hello("w1", slots: 1), now: 0)).filter {
            $0.message.command == .task
        }
        let second = sent(core.receive(peer: Data("w2".utf8), frames: hello("w2", slots: 1), now: 0)).filter {
            $0.message.command == .task
        }
        // w2 keeps talking, w1 falls silent and is declared dead.
        for t in stride(from: 1.0, through: 6, by: 1) {
            _ = core.receive(peer: Data("w2".utf8), frames: frames(.heartbeat), now: t)
        }
        let actions = core.tick(now: 6.1)
        #expect(events(actions).contains(.workerLeft(worker: "w1", reason: .silent(seconds: 6))), "\(events(actions))")
        #expect(core.workersAlive == 1)
        // When w2 is free again, the shard w1 held is the next it gets.
        _ = core.receive(peer: Data("w2".utf8), frames: result(second[0].message), now: 6.2)
        // Its ACK frees the credit, and the next TASK goes with it.
        let next = sent(core.durable(now: 6.2)).filter { $0.message.command == .task }
        #expect(next.first?.message.int("shard") == first[0].message.int("shard"))
        #expect(next.first?.message.int("job_index") == first[0].message.int("job_index"))
    }

    /// Once results are durable each worker gets its ACK and, in the same breath, the TASK its
    /// freed credit buys: the two together, so one write carries both.
    @Test func anAckAndTheTaskItFreesGoTogether() throws {
        var core = try fixture.core()
        var tasks: [String: WireMessage] = [:]
        for name in ["w1", "w2"] {
            tasks[name] = sent(core.receive(peer: Data(name.utf8), frames: hello(name, slots: 1), now: 0)).first {
                $0.message.command == .task
            }?.message
        }
        for name in ["w1", "w2"] {
            let answer = try #require(tasks[name])
            #expect(sent(core.receive(peer: Data(name.utf8), frames: result(answer), now: 1)).isEmpty)
        }
        let out = sent(core.durable(now: 1.1))
        let order = out.map { "\($0.peer) \($0.message.command.rawValue)" }
        #expect(order == ["w1 ACK", "w1 TASK", "w2 ACK", "w2 TASK"] || order == ["w2 ACK", "w2 TASK", "w1 ACK", "w1 TASK"], "\(order)")
    }

    @Test func expiredLeasesAreReissuedAndDuplicatesCompared() throws {
        var settings = CoordinatorCore.Settings()
        settings.leaseSeconds = 2
        var core = try fixture.core(settings: settings)
        let t1 = sent(core.receive(peer: Data("w1".utf8), frames: hello("w1", slots: 1), now: 0)).filter {
            $0.message.command == .task
        }[0].message
        // w2 joins with its one slot taken by the other job's first shard.
        let t2 = sent(core.receive(peer: Data("w2".utf8), frames: hello("w2", slots: 1), now: 0.5)).filter {
            $0.message.command == .task
        }[0].message
        for t in [1.0, 2.0, 2.6] {
            _ = core.receive(peer: Data("w1".utf8), frames: frames(.heartbeat), now: t)
            _ = core.receive(peer: Data("w2".utf8), frames: frames(.heartbeat), now: t)
        }
        let tick = core.tick(now: 2.6)
        #expect(
            scheduled(tick).contains {
                if case .leaseExpired(_, _, let shard, "w1") = $0 { shard == t1.int("shard") } else { false }
            }, "\(scheduled(tick))")
        // w2 finishes its own shard and is then given w1's expired one.
        _ = core.receive(peer: Data("w2".utf8), frames: result(t2), now: 2.65)
        let copy = sent(core.durable(now: 2.65)).filter { $0.peer == "w2" && $0.message.command == .task }
        #expect(copy.count == 1 && copy[0].message.int("shard") == t1.int("shard"))
        #expect(copy[0].message.int("job_index") == t1.int("job_index"))
        // Both answer the same shard: the first wins; an equal second is acknowledged and
        // dropped, a different one is reported loudly.
        _ = core.receive(peer: Data("w1".utf8), frames: result(t1, metrics: 0.5), now: 2.7)
        _ = core.durable(now: 2.7)
        let mismatch = core.receive(peer: Data("w2".utf8), frames: result(copy[0].message, metrics: 0.25), now: 2.8)
        #expect(
            scheduled(mismatch) == [
                .duplicateMismatch(
                    job: fixture.study.jobs[t1.int("job_index")!].name, shard: t1.int("shard")!, worker: "w2")
            ])
        #expect(sent(mismatch).contains { $0.message.command == .ack })
        // A result for a lease that was already answered is not this worker's to give.
        let again = sent(core.receive(peer: Data("w1".utf8), frames: result(t1, metrics: 0.5), now: 2.9))
        #expect(again.map(\.message.command) == [.disconnect])
        #expect(again[0].message.string("reason")!.contains("does not hold"))
    }

    /// Each worker computes what it is given but fails shard 0 of job 0: once three distinct
    /// workers have failed it, it is quarantined; the rest of the sweep is unaffected.
    @Test func aShardThatFailsOnThreeWorkersIsQuarantined() throws {
        var core = try fixture.core()
        var now = 0.0
        var quarantined = false
        for round in 0..<3 {
            let peer = Data("w\(round)".utf8)
            var tasks = sent(core.receive(peer: peer, frames: hello("w\(round)", slots: 1), now: now)).filter {
                $0.message.command == .task
            }.map(\.message)
            var failed = false
            while !failed, let task = tasks.first {
                now += 0.1
                tasks.removeFirst()
                let actions: [CoordinatorCore.Action]
                if task.int("job_index") == 0 && task.int("shard") == 0 {
                    actions = core.receive(
                        peer: peer, frames: frames(.fail, ["lease": task.header["lease"]!, "error": .string("boom")]),
                        now: now)
                    failed = true
                } else {
                    actions = core.receive(peer: peer, frames: result(task), now: now) + core.durable(now: now)
                }
                quarantined =
                    quarantined
                    || scheduled(actions).contains { if case .shardQuarantined = $0 { true } else { false } }
                tasks += sent(actions + core.tick(now: now)).filter { $0.message.command == .task }.map(\.message)
            }
            #expect(failed)
            _ = core.receive(peer: peer, frames: frames(.bye), now: now)
        }
        #expect(quarantined)
        #expect(core.quarantine.count == 1 && core.quarantine.first?.reasons.count == 3)
        #expect(core.quarantine.first?.reasons.allSatisfy { $0.contains("boom") } == true)
        #expect(core.quarantinedWorkers.isEmpty)
    }

    /// One worker that fails everything cannot quarantine a shard by itself: the shard goes to
    /// another worker, which computes it, and the failing worker is quarantined once three of
    /// its failures are refuted that way.
    @Test func aWorkerThatFailsEverythingIsQuarantinedNotTheShards() throws {
        var core = try fixture.core()
        let bad = Data("bad".utf8), good = Data("good".utf8)
        var now = 0.0
        var badTasks = sent(core.receive(peer: bad, frames: hello("bad", slots: 1), now: now)).filter {
            $0.message.command == .task
        }.map(\.message)
        var goodTasks: [WireMessage] = []
        var joined = false
        for _ in 0..<200 where !core.isFinished {
            now += 0.05
            var actions: [CoordinatorCore.Action] = []
            if let task = badTasks.first {
                badTasks.removeFirst()
                actions += core.receive(
                    peer: bad, frames: frames(.fail, ["lease": task.header["lease"]!, "error": .string("nope")]),
                    now: now)
            }
            if !joined {
                joined = true
                actions += core.receive(peer: good, frames: hello("good", slots: 1), now: now)
            }
            if let task = goodTasks.first {
                goodTasks.removeFirst()
                actions += core.receive(peer: good, frames: result(task), now: now)
            }
            actions += core.durable(now: now) + core.tick(now: now)
            for (peer, message) in sent(actions) where message.command == .task {
                if peer == "bad" { badTasks.append(message) } else { goodTasks.append(message) }
            }
        }
        #expect(core.isFinished && core.quarantine.isEmpty && core.pointsDone == core.pointsTotal)
        #expect(core.quarantinedWorkers.keys.contains { $0.hasPrefix("bad@") })
        // It cannot come back under the same name, host and pid.
        let again = sent(core.receive(peer: Data("bad2".utf8), frames: hello("bad"), now: now + 1))
        #expect(again.map(\.message.command) == [.disconnect])
        #expect(again.first?.message.header["quarantined"] == .bool(true))
    }

    @Test func strangersAndBadVersionsAreToldToLeave() throws {
        var core = try fixture.core()
        let stranger = sent(core.receive(peer: Data("x".utf8), frames: frames(.heartbeat), now: 0))
        #expect(stranger.map(\.message.command) == [.disconnect])
        #expect(stranger[0].message.string("reason")!.contains("HELLO"))
        let old = sent(
            core.receive(
                peer: Data("y".utf8), frames: [Data("BASIN/0".utf8), Data("HELLO".utf8), Data("{}".utf8)], now: 0))
        #expect(old.map(\.message.command) == [.disconnect] && old[0].message.string("reason")!.contains("BASIN/1"))
        let junk = core.receive(peer: Data("z".utf8), frames: [Data([0xff, 0x00])], now: 0)
        #expect(sent(junk).map(\.message.command) == [.disconnect] && core.workersAlive == 0)
        #expect(sent(junk)[0].message.string("reason")!.contains("at least 3 frames"))
    }

    @Test func completedShardsAreNotScheduledAgain() throws {
        let all = Dictionary(uniqueKeysWithValues: fixture.study.jobs.map { ($0.id, Set($0.shards.indices)) })
        var core = try fixture.core(completed: all)
        #expect(core.isFinished)
        #expect(
            !sent(core.receive(peer: Data("w".utf8), frames: hello("w"), now: 0)).contains {
                $0.message.command == .task
            })
    }
}

@Suite struct WorkerCoreTests {
    @Test func tasksComputeOneAtATimeAndReconnectionBacksOff() throws {
        let fixture = try StudyFixture()
        var coordinator = try fixture.core()
        var worker = WorkerCore(name: "w", slots: 2)
        let hi = worker.connected(now: 0)
        guard case .send(let helloMessage) = hi[0] else { Issue.record("no HELLO"); return }
        #expect(helloMessage.command == .hello && helloMessage.int("slots") == 2)
        var computes: [WorkerCore.Task] = []
        for (_, message) in sent(coordinator.receive(peer: Data("w".utf8), frames: helloMessage.frames(), now: 0)) {
            for action in worker.receive(frames: message.frames(), now: 0) {
                if case .compute(let task) = action { computes.append(task) }
            }
        }
        #expect(computes.count == 1 && worker.isComputing)  // the second task waits its turn
        let next = worker.computed(
            computes[0], metrics: [Double](repeating: 1, count: 4 * computes[0].range.count), seconds: 0.1, now: 0.2)
        guard case .send(let result) = next[0] else { Issue.record("no RESULT"); return }
        #expect(result.command == .result && result.binary[0].count == 32 * computes[0].range.count)
        #expect(next.contains { if case .compute = $0 { return true } else { return false } })
        // Silence: reconnect after 1 s, then 2 s, 4 s …
        var delays: [Double] = []
        var now = 0.2
        for _ in 0..<4 {
            now += 6
            for action in worker.tick(now: now) { if case .reconnect(let after) = action { delays.append(after) } }
            _ = worker.connected(now: now)
        }
        #expect(delays == [1, 2, 4, 8])
        let done = worker.receive(frames: WireMessage(.done).frames(), now: now)
        #expect(done.contains { if case .exit = $0 { return true } else { return false } })
    }

    /// A worker whose coordinator never answers (it joined after the sweep ended) leaves after
    /// `giveUpAfter` seconds of silence, counted across reconnections; any word resets the
    /// count, and a worker still computing keeps waiting.
    @Test func anIdleWorkerGivesUpOnASilentCoordinator() throws {
        let fixture = try StudyFixture()
        func gaveUp(_ actions: [WorkerCore.Action]) -> Bool {
            actions.contains { if case .giveUp = $0 { return true } else { return false } }
        }
        var worker = WorkerCore(name: "w", slots: 1)
        worker.giveUpAfter = 20
        _ = worker.connected(now: 0)
        var ticks: [[WorkerCore.Action]] = []
        for now in [6.0, 12, 18] {
            ticks.append(worker.tick(now: now))
            _ = worker.connected(now: now)  // each reconnection is a fresh HELLO, not a word heard
        }
        #expect(!ticks.contains(where: gaveUp))
        _ = worker.receive(frames: WireMessage(.heartbeat).frames(), now: 24)
        #expect(!gaveUp(worker.tick(now: 40)))
        #expect(gaveUp(worker.tick(now: 44.5)))

        // Computing: keep waiting for a coordinator to take the result.
        var coordinator = try fixture.core()
        var busy = WorkerCore(name: "b", slots: 1)
        busy.giveUpAfter = 20
        guard case .send(let hello) = busy.connected(now: 0)[0] else { Issue.record("no HELLO"); return }
        for (_, message) in sent(coordinator.receive(peer: Data("b".utf8), frames: hello.frames(), now: 0)) {
            _ = busy.receive(frames: message.frames(), now: 0)
        }
        #expect(busy.isComputing)
        #expect(!gaveUp(busy.tick(now: 100)))
    }

    /// After `finish()`, whoever speaks hears DONE once per connection: a worker that was
    /// reconnecting when the sweep ended, or one that joins late.
    @Test func aFinishedSweepTellsDoneToWhoeverSpeaks() throws {
        let fixture = try StudyFixture()
        // A resumed run whose every shard is done.
        var coordinator = try fixture.core(
            completed: Dictionary(uniqueKeysWithValues: fixture.study.jobs.map { ($0.id, Set($0.shards.indices)) }))
        #expect(coordinator.isFinished)
        func commands(_ actions: [CoordinatorCore.Action]) -> [WireMessage.Command] {
            sent(actions).map(\.message.command)
        }
        let hello = WireMessage(.hello, ["worker": .string("a")]).frames()
        _ = coordinator.receive(peer: Data("a#0".utf8), frames: hello, now: 0)
        #expect(commands(coordinator.finish()) == [.done])
        #expect(
            commands(coordinator.receive(peer: Data("a#0".utf8), frames: WireMessage(.heartbeat).frames(), now: 1))
                == [])
        // The same worker under a new routing id, and a stranger arriving late.
        #expect(commands(coordinator.receive(peer: Data("a#1".utf8), frames: hello, now: 2)) == [.welcome, .done])
        let late = WireMessage(.hello, ["worker": .string("late")]).frames()
        #expect(commands(coordinator.receive(peer: Data("late#0".utf8), frames: late, now: 3)) == [.welcome, .done])
        #expect(
            commands(coordinator.receive(peer: Data("late#0".utf8), frames: WireMessage(.heartbeat).frames(), now: 4))
                == [])
    }

    /// The coordinator knows which workers have not yet said BYE, so a finished sweep can wait
    /// for them to hear DONE.
    @Test func workersYetToLeaveAreThoseWithoutBye() throws {
        let fixture = try StudyFixture()
        var coordinator = try fixture.core()
        for name in ["a", "b"] {
            _ = coordinator.receive(
                peer: Data("\(name)#0".utf8), frames: WireMessage(.hello, ["worker": .string(name)]).frames(), now: 0)
        }
        #expect(coordinator.state == .running(joined: ["a", "b"]))
        _ = coordinator.receive(peer: Data("a#0".utf8), frames: WireMessage(.bye).frames(), now: 1)
        #expect(coordinator.state == .running(joined: ["b"]))
        // Once the work is done, DONE goes to b and the coordinator waits for b alone.
        let done = sent(coordinator.finish())
        #expect(done.map(\.peer) == ["b#0"] && done.allSatisfy { $0.message.command == .done })
        #expect(coordinator.awaitingGoodbyes)
        _ = coordinator.receive(peer: Data("b#0".utf8), frames: WireMessage(.bye).frames(), now: 2)
        #expect(!coordinator.awaitingGoodbyes)
        // A worker that joins after the end hears DONE at once.
        let late = sent(
            coordinator.receive(
                peer: Data("c#0".utf8), frames: WireMessage(.hello, ["worker": .string("c")]).frames(), now: 3))
        #expect(late.last?.message.command == .done)
    }
}

@Suite struct LongJobLeaseTests {
    /// A training job runs longer than `lease_seconds`; its worker's heartbeats keep the lease.
    /// Two trainings and two workers of two slots: each worker trains one. A long job never
    /// waits in a busy worker's spare slot while another worker idles; once the first worker is
    /// free again it takes what is left.
    @Test func longJobsGoToIdleWorkers() throws {
        let fixture = try StudyFixture(training: true)
        defer { try? FileManager.default.removeItem(at: fixture.directory) }
        var core = try fixture.core()
        let first = sent(core.receive(peer: Data("w1".utf8), frames: hello("w1", slots: 2), now: 0)).filter {
            $0.message.command == .task
        }
        #expect(first.count == 1, "\(first.map(\.message))")
        let second = sent(core.receive(peer: Data("w2".utf8), frames: hello("w2", slots: 2), now: 0.1)).filter {
            $0.message.command == .task
        }
        #expect(second.count == 1 && second[0].message.int("job_index") != first[0].message.int("job_index"))
        // Neither is handed the other's training (a straggler copy) in its spare slot.
        let busy = sent(core.tick(now: 0.2)).filter { $0.message.command == .task && ($0.peer == "w1" || $0.peer == "w2") }
        #expect(busy.isEmpty, "\(busy.map(\.message))")
    }

    @Test func heartbeatsKeepALongTrainingLeaseButNotAGridShard() throws {
        let directory = TestSupport.temporaryDirectory("basin-long-lease")
        let json = """
            {"model": {"input": [2], "layers": [{"type": "linear", "out_features": 2}]},
             "data": {"source": "spirals", "samples": 50},
             "stages": {"train": {"seeds": [0]}, "surface": {"x": "-1:1:3", "y": "-1:1:3"}},
             "sweep": {"shard_points": 9}}
            """
        let spec = try JSONDecoder().decode(StudySpec.self, from: Data(json.utf8))
        let study = try Study(spec: spec, executor: Executor(spec: spec, base: directory))
        var settings = CoordinatorCore.Settings()
        settings.leaseSeconds = 2
        var core = CoordinatorCore(
            study: study, spec: spec, base: directory.path, completed: [:],
            artifacts: [], settings: settings)
        let peer = Data("w".utf8)
        let tasks = sent(core.receive(peer: peer, frames: hello("w", slots: 1), now: 0)).filter {
            $0.message.command == .task
        }
        // Only the training job is ready: the surface waits for its model.
        #expect(tasks.count == 1 && tasks[0].message.int("job_index") == 0)
        let lease = tasks[0].message.int("lease")!
        for t in stride(from: 1.0, through: 10, by: 1) {
            _ = core.receive(peer: peer, frames: frames(.heartbeat, ["computing": .integer(lease)]), now: t)
            let tick = core.tick(now: t)
            #expect(!scheduled(tick).contains { if case .leaseExpired = $0 { true } else { false } })
        }
        // Silence about it: the deadline passes.
        _ = core.receive(peer: peer, frames: frames(.heartbeat), now: 11)
        _ = core.receive(peer: peer, frames: frames(.heartbeat), now: 12.5)
        let late = core.tick(now: 12.5)
        #expect(scheduled(late) == [.leaseExpired(lease: lease, job: study.jobs[0].name, shard: 0, worker: "w")])
    }
}
