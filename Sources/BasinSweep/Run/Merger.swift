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

    /// Sets the points of `done` that `grid` does not hold yet (the first record of a point wins).
    static func fill(_ grid: inout [PointMetrics?], _ done: Journal.ShardDone) {
        guard done.start >= 0, done.start <= done.end, done.end <= grid.count,
            done.metrics.count == 4 * (done.end - done.start)
        else { return }
        done.metrics.withUnsafeBufferPointer { m in
            grid.withUnsafeMutableBufferPointer { points in
                for (k, point) in (done.start..<done.end).enumerated() where points[point] == nil {
                    points[point] = PointMetrics(
                        trainLoss: m[4 * k], trainAccuracy: m[4 * k + 1], testLoss: m[4 * k + 2],
                        testAccuracy: m[4 * k + 3])
                }
            }
        }
    }

    /// Writes `results/<name>.npz` for every job, `jobs.csv`, and `summary.csv` (the study
    /// summary for a spec with stages, else the job table); returns (points done, total).
    @discardableResult
    public func merge(records: [Journal.Record], extraMetadata: [String: JSONValue] = [:]) throws -> (
        done: Int, total: Int
    ) {
        // One pass over the records, by job index. Paths need every value in full precision
        // (their statistics); other grids go straight to their result columns; a non-grid
        // job's first output whose artifact is stored counts.
        let jobs = study.jobs
        let isPath = jobs.map { $0.definition.kind == .interpolate || $0.definition.kind == .curve }
        var metrics = jobs.indices.map { isPath[$0] ? [PointMetrics?](repeating: nil, count: jobs[$0].pointCount) : [] }
        var columns = jobs.indices.map { jobs[$0].isGrid && !isPath[$0] ? PointColumns(count: jobs[$0].pointCount) : nil }
        var produced = [Journal.ShardDone?](repeating: nil, count: jobs.count)
        var voided = [Int](repeating: 0, count: jobs.count)
        let store = ArtifactStore(directory: run.artifacts)
        for record in records {
            switch record {
            case .shardDone(let done):
                guard let j = study.indices[done.job] else { continue }
                if isPath[j] {
                    Self.fill(&metrics[j], done)
                } else if jobs[j].isGrid {
                    columns[j]?.fill(done)
                } else if produced[j] == nil, done.artifact.map(store.contains) != false {
                    produced[j] = done
                }
            case .shardRevoked(let revoked):
                if let j = study.indices[revoked.job] { voided[j] += 1 }
            default:
                break
            }
        }
        var artifacts: [String: String] = [:]
        for (j, job) in jobs.enumerated() { if let hash = produced[j]?.artifact { artifacts[job.name] = hash } }
        executor.readOutputs(artifacts, in: store)
        var rows = [
            "job,kind,id,points_done,points_total,train_loss_min,train_loss_max,train_loss_barrier,train_error_barrier,voided_shards"
        ]
        var done = 0, total = 0
        var results: [String: ResultFile] = [:]
        let provenance = Provenance.metadata(spec: executor.spec)
        for (j, job) in jobs.enumerated() {
            total += job.pointCount
            var result: ResultFile
            var pointsDone = 0
            if job.isGrid {
                // A job whose inputs are not made yet has nothing to write.
                guard job.dependencies.allSatisfy({ artifacts[study.jobs[$0].name] != nil || study.jobs[$0].isGrid })
                else { continue }
                let landscape = try executor.prepare(job.definition, id: job.id)
                // The study counted the job from its spec; preparing it must agree.
                guard landscape.points.count == job.pointCount else {
                    throw NNError(
                        "job \(job.name): prepared \(landscape.points.count) points where the study counted \(job.pointCount)")
                }
                if let grid = columns[j] {
                    result = landscape.result(grid, complete: grid.pointsDone == job.pointCount)
                    pointsDone = grid.pointsDone
                } else {
                    result = landscape.result(metrics[j])
                    pointsDone = metrics[j].filter { $0 != nil }.count
                }
                guard case .object(var meta) = result.metadata else { continue }
                meta["bn"] = .string((job.definition.grid?.batchNorm ?? .eval).rawValue)
                meta["bn_recompute"] = try JSONValue(encoding: executor.spec.bnRecompute ?? BatchNormRecompute())
                meta["loss"] = .string(executor.spec.train.loss.rawValue)
                meta["model"] =
                    executor.spec.model.external != nil
                    ? try JSONValue(encoding: executor.spec.model)
                    : try JSONValue(encoding: landscape.family.network.description)
                result.metadata = .object(meta)
            } else {
                guard let output = produced[j] else { continue }
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
            let loss = job.isGrid ? Self.range(of: result["train_loss"]) : nil
            let stats = result.metadata["statistics"]
            func text(_ v: Double?) -> String { v.map { String(format: "%.6g", $0) } ?? "" }
            rows.append(
                [
                    job.name, job.definition.kind.rawValue, job.id, String(pointsDone), String(job.pointCount),
                    text(loss.map { Double($0.min) }), text(loss.map { Double($0.max) }),
                    text(stats?["train_loss_barrier"]?.doubleValue), text(stats?["train_error_barrier"]?.doubleValue),
                    String(voided[j]),
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

    /// The smallest and largest value of a Float32 array other than NaN, read where it is.
    static func range(of tensor: TensorData?) -> (min: Float, max: Float)? {
        guard let tensor, tensor.dtype == .f32 else { return nil }
        return tensor.bytes.withUnsafeBytes { raw -> (min: Float, max: Float)? in
            var low = Float.infinity, high = -Float.infinity
            for value in raw.bindMemory(to: Float.self) where !value.isNaN {
                low = min(low, value)
                high = max(high, value)
            }
            return low <= high ? (low, high) : nil
        }
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
        var history = Array(output.metrics.dropFirst(names.count))
        if case .hessian(let hessian) = job.definition {
            for (name, tensor) in hessian.arrays(fromExtra: history) { result.set(name, tensor) }
            history = []
        }
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
                "top_eigenvalues": .string(
                    "the 'top_k' largest Ritz values of Lanczos (full reorthogonalization) from a Gaussian start, largest first"),
                "density": .string(
                    "stochastic Lanczos quadrature (PyHessian's ESD): Gaussians of variance sigma_squared*max(1, range) at each run's Ritz values, weighted by their squared first eigenvector components, averaged over runs and normalized on density_grid"),
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
