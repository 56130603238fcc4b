import BasinNN
import BasinSweep
import BasinTestSupport
import Crypto
import Foundation
import Testing

@testable import BasinCluster

/// Artifacts between the coordinator's and a worker's state machines, message by message:
/// checked at both ends, never more than the credit of chunks in flight.
@Suite struct ArtifactTransferTests {
    let fixture = try! StudyFixture()
    static let size = 200 << 20

    /// A deterministic pseudo-random blob of `size` bytes written into `store` chunk by chunk
    /// (never whole in memory); returns its hash.
    static func writeBlob(into store: ArtifactStore, size: Int, seed: UInt64) throws -> String {
        func chunk(_ index: Int) -> Data {
            var state = seed &+ UInt64(index) &* 0x9E37_79B9_7F4A_7C15
            let count = min(WireMessage.artifactChunk, size - index * WireMessage.artifactChunk)
            var words = [UInt64](repeating: 0, count: (count + 7) / 8)
            for i in words.indices {
                state ^= state << 13
                state ^= state >> 7
                state ^= state << 17
                words[i] = state
            }
            return words.withUnsafeBytes { Data($0.prefix(count)) }
        }
        let chunks = (size + WireMessage.artifactChunk - 1) / WireMessage.artifactChunk
        var hasher = SHA256()
        for i in 0..<chunks { hasher.update(data: chunk(i)) }
        let hash = hasher.finalize().map { String(format: "%02x", $0) }.joined()
        let upload = try store.upload(hash, size: size)
        for i in 0..<chunks { try upload.append(chunk(i), at: i * WireMessage.artifactChunk) }
        try upload.finish()
        return hash
    }

    /// Delivers messages both ways until nothing is left, each side's disk actions done by its
    /// disk (`cache`: the worker's); returns the most bytes of artifact in flight at once, and
    /// every message the worker sent.
    static func exchange(
        _ coordinator: inout CoordinatorCore, _ worker: inout WorkerCore, disk: ArtifactDisk, cache: ArtifactDisk,
        start: [WorkerCore.Action], corrupt: Bool = false
    ) -> (peak: Int, fromWorker: [WireMessage]) {
        let peer = Data("w#0".utf8)
        var toCoordinator: [WireMessage] = [], toWorker: [WireMessage] = [], fromWorker: [WireMessage] = []
        func take(_ actions: [WorkerCore.Action]) {
            for case .send(let m) in cache.settle(actions, into: &worker, now: 1) {
                toCoordinator.append(m)
                fromWorker.append(m)
            }
        }
        take(start)
        var peak = 0
        var corrupted = false
        while !toCoordinator.isEmpty || !toWorker.isEmpty {
            let inFlight = (toCoordinator + toWorker).reduce(0) { $0 + $1.binary.reduce(0) { $0 + $1.count } }
            peak = max(peak, inFlight)
            if !toCoordinator.isEmpty {
                let m = toCoordinator.removeFirst()
                let actions = disk.settle(coordinator.receive(peer: peer, frames: m.frames(), now: 1), into: &coordinator)
                for case .send(_, let reply) in actions {
                    toWorker.append(reply)
                }
            } else {
                var m = toWorker.removeFirst()
                if corrupt, !corrupted, m.command == .chunk, var bytes = m.binary.first, bytes.count > 100 {
                    bytes[100] ^= 0xFF
                    m.binary[0] = bytes
                    corrupted = true
                }
                take(worker.receive(frames: m.frames(), now: 1))
            }
        }
        return (peak, fromWorker)
    }

    /// A coordinator of the fixture, a worker it welcomed, and the worker's cache.
    func joined() throws -> (CoordinatorCore, WorkerCore, ArtifactDisk) {
        var coordinator = try fixture.core()
        let cache = ArtifactDisk(
            store: ArtifactStore(directory: fixture.directory.appendingPathComponent("cache-\(UUID().uuidString)")))
        var worker = WorkerCore(name: "w", slots: 1)
        guard case .send(let hello) = worker.connected(now: 0)[0] else { throw ClusterError("no HELLO") }
        for case .send(_, let reply) in coordinator.receive(peer: Data("w#0".utf8), frames: hello.frames(), now: 0)
        where reply.command == .welcome {
            _ = worker.receive(frames: reply.frames(), now: 0)
        }
        return (coordinator, worker, cache)
    }

