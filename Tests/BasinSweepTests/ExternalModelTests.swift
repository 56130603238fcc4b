import BasinNN
import BasinSweep
import BasinTestSupport
import Foundation
import Testing

/// A spec whose model Basin does not build (`model: {external: NAME}`): its checkpoints are
/// opaque files checked to agree, its jobs sized from their tensors and leased only to workers
/// that announce `model:external` (PyTorch workers started with --model).
@Suite struct ExternalModelTests {
    let directory = TestSupport.temporaryDirectory("basin-external")

    /// A checkpoint of some module Basin has no description for: named tensors only.
    func checkpoint(_ name: String, tensors: [String: [Int]], seed: UInt64) throws {
        var file = SafeTensors()
        var random = RandomSource(seed: seed, stream: 0)
        for (tensor, shape) in tensors {
            file[tensor] = TensorData((0..<shape.reduce(1, *)).map { _ in Float(random.nextGaussian()) }, shape: shape)
        }
        try file.write(to: directory.appendingPathComponent(name))
    }

    let gated = ["gate.weight": [16, 2], "gate.bias": [16], "value.weight": [16, 2], "out.weight": [3, 16]]

    func spec(_ jobs: String, model: String = #"{"external": "gated-mlp"}"#, stages: String = "") throws -> StudySpec {
        let text = """
            {"model": \(model), "data": {"source": "spirals", "samples": 200},
             "jobs": [\(jobs)]\(stages), "sweep": {"shard_points": 4}}
            """
        return try JSONDecoder().decode(StudySpec.self, from: Data(text.utf8))
    }

    func study(_ spec: StudySpec) throws -> Study {
        try Study(spec: spec, executor: Executor(spec: spec, base: directory))
    }

    @Test func jobsNeedAWorkerThatBuildsTheModel() throws {
        try checkpoint("a.safetensors", tensors: gated, seed: 1)
        try checkpoint("b.safetensors", tensors: gated, seed: 2)
        let spec = try spec(
            #"{"interpolate": {"from": "a.safetensors", "to": "b.safetensors", "t": "0:1:9"}}, "#
                + #"{"surface": {"checkpoint": "a.safetensors", "x": "-1:1:3", "y": "-1:1:3"}}"#)
        #expect(spec.model.external == ExternalModel(name: "gated-mlp"))
        let study = try study(spec)
        // The line's 9 points and its two ends, evaluated for the barrier.
        #expect(study.jobs.map(\.pointCount) == [11, 9])
        #expect(study.jobs[0].shards == [0..<4, 4..<8, 8..<11])
        for job in study.jobs {
            #expect(job.needs == "model:external")
            #expect(!job.isComputed(by: nil), "a Basin worker (every kind it builds) must not get it")
            #expect(!job.isComputed(by: ["interpolate", "surface"]))
        }
        #expect(study.jobs[0].isComputed(by: ["interpolate", "model:external"]))
        #expect(!study.jobs[1].isComputed(by: ["interpolate", "model:external"]))
        #expect(study.jobs[1].isComputed(by: ["surface:random", "model:external"]))

        // The scheduler leases them to the PyTorch worker only.
        var scheduler = ShardScheduler(study: study, completed: [:], settings: .init())
        _ = scheduler.join(1, name: "basin", identity: "basin", label: "basin", slots: 4)
        #expect(scheduler.dispatch(now: 0).isEmpty)
        _ = scheduler.join(
            2, name: "torch", identity: "torch", label: "torch", slots: 4,
            kinds: ["interpolate", "surface:random", "model:external"])
        let grants = scheduler.dispatch(now: 0).compactMap { effect -> ShardScheduler.Grant? in
            if case .grant(let grant) = effect { return grant }
            return nil
        }
        #expect(grants.count == 4 && grants.allSatisfy { $0.taker == 2 })
    }

    @Test func anotherModelNameIsAnotherJob() throws {
        try checkpoint("a.safetensors", tensors: gated, seed: 1)
        let surface = #"{"surface": {"checkpoint": "a.safetensors", "x": "-1:1:3"}}"#
        let first = try study(try spec(surface)).jobs[0].id
        #expect(try study(try spec(surface)).jobs[0].id == first)
        #expect(try study(try spec(surface, model: #"{"external": "other"}"#)).jobs[0].id != first)
    }

    @Test func shardsAreSizedFromTheTensorsOrTheGivenCost() throws {
        try checkpoint("a.safetensors", tensors: gated, seed: 1)
        let surface = #"{"surface": {"checkpoint": "a.safetensors", "x": "-1:1:101"}}"#
        func shards(_ model: String) throws -> (shards: Int, points: Int) {
            var spec = try spec(surface, model: model)
            spec.sweep.shardPoints = nil
            let job = try study(spec).jobs[0]
            return (job.shards.count, job.pointCount)
        }
        // 2 FLOPs per parameter (128 of them) on 200 samples is cheap: one shard; 10^9 per sample
        // is 5 s a point at the estimate's 40 GFLOP/s: a point a shard.
        #expect(try shards(#"{"external": "gated-mlp"}"#).shards == 1)
        let costly = try shards(#"{"external": "gated-mlp", "flops_per_sample": 1e9}"#)
        #expect(costly.shards == costly.points && costly.points > 1, "\(costly)")
    }

    @Test func badInputIsNamed() throws {
        try checkpoint("a.safetensors", tensors: gated, seed: 1)
        var other = gated
        other["out.weight"] = [4, 16]
        try checkpoint("c.safetensors", tensors: other, seed: 3)
        try Data("not a checkpoint".utf8).write(to: directory.appendingPathComponent("junk.safetensors"))
        func refusal(_ spec: StudySpec) -> String {
            do {
                _ = try study(spec)
                return "accepted"
            } catch {
                return "\(error)"
            }
        }
        let mismatch = refusal(
            try spec(#"{"interpolate": {"from": "a.safetensors", "to": "c.safetensors", "t": "0:1:3"}}"#))
        #expect(mismatch.contains("c.safetensors") && mismatch.contains("out.weight"), "\(mismatch)")
        let junk = refusal(try spec(#"{"surface": {"checkpoint": "junk.safetensors", "x": "-1:1:3"}}"#))
        #expect(junk.contains("junk.safetensors"), "\(junk)")
        let stages = refusal(
            try spec(
                #"{"surface": {"checkpoint": "a.safetensors", "x": "-1:1:3"}}"#,
                stages: #", "stages": {"train": {"seeds": [0, 1]}}"#))
        #expect(stages.contains("external") && stages.contains("train"), "\(stages)")
        for model in [
            #"{"external": ""}"#, #"{"external": "a", "flops_per_sample": -1}"#,
            #"{"external": "a", "flops_per_sample": 1e99}"#,
        ] {
            #expect(throws: DecodingError.self) { _ = try spec("", model: model) }
        }
    }
}
