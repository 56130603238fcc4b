import BasinLandscape
import BasinNN
import Foundation

/// Turns job definitions into landscape jobs and evaluates their shards: the pure
/// `task → result` function that `basin run --workers 0`, the cluster workers and the tests
/// all call. Holds the spec's data and each prepared job, so a worker loads them once.
public final class Executor {
    public let spec: StudySpec
    /// Directory that relative paths in the spec start from.
    public let base: URL
    private var cachedData: DataSplit?
    private var prepared: [String: LandscapeJob] = [:]
    /// Where the output of the job named here lives (`@name` inputs): the run directory's
    /// artifact store, or a worker's cache. Set by whoever knows the artifacts.
    public var outputs: (String) throws -> URL = { name in
        throw NNError("the output of job '\(name)' is not available here")
    }

    /// Local copies of files the spec names (in the run's artifacts, or a worker's cache), by
    /// the path the spec writes; `path` prefers them.
    public var localFiles: [String: URL] = [:]

    public init(spec: StudySpec, base: URL) {
        self.spec = spec
        self.base = base
    }

    /// A file the spec names (relative to `base`), or the output of another job (`@name`).
    public func path(_ file: String) -> URL {
        if let local = localFiles[file] { return local }
        return file.hasPrefix("/") ? URL(fileURLWithPath: file) : base.appendingPathComponent(file)
    }

    func resolve(_ input: String) throws -> URL {
        input.hasPrefix("@") ? try outputs(String(input.dropFirst())) : path(input)
    }

    /// Reads `@name` inputs from `store`, where `artifacts` (job name → hash) says they are.
    public func readOutputs(_ artifacts: [String: String], in store: ArtifactStore) {
        outputs = { name in
            guard let hash = artifacts[name], store.contains(hash) else {
                throw NNError("the output of job '\(name)' is not available here")
            }
            return store.url(hash)
        }
    }

    public func data() throws -> DataSplit {
        if let cachedData { return cachedData }
        let files = localFiles
        let split = try spec.data.load(relativeTo: base) { files[$0] }
        cachedData = split
        return split
    }

    private func model(_ file: String) throws -> Model {
        let url = try resolve(file)
        let tensors = try SafeTensors(contentsOf: url)
        if spec.model.external != nil { return try Self.geometry(of: tensors, prefix: "", source: url.path) }
        guard let description = try Checkpoint.description(in: tensors, source: url.path) ?? spec.model.description
        else { throw NNError("\(url.path): the checkpoint carries no model description and the spec gives none") }
        return try Checkpoint.load(tensors, into: try Network(description), source: url.path)
    }

    /// The spec's model description (stage jobs, which Study admits only for one).
    private func describedModel() throws -> ModelDescription {
        switch spec.model {
        case .described(let description): return description
        case .external(let external): throw Self.externalError(external)
        }
    }

    static func externalError(_ model: ExternalModel) -> NNError {
        NNError(
            "the spec's model '\(model.name)' is external: only PyTorch workers started with "
                + "--model FILE.py:FUNCTION evaluate it")
    }

    /// The coordinator's view of an external model's checkpoint: its geometry, never evaluated.
    /// Its parameters (the F32/F64 tensors named `prefix…`, BatchNorm's running statistics
    /// excepted, in name order) stand as one flat vector, the weight of a [1 → n] linear layer, so
    /// a plane's orthonormal coordinates and a path's arc lengths are those of the parameters,
    /// as the PyTorch worker computes them. `Executor.run` refuses to evaluate it.
    static func geometry(of tensors: SafeTensors, prefix: String, source: String) throws -> Model {
        var flat: [Float] = []
        for name in tensors.names.sorted() where name.hasPrefix(prefix) {
            guard !name.hasSuffix(".running_mean") && !name.hasSuffix(".running_var"),
                let tensor = tensors[name], [.f32, .f64].contains(tensor.dtype), let values = tensor.floats()
            else { continue }
            flat += values
        }
        guard !flat.isEmpty else { throw NNError("\(source): no floating-point parameters named '\(prefix)…'") }
        let network = try Network(
            ModelDescription(input: [1], layers: [.linear(inFeatures: 1, outFeatures: flat.count, bias: false)]))
        return Model(network: network, parameters: flat, state: [], batchesTracked: [])
    }

