import ArgumentParser
import BasinNN
import Foundation
import Logging

/// `basin train`: a spec's model trained on its data, saved as a safetensors checkpoint.
struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train the spec's model on its data and save a .safetensors checkpoint."
    )

    @Argument(help: "Spec file (YAML) with 'model', 'data' and 'train' sections.")
    var spec: String

    @Option(name: .shortAndLong, help: "Checkpoint to write.")
    var output: String = "model.safetensors"

    @Option(help: "Override train.seed.")
    var seed: UInt64?

    @Option(help: "Override train.epochs.")
    var epochs: Int?

    @Option(help: "Override train.lr.")
    var lr: Double?

    @Option(name: .customLong("batch-size"), help: "Override train.batch_size.")
    var batchSize: Int?

    @Option(help: "Write a checkpoint after every epoch (epoch-0000 is the start) into this directory.")
    var snapshots: String?

    @Option(help: "OpenBLAS threads.")
    var threads: Int = 1

    @Flag(help: "Print the summary as JSON.")
    var json = false

    func validate() throws {
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
    }

    func run() throws {
        BLAS.setThreads(threads)
        let logger = Logger(label: "basin.train")
        var (trainingSpec, base) = try SpecFile.trainingSpec(spec)
        if let seed { trainingSpec.train.seed = seed }
        if let epochs { trainingSpec.train.epochs = epochs }
        if let lr { trainingSpec.train.lr = lr }
        if let batchSize { trainingSpec.train.batchSize = batchSize }
        let config = trainingSpec.train
        if let problem = config.validationError() { throw ValidationError("\(problem) (after command-line overrides)") }
        let network: Network
        do {
            network = try Network(trainingSpec.model)
        } catch let error as NNError {
            throw NNError("\(spec): \(error.description)")
        }
        let data = try SpecFile.loadData(trainingSpec, base: base, path: spec)
        let trainer = try Trainer(config: config)
        var model = network.initialize(seed: config.seed)
        let started = Date()
        let snapshotDirectory = snapshots.map { URL(fileURLWithPath: $0) }
        try trainer.train(&model, on: data.train) { report, current in
            if let snapshotDirectory {
                let name = String(format: "epoch-%04d.safetensors", report.epoch)
                try Checkpoint.save(
                    current, to: snapshotDirectory.appendingPathComponent(name),
                    metadata: ["basin.epoch": String(report.epoch), "basin.seed": String(config.seed)])
            }
            if report.epoch > 0 {
                logger.info(
                    "epoch \(report.epoch)/\(config.epochs) lr \(String(format: "%.4g", report.learningRate)) loss \(String(format: "%.6g", report.meanLoss))"
                )
            }
        }
        let seconds = Date().timeIntervalSince(started)
        try Checkpoint.save(
            model, to: URL(fileURLWithPath: output),
            metadata: ["basin.seed": String(config.seed), "basin.epochs": String(config.epochs)])
        let summary = try ModelSummary(model: model, data: data, loss: config.loss, seconds: seconds)
        print(json ? summary.json : "\(summary.line) -> \(output)")
    }
}
