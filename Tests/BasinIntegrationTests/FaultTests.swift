import BasinCluster
import BasinFuzz
import BasinNN
import BasinSweep
import BasinTestSupport
import Foundation
import Testing
import ZeroMQ

/// Faults from outside, with real processes: a disk that fills, a flood of bad messages.
extension ClusterTests {
    /// Bytes a tree takes on a tmpfs (whole pages per file), leaving out `except` at its top.
    func pages(_ url: URL, except: Set<String> = []) -> Int {
        var total = 0
        let names = (try? FileManager.default.subpathsOfDirectory(atPath: url.path)) ?? []
        for name in names where !except.contains(String(name.split(separator: "/").first ?? "")) {
            let size = (try? FileManager.default.attributesOfItem(atPath: url.appendingPathComponent(name).path))
            if size?[.type] as? FileAttributeType == .typeRegular, let bytes = size?[.size] as? Int {
                total += (bytes + 4095) / 4096 * 4096
            }
        }
        return total
    }

    /// Runs `executable` with `arguments`, its output discarded; true when it exits 0.
    @discardableResult
    func quietly(_ executable: String, _ arguments: [String]) -> Bool {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return false }
        process.waitUntilExit()
        return process.terminationStatus == 0
    }

    func mount(_ arguments: [String]) -> Bool { quietly("/bin/mount", arguments) }

    /// One set of rules: a job whose every shard fails (the `BASIN_FAULT_FAIL_JOB` seam makes
    /// interpolation throw) is quarantined shard by shard on the third failure, in process
    /// (`--workers 0`) as on a cluster of two workers; the rest of the study completes, both
    /// runs exit non-zero naming the same missing points, and their result files are equal
    /// bit for bit.
    @Test func aFailingJobIsQuarantinedInProcessAsOnACluster() throws {
        let spec = try writeSpec(points: 12)
        var outputs: [String: String] = [:]
        for (name, workers) in [("inprocess", "0"), ("twoworkers", "2")] {
            let child = try Child(
                ["run", spec, "--out", directory.appendingPathComponent(name).path, "--workers", workers],
                log: directory.appendingPathComponent("\(name).log"), environment: [Executor.failSwitch: "interpolate"])
            #expect(child.wait(180), "\(child.stacks().suffix(20000))")
            #expect(child.process.terminationStatus != 0, "\(child.output.suffix(3000))")
            let lines = child.output.split(separator: "\n")
            // Three interpolation shards (14 points in shards of 6), each quarantined once, on its third failure.
            #expect(lines.filter { $0.hasSuffix("] shard quarantined") }.count == 3, "\(child.output.suffix(3000))")
            #expect(lines.filter { $0.hasSuffix("] shard back in the queue") }.count == 6, "\(child.output.suffix(3000))")
            // What each run says is missing, without the paths and worker names that differ.
            let missing = lines.filter { $0.hasPrefix("missing: ") }.map { $0.split(separator: ":").prefix(2).joined(separator: ":") }
            let points = lines.filter { $0.contains(" points; results in ") }.map { $0.prefix { $0 != ";" } }
            outputs[name] = (missing + points.map(String.init)).joined(separator: "\n")
            // basin status names the quarantined shards after the run has ended.
            let problems = try Sweep.status(directory.appendingPathComponent(name)).problems
            #expect(problems.quarantined.count == 3, "\(problems)")
            #expect(problems.quarantined.allSatisfy { $0.job.hasPrefix("interpolate") && $0.reasons.count == 3 })
        }
        #expect(outputs["inprocess"] == outputs["twoworkers"], "\(outputs)")
        #expect(outputs["inprocess"]?.contains("missing: interpolate") == true, "\(outputs)")
        #expect(outputs["inprocess"]?.contains("72/86 points") == true, "\(outputs)")
        #expect(try results("inprocess") == results("twoworkers"))
        let surface = try ResultFile(
            contentsOf: RunDirectory(directory.appendingPathComponent("inprocess")).result("surface/a"))
        #expect(surface["done"]?.integers()?.allSatisfy { $0 == 1 } == true)
    }

    /// The run directory on a tmpfs too small for its journal: the coordinator stops with one
    /// sentence naming the journal file and the cause, and a non-zero exit; once space is freed
    /// the rerun resumes and its results equal a clean run's bit for bit.
    @Test func aFullDiskStopsTheCoordinatorAndTheRerunResumes() throws {
        let spec = try writeSpec(points: 40)
        let expected = try reference(spec)
        let reference = directory.appendingPathComponent("reference")
        let journal = pages(reference.appendingPathComponent("journal"))
        let rest = pages(reference, except: ["journal", "results", "jobs.csv", "summary.csv"])
        let disk = directory.appendingPathComponent("small-disk")
        try FileManager.default.createDirectory(at: disk, withIntermediateDirectories: true)
        // Room for everything but half the journal (and a page for the status file).
        let size = rest + journal / 2 + 4096
        guard mount(["-t", "tmpfs", "-o", "size=\(size)", "tmpfs", disk.path]) else {
            print("skipped: cannot mount a tmpfs here (needs root); the full-disk test did not run")
            return
        }
        defer { quietly("/bin/umount", ["-l", disk.path]) }
        let run = disk.appendingPathComponent("run").path
        let full = try Child(
            ["run", spec, "--out", run, "--workers", "2"], log: directory.appendingPathComponent("full.log"))
        #expect(full.wait(180), "\(full.stacks().suffix(20000))")
        #expect(full.process.terminationStatus != 0, "the run on a full disk exited 0:\n\(full.output.suffix(3000))")
        #expect(full.output.contains("No space left on device"), "\(full.output.suffix(3000))")
        #expect(full.output.contains("journal/000001.log"), "\(full.output.suffix(3000))")
        let durable = try Journal.read(URL(fileURLWithPath: run).appendingPathComponent("journal")).count
        #expect(durable > 1, "nothing was journaled before the disk filled")
        // Space is freed: the same command resumes and finishes.
        #expect(mount(["-o", "remount,size=64m", disk.path]))
        let again = try Child(
            ["run", spec, "--out", run, "--workers", "2"], log: directory.appendingPathComponent("again.log"))
        #expect(again.wait(180), "\(again.stacks().suffix(20000))")
        #expect(again.process.terminationStatus == 0, "\(again.output.suffix(3000))")
        #expect(again.output.contains("to compute (epoch 2)"), "\(again.output.suffix(3000))")
        var files: [String: Data] = [:]
        let results = URL(fileURLWithPath: run).appendingPathComponent("results")
        for kind in try FileManager.default.contentsOfDirectory(atPath: results.path) {
            for file in try FileManager.default.contentsOfDirectory(atPath: results.appendingPathComponent(kind).path) {
                files["\(kind)/\(file)"] = try Data(contentsOf: results.appendingPathComponent(kind).appendingPathComponent(file))
            }
        }
        #expect(files == expected)
        print("enospc: stopped with \(durable) record(s) durable; the rerun resumed and matched bit for bit")
    }

    /// Resident memory of a live process in bytes (0 when it is gone).
    func residentBytes(_ pid: Int32) -> Int {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return 0 }
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return (Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0) * 1024
        }
        return 0
    }

    /// 10,000 mutated messages over TCP from 8 sockets while two genuine workers finish the
    /// sweep: the coordinator stays up, results equal a clean run's, its memory grows by less
    /// than 20 MB and it writes fewer than 1,000 log lines.
    @Test func aFloodOfBadMessagesDoesNotHurtALiveSweep() throws {
        let spec = try writeSpec(points: 40)
        let expected = try reference(spec)
        let endpoint = "tcp://127.0.0.1:\(try freePort())"
        let coordinator = try Child(
            ["coordinator", spec, "--out", directory.appendingPathComponent("flood").path, "--bind", endpoint],
            log: directory.appendingPathComponent("coordinator.log"))
        usleep(500_000)
        let startRSS = residentBytes(coordinator.pid)
        let context = try ZMQContext()
        var sockets: [ZMQSocket] = []
        for i in 0..<8 {
            let socket = try ZMQSocket(context, .dealer)
            try socket.setLinger(0)
            try socket.setRoutingID("flood-\(i)")
            try socket.connect(endpoint)
            sockets.append(socket)
        }
        let job = String(repeating: "ab", count: 32)
        var mutator = MessageMutator(
            seed: 5,
            templates: [
                HelloHeader(worker: "flood", host: "h", pid: 9, slots: 2, version: "x").message(),
                HeartbeatHeader(computing: 1, queued: 0).message(),
                ResultHeader(lease: 1_000_000, job: job, jobIndex: 0, shard: 0, seconds: 0.1)
                    .message(binary: [Data(count: 192)]),
                FailHeader(lease: 1_000_001, error: "boom").message(),
                PutHeader(artifact: job, size: 10, offset: 0).message(binary: [Data(count: 10)]),
                FetchHeader(artifact: job, offset: 0).message(), ByeHeader().message(),
            ])
        var workers: [Child] = []
        var peakRSS = startRSS
        var sent = 0
        while sent < 10_000 {
            let frames = mutator.message()
            if !frames.isEmpty, (try? sockets[sent % sockets.count].send(frames, dontWait: true)) == true { sent += 1 }
            for socket in sockets { while (try? socket.receive(dontWait: true)) ?? nil != nil {} }
            if sent == 3_000 && workers.isEmpty {
                for name in ["p", "q"] {
                    workers.append(
                        try Child(
                            ["worker", "--connect", endpoint, "--name", name, "--give-up-after", "30"],
                            log: directory.appendingPathComponent("worker-\(name).log")))
                }
            }
            if sent % 500 == 0 { peakRSS = max(peakRSS, residentBytes(coordinator.pid)) }
        }
        for socket in sockets { socket.close() }
        for _ in 0..<20 {
            peakRSS = max(peakRSS, residentBytes(coordinator.pid))
            usleep(50_000)
        }
        #expect(coordinator.wait(180), "\(coordinator.stacks().suffix(20000))")
        #expect(coordinator.process.terminationStatus == 0, "\(coordinator.output.suffix(3000))")
        for worker in workers { #expect(worker.wait(30), "\(worker.stacks().suffix(5000))") }
        #expect(try results("flood") == expected)
        let growth = Double(peakRSS - startRSS) / 1_048_576
        let lines = coordinator.output.split(separator: "\n").count
        print(String(format: "flood: sent %d mutated messages; coordinator RSS grew %.1f MB; %d log lines", sent, growth, lines))
        #expect(startRSS > 0 && growth < 20, "RSS grew \(growth) MB")
        #expect(lines < 1_000, "\(lines) log lines")
    }
}

