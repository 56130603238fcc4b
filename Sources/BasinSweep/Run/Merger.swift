import BasinLandscape
import BasinNN
import Foundation

/// Folds journaled shards into result files and the summary: at the end of a run and on
/// demand (also while a run is live, for a partial view). Idempotent.
public struct Merger {
    public let study: Study
    public let executor: Executor
    public let run: RunDirectory

    public init(study: Study, executor: Executor, run: RunDirectory) {
        self.study = study
        self.executor = executor
        self.run = run
    }

    /// Per-point metrics of every job from shard-done records (later duplicates ignored).
    public static func collect(_ records: [Journal.Record], study: Study) -> [String: [PointMetrics?]] {
        var out: [String: [PointMetrics?]] = [:]
        for job in study.jobs { out[job.id] = [PointMetrics?](repeating: nil, count: job.pointCount) }
        for case .shardDone(let done) in records {
            guard let job = study.job(id: done.job), done.end <= job.pointCount,
                done.metrics.count == 4 * (done.end - done.start)
            else { continue }
            for (k, point) in (done.start..<done.end).enumerated() where out[done.job]![point] == nil {
                out[done.job]![point] = PointMetrics(values: Array(done.metrics[(4 * k)..<(4 * k + 4)]))
            }
        }
        return out
    }

    /// Writes `results/<name>.npz` for every job and `summary.csv`; returns (points done, total).
    @discardableResult
    public func merge(records: [Journal.Record], extraMetadata: [String: JSONValue] = [:]) throws -> (
        done: Int, total: Int
    ) {
        let metrics = Self.collect(records, study: study)
        var rows = [
            "job,kind,id,points_done,points_total,train_loss_min,train_loss_max,train_loss_barrier,train_error_barrier"
        ]
        var done = 0, total = 0
        for job in study.jobs {
            let landscape = try executor.prepare(job.definition, id: job.id)
            var result = landscape.result(metrics[job.id]!)
            guard case .object(var meta) = result.metadata else { continue }
            meta["job_id"] = .string(job.id)
            meta["job_name"] = .string(job.name)
            meta["bn"] = .string((job.definition.bn ?? (job.definition.kind == .curve ? .recompute : .eval)).rawValue)
            meta["loss"] = .string(executor.spec.train.loss.rawValue)
            meta["model"] = try JSONValue(encoding: landscape.family.network.description)
            for (key, value) in extraMetadata { meta[key] = value }
            result.metadata = .object(meta)
            try result.write(to: run.result(job.name))
            let pointsDone = metrics[job.id]!.filter { $0 != nil }.count
            done += pointsDone
            total += job.pointCount
            let loss = result["train_loss"]?.floats()?.filter { !$0.isNaN } ?? []
            let stats = result.metadata["statistics"]
            func text(_ v: Double?) -> String { v.map { String(format: "%.6g", $0) } ?? "" }
            rows.append(
                [
                    job.name, job.definition.kind.rawValue, job.id, String(pointsDone), String(job.pointCount),
                    text(loss.min().map(Double.init)), text(loss.max().map(Double.init)),
                    text(stats?["train_loss_barrier"]?.doubleValue), text(stats?["train_error_barrier"]?.doubleValue),
                ]
                .joined(separator: ","))
        }
        try AtomicFile.write(Data((rows.joined(separator: "\n") + "\n").utf8), to: run.summaryFile)
        return (done, total)
    }
}

extension PointMetrics {
    /// From the 4 journaled values (train loss, train acc, test loss, test acc).
    public init(values: [Double]) {
        self.init(train: LossTally(), test: nil)
        trainLoss = values[0]
        trainAccuracy = values[1]
        testLoss = values[2]
        testAccuracy = values[3]
    }

    public var values: [Double] { [trainLoss, trainAccuracy, testLoss, testAccuracy] }
}
