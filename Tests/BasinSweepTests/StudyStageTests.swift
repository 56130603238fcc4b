import BasinNN
import BasinSweep
import BasinTestSupport
import Foundation
import Testing

/// Specs with `stages`: the job graph they expand to, running it, growing it.
@Suite struct StudyStageTests {
    let directory = TestSupport.temporaryDirectory("basin-stages")

    func spec(seeds: [Int] = [0, 1], lrs: [Double] = [0.05], extra: String = "") -> (String, StudySpec) {
        let text = """
            {"model": {"input": [2], "layers": [{"type": "linear", "out_features": 8}, "relu", {"type": "linear", "out_features": 2}]},
             "data": {"source": "spirals", "samples": 200},
             "train": {"epochs": 3, "batch_size": 32},
             "stages": {"train": {"seeds": \(seeds), "grid": {"lr": \(lrs)}},
                        "connect": {"t": "0:1:5", "align": true, "curve": {"kind": "bezier", "bends": 1, "epochs": 2}},
                        "surface": {"x": "-1:1:3", "y": "-1:1:3"},
                        "hessian": {"iterations": 5, "probes": 3}\(extra)},
             "sweep": {"shard_points": 4}}
            """
        return (text, try! JSONDecoder().decode(StudySpec.self, from: Data(text.utf8)))
    }

    func open(_ spec: (String, StudySpec), run: String = "run") throws -> Sweep {
        try Sweep(specText: spec.0, spec: spec.1, base: directory, directory: directory.appendingPathComponent(run))
    }

