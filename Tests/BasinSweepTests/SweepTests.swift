import BasinNN
import BasinSweep
import BasinTestSupport
import Foundation
import Testing

@Suite struct SweepTests {
    let directory = TestSupport.temporaryDirectory("basin-sweep")

    init() throws {
        let network = try Network(
            ModelDescription(
                input: [2],
                layers: [
                    .linear(inFeatures: nil, outFeatures: 8, bias: true), .relu,
                    .linear(inFeatures: nil, outFeatures: 2, bias: true),
                ]))
        try Checkpoint.save(network.initialize(seed: 1), to: directory.appendingPathComponent("a.safetensors"))
        try Checkpoint.save(network.initialize(seed: 2), to: directory.appendingPathComponent("b.safetensors"))
    }

    func spec(surfaceSteps: Int = 4) throws -> (String, StudySpec) {
        let text = """
            {"model": {"input": [2], "layers": [{"type": "linear", "out_features": 8}, "relu", {"type": "linear", "out_features": 2}]},
             "data": {"source": "spirals", "samples": 100},
             "jobs": [{"surface": {"checkpoint": "a.safetensors", "x": "-1:1:\(surfaceSteps)", "y": "-1:1:3"}},
                      {"interpolate": {"from": "a.safetensors", "to": "b.safetensors", "t": "0:1:5"}}],
             "sweep": {"shard_points": 4}}
            """
        return (text, try JSONDecoder().decode(StudySpec.self, from: Data(text.utf8)))
    }

    var run: URL { directory.appendingPathComponent("run") }

    func open(surfaceSteps: Int = 4) throws -> Sweep {
        let (text, spec) = try spec(surfaceSteps: surfaceSteps)
        return try Sweep(specText: text, spec: spec, base: directory, directory: run)
    }

    @Test func resumeKeepsFinishedWorkAndRedoesChangedJobs() throws {
        do {
            let sweep = try open()
            #expect(sweep.changes.isEmpty && sweep.epoch == 1 && sweep.remainingShards == 3 + 2)
            try sweep.runLocally()
            #expect(try sweep.merge() == (19, 19))
        }
        do {
            let again = try open()
            #expect(again.remainingShards == 0 && again.epoch == 2)
            #expect(again.changes == ["2 job(s) unchanged keep their results"])
        }
        let changed = try open(surfaceSteps: 5)
        #expect(changed.changes.contains("1 job(s) unchanged keep their results"))
        #expect(changed.changes.contains("job surface/a changed: it starts fresh"))
        #expect(changed.remainingShards == 4)  // 15 points in shards of 4; the line is kept
        let status = try Sweep.status(run)
        #expect(status.done == 7 && status.total == 22)
    }

    @Test func oneCoordinatorPerRunDirectory() throws {
        let first = try open()
        #expect(throws: RunDirectoryError.locked(run, owner: "\(getpid())")) { _ = try open() }
        do {
            _ = try open()
        } catch let error as RunDirectoryError {
            #expect(error.isLocked)
            #expect(error.description == "\(run.path): another coordinator (pid \(getpid())) is running on this run directory")
        }
        _ = first
    }

    @Test func mergeIsIdempotentAndMarksMissingPoints() throws {
        let sweep = try open()
        try sweep.merge()
        let surface = RunDirectory(run).result("surface/a")
        let empty = try ResultFile(contentsOf: surface)
        #expect(empty["done"]?.integers()?.allSatisfy { $0 == 0 } == true)
        #expect(empty["train_loss"]?.floats()?.allSatisfy(\.isNaN) == true)
        try sweep.runLocally()
        try sweep.merge()
        let once = try Data(contentsOf: surface)
        try sweep.merge()
        #expect(try Data(contentsOf: surface) == once)
        // Every result says which Basin merged it and from which spec.
        let merged = try ResultFile(contentsOf: surface)
        #expect(merged.metadata["basin_version"]?.stringValue == BasinVersion.string)
        #expect(merged.metadata["spec_sha256"]?.stringValue.map(ArtifactStore.isHash) == true)
        let (_, spec) = try spec()
        try Sweep.merge(directory: run, spec: spec)
        #expect(try Data(contentsOf: surface) == once)
    }