extension ClusterTests {
    /// One of three workers is killed with SIGKILL every 3 seconds and restarted: vanishing is
    /// not the shards' fault, so nothing is quarantined and the results equal an uninterrupted
    /// run's bit for bit.
    @Test func aSweepWhoseWorkersAreKilledEveryThreeSecondsCompletes() throws {
        let spec = try writeSpec(points: 60)
        let expected = try reference(spec)
        let endpoint = "tcp://127.0.0.1:\(try freePort())"
        let coordinator = try Child(
            ["coordinator", spec, "--out", directory.appendingPathComponent("killed").path, "--bind", endpoint],
            log: directory.appendingPathComponent("coordinator.log"))
        func start(_ name: String, _ generation: Int) throws -> Child {
            try Child(
                ["worker", "--connect", endpoint, "--name", name, "--give-up-after", "30"],
                log: directory.appendingPathComponent("worker-\(name)-\(generation).log"))
        }
        var workers = try ["a", "b", "c"].map { try start($0, 0) }
        var kills = 0
        var next = Date().addingTimeInterval(3)
        let deadline = Date().addingTimeInterval(240)
        while coordinator.process.isRunning && Date() < deadline {
            usleep(50_000)
            guard Date() >= next else { continue }
            next = Date().addingTimeInterval(3)
            let victim = kills % workers.count
            workers[victim].kill9()
            kills += 1
            workers[victim] = try start(["a", "b", "c"][victim], kills)
        }
        #expect(coordinator.wait(30), "\(coordinator.stacks().suffix(20000))")
        #expect(coordinator.process.terminationStatus == 0, "\(coordinator.output.suffix(3000))")
        #expect(!coordinator.output.contains("quarantined"), "\(coordinator.output.suffix(3000))")
        #expect(kills >= 2, "the sweep ended before the kills began")
        #expect(try results("killed") == expected)
        print("kills: \(kills) workers killed with SIGKILL; the sweep completed bit for bit")
        for worker in workers { worker.kill9() }
    }