    /// A coordinator of the training fixture and a worker holding both training leases; the
    /// tasks the worker was given (the first computing).
    func joinedTraining() throws -> (CoordinatorCore, WorkerCore, ArtifactDisk, [WorkerCore.Task], StudyFixture) {
        let training = try StudyFixture(training: true)
        var coordinator = try training.core()
        let cache = ArtifactDisk(
            store: ArtifactStore(directory: training.directory.appendingPathComponent("cache-\(UUID().uuidString)")))
        var worker = WorkerCore(name: "w", slots: 2)
        guard case .send(let hello) = worker.connected(now: 0)[0] else { throw ClusterError("no HELLO") }
        var tasks: [WorkerCore.Task] = []
        for case .send(_, let reply) in coordinator.receive(peer: Data("w#0".utf8), frames: hello.frames(), now: 0) {
            for case .compute(let task) in worker.receive(frames: reply.frames(), now: 0) { tasks.append(task) }
        }
        // The second waits behind the first; it is computed (in these tests) with the same output.
        guard let first = tasks.first else { throw ClusterError("no task") }
        var second = first
        second.lease = first.lease + 1
        second.jobIndex = 1
        second.job = training.study.jobs[1].id
        return (coordinator, worker, cache, [first, second], training)
    }

    /// A TASK of job 0 that reads `hash` as the output of job "@train".
    func task(reading hash: String) -> WireMessage {
        WireMessage(
            .task,
            [
                "lease": .integer(1000), "job": .string(fixture.study.jobs[0].id), "job_index": .integer(0),
                "shard": .integer(0), "start": .integer(0), "end": .integer(1), "deadline_ms": .integer(60000),
                "definition": try! JSONValue(encoding: fixture.study.jobs[0].definition),
                "spec": try! JSONValue(encoding: fixture.spec), "base": .string(fixture.directory.path),
                "inputs": .object(["train/x": .string(hash)]),
            ])
    }

    @Test func a200MBInputIsFetchedCheckedAndNeverMoreThanTheCreditInFlight() throws {
        defer { try? FileManager.default.removeItem(at: fixture.directory) }
        var (coordinator, worker, cache) = try joined()
        let store = ArtifactStore(directory: fixture.directory.appendingPathComponent("artifacts"))
        let hash = try Self.writeBlob(into: store, size: Self.size, seed: 1)
        let start = worker.receive(frames: task(reading: hash).frames(), now: 1)
        #expect(start.contains { if case .send(let m) = $0 { return m.command == .fetch } else { return false } })
        #expect(!start.contains { if case .compute = $0 { return true } else { return false } })
        let (peak, sent) = Self.exchange(
            &coordinator, &worker, disk: ArtifactDisk(store: store), cache: cache, start: start)
        #expect(worker.cached.contains(hash))
        #expect(cache.store.size(hash) == Self.size && cache.store.verify(hash))
        #expect(peak <= WireMessage.artifactCredit * WireMessage.artifactChunk, "peak \(peak) bytes in flight")
        #expect(sent.filter { $0.command == .fetch }.count == Self.size / WireMessage.artifactChunk)
        // Once the input is whole the task computes.
        #expect(worker.isComputing)
    }

    @Test func aCorruptedChunkIsCaughtAndTheTaskFails() throws {
        defer { try? FileManager.default.removeItem(at: fixture.directory) }
        var (coordinator, worker, cache) = try joined()
        let store = ArtifactStore(directory: fixture.directory.appendingPathComponent("artifacts"))
        let hash = try Self.writeBlob(into: store, size: 3 * WireMessage.artifactChunk + 17, seed: 2)
        let start = worker.receive(frames: task(reading: hash).frames(), now: 1)
        let (_, sent) = Self.exchange(
            &coordinator, &worker, disk: ArtifactDisk(store: store), cache: cache, start: start, corrupt: true)
        #expect(!worker.cached.contains(hash) && !cache.store.contains(hash))
        // The partial file went with it.
        let left = FileManager.default.enumerator(atPath: cache.store.directory.path)?.compactMap { $0 as? String } ?? []
        #expect(!left.contains { $0.hasSuffix(".part") }, "\(left)")
        let fail = sent.first { $0.command == .fail }
        #expect(fail?.string("error")?.contains("hashing to") == true, "\(String(describing: fail))")
        #expect(!worker.isComputing)
    }