    @Test func journalSurvivesATornTailAndRejectsCorruption() throws {
        let folder = directory.appendingPathComponent("journal")
        let record = Journal.ShardDone(
            job: "j", shard: 0, start: 0, end: 2, worker: "w", seconds: 1, time: 2, metrics: [1, 2, 3, 4, 5, 6, 7, 8])
        do {
            let journal = try Journal(directory: folder)
            try journal.append(.runStarted(epoch: 1, time: 0))
            try journal.append(.shardDone(record))
            try journal.sync()
        }
        // A crash mid-append leaves half a record.
        let segment = folder.appendingPathComponent("000001.log")
        let handle = try FileHandle(forWritingTo: segment)
        handle.seekToEndOfFile()
        handle.write(Data("BSJ1".utf8) + Data([200, 0, 0, 0, 1, 2]))
        try handle.close()
        #expect(try Journal.read(folder) == [.runStarted(epoch: 1, time: 0), .shardDone(record)])
        do {
            let reopened = try Journal(directory: folder)
            try reopened.append(.runStarted(epoch: 2, time: 1))
            try reopened.sync()
        }
        #expect(try Journal.read(folder).count == 3)
        // Damage in the middle of a segment (not a torn tail): reported with segment and
        // offset, the records after it kept, only what the bad bytes held lost.
        var bytes = try Data(contentsOf: segment)
        bytes[20] ^= 0xff
        try bytes.write(to: segment)
        let (records, damage) = try Journal.readReporting(folder)
        #expect(records == [.shardDone(record), .runStarted(epoch: 2, time: 1)])
        #expect(damage.count == 1 && damage.first?.segment == "000001.log" && damage.first?.offset == 0)
        #expect(damage.first?.description.contains("byte offset 0") == true)
        // Reopening keeps the good records after the damage (only a torn tail is cut).
        do { _ = try Journal(directory: folder) }
        #expect(try Journal.read(folder) == [.shardDone(record), .runStarted(epoch: 2, time: 1)])
    }

    /// A write or fsync that fails (here ENOSPC through the file layer) is an error naming the
    /// segment and the cause; what was synced before it stays readable.
    @Test func journalWriteAndSyncFailuresNameTheFileAndCause() throws {
        let folder = directory.appendingPathComponent("journal-faults")
        final class Faults: @unchecked Sendable {
            // Read and written by the test's one thread only.
            var failWrites = false
            var failSyncs = false
        }
        let faults = Faults()
        let layer = Journal.FileLayer(
            write: { descriptor, bytes, count in
                if faults.failWrites {
                    errno = ENOSPC
                    return -1
                }
                return Foundation.write(descriptor, bytes, count)
            },
            sync: { descriptor in
                if faults.failSyncs {
                    errno = EIO
                    return -1
                }
                return Foundation.fsync(descriptor)
            })
        let record = Journal.ShardDone(
            job: "j", shard: 0, start: 0, end: 1, worker: "w", seconds: 1, time: 2, metrics: [1, 2, 3, 4])
        let journal = try Journal(directory: folder, files: layer)
        try journal.append(.shardDone(record))
        try journal.sync()
        faults.failWrites = true
        do {
            try journal.append(.shardDone(record))
            Issue.record("a failed write was not reported")
        } catch {
            #expect(error is JournalError)
            #expect("\(error)".contains("000001.log") && "\(error)".contains("No space left on device"), "\(error)")
        }
        faults.failWrites = false
        faults.failSyncs = true
        try journal.append(.shardDone(record))
        #expect(throws: JournalError.self) { try journal.sync() }
        #expect(try Journal.read(folder).first == .shardDone(record))
    }

    @Test func badJobsAreNamed() throws {
        let text = """
            {"model": {"input": [2], "layers": [{"type": "linear", "out_features": 2}]}, "data": {"source": "spirals"},
             "jobs": [{"surface": {"checkpoint": "missing.safetensors"}}]}
            """
        let spec = try JSONDecoder().decode(StudySpec.self, from: Data(text.utf8))
        #expect(throws: SpecError.self) { try Study(spec: spec, executor: Executor(spec: spec, base: directory)) }
        do {
            _ = try Study(spec: spec, executor: Executor(spec: spec, base: directory))
        } catch let error as SpecError {
            // The field is the job's place and name; the reader of the file adds the file.
            #expect(error.field == "jobs[0] (surface/missing)")
            #expect(error.message.hasPrefix("cannot read 'missing.safetensors'"))
            #expect(error.inFile("s.yaml").description.hasPrefix("s.yaml: jobs[0] (surface/missing): cannot read"))
        }
        let wrong =
            "{\"model\": {\"input\": [2], \"layers\": [\"relu\"]}, \"data\": {\"source\": \"spirals\"}, \"jobs\": [{\"plane\": {\"models\": [\"a\"]}}]}"
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(StudySpec.self, from: Data(wrong.utf8)) }
    }
}
