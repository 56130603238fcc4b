import ArgumentParser
import BasinNN
import BasinSweep
import Foundation

/// A run directory whose journal holds a whole sweep (10^7 points in shards of 10 by
/// default, with valid trivial values): the seconds a restart spends reading it back (opening
/// the run directory, less the same on an empty journal) and the seconds a merge of it takes
/// into `.npz` result files, each per million points.
struct JournalBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "journal", abstract: "Resume (reading the journal back) and merge seconds per million points.")

    @Option(help: "Points in the sweep (a square surface of about this many).")
    var points: Int = 10_000_000

    @Option(help: "Points per shard.")
    var shardPoints: Int = 10

    @Option(help: "Working directory (default: a temporary one, removed after).")
    var directory: String?

    func seconds(_ body: () throws -> Void) rethrows -> Double {
        let start = DispatchTime.now().uptimeNanoseconds
        try body()
        return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    }

    func run() throws {
        let work = directory.map { URL(fileURLWithPath: $0) }
            ?? FileManager.default.temporaryDirectory.appendingPathComponent("basin-journal-\(getpid())")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        defer { if directory == nil { try? FileManager.default.removeItem(at: work) } }
        let side = Int(Double(points).squareRoot().rounded(.up))
        let model = ModelDescription(input: [1], layers: [.linear(inFeatures: nil, outFeatures: 2, bias: true)])
        try Checkpoint.save(try Network(model).initialize(seed: 1), to: work.appendingPathComponent("m.safetensors"))
        let text = """
            {"model": {"input": [1], "layers": [{"type": "linear", "out_features": 2}]},
             "data": {"source": "blobs", "samples": 2, "features": 1, "classes": 2, "test_fraction": 0.5},
             "jobs": [{"surface": {"checkpoint": "m.safetensors", "x": "-1:1:\(side)", "y": "-1:1:\(side)"}}],
             "sweep": {"shard_points": \(shardPoints)}}
            """
        let spec = try JSONDecoder().decode(StudySpec.self, from: Data(text.utf8))
        let run = work.appendingPathComponent("run")
        var empty = 0.0
        var total = 0
        do {
            var sweep: Sweep?
            empty = try seconds { sweep = try Sweep(specText: text, spec: spec, base: work, directory: run) }
            guard let sweep, let job = sweep.study.jobs.first else { throw NNError("no job") }
            total = job.pointCount
            let writing = try seconds {
                for (index, range) in job.shards.enumerated() {
                    var metrics: [Double] = []
                    metrics.reserveCapacity(4 * range.count)
                    for point in range {
                        let loss = 0.5 + Double(point % 1000) * 1e-3
                        metrics += [loss, 0.75, loss * 1.5, 0.5]
                    }
                    try sweep.journal.append(
                        .shardDone(
                            Journal.ShardDone(
                                job: job.id, shard: index, start: range.lowerBound, end: range.upperBound,
                                worker: "bench", seconds: 0.01, time: 1.8e9 + Double(index), metrics: metrics)))
                }
                try sweep.journal.sync()
            }
            print(String(format: "journal: %d points in %d shards written in %.2f s", total, job.shards.count, writing))
        }
        let millions = Double(total) / 1e6
        var resumed: Sweep?
        let full = try seconds { resumed = try Sweep(specText: text, spec: spec, base: work, directory: run) }
        guard let resumed else { throw NNError("no sweep") }
        let resume = max(0, full - empty)
        print(
            String(
                format: "resume: opening the run directory took %.2f s with the journal, %.2f s with none: %.3f s per million points",
                full, empty, resume / millions))
        var merged = (0, 0)
        var records: [Journal.Record] = []
        let reading = try seconds { records = try Journal.read(resumed.run.journal) }
        let writing = try seconds {
            merged = try Merger(study: resumed.study, executor: resumed.executor, run: resumed.run).merge(records: records)
        }
        let merge = reading + writing
        print(
            String(
                format: "merge: %d/%d points into .npz in %.2f s (reading the journal %.2f s, writing results %.2f s): %.3f s per million points",
                merged.0, merged.1, merge, reading, writing, merge / millions))
        print(String(format: "figure resume_s_per_million_points %.3f", resume / millions))
        print(String(format: "figure merge_s_per_million_points %.3f", merge / millions))
    }
}
