import ArgumentParser
import BasinLandscape
import BasinNN
import BasinSweep
import Foundation
import Logging

/// `basin curve`: fit a Bezier or polychain curve between two models (or read one fitted
/// before, `--from-file`) and evaluate it beside the straight line between its ends, on any
/// range of t (`--t`, extrapolation beyond the ends included).
struct CurveCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "curve",
        abstract:
            "Fit a Bezier or polychain curve between two models (Garipov et al. 2018), or read a saved one, and evaluate it and the straight line."
    )

    @OptionGroup var options: LandscapeOptions

    @Argument(help: "Model at t = 0 (not with --from-file).")
    var from: String?

    @Argument(help: "Model at t = 1 (not with --from-file).")
    var to: String?

    @Option(
        name: .customLong("from-file"),
        help: "Evaluate this saved curve (basin curve --save-curve, or a study's fit) instead of fitting one.")
    var fromFile: String?

    @Option(parsing: .unconditional, help: "t as MIN:MAX:STEPS (default 0:1:--points; beyond [0, 1] extrapolates).", transform: Axis.argument)
    var t: Axis?

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
        if fromFile != nil {
            guard from == nil && to == nil else {
                throw ValidationError("--from-file evaluates a saved curve: give no models to fit between")
            }
            guard saveCurve == nil else { throw ValidationError("--save-curve needs a fitted curve, not --from-file") }
        } else {
            guard from != nil && to != nil else {
                throw ValidationError("give the two models to fit a curve between, or --from-file CURVE.safetensors")
            }
        }
    }

    func run() throws {
        let (spec, data) = try options.load()
        let t = (self.t ?? Axis(min: 0, max: 1, steps: points)).values
        if let fromFile {
            let (curve, controlPoints) = try CurveFile.load(
                contentsOf: URL(fileURLWithPath: fromFile), fallback: spec.model)
            var job = LandscapeJob.path(.curve, through: controlPoints, curve: curve, t: t)
            job.metadata["curve"] = .object([
                "kind": .string(curve.kind.rawValue), "bends": .integer(curve.bends), "file": .string(fromFile),
            ])
            let ends = [controlPoints[0], controlPoints[controlPoints.count - 1]]
            return try evaluate(job, ends: ends, t: t, spec: spec, data: data, inputs: ["file": .string(fromFile)])
        }
        guard let from, let to else { throw ValidationError("give the two models to fit a curve between") }
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
        var job = LandscapeJob.path(.curve, through: controlPoints, curve: curve, t: t)
        job.metadata["curve"] = .object([
            "kind": .string(kind.rawValue), "bends": .integer(bends), "fit": try JSONValue(encoding: config),
            "fit_definition": .string(
                "one t ~ U(0,1) per minibatch; loss + 0.5 * weight_decay * |theta(t)|^2; bends start on the straight line"
            ),
        ])
        try evaluate(
            job, ends: ends, t: t, spec: spec, data: data, inputs: InterpolateCommand.names(["from": from, "to": to]))
    }

    /// The curve's result, with the straight line between its ends (`line_*` arrays and statistics).
    private func evaluate(
        _ job: LandscapeJob, ends: [Model], t: [Double], spec: TrainingSpec, data: DataSplit,
        inputs: [String: JSONValue]
    ) throws {
        let line = LandscapeJob.path(.interpolate, through: ends, curve: .line, t: t)
        let batchNorm = options.bn ?? .recompute
        let lineMetrics = try line.evaluate(
            0..<line.points.count, data: data, loss: spec.train.loss, batchNorm: batchNorm,
            recompute: options.recompute, fast: !options.plain)
        let lineResult = line.result(lineMetrics, prefix: "line_")
        try options.run(job, data: data, loss: spec.train.loss, inputs: inputs) {
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
