import ArgumentParser
import BasinSweep
import Foundation
import Logging

/// The `basin` command line.
public struct BasinCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "basin",
        abstract: "Map neural-network loss landscapes, from one machine to a cluster.",
        version: BasinVersion.string,
        subcommands: [
            RunCommand.self, CheckCommand.self, CoordinatorCommand.self, WorkerCommand.self, StatusCommand.self,
            SummaryCommand.self, ReportCommand.self,
            MergeCommand.self,
            KeygenCommand.self, ComputeChildCommand.self,
            TrainCommand.self, EvalCommand.self, SurfaceCommand.self, InterpolateCommand.self, PlaneCommand.self,
            CurveCommand.self, InspectCommand.self, PlotCommand.self, ExportCommand.self, DataCommand.self,
            ExampleCommand.self,
        ]
    )

    public init() {}

    /// Sends log lines to standard error at the level named by `BASIN_LOG` (default `info`).
    /// Called once, by the executable, before any command runs.
    public static func bootstrapLogging() {
        let environment = ProcessInfo.processInfo.environment
        let level = environment["BASIN_LOG"].flatMap(Logger.Level.init(rawValue:)) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
    }
}