    @Test func a200MBOutputIsUploadedCheckedAndStoredBeforeItsResult() throws {
        var (coordinator, worker, cache, tasks, training) = try joinedTraining()
        defer { try? FileManager.default.removeItem(at: training.directory) }
        let hash = try Self.writeBlob(into: cache.store, size: Self.size, seed: 3)
        let metrics = [Double](repeating: 0.5, count: 4 + 3)
        let start = worker.computed(tasks[0], metrics: metrics, artifact: hash, seconds: 1, now: 1)
        let store = ArtifactStore(directory: training.directory.appendingPathComponent("artifacts"))
        let disk = ArtifactDisk(store: store)
        let (peak, sent) = Self.exchange(&coordinator, &worker, disk: disk, cache: cache, start: start)
        #expect(store.contains(hash) && store.size(hash) == Self.size)
        #expect(peak <= WireMessage.artifactCredit * WireMessage.artifactChunk, "peak \(peak) bytes in flight")
        // The RESULT names the artifact and comes after the last chunk.
        let result = try #require(sent.firstIndex { $0.command == .result })
        #expect(sent[result].string("artifact") == hash)
        #expect(sent[..<result].filter { $0.command == .put }.count == Self.size / WireMessage.artifactChunk)
        #expect(!sent[result...].contains { $0.command == .put })
        #expect(coordinator.outputs[training.study.jobs[0].name] == hash)
        // A second upload of something the coordinator has ends after one chunk.
        let again = worker.computed(tasks[1], metrics: metrics, artifact: hash, seconds: 1, now: 2)
        let (_, resent) = Self.exchange(&coordinator, &worker, disk: disk, cache: cache, start: again)
        #expect(resent.filter { $0.command == .put }.count <= WireMessage.artifactCredit)
        #expect(resent.contains { $0.command == .result })
    }

    @Test func aPutThatLiesAboutItsHashIsRefused() throws {
        var (coordinator, _, _, _, training) = try joinedTraining()
        defer { try? FileManager.default.removeItem(at: training.directory) }
        let bytes = Data("not what it claims".utf8)
        let wrong = ArtifactStore.hash(Data("something else".utf8))
        let put = WireMessage(
            .put, ["artifact": .string(wrong), "size": .integer(bytes.count), "offset": .integer(0)], binary: [bytes])
        let disk = ArtifactDisk(store: ArtifactStore(directory: training.directory.appendingPathComponent("artifacts")))
        let replies = disk.settle(coordinator.receive(peer: Data("w#0".utf8), frames: put.frames(), now: 1), into: &coordinator)
        let taken = replies.compactMap { if case .send(_, let m) = $0 { return m } else { return nil } }.first
        #expect(taken?.command == .taken && taken?.string("error") != nil)
        #expect(!ArtifactStore(directory: training.directory.appendingPathComponent("artifacts")).contains(wrong))
        // A path where a hash belongs is refused, naming the field.
        let sneaky = WireMessage(.fetch, ["artifact": .string("../../etc/passwd"), "offset": .integer(0)])
        let answer = sent(coordinator.receive(peer: Data("w#0".utf8), frames: sneaky.frames(), now: 1))
        #expect(answer.map(\.message.command) == [.disconnect])
        #expect(answer.first?.message.string("reason")?.contains("FETCH field 'artifact'") == true)
    }

    /// Only a worker holding a lease of a job that makes an artifact may upload one.
    @Test func anUploadFromAWorkerWithNoSuchLeaseIsRefused() throws {
        defer { try? FileManager.default.removeItem(at: fixture.directory) }
        var (coordinator, _, _) = try joined()
        let bytes = Data("a checkpoint nobody asked for".utf8)
        let put = WireMessage(
            .put,
            ["artifact": .string(ArtifactStore.hash(bytes)), "size": .integer(bytes.count), "offset": .integer(0)],
            binary: [bytes])
        let answer = sent(coordinator.receive(peer: Data("w#0".utf8), frames: put.frames(), now: 1))
        #expect(answer.map(\.message.command) == [.disconnect])
        #expect(answer.first?.message.string("reason")?.contains("holds no job making one") == true)
        #expect(!ArtifactStore(directory: fixture.directory.appendingPathComponent("artifacts")).contains(ArtifactStore.hash(bytes)))
    }

