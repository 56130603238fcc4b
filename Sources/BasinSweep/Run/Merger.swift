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

    /// Per-point metrics of every grid job from shard-done records (later duplicates ignored).
    public static func collect(_ records: [Journal.Record], study: Study, only: Set<String>? = nil) -> [String: [PointMetrics?]] {
        // One array per grid job, filled in place (the first record of a point wins).
        let wanted = { (job: Study.Job) in job.isGrid && (only?.contains(job.id) ?? true) }
        var grids = study.jobs.map { wanted($0) ? [PointMetrics?](repeating: nil, count: $0.pointCount) : [] }
        for case .shardDone(let done) in records {
            guard let j = study.indices[done.job], wanted(study.jobs[j]), done.start >= 0, done.start <= done.end,
                done.end <= study.jobs[j].pointCount, done.metrics.count == 4 * (done.end - done.start)
            else { continue }
            done.metrics.withUnsafeBufferPointer { m in
                grids[j].withUnsafeMutableBufferPointer { points in
                    for (k, point) in (done.start..<done.end).enumerated() where points[point] == nil {
                        points[point] = PointMetrics(
                            trainLoss: m[4 * k], trainAccuracy: m[4 * k + 1], testLoss: m[4 * k + 2],
                            testAccuracy: m[4 * k + 3])
                    }
                }
            }
        }
        var out: [String: [PointMetrics?]] = [:]
        for (j, job) in study.jobs.enumerated() where wanted(job) { out[job.id] = grids[j] }
        return out
    }

    /// The first journaled output of every finished non-grid job, by job id.
    public static func outputs(_ records: [Journal.Record], study: Study, store: ArtifactStore) -> [String: Journal
        .ShardDone]
    {
        var out: [String: Journal.ShardDone] = [:]
        for case .shardDone(let done) in records where out[done.job] == nil {
            guard let job = study.job(id: done.job), !job.isGrid else { continue }
            if let artifact = done.artifact, !store.contains(artifact) { continue }
            out[done.job] = done
        }
        return out
    }

    /// Writes `results/<name>.npz` for every job, `jobs.csv`, and `summary.csv` (the study
    /// summary for a spec with stages, else the job table); returns (points done, total).
    @discardableResult
    public func merge(records: [Journal.Record], extraMetadata: [String: JSONValue] = [:]) throws -> (
        done: Int, total: Int
    ) {
        // Paths need every value in full precision (their statistics); grids go straight to
        // their result columns.
        let paths = Set(study.jobs.filter { $0.definition.kind == .interpolate || $0.definition.kind == .curve }.map(\.id))
        let metrics = Self.collect(records, study: study, only: paths)
        var columns: [String: PointColumns] = [:]
        for job in study.jobs where job.isGrid && !paths.contains(job.id) {
            columns[job.id] = PointColumns(count: job.pointCount)
        }
        for case .shardDone(let done) in records where columns[done.job] != nil { columns[done.job]?.fill(done) }
        let store = ArtifactStore(directory: run.artifacts)
        let produced = Self.outputs(records, study: study, store: store)
        var artifacts: [String: String] = [:]
        for job in study.jobs { if let hash = produced[job.id]?.artifact { artifacts[job.name] = hash } }
        executor.readOutputs(artifacts, in: store)
        var voided: [String: Int] = [:]
        for case .shardRevoked(let revoked) in records { voided[revoked.job, default: 0] += 1 }
        var rows = [
            "job,kind,id,points_done,points_total,train_loss_min,train_loss_max,train_loss_barrier,train_error_barrier,voided_shards"
        ]
        var done = 0, total = 0
        var results: [String: ResultFile] = [:]
        let provenance = Provenance.metadata(spec: executor.spec)
        for job in study.jobs {
            total += job.pointCount
            var result: ResultFile
            var pointsDone = 0
            if job.isGrid {
                // A job whose inputs are not made yet has nothing to write.
                guard job.dependencies.allSatisfy({ artifacts[study.jobs[$0].name] != nil || study.jobs[$0].isGrid })
                else { continue }
                let landscape = try executor.prepare(job.definition, id: job.id)
                if let grid = columns[job.id], !landscape.isPath, grid.done.count == landscape.gridCount,
                    landscape.points.count == landscape.gridCount
                {
                    result = landscape.result(grid, complete: grid.pointsDone == job.pointCount)
                    pointsDone = grid.pointsDone
                } else {
                    let values = metrics[job.id] ?? Self.collect(records, study: study, only: [job.id])[job.id] ?? []
                    result = landscape.result(values)
                    pointsDone = values.filter { $0 != nil }.count
                }
                guard case .object(var meta) = result.metadata else { continue }
                meta["bn"] = .string((job.definition.grid?.batchNorm ?? .eval).rawValue)
                meta["loss"] = .string(executor.spec.train.loss.rawValue)
                meta["model"] = try JSONValue(encoding: landscape.family.network.description)
                result.metadata = .object(meta)
            } else {
                guard let output = produced[job.id] else { continue }
                pointsDone = 1
                result = nonGridResult(job, output)
            }
            guard case .object(var meta) = result.metadata else { continue }
            meta["job_id"] = .string(job.id)
            meta["job_name"] = .string(job.name)
            for (key, value) in provenance { meta[key] = value }
            for (key, value) in extraMetadata { meta[key] = value }
            result.metadata = .object(meta)
            try result.write(to: run.result(job.name))
            results[job.name] = result
            done += pointsDone
            let loss = job.isGrid ? result["train_loss"]?.floats()?.filter { !$0.isNaN } ?? [] : []
            let stats = result.metadata["statistics"]
            func text(_ v: Double?) -> String { v.map { String(format: "%.6g", $0) } ?? "" }
            rows.append(
                [
                    job.name, job.definition.kind.rawValue, job.id, String(pointsDone), String(job.pointCount),
                    text(loss.min().map(Double.init)), text(loss.max().map(Double.init)),
                    text(stats?["train_loss_barrier"]?.doubleValue), text(stats?["train_error_barrier"]?.doubleValue),
                    String(voided[job.id] ?? 0),
                ]
                .joined(separator: ","))
        }
        let table = Data((rows.joined(separator: "\n") + "\n").utf8)
        try AtomicFile.write(table, to: run.jobsFile)
        if let stages = executor.spec.stages {
            let summary = try StudySummary(stages: stages, base: executor.spec.train, results: results)
            try AtomicFile.write(Data(summary.csv().utf8), to: run.summaryFile)
        } else {
            try AtomicFile.write(table, to: run.summaryFile)
        }
        return (done, total)
    }

    /// A train, align, fit or hessian job's result: its values by name, its history, its artifact.
    func nonGridResult(_ job: Study.Job, _ output: Journal.ShardDone) -> ResultFile {
        var result = ResultFile()
        let names = Executor.valueNames(job.definition.kind)
        var values: [String: JSONValue] = [:]
        for (name, value) in zip(names, output.metrics) {
            values[name] = .number(value)
            result.set(name, TensorData([value], shape: []))
        }
        let history = Array(output.metrics.dropFirst(names.count))
        if !history.isEmpty { result.set("epoch_loss", TensorData(history, shape: [history.count])) }
        var meta: [String: JSONValue] = [
            "kind": .string(job.definition.kind.rawValue), "values": .object(values), "complete": .bool(true),
            // Nothing about who computed it or how long it took: results are bitwise the same
            // whatever the workers (the journal keeps those).
            "job": (try? JSONValue(encoding: job.definition)) ?? .null,
        ]
        if let artifact = output.artifact { meta["artifact"] = .string(artifact) }
        if job.definition.kind == .hessian {
            meta["definitions"] = .object([
                "top_eigenvalue": .string(
                    "power iteration on Hessian-vector products (central differences of full-batch gradients) until the Rayleigh quotient changes by at most 'tolerance' (relative) or 'iterations' steps"
                ),
                "trace": .string(
                    "Hutchinson: mean of z'Hz over 'probes' Rademacher vectors; trace_std_error = sample std / sqrt(probes)"
                ),
            ])
        }
        result.metadata = .object(meta)
        return result
    }
}

extension PointMetrics {
    /// From the 4 journaled values (train loss, train acc, test loss, test acc).
    public init(values: [Double]) {
        self.init(trainLoss: values[0], trainAccuracy: values[1], testLoss: values[2], testAccuracy: values[3])
    }

    public init(trainLoss: Double, trainAccuracy: Double, testLoss: Double, testAccuracy: Double) {
        self.init(train: LossTally(), test: nil)
        self.trainLoss = trainLoss
        self.trainAccuracy = trainAccuracy
        self.testLoss = testLoss
        self.testAccuracy = testAccuracy
    }

    public var values: [Double] { [trainLoss, trainAccuracy, testLoss, testAccuracy] }
}
