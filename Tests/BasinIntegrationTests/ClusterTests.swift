import BasinLandscape
import BasinNN
import BasinSweep
import BasinTestSupport
import Foundation
import Testing
import ZeroMQ

/// Real processes over tcp://127.0.0.1: the built `basin` binary as coordinator and workers.
@Suite(.serialized) struct ClusterTests {
    let directory = TestSupport.temporaryDirectory("basin-cluster-it")

    /// The `basin` executable built beside the test bundle.
    static var basin: URL {
        let beside = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent(
            "basin")
        if FileManager.default.isExecutableFile(atPath: beside.path) { return beside }
        return TestSupport.repositoryRoot.appendingPathComponent(".build/debug/basin")
    }

    /// A child process whose output goes to a log file; killed by pid when the test ends.
    final class Child {
        let process = Process()
        let log: URL

        init(
            _ arguments: [String], log: URL, executable: URL = ClusterTests.basin, environment: [String: String] = [:]
        ) throws {
            self.log = log
            _ = FileManager.default.createFile(atPath: log.path, contents: nil)
            process.executableURL = executable
            process.arguments = arguments
            if !environment.isEmpty {
                process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
            }
            let handle = try FileHandle(forWritingTo: log)
            process.standardOutput = handle
            process.standardError = handle
            try process.run()
        }

        var pid: Int32 { process.processIdentifier }

        func kill9() {
            if process.isRunning { kill(pid, SIGKILL) }
            process.waitUntilExit()
        }

        /// Waits for the exit; false when `seconds` pass first.
        func wait(_ seconds: Double) -> Bool {
            let deadline = Date().addingTimeInterval(seconds)
            while process.isRunning && Date() < deadline { usleep(20_000) }
            return !process.isRunning
        }

        var output: String { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }

        /// Its output and, for a child still running, every thread's stack (from gdb, where
        /// installed): what a test says about a process that hangs.
        func stacks() -> String {
            guard process.isRunning, FileManager.default.isExecutableFile(atPath: "/usr/bin/gdb") else { return output }
            let gdb = Process()
            gdb.executableURL = URL(fileURLWithPath: "/usr/bin/gdb")
            gdb.arguments = ["-p", "\(pid)", "-batch", "-ex", "thread apply all bt 16"]
            let pipe = Pipe()
            gdb.standardOutput = pipe
            gdb.standardError = FileHandle.nullDevice
            guard (try? gdb.run()) != nil else { return output }
            let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            gdb.waitUntilExit()
            let frames = text.split(separator: "\n").filter { $0.hasPrefix("#") || $0.hasPrefix("Thread") }
            return output + "\n--- stacks of pid \(pid) ---\n" + frames.joined(separator: "\n")
        }

        deinit { kill9() }
    }

    /// Writes two checkpoints and a spec whose shards take a noticeable time.
    func writeSpec(points: Int = 24) throws -> String {
        let description = ModelDescription(
            input: [16],
            layers: [
                .linear(inFeatures: nil, outFeatures: 128, bias: true), .relu,
                .linear(inFeatures: nil, outFeatures: 128, bias: true), .tanh,
                .linear(inFeatures: nil, outFeatures: 4, bias: true),
            ])
        let network = try Network(description)
        try Checkpoint.save(network.initialize(seed: 1), to: directory.appendingPathComponent("a.safetensors"))
        try Checkpoint.save(network.initialize(seed: 2), to: directory.appendingPathComponent("b.safetensors"))
        let spec = """
            model:
              input: [16]
              layers:
                - {type: linear, out_features: 128}
                - relu
                - {type: linear, out_features: 128}
                - tanh
                - {type: linear, out_features: 4}
            data: {source: teacher, samples: 3000, features: 16, classes: 4}
            jobs:
              - surface: {checkpoint: a.safetensors, x: "-1:1:\(points)", y: "-1:1:\(points / 2)"}
              - interpolate: {from: a.safetensors, to: b.safetensors, t: "-0.5:1.5:\(points)"}
            sweep: {shard_points: 6, lease_seconds: 60}

            """
        let url = directory.appendingPathComponent("spec.yaml")
        try Data(spec.utf8).write(to: url)
        return url.path
    }

    func freePort() throws -> Int {
        let context = try ZMQContext()
        let socket = try ZMQSocket(context, .router)
        try socket.setLinger(0)
        try socket.bind("tcp://127.0.0.1:*")
        let port = Int(socket.lastEndpoint.split(separator: ":").last!)!
        socket.close()
        return port
    }

    func run(_ arguments: [String], name: String, timeout: Double = 180) throws -> Child {
        let child = try Child(arguments, log: directory.appendingPathComponent("\(name).log"))
        #expect(child.wait(timeout), "\(name) did not finish in \(timeout) s:\n\(child.stacks().suffix(20000))")
        #expect(child.process.terminationStatus == 0, "\(name) failed:\n\(child.output.suffix(2000))")
        return child
    }