    /// For a model Basin does not build: the number of floats of one model that a grid job
    /// reads, after checking that its files are safetensors whose tensors agree (the same names
    /// and shapes in every checkpoint; a curve file's control points `p<j>.*` alike).
    public func externalParameterCount(of definition: JobDefinition) throws -> Int {
        let files = try definition.inputFiles.map { file -> (String, [String: [Int]]) in
            let url = try resolve(file)
            let tensors = try SafeTensors(contentsOf: url)
            guard !tensors.names.isEmpty else { throw NNError("\(url.path): the file holds no tensors") }
            return (file, Dictionary(uniqueKeysWithValues: tensors.names.map { ($0, tensors[$0]?.shape ?? []) }))
        }
        guard let (first, shapes) = files.first else { return 0 }
        for (file, other) in files.dropFirst() where other != shapes {
            let name = Set(shapes.keys).symmetricDifference(other.keys).sorted().first
                ?? shapes.keys.sorted().first { shapes[$0] != other[$0] } ?? "?"
            throw NNError("\(file): its tensors differ from those of \(first) (at '\(name)')")
        }
        if case .curve = definition {
            return shapes.filter { $0.key.hasPrefix("p0.") }.values.reduce(0) { $0 + $1.reduce(1, *) }
        }
        return shapes.values.reduce(0) { $0 + $1.reduce(1, *) }
    }

    /// The network a grid job evaluates, from the files it reads (each loaded and checked), or
    /// nil when it reads other jobs' outputs (the spec's model then). Draws no direction and
    /// makes no point: that is `prepare`'s, where the job is computed.
    public func network(of definition: JobDefinition) throws -> Network? {
        guard definition.grid != nil, definition.inputJobs.isEmpty else { return nil }
        if case .curve(let evaluation) = definition {
            return try CurveFile.load(contentsOf: resolve(evaluation.file), fallback: spec.model.description).1.first?
                .network
        }
        return try definition.inputFiles.map(model).first?.network
    }

    /// The landscape job a definition describes (cached by `id`). Deterministic: every machine
    /// prepares the same points and family from the same files.
    public func prepare(_ definition: JobDefinition, id: String) throws -> LandscapeJob {
        if let job = prepared[id] { return job }
        if let problem = definition.grid?.sizeProblem { throw NNError("job \(definition.defaultName): \(problem)") }
        var job: LandscapeJob
        switch definition {
        case .surface(let surface):
            let center = try model(surface.checkpoint)
            let count = surface.isLine ? 1 : 2
            let directions: [[Float]]
            var projection: [[Double]]?
            if let trajectory = surface.trajectory {
                let snapshots = try TrajectoryPCA.snapshots(in: path(trajectory), network: center.network)
                let pca = try TrajectoryPCA(snapshots: snapshots, final: center.parameters, components: count)
                directions = pca.directions
                projection = pca.projections
            } else {
                directions = Directions.random(around: center, count: count, spec: surface.directions)
            }
            job = LandscapeJob.surface(
                around: center, directions: directions, x: surface.xAxis, y: surface.yAxis, trajectory: projection)
        case .interpolate(let line):
            let ends = [try model(line.from), try model(line.to)]
            job = LandscapeJob.path(.interpolate, through: ends, curve: .line, t: line.tAxis.values)
        case .plane(let plane):
            let models = try plane.models.map(model)
            let point = Axis(min: 0, max: 1, steps: 1)
            let (_, coordinates) = LandscapeJob.plane(
                through: models, orthonormal: plane.isOrthonormal, x: plane.x ?? point, y: plane.y ?? point)
            (job, _) = LandscapeJob.plane(
                through: models, orthonormal: plane.isOrthonormal,
                x: plane.x ?? LandscapeJob.framing(coordinates.map { $0[0] }),
                y: plane.y ?? LandscapeJob.framing(coordinates.map { $0[1] }))
        case .curve(let evaluation):
            let (curve, points) =
                spec.model.external != nil
                ? try Self.externalCurve(resolve(evaluation.file))
                : try CurveFile.load(contentsOf: resolve(evaluation.file), fallback: spec.model.description)
            job = LandscapeJob.path(.curve, through: points, curve: curve, t: evaluation.tAxis.values)
            job.metadata["curve"] = .object(["kind": .string(curve.kind.rawValue), "bends": .integer(curve.bends)])
        case .train, .align, .fit, .hessian:
            throw NNError("job \(definition.defaultName): a \(definition.kind.rawValue) job has no grid of points")
        }
        job.metadata["job"] = try JSONValue(encoding: definition)
        prepared[id] = job
        return job
    }

