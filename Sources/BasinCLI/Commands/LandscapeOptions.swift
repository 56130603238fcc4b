import ArgumentParser
import BasinLandscape
import BasinNN
import BasinSweep
import Foundation

/// Options every landscape command shares: the spec (data, loss, model), BatchNorm handling,
/// evaluator, threads and the output file.
struct LandscapeOptions: ParsableArguments {
    @Argument(help: "Spec file (YAML) whose 'data', 'model' and 'train.loss' to use.")
    var spec: String

    @Option(name: .shortAndLong, help: "Result file (.npz) to write.")
    var output: String

    @Option(
        help:
            "BatchNorm statistics at each point: eval (the models' running stats) or recompute (from the training set)."
    )
    var bn: BatchNormMode?

    @Option(help: "With --bn recompute: samples per batch of the re-estimation.")
    var bnBatchSize: Int = 128

    @Option(
        help:
            "With --bn recompute: batch (every batch weighs the same, PyTorch's update_bn) or samples (each batch weighs its size, Garipov et al.'s)."
    )
    var bnWeighting: BatchNormRecompute.Weighting = .batch

    func validate() throws {
        guard (1...1_000_000).contains(bnBatchSize) else {
            throw ValidationError("--bn-batch-size must be from 1 to 1000000")
        }
    }

    var recompute: BatchNormRecompute { BatchNormRecompute(batchSize: bnBatchSize, weighting: bnWeighting) }

    @Flag(help: "Evaluate with the plain path (whole network per point) instead of the fast evaluator.")
    var plain = false

    @Flag(name: .customLong("no-test"), help: "Skip the test set.")
    var noTest = false

    @Option(help: "OpenBLAS threads.")
    var threads: Int = 1

    /// Spec, its data and a loader for checkpoints of its model.
    func load() throws -> (spec: TrainingSpec, data: DataSplit) {
        BLAS.setThreads(threads)
        let (trainingSpec, base) = try SpecFile.trainingSpec(spec)
        var data = try SpecFile.loadData(trainingSpec, base: base, path: spec)
        if noTest { data.test = data.test.subset([]) }
        return (trainingSpec, data)
    }

    /// A checkpoint as a model of the spec's network (or of the description it carries).
    func checkpoint(_ path: String, spec trainingSpec: TrainingSpec) throws -> Model {
        let url = URL(fileURLWithPath: path)
        let file = try SafeTensors(contentsOf: url)
        let description = try Checkpoint.description(in: file, source: path) ?? trainingSpec.model
        return try Checkpoint.load(file, into: try Network(description), source: path)
    }

    /// Models that must share one architecture.
    func checkpoints(_ paths: [String], spec trainingSpec: TrainingSpec) throws -> [Model] {
        let models = try paths.map { try checkpoint($0, spec: trainingSpec) }
        for (path, model) in zip(paths, models).dropFirst()
        where model.network.description != models[0].network.description {
            throw NNError(
                "\(path): its model differs from the one in \(paths[0]); paths and planes need one architecture")
        }
        return models
    }

    /// Evaluates every point of `job`, writes the result, prints a one-line summary.
    func run(
        _ job: LandscapeJob, data: DataSplit, loss: LossFunction, inputs: [String: JSONValue],
        extra: (inout ResultFile) -> Void = { _ in }
    ) throws {
        let started = Date()
        let batchNorm = bn ?? (job.kind == .curve ? .recompute : .eval)
        let metrics = try job.evaluate(
            0..<job.points.count, data: data, loss: loss, batchNorm: batchNorm, recompute: recompute, fast: !plain)
        var result = job.result(metrics)
        result.metadata = Self.merge(
            result.metadata,
            [
                "inputs": .object(inputs), "bn": .string(batchNorm.rawValue), "loss": .string(loss.rawValue),
                "bn_recompute": try JSONValue(encoding: recompute),
                "basin_version": .string(BasinVersion.string),
                "model": try JSONValue(encoding: job.family.network.description),
                "definitions": .object(Self.definitions),
            ])
        extra(&result)
        try result.write(to: URL(fileURLWithPath: output))
        let seconds = Date().timeIntervalSince(started)
        print(Self.summary(result, seconds: seconds, points: job.points.count) + " -> \(output)")
    }

    static let definitions: [String: JSONValue] = [
        "train_loss": .string("mean loss over the training set at the point"),
        "train_acc": .string("share of training samples whose argmax output equals the label"),
        "test_loss": .string("mean loss over the test set (NaN when there is none)"),
        "test_acc": .string("test accuracy (NaN when there is none)"),
        "done": .string("true where the point was evaluated; other entries are NaN"),
        "arrays": .string("2-D arrays are [ny, nx]: row i is y[i], column j is x[j]"),
    ]

    static func merge(_ value: JSONValue, _ extra: [String: JSONValue]) -> JSONValue {
        guard case .object(var object) = value else { return value }
        for (k, v) in extra { object[k] = v }
        return .object(object)
    }

    static func summary(_ result: ResultFile, seconds: Double, points: Int) -> String {
        var parts: [String] = []
        if let loss = result["train_loss"]?.floats()?.filter({ !$0.isNaN }), let low = loss.min(), let high = loss.max()
        {
            parts.append(String(format: "train loss %.4g … %.4g", low, high))
        }
        if let stats = result.metadata["statistics"], let barrier = stats["train_loss_barrier"]?.doubleValue {
            parts.append(String(format: "loss barrier %.4g", barrier))
            if let error = stats["train_error_barrier"]?.doubleValue {
                parts.append(String(format: "error barrier %.4g", error))
            }
        }
        parts.append(String(format: "%d points in %.2f s", points, seconds))
        return parts.joined(separator: " | ")
    }
}

extension BatchNormMode: ExpressibleByArgument {}
extension BatchNormRecompute.Weighting: ExpressibleByArgument {}
extension DirectionSpec.Normalization: ExpressibleByArgument {}
extension DirectionSpec.OneDimensional: ExpressibleByArgument {}
extension Curve.Kind: ExpressibleByArgument {}
extension TrainingConfig.OptimizerKind: ExpressibleByArgument {}

extension Axis {
    /// Parses a command-line axis, failing with the sentence `Axis(parsing:)` gives.
    static func argument(_ text: String) throws -> Axis {
        do {
            return try Axis(parsing: text, name: "axis")
        } catch let error as NNError {
            throw ValidationError(error.description)
        }
    }
}
