import ArgumentParser
import BasinLandscape
import BasinNN
import BasinSweep
import Foundation
import Logging

/// `basin curve`: fit a Bezier or polychain curve between two models and evaluate it beside
/// the straight line.
struct CurveCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "curve",
        abstract:
            "Fit a Bezier or polychain curve between two models (Garipov et al. 2018) and evaluate it and the straight line."
    )

    @OptionGroup var options: LandscapeOptions

    @Argument(help: "Model at t = 0.")
    var from: String

    @Argument(help: "Model at t = 1.")
    var to: String

    @Option(help: "Curve kind: bezier or polychain.")
    var kind: Curve.Kind = .bezier

    @Option(help: "Movable control points between the ends.")
    var bends: Int = 1

    @Option(help: "Points along t ∈ [0, 1] to evaluate.")
    var points: Int = 21

    @Option(help: "Fitting epochs (default: the spec's train.epochs).")
    var epochs: Int?

    @Option(help: "Fitting learning rate (default: the spec's train.lr).")
    var lr: Double?

    @Option(help: "Fitting optimizer (default: the spec's train.optimizer).")
    var optimizer: TrainingConfig.OptimizerKind?

    @Option(
        name: .customLong("weight-decay"),
        help: "Garipov's ½·wd·‖θ(t)‖² regularizer (default: the spec's train.weight_decay).")
    var weightDecay: Double?

    @Option(help: "Fitting seed (default: the spec's train.seed).")
    var seed: UInt64?

    @Option(name: .customLong("save-curve"), help: "Write the fitted control points to this .safetensors file.")
    var saveCurve: String?

    func validate() throws {
        guard bends >= 1 else { throw ValidationError("--bends must be at least 1") }
        guard points >= 2 else { throw ValidationError("--points must be at least 2") }
    }

    func run() throws {
        let (spec, data) = try options.load()
        let ends = try options.checkpoints([from, to], spec: spec)
        var config = spec.train
        if let epochs { config.epochs = epochs }
        if let lr { config.lr = lr }
        if let optimizer { config.optimizer = optimizer }
        if let weightDecay { config.weightDecay = weightDecay }
        if let seed { config.seed = seed }
        let curve = Curve(kind: kind, bends: bends)
        let fitter = try CurveFitter(curve: curve, config: config)
        let logger = Logger(label: "basin.curve")
        let controlPoints = try fitter.fit(from: ends[0], to: ends[1], on: data.train) { report in
            logger.info("curve epoch \(report.epoch)/\(config.epochs) loss \(String(format: "%.6g", report.meanLoss))")
        }
        if let saveCurve {
            try CurveFile.save(curve, controlPoints: controlPoints, to: URL(fileURLWithPath: saveCurve))
        }
        let t = Axis(min: 0, max: 1, steps: points).values
        var job = LandscapeJob.path(.curve, through: controlPoints, curve: curve, t: t)
        job.metadata["curve"] = .object([
            "kind": .string(kind.rawValue), "bends": .integer(bends), "fit": try JSONValue(encoding: config),
            "fit_definition": .string(
                "one t ~ U(0,1) per minibatch; loss + 0.5 * weight_decay * |theta(t)|^2; bends start on the straight line"
            ),
        ])
        let line = LandscapeJob.path(.interpolate, through: ends, curve: .line, t: t)
        let batchNorm = options.bn ?? .recompute
        let lineMetrics = try line.evaluate(
            0..<line.points.count, data: data, loss: spec.train.loss, batchNorm: batchNorm, fast: !options.plain)
        let lineResult = line.result(lineMetrics, prefix: "line_")
        try options.run(
            job, data: data, loss: spec.train.loss, inputs: InterpolateCommand.names(["from": from, "to": to])
        ) {
            result in
            for (name, tensor) in lineResult.arrays { result.set(name, tensor) }
            result.metadata = LandscapeOptions.merge(
                result.metadata,
                [
                    "line_statistics": lineResult.metadata["statistics"] ?? .null
                ])
        }
    }
}