    /// A Basin curve file of an external model: its kind and bends, and each control point's
    /// geometry (`p<j>.` tensors).
    static func externalCurve(_ url: URL) throws -> (Curve, [Model]) {
        let file = try SafeTensors(contentsOf: url)
        guard let kind = file.metadata["basin.curve"].flatMap(Curve.Kind.init(rawValue:)),
            let bends = file.metadata["basin.bends"].flatMap(Int.init), (0...64).contains(bends)
        else {
            throw NNError("\(url.path): not a Basin curve file (no 'basin.curve' and 'basin.bends' metadata)")
        }
        let curve = Curve(kind: kind, bends: bends)
        let points = try (0..<curve.controlPointCount).map { try geometry(of: file, prefix: "p\($0).", source: url.path) }
        guard points.allSatisfy({ $0.parameters.count == points[0].parameters.count }) else {
            throw NNError("\(url.path): the curve's control points differ in size")
        }
        return (curve, points)
    }

    /// Per-point metrics of points `range` of a job.
    public func run(_ definition: JobDefinition, id: String, range: Range<Int>) throws -> [PointMetrics] {
        if let external = spec.model.external { throw Self.externalError(external) }
        let job = try prepare(definition, id: id)
        guard range.lowerBound >= 0, range.upperBound <= job.points.count else {
            throw NNError("job \(definition.defaultName): points \(range) outside 0..<\(job.points.count)")
        }
        return try job.evaluate(
            range, data: try data(), loss: spec.train.loss, batchNorm: definition.grid?.batchNorm ?? .eval,
            recompute: spec.bnRecompute ?? BatchNormRecompute(), fast: !spec.sweep.plain)
    }

    /// What one task produces: its values (4 metrics per point for grid jobs; see
    /// `Executor.valueNames` for the others) and, for jobs that make one, an artifact.
    public struct Output: Sendable {
        public var values: [Double]
        public var artifact: Data?
    }

    /// Test seam: jobs of the kind this environment variable names fail with an error, so the
    /// tests can watch one set of failure rules in process and on a cluster.
    public static let failSwitch = "BASIN_FAULT_FAIL_JOB"
    private static let failing = ProcessInfo.processInfo.environment[failSwitch]

