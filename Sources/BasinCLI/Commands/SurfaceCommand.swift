import ArgumentParser
import BasinLandscape
import BasinNN
import BasinSweep
import Foundation

/// `basin surface`: loss and accuracy on a 1-D line or 2-D plane around a model.
struct SurfaceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "surface",
        abstract:
            "Evaluate a 1-D or 2-D loss surface around a checkpoint (Li et al. 2018 directions, or PCA of a trajectory)."
    )

    @OptionGroup var options: LandscapeOptions

    @Option(help: "The model at the centre (.safetensors).")
    var checkpoint: String

    @Option(parsing: .unconditional, help: "x axis as MIN:MAX:STEPS.", transform: Axis.argument)
    var x: Axis?

    @Option(
        parsing: .unconditional, help: "y axis as MIN:MAX:STEPS; leave out with --line for a 1-D result.",
        transform: Axis.argument)
    var y: Axis?

    @Flag(help: "A 1-D line instead of a plane.")
    var line = false

    @Option(help: "Direction normalization: filter, layer or none.")
    var norm: DirectionSpec.Normalization = .filter

    @Option(help: "Parameters with ≤ 1 dimension: biasbn (zero in the directions) or keep (copy the model's values).")
    var ignore: DirectionSpec.OneDimensional = .biasbn

    @Flag(help: "Make the second direction orthogonal to the first.")
    var orthogonalize = false

    @Option(name: .customLong("direction-seed"), help: "Seed of the random directions.")
    var directionSeed: UInt64 = 0

    @Option(help: "Use the directions in this file (written by --save-directions) instead of drawing them.")
    var directions: String?

    @Option(name: .customLong("save-directions"), help: "Write the directions used to this .safetensors file.")
    var saveDirections: String?

    @Option(
        help:
            "Directory of training snapshots (basin train --snapshots): use the top-2 PCA directions of the trajectory and store its projection."
    )
    var trajectory: String?

    func validate() throws {
        if line && y != nil { throw ValidationError("--line and --y exclude each other") }
        if directions != nil && trajectory != nil {
            throw ValidationError("--directions and --trajectory exclude each other")
        }
    }

    func run() throws {
        let (spec, data) = try options.load()
        let model = try options.checkpoint(checkpoint, spec: spec)
        let count = line ? 1 : 2
        var metadata: [String: JSONValue] = [:]
        var chosen: [[Float]]
        var projection: [[Double]]? = nil
        var xAxis = x ?? Axis(min: -1, max: 1, steps: line ? 51 : 21)
        var yAxis = y ?? .around
        if let trajectory {
            let snapshots = try TrajectoryPCA.snapshots(in: URL(fileURLWithPath: trajectory), network: model.network)
            let pca = try TrajectoryPCA(snapshots: snapshots, final: model.parameters, components: count)
            chosen = pca.directions
            projection = pca.projections
            metadata["directions"] = .object([
                "kind": .string("pca"), "snapshots": .integer(snapshots.count),
                "explained_variance_ratio": .array(pca.explainedVarianceRatio.map { .number($0) }),
            ])
            // Default axes cover the trajectory with a margin.
            func axis(_ j: Int) -> Axis {
                let values = pca.projections.map { $0[j] }
                let low = values.min()!, high = values.max()!, margin = max(0.25 * (high - low), 1e-3)
                return Axis(min: low - margin, max: high + margin, steps: line ? 51 : 21)
            }
            if x == nil { xAxis = axis(0) }
            if y == nil && !line { yAxis = axis(1) }
        } else if let directions {
            chosen = try Directions.load(
                contentsOf: URL(fileURLWithPath: directions), layout: model.network.parameterLayout)
            guard chosen.count >= count else {
                throw NNError(
                    "\(directions): holds \(chosen.count) direction(s) but a \(count)-D surface needs \(count)")
            }
            metadata["directions"] = .object([
                "kind": .string("file"), "file": .string((directions as NSString).lastPathComponent),
            ])
        } else {
            let directionSpec = DirectionSpec(
                norm: norm, ignore: ignore, orthogonalize: orthogonalize, seed: directionSeed)
            chosen = Directions.random(around: model, count: count, spec: directionSpec)
            metadata["directions"] = .object([
                "kind": .string("random"), "spec": try JSONValue(encoding: directionSpec),
                "definition": .string(
                    "Gaussian; filter: d <- d * |theta_slice| / (|d_slice| + 1e-10) per dim-0 slice; biasbn: <=1-D parameters zero"
                ),
            ])
        }
        if let saveDirections {
            try Directions.save(
                chosen, layout: model.network.parameterLayout, metadata: ["basin.source": checkpoint],
                to: URL(fileURLWithPath: saveDirections))
        }
        var job = LandscapeJob.surface(
            around: model, directions: chosen, x: xAxis, y: line ? nil : yAxis, trajectory: projection)
        job.metadata = metadata
        try options.run(
            job, data: data, loss: spec.train.loss,
            inputs: ["checkpoint": .string((checkpoint as NSString).lastPathComponent)])
    }
}
