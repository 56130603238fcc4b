import ArgumentParser
import BasinLandscape
import BasinNN
import BasinSweep
import Foundation
import Logging

/// `basin plane`: the plane through three models.
struct PlaneCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plane",
        abstract: "Evaluate the plane through three models (raw basis θ2−θ1, θ3−θ1, or orthonormal)."
    )

    enum Basis: String, ExpressibleByArgument { case raw, orthonormal }

    @OptionGroup var options: LandscapeOptions

    @Argument(help: "Three models: θ1 (origin), θ2, θ3.")
    var models: [String]

    @Option(help: "Basis: raw (models at (0,0), (1,0), (0,1)) or orthonormal (distances in parameter space).")
    var basis: Basis = .raw

    @Option(
        parsing: .unconditional, help: "x axis as MIN:MAX:STEPS (default covers the models with a margin).",
        transform: Axis.argument)
    var x: Axis?

    @Option(parsing: .unconditional, help: "y axis as MIN:MAX:STEPS.", transform: Axis.argument)
    var y: Axis?

    func validate() throws {
        guard models.count == 3 else { throw ValidationError("plane needs exactly three models, got \(models.count)") }
    }

    func run() throws {
        let (spec, data) = try options.load()
        let loaded = try options.checkpoints(models, spec: spec)
        // Default axes: the models' coordinates with a 25% margin.
        let (_, coordinates) = LandscapeJob.plane(
            through: loaded, orthonormal: basis == .orthonormal, x: Axis(min: 0, max: 1, steps: 1),
            y: Axis(min: 0, max: 1, steps: 1))
        let (job, _) = LandscapeJob.plane(
            through: loaded, orthonormal: basis == .orthonormal, x: x ?? LandscapeJob.framing(coordinates.map { $0[0] }),
            y: y ?? LandscapeJob.framing(coordinates.map { $0[1] }))
        try options.run(
            job, data: data, loss: spec.train.loss,
            inputs: ["models": .array(models.map { .string(($0 as NSString).lastPathComponent) })])
    }
}