    /// The result files of a run directory by name.
    func results(_ run: String) throws -> [String: Data] {
        let folder = directory.appendingPathComponent(run).appendingPathComponent("results")
        var out: [String: Data] = [:]
        for kind in try FileManager.default.contentsOfDirectory(atPath: folder.path) {
            for file in try FileManager.default.contentsOfDirectory(atPath: folder.appendingPathComponent(kind).path) {
                out["\(kind)/\(file)"] = try Data(
                    contentsOf: folder.appendingPathComponent(kind).appendingPathComponent(file))
            }
        }
        return out
    }

    func reference(_ spec: String) throws -> [String: Data] {
        _ = try run(
            ["run", spec, "--out", directory.appendingPathComponent("reference").path, "--workers", "0"],
            name: "reference")
        let files = try results("reference")
        #expect(files.count == 2)
        return files
    }

    func journaledShards(_ run: String) throws -> [(segment: Int, key: String)] {
        let folder = directory.appendingPathComponent(run).appendingPathComponent("journal")
        var out: [(Int, String)] = []
        for (index, name) in try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted().enumerated() {
            let segment = try Journal.read(segmentOnly: folder.appendingPathComponent(name))
            for case .shardDone(let done) in segment { out.append((index + 1, "\(done.job)#\(done.shard)")) }
        }
        return out
    }

