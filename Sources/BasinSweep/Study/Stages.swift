import BasinLandscape
import BasinNN
import Foundation

/// The `stages:` section of a spec: a multi-seed study over a grid of training settings.
///
/// ```yaml
/// stages:
///   train: {seeds: [0, 1, 2], grid: {lr: [0.05, 0.1]}}     # one model per (cell, seed)
///   connect: {t: "0:1:21", align: true, curve: {kind: bezier, bends: 1, epochs: 20}}
///   surface: {x: "-1:1:21", y: "-1:1:21"}                  # around every model
///   interpolate: {t: "-0.5:1.5:41"}                        # same seed, neighbouring cells
///   plane: {x: "-0.5:1.5:21", y: "-0.5:1.5:21"}            # the first three seeds of a cell
///   hessian: {iterations: 100, tolerance: 1e-3, probes: 30}
/// ```
///
/// A cell is one combination of the grid's values (keys in sorted order); every other stage
/// reads the trained models by name (`@train/lr=0.05,seed=0`), so the study is a graph.
public struct Stages: Codable, Sendable, Equatable {
    public struct Train: Codable, Sendable, Equatable {
        public var seeds: [UInt64]
        /// Training settings to vary: each key a `train:` field, each value a list.
        public var grid: [String: [JSONValue]]?
    }

    public struct Connect: Codable, Sendable, Equatable {
        public var t: Axis?
        /// Also align the second model onto the first (weight matching) and evaluate that line.
        public var align: Bool?
        /// Fit a curve between each pair: `kind`, `bends` and any `train:` field for the fit.
        public var curve: [String: JSONValue]?
        public var bn: BatchNormMode?
    }

    public struct Surface: Codable, Sendable, Equatable {
        public var x: Axis?
        public var y: Axis?
        public var line: Bool?
        public var norm: DirectionSpec.Normalization?
        public var ignore: DirectionSpec.OneDimensional?
        public var seed: UInt64?
        public var bn: BatchNormMode?
    }

    public struct Interpolate: Codable, Sendable, Equatable {
        public var t: Axis?
        public var bn: BatchNormMode?
    }

    public struct Plane: Codable, Sendable, Equatable {
        public var x: Axis?
        public var y: Axis?
        public var basis: PlaneJob.Basis?
        public var bn: BatchNormMode?
    }

    public struct Hessian: Codable, Sendable, Equatable {
        public var iterations: Int?
        public var tolerance: Double?
        public var probes: Int?
        public var seed: UInt64?
        public var topK: Int?
        public var density: HessianJob.Density?

        private enum CodingKeys: String, CodingKey { case iterations, tolerance, probes, seed, topK = "top_k", density }
    }

    public var train: Train
    public var connect: Connect?
    public var surface: Surface?
    public var interpolate: Interpolate?
    public var plane: Plane?
    public var hessian: Hessian?

    /// One combination of grid values: its name (`lr=0.05,wd=0`) and its training settings.
    public struct Cell: Sendable {
        public var name: String
        public var values: [(key: String, value: JSONValue)]
        public var config: TrainingConfig
    }

    /// Every cell of the grid, in a fixed order (keys sorted, values as listed).
    public func cells(base: TrainingConfig) throws -> [Cell] {
        let grid = (train.grid ?? [:]).sorted { $0.key < $1.key }
        guard case .object(let defaults) = try JSONValue(encoding: base) else { return [] }
        for (key, values) in grid {
            guard defaults[key] != nil, key != "seed" else {
                throw SpecError(
                    "stages.train.grid", "'\(key)' is not a training setting (one of \(defaults.keys.filter { $0 != "seed" }.sorted().joined(separator: ", ")))"
                )
            }
            guard !values.isEmpty else { throw SpecError("stages.train.grid.\(key)", "give at least one value") }
        }
        var combinations: [[(key: String, value: JSONValue)]] = [[]]
        for (key, values) in grid {
            combinations = combinations.flatMap { prefix in values.map { prefix + [(key, $0)] } }
        }
        return try combinations.map { values in
            var object = defaults
            for (key, value) in values { object[key] = value }
            let config: TrainingConfig
            do {
                config = try JSONDecoder().decode(TrainingConfig.self, from: JSONValue.object(object).serialized())
            } catch {
                throw SpecError("stages.train.grid", "\(values.map { "\($0.key)=\(Self.text($0.value))" }) is not valid")
            }
            if let problem = config.validationError() { throw SpecError("stages.train.grid", "\(problem)") }
            return Cell(
                name: values.map { "\($0.key)=\(Self.text($0.value))" }.joined(separator: ","), values: values,
                config: config)
        }
    }

    static func text(_ value: JSONValue) -> String {
        switch value {
        case .string(let s): return s
        case .integer(let i): return String(i)
        case .number(let d): return d == d.rounded() && abs(d) < 1e15 ? String(Int(d)) : String(d)
        case .bool(let b): return String(b)
        default: return String(decoding: value.serialized(), as: UTF8.self)
        }
    }

    /// A model's tag: `lr=0.05,seed=0` (or `seed=0` without a grid).
    public static func tag(_ cell: Cell, seed: UInt64) -> String {
        cell.name.isEmpty ? "seed=\(seed)" : "\(cell.name),seed=\(seed)"
    }

