import ArgumentParser
import BasinNN
import Foundation

/// `basin eval`: loss and accuracy of a checkpoint on a spec's data.
struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Evaluate a .safetensors checkpoint on the spec's train and test data."
    )

    @Argument(help: "Checkpoint (.safetensors), from basin train or from PyTorch's safetensors.torch.save_file.")
    var checkpoint: String

    @Option(help: "Spec file whose 'data' (and, if the checkpoint has none, 'model') to use.")
    var spec: String

    @Option(help: "Model description file (YAML or JSON) overriding the checkpoint's and the spec's.")
    var model: String?

    @Option(help: "Loss: cross_entropy or mse (default: the spec's train.loss).")
    var loss: LossFunction?

    @Option(help: "OpenBLAS threads.")
    var threads: Int = 1

    @Flag(help: "Print the result as JSON.")
    var json = false

    func run() throws {
        BLAS.setThreads(threads)
        let (trainingSpec, base) = try SpecFile.trainingSpec(spec)
        let url = URL(fileURLWithPath: checkpoint)
        let file = try SafeTensors(contentsOf: url)
        let description =
            try model.map { try SpecFile.load(ModelDescription.self, path: $0).value }
            ?? Checkpoint.description(in: file, source: checkpoint) ?? trainingSpec.model
        let network: Network
        do {
            network = try Network(description)
        } catch let error as NNError {
            throw NNError("\(model ?? checkpoint): \(error.description)")
        }
        let loaded = try Checkpoint.load(file, into: network, source: checkpoint)
        let data = try SpecFile.loadData(trainingSpec, base: base, path: spec)
        let lossFunction = loss ?? trainingSpec.train.loss
        if let problem = lossFunction.incompatibility(network: network, dataset: data.train) {
            throw NNError("cannot evaluate \(checkpoint) on the data of \(spec): \(problem)")
        }
        let summary = try ModelSummary(model: loaded, data: data, loss: lossFunction, seconds: nil)
        print(json ? summary.json : summary.line)
    }
}

extension LossFunction: ExpressibleByArgument {}