    /// A job whose evaluation kills the compute process (the fault seam makes it SIGSEGV):
    /// each worker reports it as a FAIL naming the signal and lives on; after three distinct
    /// workers its shards are quarantined and the rest of the sweep completes.
    @Test func aShardThatCrashesItsComputationIsQuarantinedAfterThreeWorkers() throws {
        let spec = try writeSpec(points: 12)
        let endpoint = "tcp://127.0.0.1:\(try freePort())"
        let run = directory.appendingPathComponent("crashing")
        let coordinator = try Child(
            ["coordinator", spec, "--out", run.path, "--bind", endpoint],
            log: directory.appendingPathComponent("coordinator.log"))
        let workers = try ["a", "b", "c"].map { name in
            try Child(
                ["worker", "--connect", endpoint, "--name", name, "--give-up-after", "30"],
                log: directory.appendingPathComponent("worker-\(name).log"),
                environment: ["BASIN_FAULT_CRASH_JOB": "interpolate"])
        }
        #expect(coordinator.wait(180), "\(coordinator.stacks().suffix(20000))")
        #expect(coordinator.process.terminationStatus != 0)
        let output = coordinator.output
        #expect(TestSupport.logged(output, "shard quarantined", ["workers": "3"]), "\(output.suffix(3000))")
        #expect(output.contains("died of signal 11"), "\(output.suffix(3000))")
        #expect(!TestSupport.logged(output, "worker quarantined"), "\(output.suffix(3000))")
        for worker in workers {
            #expect(worker.wait(30), "\(worker.stacks().suffix(5000))")
            #expect(worker.output.contains("a new compute process takes the next task"))
        }
        // The surface is whole; the interpolation's points are missing, not invented.
        let surface = run.appendingPathComponent("results/surface")
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: surface.path)) ?? []).count == 1)
    }

    /// The ResNet-20 example at a small size, end to end on two workers: two seeds trained on
    /// cifar-synthetic, the line, the aligned line and the fitted curve between them, a surface
    /// and the sharpness around each; every barrier is in the summary.
    @Test func theResNet20ExampleRunsEndToEnd() throws {
        let spec = directory.appendingPathComponent("resnet20.yaml")
        _ = try run(["example", "resnet20", "-o", spec.path], name: "example")
        var text = try String(contentsOf: spec, encoding: .utf8)
        for (from, to) in [
            ("samples: 1200", "samples: 100"), ("epochs: 4", "epochs: 1"), ("t: \"0:1:9\"", "t: \"0:1:3\""),
            ("epochs: 2, lr: 0.02", "epochs: 1, lr: 0.02"), ("x: \"-1:1:7\", y: \"-1:1:7\"", "x: \"-1:1:2\", y: \"-1:1:2\""),
            ("iterations: 20, tolerance: 0.01, probes: 5", "iterations: 3, tolerance: 0.01, probes: 1"),
        ] {
            #expect(text.contains(from), "the example no longer says \(from)")
            text = text.replacingOccurrences(of: from, with: to)
        }
        try Data(text.utf8).write(to: spec)
        let out = directory.appendingPathComponent("resnet20-run")
        _ = try run(["run", spec.path, "--out", out.path, "--workers", "2"], name: "resnet20-run", timeout: 600)
        let summary = try String(contentsOf: out.appendingPathComponent("summary.csv"), encoding: .utf8)
        let lines = summary.split(separator: "\n").map(String.init)
        let header = lines.first?.split(separator: ",", omittingEmptySubsequences: false).map(String.init) ?? []
        let pair = lines.first { $0.hasPrefix("pair,") }?.split(separator: ",", omittingEmptySubsequences: false).map(String.init) ?? []
        for column in ["line_loss_barrier", "aligned_loss_barrier", "curve_loss_barrier"] {
            let value = header.firstIndex(of: column).flatMap { $0 < pair.count ? Double(pair[$0]) : nil }
            #expect(value?.isFinite == true, "\(column) in \(summary)")
        }
        let models = lines.filter { $0.hasPrefix("model,") }
        #expect(models.count == 2, "\(summary)")
    }

    /// The multi-worker example, run again and again: every run exits 0 and no process prints
    /// a crash report (a thread inside BLAS at exit once did, in about 3 runs of 20).
    @Test func theMultiWorkerExampleNeverCrashesAtExit() throws {
        let spec = directory.appendingPathComponent("connectivity.yaml").path
        _ = try run(["example", "connectivity", "-o", spec], name: "example")
        for attempt in 0..<6 {
            let child = try run(
                ["run", spec, "--out", directory.appendingPathComponent("example-\(attempt)").path, "--workers", "2"],
                name: "example-run-\(attempt)")
            for report in ["crashed", "Bad memory", "Fatal error", "Segmentation fault", "Illegal instruction"] {
                #expect(!child.output.contains(report), "run \(attempt): \(child.output.suffix(3000))")
            }
        }
    }
}