    /// The jobs the stages expand to, training first, then what reads the models.
    public func jobs(base: TrainingConfig) throws -> [JobDefinition] {
        guard !train.seeds.isEmpty else { throw SpecError("stages.train.seeds", "give at least one seed") }
        guard Set(train.seeds).count == train.seeds.count else {
            throw SpecError("stages.train.seeds", "a seed is listed twice")
        }
        let cells = try cells(base: base)
        var jobs: [JobDefinition] = []
        func model(_ cell: Cell, _ seed: UInt64) -> String { "@train/" + Self.tag(cell, seed: seed) }
        for cell in cells {
            for seed in train.seeds {
                var config = cell.config
                config.seed = seed
                jobs.append(.train(TrainJob(name: "train/" + Self.tag(cell, seed: seed), config: config)))
            }
        }
        for cell in cells {
            for seed in train.seeds {
                let tag = Self.tag(cell, seed: seed)
                if let surface {
                    var job = SurfaceJob(checkpoint: model(cell, seed))
                    job.name = "surface/\(tag)"
                    (job.x, job.y, job.line) = (surface.x, surface.y, surface.line)
                    (job.norm, job.ignore, job.seed, job.bn) = (surface.norm, surface.ignore, surface.seed, surface.bn)
                    jobs.append(.surface(job))
                }
                if let hessian {
                    var job = HessianJob(
                        name: "hessian/\(tag)", checkpoint: model(cell, seed),
                        iterations: hessian.iterations ?? HessianJob.defaultIterations,
                        tolerance: hessian.tolerance ?? HessianJob.defaultTolerance,
                        probes: hessian.probes ?? HessianJob.defaultProbes, seed: hessian.seed ?? 0)
                    (job.topK, job.density) = (hessian.topK, hessian.density)
                    if let problem = job.problem { throw SpecError("stages.hessian", "\(problem)") }
                    jobs.append(.hessian(job))
                }
            }
            if let connect {
                jobs += try connectJobs(connect, cell: cell, model: { model(cell, $0) }, base: base)
            }
            if let plane {
                guard train.seeds.count >= 3 else { throw SpecError("stages.plane", "needs at least three seeds") }
                let seeds = Array(train.seeds.prefix(3))
                var job = PlaneJob(models: seeds.map { model(cell, $0) })
                job.name =
                    "plane/" + (cell.name.isEmpty ? "" : cell.name + ",")
                    + seeds.map { "seed=\($0)" }.joined(separator: "-")
                // The raw basis puts the models at (0,0), (1,0), (0,1): this frames all three.
                let frame = Axis(min: -0.5, max: 1.5, steps: Axis.defaultSteps)
                (job.x, job.y, job.basis, job.bn) = (plane.x ?? frame, plane.y ?? frame, plane.basis, plane.bn)
                jobs.append(.plane(job))
            }
        }
        if let interpolate {
            for seed in train.seeds {
                for (a, b) in zip(cells, cells.dropFirst()) {
                    var job = InterpolateJob(from: model(a, seed), to: model(b, seed))
                    job.name = "interpolate/seed=\(seed),\(a.name)-\(b.name)"
                    (job.t, job.bn) = (interpolate.t ?? .unit, interpolate.bn)
                    jobs.append(.interpolate(job))
                }
            }
        }
        return jobs
    }

    /// A cell's pair name: `lr=0.05,seed=0-seed=1`.
    public static func pairTag(_ cell: Cell, _ a: UInt64, _ b: UInt64) -> String {
        (cell.name.isEmpty ? "" : cell.name + ",") + "seed=\(a)-seed=\(b)"
    }

    private func connectJobs(
        _ connect: Connect, cell: Cell, model: (UInt64) -> String, base: TrainingConfig
    ) throws -> [JobDefinition] {
        var jobs: [JobDefinition] = []
        let t = connect.t ?? .unit
        var fitConfig: TrainingConfig?
        var curve: Curve?
        if let settings = connect.curve {
            var object: [String: JSONValue] = [:]
            if case .object(let defaults) = try JSONValue(encoding: base) { object = defaults }
            let kind = settings["kind"]?.stringValue ?? "bezier"
            guard let curveKind = Curve.Kind(rawValue: kind) else {
                throw SpecError("stages.connect.curve.kind", "'\(kind)' is not bezier or polychain")
            }
            let bends = settings["bends"].map { $0.doubleValue.flatMap { Int(exactly: $0) } ?? 0 } ?? 1
            guard (1...64).contains(bends) else {
                throw SpecError("stages.connect.curve.bends", "must be a whole number from 1 to 64")
            }
            curve = Curve(kind: curveKind, bends: bends)
            for (key, value) in settings where key != "kind" && key != "bends" {
                guard object[key] != nil else {
                    throw SpecError("stages.connect.curve", "'\(key)' is neither kind, bends nor a training setting")
                }
                object[key] = value
            }
            let config = try JSONDecoder().decode(TrainingConfig.self, from: JSONValue.object(object).serialized())
            if let problem = config.validationError() { throw SpecError("stages.connect.curve", "\(problem)") }
            fitConfig = config
        }
        let seeds = train.seeds
        for (i, a) in seeds.enumerated() {
            for b in seeds[(i + 1)...] {
                let pair = Self.pairTag(cell, a, b)
                var line = InterpolateJob(from: model(a), to: model(b))
                (line.name, line.t, line.bn) = ("line/\(pair)", t, connect.bn)
                jobs.append(.interpolate(line))
                if connect.align ?? false {
                    jobs.append(.align(AlignJob(name: "align/\(pair)", from: model(a), to: model(b))))
                    var aligned = line
                    aligned.name = "aligned/\(pair)"
                    aligned.to = "@align/\(pair)"
                    jobs.append(.interpolate(aligned))
                }
                if let curve, let fitConfig {
                    jobs.append(
                        .fit(FitJob(name: "fit/\(pair)", from: model(a), to: model(b), config: fitConfig, curve: curve)))
                    var evaluate = CurveJob(file: "@fit/\(pair)")
                    (evaluate.name, evaluate.t, evaluate.bn) = ("curve/\(pair)", t, connect.bn)
                    jobs.append(.curve(evaluate))
                }
            }
        }
        return jobs
    }
}