    @Test func stagesExpandToAGraphInDependencyOrder() throws {
        let sweep = try open(spec())
        let names = sweep.study.jobs.map(\.name)
        #expect(
            names == [
                "train/lr=0.05,seed=0", "train/lr=0.05,seed=1", "surface/lr=0.05,seed=0", "hessian/lr=0.05,seed=0",
                "surface/lr=0.05,seed=1", "hessian/lr=0.05,seed=1", "line/lr=0.05,seed=0-seed=1",
                "align/lr=0.05,seed=0-seed=1", "aligned/lr=0.05,seed=0-seed=1", "fit/lr=0.05,seed=0-seed=1",
                "curve/lr=0.05,seed=0-seed=1",
            ])
        for job in sweep.study.jobs {
            // Every job comes after the jobs it reads.
            #expect(job.dependencies.allSatisfy { $0 < sweep.study.jobs.firstIndex { $0.id == job.id }! })
        }
        let aligned = sweep.study.jobs[8]
        #expect(
            aligned.dependencies.map { sweep.study.jobs[$0].name } == [
                "train/lr=0.05,seed=0", "align/lr=0.05,seed=0-seed=1",
            ])
        #expect(aligned.pointCount == 7 && aligned.shards.count == 2)
        #expect(sweep.study.jobs[0].shards == [0..<1])
        #expect(sweep.remainingShards == 2 + 3 + 1 + 3 + 1 + 2 + 1 + 2 + 1 + 2)
    }

    @Test func badStagesAreOneSentenceErrors() throws {
        let (_, good) = spec()
        var badKey = good
        badKey.stages!.train.grid = ["learning_rate": [.number(0.1)]]
        #expect(throws: SpecError.self) { _ = try badKey.allJobs() }
        do {
            _ = try badKey.allJobs()
        } catch let error as SpecError {
            #expect(error.description.hasPrefix("stages.train.grid: 'learning_rate' is not a training setting"))
        }
        var noSeeds = good
        noSeeds.stages!.train.seeds = []
        #expect(throws: SpecError.self) { _ = try noSeeds.allJobs() }
        var badLR = good
        badLR.stages!.train.grid = ["lr": [.number(-1)]]
        #expect(throws: SpecError.self) { _ = try badLR.allJobs() }
    }

    @Test func aStudyRunsAndGrowsReusingWhatIsFinished() throws {
        let small = spec(seeds: [0, 1])
        do {
            let sweep = try open(small)
            try sweep.runLocally()
            try sweep.merge()
            let summary = try String(contentsOf: sweep.run.summaryFile, encoding: .utf8)
            let lines = summary.split(separator: "\n")
            #expect(lines[0].hasPrefix("level,cell,name,train_loss,train_acc,test_loss,test_acc,top_eigenvalue"))
            // 2 models, 1 pair, mean and std.
            #expect(lines.count == 1 + 2 + 1 + 2)
            let pair = lines.first { $0.hasPrefix("pair,") }!.split(separator: ",", omittingEmptySubsequences: false)
            #expect(pair.suffix(6).allSatisfy { Double($0) != nil }, "\(pair)")
            #expect(FileManager.default.fileExists(atPath: sweep.run.result("train/lr=0.05,seed=0").path))
            #expect(sweep.outputs.count == 2 + 1 + 1)  // two models, one aligned model, one curve
        }
        // A third seed: the two models, their surfaces, sharpness and the first pair are kept.
        let grown = try open(spec(seeds: [0, 1, 2]))
        let kept = grown.study.jobs.filter { grown.completed[$0.id] != nil }.map(\.name)
        #expect(kept.count == 11, "\(kept)")
        #expect(grown.changes.contains("11 job(s) unchanged keep their results"))
        let fresh = grown.study.jobs.filter { grown.completed[$0.id] == nil }.map(\.name)
        #expect(fresh.contains("train/lr=0.05,seed=2") && fresh.contains("curve/lr=0.05,seed=1-seed=2"))
        #expect(!fresh.contains("train/lr=0.05,seed=0"))
        try grown.runLocally()
        try grown.merge()
        // The same study from scratch gives the same summary, bit for bit.
        let scratch = try open(spec(seeds: [0, 1, 2]), run: "scratch")
        try scratch.runLocally()
        try scratch.merge()
        #expect(try Data(contentsOf: grown.run.summaryFile) == Data(contentsOf: scratch.run.summaryFile))
    }

    /// A job is counted from its definition, before what it reads exists: a plane through three
    /// models still to be trained, with no axes, has the default 21 × 21 points, and its axes
    /// frame the models once they are there.
    @Test func aPlaneThroughModelsNotYetTrainedIsCountedAndFramesThem() throws {
        let text = """
            {"model": {"input": [2], "layers": [{"type": "linear", "out_features": 8}, "relu", {"type": "linear", "out_features": 2}]},
             "data": {"source": "spirals", "samples": 100},
             "train": {"epochs": 2, "batch_size": 32},
             "stages": {"train": {"seeds": [0, 1, 2]}},
             "jobs": [{"plane": {"models": ["@train/seed=0", "@train/seed=1", "@train/seed=2"], "basis": "orthonormal", "name": "p"}}],
             "sweep": {"shard_points": 200}}
            """
        let sweep = try open((text, try JSONDecoder().decode(StudySpec.self, from: Data(text.utf8))), run: "plane")
        let plane = try #require(sweep.study.jobs.last)
        #expect(plane.pointCount == 21 * 21 && plane.shards.count == 3 && plane.dependencies == [0, 1, 2])
        try sweep.runLocally()
        try sweep.merge()
        let result = try ResultFile(data: Data(contentsOf: sweep.run.result("p")), source: "p")
        let x = try #require(result["x"]?.floats()), modelX = try #require(result["model_x"]?.floats())
        #expect(x.count == 21 && result["train_loss"]?.floats()?.contains(where: \.isNaN) == false)
        #expect(modelX.allSatisfy { $0 > x[0] && $0 < x[20] }, "\(modelX) outside \(x[0])…\(x[20])")
    }

    @Test func aJobWhoseArtifactIsLostRunsAgain() throws {
        do {
            let sweep = try open(spec(seeds: [0, 1]))
            try sweep.runLocally()
            let model = sweep.outputs["train/lr=0.05,seed=0"]!
            try FileManager.default.removeItem(at: sweep.store.url(model))
        }
        let reopened = try open(spec(seeds: [0, 1]), run: "run")
        #expect(reopened.completed[reopened.study.jobs[0].id] == nil)
        #expect(reopened.remainingShards == 1)
    }
}
