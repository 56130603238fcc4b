import ArgumentParser
import BasinLandscape
import BasinNN
import BasinSweep
import Foundation
import Logging

/// `basin interpolate`: the straight line between two models, over any range of t.
struct InterpolateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "interpolate",
        abstract: "Evaluate θ(t) = (1 − t)·θA + t·θB over a range of t, with path statistics and barriers."
    )

    @OptionGroup var options: LandscapeOptions

    @Argument(help: "Model at t = 0.")
    var from: String

    @Argument(help: "Model at t = 1.")
    var to: String

    @Option(parsing: .unconditional, help: "t as MIN:MAX:STEPS.", transform: Axis.argument)
    var t: Axis = .unit

    func run() throws {
        let (spec, data) = try options.load()
        let models = try options.checkpoints([from, to], spec: spec)
        let job = LandscapeJob.path(.interpolate, through: models, curve: .line, t: t.values)
        try options.run(job, data: data, loss: spec.train.loss, inputs: Self.names(["from": from, "to": to]))
    }

    static func names(_ paths: [String: String]) -> [String: JSONValue] {
        paths.mapValues { .string(($0 as NSString).lastPathComponent) }
    }
}