extension ClusterTests {
    /// `verify: 0.5` with one of three workers lying (the fault seam nudges every training loss
    /// it reports to the next Float64): the lie is caught by a bitwise comparison, a third
    /// worker decides, the liar is quarantined, every result it delivered is computed again,
    /// and the results equal a clean run's bit for bit; the log, `basin status` and `jobs.csv`
    /// say so.
    @Test func verificationCatchesALyingWorkerAndRecomputesWhatItDelivered() throws {
        let plain = try writeSpec(points: 24)
        let expected = try reference(plain)
        let text = try String(contentsOfFile: plain, encoding: .utf8).replacingOccurrences(
            of: "sweep: {shard_points: 6, lease_seconds: 60}", with: "sweep: {shard_points: 6, lease_seconds: 60, verify: 0.5}")
        let spec = directory.appendingPathComponent("verify.yaml")
        try Data(text.utf8).write(to: spec)
        let endpoint = "tcp://127.0.0.1:\(try freePort())"
        let runDirectory = directory.appendingPathComponent("verified")
        let coordinator = try Child(
            ["coordinator", spec.path, "--out", runDirectory.path, "--bind", endpoint],
            log: directory.appendingPathComponent("coordinator.log"))
        let workers = try ["honest-a", "honest-b", "liar"].map { name in
            try Child(
                ["worker", "--connect", endpoint, "--name", name, "--give-up-after", "30"],
                log: directory.appendingPathComponent("worker-\(name).log"),
                environment: name == "liar" ? ["BASIN_FAULT_LIE": "1"] : [:])
        }
        #expect(coordinator.wait(180), "\(coordinator.stacks().suffix(20000))")
        let output = coordinator.output
        #expect(coordinator.process.terminationStatus == 0, "\(output.suffix(3000))")
        #expect(output.contains("VERIFY MISMATCH"), "\(output.suffix(3000))")
        #expect(TestSupport.logged(output, "worker quarantined", ["identity": "liar@"]), "\(output.suffix(3000))")
        #expect(!output.contains("identity=honest"), "\(output.suffix(3000))")
        #expect(try results("verified") == expected)
        let liar = workers[2]
        #expect(liar.wait(30))
        #expect(liar.process.terminationStatus != 0 && liar.output.contains("quarantined this worker"))
        let status = try run(["status", runDirectory.path], name: "status")
        #expect(status.output.contains("voided by verification"), "\(status.output)")
        let jobs = try String(contentsOf: runDirectory.appendingPathComponent("jobs.csv"), encoding: .utf8)
        let voided = jobs.split(separator: "\n").dropFirst().compactMap { Int($0.split(separator: ",").last ?? "") }
        #expect(voided.reduce(0, +) > 0, "\(jobs)")
        for worker in workers { worker.kill9() }
    }
}