    func waitForJournal(_ run: String, atLeast count: Int, timeout: Double = 120) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let shards = try? journaledShards(run), shards.count >= count { return }
            usleep(50_000)
        }
        Issue.record("the journal of \(run) never reached \(count) shards")
    }

    @Test func workersFinishASweepBitForBitLikeOneProcess() throws {
        let spec = try writeSpec()
        let expected = try reference(spec)
        _ = try run(
            ["run", spec, "--out", directory.appendingPathComponent("cluster").path, "--workers", "3"], name: "cluster")
        #expect(try results("cluster") == expected)
        // A second run on a finished directory computes nothing and leaves the results as they are.
        let again = try run(
            ["run", spec, "--out", directory.appendingPathComponent("cluster").path, "--workers", "1"], name: "again")
        #expect(again.output.contains("0 shard(s) to compute"))
        #expect(again.output.contains("nothing to compute, no workers started"), "\(again.output)")
        #expect(!again.output.contains("local worker(s)") && !again.output.contains("listening"), "\(again.output)")
        #expect(try results("cluster") == expected)
    }

    /// Ctrl-C (SIGINT to `basin run` alone): the local workers are stopped, the run says what it
    /// kept and exits 130, `basin status` says no coordinator runs, and the rerun resumes to the
    /// same results. The same in process (`--workers 0`).
    @Test func aSignalStopsARunWhichSaysWhatItKeptAndResumes() throws {
        let spec = try writeSpec(points: 24)
        let expected = try reference(spec)
        for (name, workers) in [("interrupted", "2"), ("interrupted-local", "0")] {
            let out = directory.appendingPathComponent(name).path
            let run = try Child(
                ["run", spec, "--out", out, "--workers", workers], log: directory.appendingPathComponent("\(name).log"))
            try waitForJournal(name, atLeast: 3)
            kill(run.pid, SIGINT)
            #expect(run.wait(20), "\(run.stacks().suffix(20000))")
            #expect(run.process.terminationStatus == 130, "\(run.output.suffix(3000))")
            #expect(run.output.contains("stopped by SIGINT: "), "\(run.output.suffix(3000))")
            #expect(run.output.contains("points are journaled in \(out); run the same command again to resume"))
            // The local workers it started are gone.
            if let line = run.output.split(separator: "\n").first(where: { $0.contains("local worker(s): pids ") }) {
                let listed = line.split(separator: "pids ").last ?? ""
                let pids = listed.split(separator: ",").compactMap { Int32($0.trimmingCharacters(in: .whitespaces)) }
                #expect(pids.count == 2, "\(line)")
                for pid in pids { #expect(kill(pid, 0) != 0, "worker \(pid) outlived the run") }
            } else if workers != "0" {
                Issue.record("no line naming the local workers:\n\(run.output.suffix(3000))")
            }
            let status = try self.run(["status", out], name: "\(name)-status")
            #expect(status.output.contains("no coordinator running"), "\(status.output)")
            _ = try self.run(["run", spec, "--out", out, "--workers", workers], name: "\(name)-resumed")
            #expect(try results(name) == expected)
        }
    }

    @Test func aWorkerKilledMidShardDoesNotChangeTheResult() throws {
        // Long enough that the survivor is still busy when the victim is declared dead (5 s).
        let spec = try writeSpec(points: 36)
        let expected = try reference(spec)
        let port = try freePort()
        let endpoint = "tcp://127.0.0.1:\(port)"
        let out = directory.appendingPathComponent("killworker").path
        let coordinator = try Child(
            ["coordinator", spec, "--out", out, "--bind", endpoint],
            log: directory.appendingPathComponent("coordinator.log"))
        let victim = try Child(
            ["worker", "--connect", endpoint, "--name", "victim"], log: directory.appendingPathComponent("victim.log"))
        let survivor = try Child(
            ["worker", "--connect", endpoint, "--name", "survivor", "--give-up-after", "10"],
            log: directory.appendingPathComponent("survivor.log"))
        try waitForJournal("killworker", atLeast: 3)
        victim.kill9()
        #expect(
            coordinator.wait(180),
            "the coordinator did not finish after a worker died:\n\(coordinator.output.suffix(2000))")
        #expect(coordinator.process.terminationStatus == 0, "\(coordinator.output.suffix(2000))")
        #expect(survivor.wait(20), "\(survivor.stacks().suffix(20000))")
        #expect(try results("killworker") == expected)
        #expect(TestSupport.logged(coordinator.output, "worker left", ["worker": "victim"]), "\(coordinator.output.suffix(2000))")
    }

    @Test func aKilledCoordinatorRestartsAndFinishesWithWorkersRejoining() throws {
        let spec = try writeSpec()
        let expected = try reference(spec)
        let port = try freePort()
        let endpoint = "tcp://127.0.0.1:\(port)"
        let out = directory.appendingPathComponent("killcoord").path
        // Workers start first: they wait for a coordinator that is not up yet. Here and wherever
        // another worker may finish a sweep before one joins, that one could only give up (it
        // never meets a coordinator), so these workers give up after 10 s instead of 600.
        let workers = try (0..<2).map {
            try Child(
                ["worker", "--connect", endpoint, "--name", "w\($0)", "--give-up-after", "10"],
                log: directory.appendingPathComponent("w\($0).log"))
        }
        usleep(1_500_000)
        let first = try Child(
            ["coordinator", spec, "--out", out, "--bind", endpoint], log: directory.appendingPathComponent("first.log"))
        try waitForJournal("killcoord", atLeast: 4)
        first.kill9()
        let before = try journaledShards("killcoord").map(\.key)
        let second = try Child(
            ["coordinator", spec, "--out", out, "--bind", endpoint], log: directory.appendingPathComponent("second.log")
        )
        #expect(second.wait(180), "the restarted coordinator did not finish:\n\(second.stacks().suffix(20000))")
        #expect(second.process.terminationStatus == 0, "\(second.output.suffix(2000))")
        for worker in workers {
            #expect(worker.wait(30), "a worker did not leave after DONE:\n\(worker.stacks().suffix(20000))")
        }
        #expect(try results("killcoord") == expected)
        // Nothing journaled before the kill is computed again; every shard is journaled once more at most.
        let after = try journaledShards("killcoord").filter { $0.segment >= 2 }.map(\.key)
        #expect(Set(after).isDisjoint(with: Set(before)))
        #expect(Set(before + after).count == before.count + after.count)
        #expect(second.output.contains("2 job(s) unchanged") || second.output.contains("unchanged keep their results"))
    }

    @Test func garbageSentToTheCoordinatorIsDroppedAndTheSweepGoesOn() throws {
        let spec = try writeSpec(points: 12)
        let expected = try reference(spec)
        let port = try freePort()
        let endpoint = "tcp://127.0.0.1:\(port)"
        let out = directory.appendingPathComponent("garbage").path
        let coordinator = try Child(
            ["coordinator", spec, "--out", out, "--bind", endpoint],
            log: directory.appendingPathComponent("coordinator.log"))
        usleep(800_000)
        let context = try ZMQContext()
        var sockets: [ZMQSocket] = []
        func dealer() throws -> ZMQSocket {
            let socket = try ZMQSocket(context, .dealer)
            try socket.setLinger(200)
            try socket.connect(endpoint)
            sockets.append(socket)
            return socket
        }
        var random = RandomSource(seed: 3, stream: 3)
        try dealer().send(
            (0..<4).map { _ in Data((0..<64).map { _ in UInt8(truncatingIfNeeded: random.nextUInt32()) }) })
        try dealer().send([Data("BASIN/9".utf8), Data("HELLO".utf8), Data("{}".utf8)])
        // The HELLO that once killed the coordinator (Int(Double) trapped on 1e300).
        try dealer().send([
            Data("BASIN/1".utf8), Data("HELLO".utf8),
            Data(#"{"worker":"x","host":"h","pid":1,"slots":1e300,"version":"x"}"#.utf8),
        ])
        try dealer().send([Data("BASIN/1".utf8), Data("RESULT".utf8), Data("{\"lease\": 1}".utf8)])
        try dealer().send([Data("BASIN/1".utf8), Data("HELLO".utf8), Data("not json".utf8)])
        try dealer().send([Data("BASIN/1".utf8), Data("HELLO".utf8), Data("{}".utf8), Data(count: 70 << 20)])
        // Half a multipart message: the first frame with "more" set, then the connection closes.
        let half = try dealer()
        try half.send([Data("BASIN/1".utf8), Data("HELLO".utf8)], moreFollows: true)
        // Raw bytes that are not ZMTP at all.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        if connected == 0 { _ = "GET / HTTP/1.0\r\n\r\n\u{0}\u{1}garbage".withCString { write(fd, $0, strlen($0)) } }
        usleep(300_000)
        close(fd)
        for socket in sockets { socket.close() }
        let worker = try Child(
            ["worker", "--connect", endpoint, "--name", "honest"], log: directory.appendingPathComponent("worker.log"))
        #expect(coordinator.wait(180), "\(coordinator.stacks().suffix(20000))")
        #expect(coordinator.process.terminationStatus == 0, "\(coordinator.output.suffix(2000))")
        #expect(worker.wait(20), "\(worker.stacks().suffix(20000))")
        #expect(try results("garbage") == expected)
        #expect(TestSupport.logged(coordinator.output, "refused a message; disconnected"), "\(coordinator.output.suffix(2000))")
        #expect(coordinator.output.contains("HELLO field 'slots' must be an integer from 1 to 64, got 1e+300"))
    }

    /// A worker that was reconnecting when the sweep ended misses the DONE sent then. The
    /// coordinator stays until every worker that joined has said BYE (up to a few seconds), and
    /// tells DONE to whoever speaks meanwhile.
    @Test func aWorkerReconnectingAsTheSweepEndsStillHearsDone() throws {
        let spec = try writeSpec(points: 12)
        let endpoint = "tcp://127.0.0.1:\(try freePort())"
        let coordinator = try Child(
            ["coordinator", spec, "--out", directory.appendingPathComponent("farewell").path, "--bind", endpoint],
            log: directory.appendingPathComponent("coordinator.log"))
        let context = try ZMQContext()
        func say(_ socket: ZMQSocket, _ command: String, _ header: String = "{}") throws {
            _ = try socket.send([Data("BASIN/1".utf8), Data(command.utf8), Data(header.utf8)])
        }
        /// Commands heard on `socket` within `seconds`.
        func heard(_ socket: ZMQSocket, within seconds: Double, until last: String) throws -> [String] {
            var commands: [String] = []
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline && commands.last != last {
                guard try !ZMQSocket.poll([socket], timeout: 50).isEmpty else { continue }
                while let frames = try socket.receive(dontWait: true), frames.count >= 2 {
                    commands.append(String(decoding: frames[1], as: UTF8.self))
                }
            }
            return commands
        }
        func ghost(_ generation: Int) throws -> ZMQSocket {
            let socket = try ZMQSocket(context, .dealer)
            try socket.setLinger(0)
            try socket.setRoutingID("ghost#\(generation)")
            try socket.connect(endpoint)
            // A worker for no kind of job: it joins but is never leased a shard.
            try say(socket, "HELLO", #"{"worker": "ghost", "slots": 1, "kinds": ["none"]}"#)
            return socket
        }
        let first = try ghost(0)
        #expect(try heard(first, within: 30, until: "WELCOME").contains("WELCOME"))
        let worker = try Child(
            ["worker", "--connect", endpoint, "--name", "real"], log: directory.appendingPathComponent("worker.log"))
        #expect(worker.wait(120), "\(worker.stacks().suffix(20000))")
        #expect(worker.process.terminationStatus == 0)
        // The ghost's DONE went to a connection it drops; it comes back under a new identity.
        first.close()
        let second = try ghost(1)
        #expect(try heard(second, within: 2.5, until: "DONE").last == "DONE", "\(coordinator.output.suffix(2000))")
        try say(second, "BYE")
        #expect(coordinator.wait(10), "\(coordinator.stacks().suffix(20000))")
        #expect(coordinator.process.terminationStatus == 0)
        second.close()
    }

    /// A worker started after its sweep has ended (nobody listens) leaves after
    /// `--give-up-after` seconds with an error naming the endpoint, instead of waiting forever.
    @Test func aWorkerWithNoCoordinatorGivesUp() throws {
        let endpoint = "tcp://127.0.0.1:\(try freePort())"
        let worker = try Child(
            [
                "worker", "--connect", endpoint, "--give-up-after", "1.5", "--cache",
                directory.appendingPathComponent("c").path,
            ],
            log: directory.appendingPathComponent("lonely.log"))
        #expect(worker.wait(30), "\(worker.stacks().suffix(20000))")
        #expect(worker.process.terminationStatus != 0)
        #expect(worker.output.contains("no coordinator answered at \(endpoint)"), "\(worker.output)")
        #expect(worker.output.contains("the connection is refused or the network unreachable"), "\(worker.output)")
    }

    @Test func curveLetsAllowedWorkersInAndRefusesOthers() throws {
        let spec = try writeSpec(points: 12)
        let expected = try reference(spec)
        let keys = directory.appendingPathComponent("keys")
        let allowed = keys.appendingPathComponent("allowed")
        try FileManager.default.createDirectory(at: allowed, withIntermediateDirectories: true)
        for name in ["server", "good", "stranger"] {
            _ = try run(["keygen", keys.appendingPathComponent(name).path], name: "keygen-\(name)")
        }
        try FileManager.default.copyItem(
            at: keys.appendingPathComponent("good.pub"), to: allowed.appendingPathComponent("good.pub"))
        let port = try freePort()
        let endpoint = "tcp://127.0.0.1:\(port)"
        let coordinator = try Child(
            [
                "coordinator", spec, "--out", directory.appendingPathComponent("curve").path, "--bind", endpoint,
                "--curve-secret", keys.appendingPathComponent("server.key").path, "--curve-allow", allowed.path,
            ], log: directory.appendingPathComponent("coordinator.log"))
        let server = keys.appendingPathComponent("server.pub").path
        // A worker whose key is not allowed, and one that has the wrong key for the server: each
        // gives up saying which.
        let stranger = try Child(
            [
                "worker", "--connect", endpoint, "--name", "stranger", "--curve-keys",
                keys.appendingPathComponent("stranger.key").path, "--curve-server", server, "--give-up-after", "4",
            ],
            log: directory.appendingPathComponent("stranger.log"))
        let mistaken = try Child(
            [
                "worker", "--connect", endpoint, "--name", "mistaken", "--curve-keys",
                keys.appendingPathComponent("good.key").path, "--curve-server",
                keys.appendingPathComponent("stranger.pub").path, "--give-up-after", "4",
            ],
            log: directory.appendingPathComponent("mistaken.log"))
        usleep(1_500_000)
        #expect(coordinator.output.contains("refused a connection"), "\(coordinator.output.suffix(1000))")
        #expect(!TestSupport.logged(coordinator.output, "worker joined", ["worker": "stranger"]))
        let good = try Child(
            [
                "worker", "--connect", endpoint, "--name", "good", "--curve-keys",
                keys.appendingPathComponent("good.key").path, "--curve-server", server,
            ],
            log: directory.appendingPathComponent("good.log"))
        #expect(coordinator.wait(120), "\(coordinator.stacks().suffix(20000))")
        #expect(coordinator.process.terminationStatus == 0)
        #expect(good.wait(20), "\(good.stacks().suffix(20000))")
        #expect(!TestSupport.logged(coordinator.output, "worker joined", ["worker": "stranger"]))
        #expect(try results("curve") == expected)
        #expect(stranger.wait(20) && stranger.process.terminationStatus != 0)
        #expect(stranger.output.contains("the coordinator refused this worker's CURVE key"), "\(stranger.output)")
        #expect(mistaken.wait(20) && mistaken.process.terminationStatus != 0)
        #expect(mistaken.output.contains("the CURVE handshake failed"), "\(mistaken.output)")
    }

    @Test func aKeepServingCoordinatorStaysUpAndTellsLateWorkersDone() throws {
        let spec = try writeSpec(points: 8)
        let endpoint = "tcp://127.0.0.1:\(try freePort())"
        let coordinator = try Child(
            [
                "coordinator", spec, "--out", directory.appendingPathComponent("serving").path, "--bind", endpoint,
                "--keep-serving",
            ], log: directory.appendingPathComponent("serving.log"))
        _ = try run(["worker", "--connect", endpoint, "--name", "first"], name: "first", timeout: 120)
        // Workers hear DONE first; the coordinator then merges the results.
        let summary = directory.appendingPathComponent("serving/summary.csv").path
        let merged = Date().addingTimeInterval(60)
        while !FileManager.default.fileExists(atPath: summary) && Date() < merged { usleep(20_000) }
        #expect(FileManager.default.fileExists(atPath: summary), "\(coordinator.output.suffix(1000))")
        #expect(!coordinator.wait(1), "the coordinator exited after the sweep:\n\(coordinator.output.suffix(1000))")
        // A worker arriving after the end hears DONE and leaves at once.
        let late = try run(["worker", "--connect", endpoint, "--name", "late"], name: "late", timeout: 20)
        #expect(late.output.contains("done") || late.output.contains("DONE"), "\(late.output.suffix(500))")
        // While it serves, status says so (and not "no coordinator running").
        usleep(1_200_000)
        let status = try run(["status", directory.appendingPathComponent("serving").path], name: "serving-status")
        #expect(status.output.contains("coordinator serving late workers"), "\(status.output)")
        kill(coordinator.pid, SIGTERM)
        #expect(coordinator.wait(10), "SIGTERM did not stop the serving coordinator")
        #expect(coordinator.process.terminationStatus == 0)
        #expect(coordinator.output.contains("stopping on a signal"))
    }

    /// Names of the jobs journaled so far in `run` (one entry per shard record).
    func journaledJobNames(_ run: String) throws -> [String] {
        let study = directory.appendingPathComponent(run).appendingPathComponent("study.json")
        guard let data = try? Data(contentsOf: study),
            case .object(let file) = try JSONDecoder().decode(JSONValue.self, from: data),
            case .array(let jobs)? = file["jobs"]
        else { return [] }
        var names: [String: String] = [:]
        for job in jobs {
            if let id = job["id"]?.stringValue, let name = job["name"]?.stringValue { names[id] = name }
        }
        return try journaledShards(run).compactMap { names[String($0.key.split(separator: "#")[0])] }
    }

    func waitForJob(_ run: String, prefix: String, timeout: Double = 180) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let names = try? journaledJobNames(run), names.contains(where: { $0.hasPrefix(prefix) }) { return }
            usleep(20_000)
        }
        Issue.record("no \(prefix) job was journaled in \(run) within \(timeout) s")
    }

    /// The issue's study: 3 seeds × 2 learning rates on 2 workers with caches of their own (no
    /// shared filesystem for artifacts). A worker is killed during training and the coordinator
    /// during curve fitting; the summary and every result must equal a one-process run bit for bit.
    @Test func aConnectivityStudySurvivesKillsAndMatchesOneProcess() throws {
        let spec = directory.appendingPathComponent("study.yaml")
        try Data(
            """
            model: {input: [2], layers: [{type: linear, out_features: 64}, relu, {type: linear, out_features: 64}, relu, {type: linear, out_features: 2}]}
            data: {source: spirals, samples: 4000, noise: 0.05, seed: 0}
            train: {optimizer: sgd, momentum: 0.9, epochs: 100, batch_size: 64}
            stages:
              train: {seeds: [0, 1, 2], grid: {lr: [0.05, 0.1]}}
              connect: {t: "0:1:11", align: true, curve: {kind: bezier, bends: 1, epochs: 60, lr: 0.05}}
              surface: {x: "-1:1:9", y: "-1:1:9"}
              hessian: {iterations: 20, probes: 5}
            sweep: {shard_points: 30}

            """.utf8
        ).write(to: spec)
        _ = try run(
            ["run", spec.path, "--out", directory.appendingPathComponent("reference").path, "--workers", "0"],
            name: "reference", timeout: 300)
        let expected = try results("reference")
        let expectedSummary = try Data(contentsOf: directory.appendingPathComponent("reference/summary.csv"))
        #expect(expected.count == 6 + 6 + 6 + 6 * 5)
        // On this example the aligned line's barrier is never above the unaligned one.
        let rows = String(decoding: expectedSummary, as: UTF8.self).split(separator: "\n").map {
            $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        }
        let header = rows[0]
        let line = header.firstIndex(of: "line_loss_barrier")!, aligned = header.firstIndex(of: "aligned_loss_barrier")!
        let pairs = rows.filter { $0.first == "pair" }
        #expect(pairs.count == 6)
        for pair in pairs {
            // Cell and name are quoted and hold commas: count columns from the end.
            let values = Array(pair.suffix(header.count - 3))
            let lineBarrier = Double(values[line - 3])!, alignedBarrier = Double(values[aligned - 3])!
            #expect(alignedBarrier <= lineBarrier, "\(pair): aligned \(alignedBarrier) vs line \(lineBarrier)")
        }
        let endpoint = "tcp://127.0.0.1:\(try freePort())"
        let out = directory.appendingPathComponent("study-run").path
        func coordinator(_ name: String) throws -> Child {
            try Child(
                ["coordinator", spec.path, "--out", out, "--bind", endpoint],
                log: directory.appendingPathComponent("\(name).log"))
        }
        func worker(_ name: String) throws -> Child {
            try Child(
                [
                    "worker", "--connect", endpoint, "--name", name, "--give-up-after", "10", "--cache",
                    directory.appendingPathComponent("cache-\(name)").path,
                ], log: directory.appendingPathComponent("\(name).log"))
        }
        var first: Child? = try coordinator("coordinator-1")
        let victim = try worker("a")
        let b = try worker("b")
        try waitForJob("study-run", prefix: "train/")
        victim.kill9()
        let c = try worker("c")
        try waitForJob("study-run", prefix: "fit/")
        let fits = try journaledJobNames("study-run").filter { $0.hasPrefix("fit/") }.count
        first!.kill9()
        #expect(fits < 6, "every curve was fitted before the coordinator was killed")
        first = nil
        let second = try coordinator("coordinator-2")
        #expect(second.wait(300), "\(second.stacks().suffix(20000))")
        #expect(second.process.terminationStatus == 0, "\(second.output.suffix(2000))")
        #expect(second.output.contains("resumes") || second.output.contains("shard(s) to compute"))
        #expect(b.wait(30), "\(b.stacks().suffix(20000))")
        #expect(c.wait(30), "\(c.stacks().suffix(20000))")
        #expect(
            try Data(contentsOf: URL(fileURLWithPath: out).appendingPathComponent("summary.csv")) == expectedSummary)
        let got = try results("study-run")
        #expect(Set(got.keys) == Set(expected.keys))
        for (name, data) in expected { #expect(got[name] == data, "\(name) differs from the one-process run") }
        // Artifacts travelled over ZeroMQ: worker c fetched models it did not train.
        let cache = directory.appendingPathComponent("cache-c")
        let fetched = (FileManager.default.enumerator(atPath: cache.path)?.allObjects as? [String] ?? []).filter {
            $0.count > 60
        }
        #expect(!fetched.isEmpty)
    }

    /// The files a spec names (data, a listed job's checkpoint) travel as artifacts: once the
    /// coordinator has started they can go, and workers with their own caches still finish,
    /// with the results of a one-process run.
    @Test func specFilesReachWorkersWithoutASharedFilesystem() throws {
        try writeTeacherData(samples: 600, to: "files")
        let spec = directory.appendingPathComponent("files-study.yaml")
        try Data(
            """
            model: {input: [16], layers: [{type: linear, out_features: 16}, relu, {type: linear, out_features: 4}]}
            data: {source: files, train: {features: files/train_x.npy, labels: files/train_y.npy}, test: {features: files/test_x.npy, labels: files/test_y.npy}}
            train: {epochs: 5}
            stages:
              train: {seeds: [0, 1]}
              connect: {t: "0:1:5"}
              surface: {x: "-1:1:5", y: "-1:1:5"}
            jobs:
              - surface: {checkpoint: files/given.safetensors, x: "-1:1:4", y: "-1:1:4"}

            """.utf8
        ).write(to: spec)
        let given = try Network(
            ModelDescription(
                input: [16],
                layers: [
                    .linear(inFeatures: nil, outFeatures: 16, bias: true), .relu,
                    .linear(inFeatures: nil, outFeatures: 4, bias: true),
                ]))
        try Checkpoint.save(given.initialize(seed: 9), to: directory.appendingPathComponent("files/given.safetensors"))
        _ = try run(
            ["run", spec.path, "--out", directory.appendingPathComponent("reference").path, "--workers", "0"],
            name: "reference")
        let expected = try results("reference")
        let endpoint = "tcp://127.0.0.1:\(try freePort())"
        let coordinator = try Child(
            [
                "coordinator", spec.path, "--out", directory.appendingPathComponent("no-shared").path, "--bind",
                endpoint,
            ],
            log: directory.appendingPathComponent("coordinator.log"))
        let deadline = Date().addingTimeInterval(60)
        while !coordinator.output.contains("listening") && Date() < deadline { usleep(20_000) }
        try FileManager.default.moveItem(
            at: directory.appendingPathComponent("files"), to: directory.appendingPathComponent("gone"))
        let workers = try ["p", "q"].map { name in
            try Child(
                [
                    "worker", "--connect", endpoint, "--name", name, "--give-up-after", "10", "--cache",
                    directory.appendingPathComponent("cache-\(name)").path,
                ], log: directory.appendingPathComponent("\(name).log"))
        }
        #expect(coordinator.wait(120), "\(coordinator.stacks().suffix(20000))")
        #expect(coordinator.process.terminationStatus == 0, "\(coordinator.output.suffix(2000))")
        for worker in workers { #expect(worker.wait(20), "\(worker.stacks().suffix(20000))") }
        #expect(try results("no-shared") == expected)
    }

    /// 16-feature, 4-class teacher data as .npy files (`basin data`) in `folder`.
    func writeTeacherData(samples: Int, to folder: String) throws {
        let teacher = directory.appendingPathComponent("teacher-\(folder).yaml")
        try Data(
            """
            model: {input: [16], layers: [{type: linear, out_features: 4}]}
            data: {source: teacher, samples: \(samples), features: 16, classes: 4}

            """.utf8
        ).write(to: teacher)
        _ = try run(
            ["data", teacher.path, "-o", directory.appendingPathComponent(folder).path], name: "data-\(folder)")
    }

    /// Metric arrays of a result file as Doubles.
    func metrics(_ data: Data, _ name: String) throws -> [String: [Double]] {
        let file = try ResultFile(data: data, source: name)
        var out: [String: [Double]] = [:]
        for metric in ["train_loss", "train_acc", "test_loss", "test_acc"] {
            out[metric] = file[metric]?.floats()?.map(Double.init) ?? []
        }
        return out
    }

    @Test(
        .enabled(
            if: TestSupport.installed("basin-worker") != nil,
            "skipped: no basin-worker in the virtual environment; scripts/setup installs it"))
    func aPyTorchWorkerAndABasinWorkerShareASweep() throws {
        // Data as .npy files (split and normalized by each worker itself), three models.
        try writeTeacherData(samples: 1500, to: "data")
        let network = try Network(
            ModelDescription(
                input: [16],
                layers: [
                    .linear(inFeatures: nil, outFeatures: 32, bias: true), .relu,
                    .linear(inFeatures: nil, outFeatures: 4, bias: true),
                ]))
        var models: [Model] = []
        for (i, name) in ["a", "b", "c"].enumerated() {
            models.append(network.initialize(seed: UInt64(i + 1)))
            try Checkpoint.save(models[i], to: directory.appendingPathComponent("\(name).safetensors"))
        }
        // A trajectory's snapshots, and a Bezier curve through a, c and b.
        let snapshots = directory.appendingPathComponent("snapshots")
        try FileManager.default.createDirectory(at: snapshots, withIntermediateDirectories: true)
        for epoch in 0..<4 {
            try Checkpoint.save(
                network.initialize(seed: UInt64(10 + epoch)),
                to: snapshots.appendingPathComponent("epoch-000\(epoch).safetensors"))
        }
        try CurveFile.save(
            Curve(kind: .bezier, bends: 1), controlPoints: [models[0], models[2], models[1]],
            to: directory.appendingPathComponent("bend.safetensors"))
        let spec = directory.appendingPathComponent("mixed.yaml")
        try Data(
            """
            model:
              input: [16]
              layers: [{type: linear, out_features: 32}, relu, {type: linear, out_features: 4}]
            data:
              source: files
              train: {features: data/train_x.npy, labels: data/train_y.npy}
              test_fraction: 0.25
              seed: 2
            jobs:
              - surface: {checkpoint: a.safetensors, x: "-1:1:16", y: "-1:1:8", orthogonalize: true, seed: 5}
              - interpolate: {from: a.safetensors, to: b.safetensors, t: "-0.5:1.5:24"}
              - plane: {models: [a.safetensors, b.safetensors, c.safetensors], x: "0:1:6", y: "0:1:6"}
              - plane: {name: plane/orthonormal, models: [a.safetensors, b.safetensors, c.safetensors], basis: orthonormal, x: "-1:2:5", y: "-1:2:5"}
              - surface: {name: surface/pca, checkpoint: a.safetensors, trajectory: snapshots, x: "-1:1:6", y: "-1:1:4"}
              - curve: {file: bend.safetensors, t: "-0.25:1.25:13"}
            sweep: {shard_points: 8}

            """.utf8
        ).write(to: spec)
        // The model the PyTorch worker builds itself, as a user would supply one.
        let model = directory.appendingPathComponent("model.py")
        try Data(
            """
            from torch import nn
            def build():
                return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))

            """.utf8
        ).write(to: model)
        _ = try run(
            ["run", spec.path, "--out", directory.appendingPathComponent("reference").path, "--workers", "0"],
            name: "reference")
        let expected = try results("reference")
        let endpoint = "tcp://127.0.0.1:\(try freePort())"
        let coordinator = try Child(
            ["coordinator", spec.path, "--out", directory.appendingPathComponent("mixed").path, "--bind", endpoint],
            log: directory.appendingPathComponent("coordinator.log"))
        let torchWorker = try #require(TestSupport.installed("basin-worker"))
        let python = try Child(
            ["--connect", endpoint, "--name", "torch", "--model", "\(model.path):build"],
            log: directory.appendingPathComponent("python.log"), executable: torchWorker)
        let deadline = Date().addingTimeInterval(60)
        while !TestSupport.logged(coordinator.output, "worker joined", ["worker": "torch"]) && Date() < deadline {
            usleep(50_000)
        }
        #expect(
            TestSupport.logged(
                coordinator.output, "worker joined",
                [
                    "worker": "torch",
                    "kinds": "curve/interpolate/model:external/plane:orthonormal/plane:raw/surface:random/surface:trajectory",
                ]),
            "\(python.output.suffix(2000))")
        let swift = try Child(
            ["worker", "--connect", endpoint, "--name", "swift", "--give-up-after", "10"],
            log: directory.appendingPathComponent("swift.log"))
        #expect(coordinator.wait(180), "\(coordinator.stacks().suffix(20000))")
        #expect(coordinator.process.terminationStatus == 0, "\(coordinator.output.suffix(2000))")
        #expect(python.wait(20) && python.process.terminationStatus == 0, "\(python.output.suffix(2000))")
        #expect(swift.wait(20), "\(swift.stacks().suffix(20000))")
        // The PyTorch worker did part of the sweep.
        let computed =
            python.output.components(separatedBy: "the sweep is done (").last.flatMap {
                Int($0.prefix { $0.isNumber })
            } ?? 0
        #expect(computed >= 1, "\(python.output.suffix(2000))")
        let got = try results("mixed")
        #expect(Set(got.keys) == Set(expected.keys))
        // Every kind, whichever worker computed its points, agrees with Basin alone to float32 rounding.
        for (name, data) in expected {
            let want = try metrics(data, name), have = try metrics(got[name]!, name)
            for (metric, values) in want {
                #expect(values.count == have[metric]!.count && !values.isEmpty)
                for (a, b) in zip(values, have[metric]!) where !(a.isNaN && b.isNaN) {
                    #expect(abs(a - b) <= 1e-5 * max(1, abs(a)), "\(name) \(metric): Basin \(a), PyTorch \(b)")
                }
            }
        }
    }
}
