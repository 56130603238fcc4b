import ArgumentParser
import BasinNN
import Foundation

/// `basin data`: the spec's data, exactly as training sees it, written as `.npy` files.
struct DataCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "data",
        abstract: "Write the spec's train/test split (after normalization) as .npy files.",
        discussion:
            "Writes train_x.npy, train_y.npy, test_x.npy and test_y.npy: features float32 shaped [n, sample shape], labels int64 (or float32 targets)."
    )

    @Argument(help: "Spec file (YAML) with a 'data' section.")
    var spec: String

    @Option(name: .shortAndLong, help: "Directory to write into.")
    var output: String

    func run() throws {
        let (trainingSpec, base) = try SpecFile.trainingSpec(spec)
        let split = try SpecFile.loadData(trainingSpec, base: base, path: spec)
        let directory = URL(fileURLWithPath: output)
        for (name, set) in [("train", split.train), ("test", split.test)] {
            let x = TensorData(set.features, shape: [set.count] + set.sampleShape)
            try NpyArray(x).write(to: directory.appendingPathComponent("\(name)_x.npy"))
            let y =
                set.isClassification
                ? TensorData(set.labels.map { Int64($0) }, shape: [set.count])
                : TensorData(set.targets, shape: [set.count, set.targetSize])
            try NpyArray(y).write(to: directory.appendingPathComponent("\(name)_y.npy"))
        }
        print(
            "train \(split.train.count) samples, test \(split.test.count) samples, shape \(split.train.sampleShape) -> \(output)"
        )
    }
}
