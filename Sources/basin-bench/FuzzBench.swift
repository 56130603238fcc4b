import ArgumentParser
import BasinCluster
import BasinFuzz
import BasinNN
import BasinSweep
import Foundation

/// Mutated messages per second through CoordinatorCore (decode, check, refuse), on a study
/// of one surface around a small checkpoint written to a temporary directory.
struct FuzzBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fuzz", abstract: "Mutated protocol messages per second into CoordinatorCore, with no trap.")

    @Option(help: "Messages to send.")
    var messages: Int = 200_000

    func run() throws {
        let directory = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("basin-fuzz-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let network = try Network(
            ModelDescription(input: [2], layers: [.linear(inFeatures: nil, outFeatures: 2, bias: true)]))
        try Checkpoint.save(network.initialize(seed: 1), to: directory.appendingPathComponent("a.safetensors"))
        let json = """
            {"model": {"input": [2], "layers": [{"type": "linear", "out_features": 2}]},
             "data": {"source": "spirals", "samples": 50},
             "jobs": [{"surface": {"checkpoint": "a.safetensors", "x": "-1:1:40", "y": "-1:1:40"}}],
             "sweep": {"shard_points": 10}}
            """
        let spec = try JSONDecoder().decode(StudySpec.self, from: Data(json.utf8))
        let study = try Study(spec: spec, executor: Executor(spec: spec, base: directory))
        var core = CoordinatorCore(
            study: study, spec: spec, base: directory.path, completed: [:],
            artifacts: [])
        let disk = ArtifactDisk(store: ArtifactStore(directory: directory.appendingPathComponent("artifacts")))
        let job = study.jobs[0]
        let values = [Double](repeating: 0.5, count: 40).withUnsafeBytes { Data($0) }
        var mutator = MessageMutator(
            seed: 1,
            templates: [
                HelloHeader(worker: "fuzz", host: "h", pid: 7, slots: 2, version: "x").message(),
                HeartbeatHeader(computing: 1, queued: 0).message(),
                ResultHeader(lease: 1_000_000, job: job.id, jobIndex: 0, shard: 0, seconds: 0.1)
                    .message(binary: [values]),
                FailHeader(lease: 1_000_001, error: "boom").message(),
                PutHeader(artifact: job.id, size: 10, offset: 0).message(binary: [Data(count: 10)]),
                FetchHeader(artifact: job.id, offset: 0).message(), ByeHeader().message(),
            ])
        let batch = (0..<4096).map { _ in mutator.message() }
        let start = DispatchTime.now().uptimeNanoseconds
        var now = 0.0
        for i in 0..<messages {
            _ = disk.settle(
                core.receive(peer: Data("fuzz-\(i % 40)".utf8), frames: batch[i % batch.count], now: now), into: &core)
            if i % 100 == 0 {
                now += 0.05
                _ = core.tick(now: now)
            }
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        print(String(format: "fuzz: %d mutated messages into CoordinatorCore in %.2f s", messages, seconds))
        print(String(format: "figure fuzz_messages_per_s %.0f", Double(messages) / seconds))
    }
}