    /// A TASK of job 0, whose spec names `a.safetensors`, with the coordinator's files under `base`.
    func task(files base: URL, hash: String) -> WireMessage {
        WireMessage(
            .task,
            [
                "lease": .integer(1001), "job": .string(fixture.study.jobs[0].id), "job_index": .integer(0),
                "shard": .integer(0), "start": .integer(0), "end": .integer(1), "deadline_ms": .integer(60000),
                "definition": try! JSONValue(encoding: fixture.study.jobs[0].definition),
                "spec": try! JSONValue(encoding: fixture.spec), "base": .string(base.path),
                "files": .object(["a.safetensors": .string(hash)]),
            ])
    }

    @Test func aSpecFileReadableHereIsTakenFromDiskOnlyWhenItsBytesMatch() throws {
        defer { try? FileManager.default.removeItem(at: fixture.directory) }
        let store = ArtifactStore(directory: fixture.directory.appendingPathComponent("artifacts"))
        let file = fixture.directory.appendingPathComponent("a.safetensors")
        let bytes = try Data(contentsOf: file)
        let hash = try store.put(bytes)
        var (_, worker, cache) = try joined()
        let asks = worker.receive(frames: task(files: fixture.directory, hash: hash).frames(), now: 1)
        #expect(asks == [.adopt(artifact: hash, path: file.path)])
        let after = cache.settle(asks, into: &worker, now: 1)
        #expect(after.contains(.event(.tookLocalFile(artifact: hash, path: file.path))))
        #expect(worker.cached.contains(hash) && cache.store.verify(hash))
        #expect(!after.contains { if case .send(let m) = $0 { return m.command == .fetch } else { return false } })
        #expect(worker.isComputing)

        // Another machine's file of that name, with other bytes.
        let elsewhere = fixture.directory.appendingPathComponent("elsewhere")
        try FileManager.default.createDirectory(at: elsewhere, withIntermediateDirectories: true)
        var changed = bytes
        changed[changed.count / 2] ^= 1
        let stale = elsewhere.appendingPathComponent("a.safetensors")
        try changed.write(to: stale)
        var (coordinator, other, otherCache) = try joined()
        let second = other.receive(frames: task(files: elsewhere, hash: hash).frames(), now: 1)
        #expect(second == [.adopt(artifact: hash, path: stale.path)])
        let fetch = otherCache.settle(second, into: &other, now: 1)
        #expect(!otherCache.store.contains(hash) && !other.cached.contains(hash))
        #expect(fetch.contains { if case .send(let m) = $0 { return m.command == .fetch } else { return false } })
        let (_, sent) = Self.exchange(&coordinator, &other, disk: ArtifactDisk(store: store), cache: otherCache, start: fetch)
        #expect(sent.contains { $0.command == .fetch })
        #expect(other.cached.contains(hash) && otherCache.store.verify(hash))
        #expect(other.isComputing)
    }
}

/// How verification compares two answers: bit for bit between Basin workers, within the stated
/// tolerance when either came from another worker (a PyTorch worker).
@Suite struct VerificationAgreementTests {
    typealias Answer = Verification.Answer

    func answer(_ values: [Double], exact: Bool) -> Answer {
        Answer(identity: "w", label: "w", metrics: values, artifact: nil, exact: exact)
    }

    @Test func basinWorkersMustAgreeBitForBitOthersWithinTolerance() {
        let a = [0.5, 0.25, .nan, 1.0]
        let ulp = [(0.5 as Double).nextUp, 0.25, .nan, 1.0]
        let close = [0.5 * (1 + 5e-5), 0.25, .nan, 1.0]
        let far = [0.5 * (1 + 1e-3), 0.25, .nan, 1.0]
        #expect(Verification.agree(answer(a, exact: true), answer(a, exact: true)))
        #expect(!Verification.agree(answer(a, exact: true), answer(ulp, exact: true)))
        #expect(Verification.agree(answer(a, exact: true), answer(close, exact: false)))
        #expect(!Verification.agree(answer(a, exact: false), answer(far, exact: false)))
        #expect(!Verification.agree(answer([0.5], exact: false), answer([.nan], exact: false)))
    }
}