    /// Runs points `range` of a grid job, or the whole of any other job.
    public func execute(_ definition: JobDefinition, id: String, range: Range<Int>) throws -> Output {
        if let failing = Self.failing, failing == definition.kind.rawValue {
            throw NNError("\(failing) jobs fail here: \(Self.failSwitch) is set")
        }
        switch definition {
        case .surface, .interpolate, .plane, .curve:
            return Output(values: try run(definition, id: id, range: range).flatMap(\.values), artifact: nil)
        case .train(let job):
            let data = try data()
            let loss = spec.train.loss
            let network = try Network(try describedModel())
            var model = network.initialize(seed: job.config.seed)
            var history: [Double] = []
            try Trainer(config: job.config).train(&model, on: data.train) { report, _ in
                if report.epoch > 0 { history.append(report.meanLoss) }
            }
            let metrics = PointMetrics(
                train: try model.evaluate(on: data.train, loss: loss),
                test: data.test.count > 0 ? try model.evaluate(on: data.test, loss: loss) : nil)
            let file = Checkpoint.tensors(
                of: model, metadata: ["basin.seed": String(job.config.seed), "basin.epochs": String(job.config.epochs)])
            return Output(values: metrics.values + history, artifact: file.serialized())
        case .align(let job):
            let data = try data()
            let a = try model(job.from), b = try model(job.to)
            let result = try WeightMatching.align(b, to: a, seed: job.seed ?? 0)
            let (largest, scale) = try Self.largestOutputDifference(b, result.model, on: data.train)
            // A permutation reorders sums, so outputs move by rounding, relative to their size
            // and more in deep networks; one that changed the function moves them by their size.
            let difference = largest / max(1, scale)
            guard difference <= 1e-4 else {
                throw NNError(
                    "alignment changed the model's outputs by \(largest) (outputs up to \(scale)); refusing the permutation")
            }
            let distance = { (m: Model) in VectorMath.norm(VectorMath.difference(a.parameters, m.parameters)) }
            let values = [
                difference, Double(result.passes), distance(b), distance(result.model), result.similarityBefore,
                result.similarityAfter,
            ]
            return Output(values: values, artifact: Checkpoint.tensors(of: result.model).serialized())
        case .fit(let job):
            let data = try data()
            let a = try model(job.from), b = try model(job.to)
            var history: [Double] = []
            let points = try CurveFitter(curve: job.curve, config: job.config).fit(from: a, to: b, on: data.train) {
                history.append($0.meanLoss)
            }
            return Output(values: history, artifact: CurveFile.tensors(job.curve, controlPoints: points).serialized())
        case .hessian(let job):
            let data = try data()
            let model = try model(job.checkpoint)
            var sharpness = Sharpness(
                iterations: job.iterations, tolerance: job.tolerance, probes: job.probes, seed: job.seed)
            sharpness.topK = job.topK ?? 1
            sharpness.density = job.density?.settings
            let r = try sharpness.measure(model, on: data.train, loss: spec.train.loss)
            return Output(values: job.values(r), artifact: nil)
        }
    }

    /// What each value of a non-grid job's output means, in order (the rest, if any, is a history).
    public static func valueNames(_ kind: JobDefinition.Kind) -> [String] {
        switch kind {
        case .train, .surface, .interpolate, .plane, .curve: ["train_loss", "train_acc", "test_loss", "test_acc"]
        case .align:
            [
                "max_relative_output_difference", "passes", "distance_before", "distance_after", "similarity_before",
                "similarity_after",
            ]
        case .fit: []
        case .hessian:
            [
                "top_eigenvalue", "power_iterations", "last_relative_change", "converged", "trace", "trace_std_error",
                "hessian_vector_products",
            ]
        }
    }

    /// The largest difference between two models' outputs on `data`, and the largest output of `a`.
    public static func largestOutputDifference(_ a: Model, _ b: Model, on data: Dataset) throws -> (Double, Double) {
        let chunk = min(500, max(1, data.count))
        let wa = Workspace(network: a.network, capacity: chunk, backward: false)
        let wb = Workspace(network: b.network, capacity: chunk, backward: false)
        var largest = 0.0, scale = 0.0
        data.features.withUnsafeBufferPointer { features in
            var start = 0
            while start < data.count {
                let batch = min(chunk, data.count - start)
                let input = features.baseAddress! + start * data.sampleSize
                a.infer(input, batch: batch, workspace: wa)
                b.infer(input, batch: batch, workspace: wb)
                for (x, y) in zip(wa.output(batch: batch), wb.output(batch: batch)) {
                    largest = max(largest, Double(abs(x - y)))
                    scale = max(scale, Double(abs(x)))
                }
                start += batch
            }
        }
        return (largest, scale)
    }
}
