import BasinNN
import BasinTestSupport
import Foundation
import Testing

/// The CIFAR sources as a user points them at the dataset's binary version: the records read
/// right, per-channel normalization, errors naming the file, and crop-and-flip augmentation
/// that depends only on (seed, epoch, sample).
@Suite struct CIFARTests {
    let directory = TestSupport.temporaryDirectory("basin-cifar")

    /// A record: label byte(s), then 1,024 red, 1,024 green, 1,024 blue bytes; pixel p of
    /// channel c of image `image` is (image·7 + c·50 + p) mod 256.
    func record(image: Int, labels: [UInt8]) -> [UInt8] {
        labels + (0..<3).flatMap { c in (0..<1024).map { p in UInt8((image * 7 + c * 50 + p) % 256) } }
    }

    func writeCIFAR10(imagesPerFile: Int) throws -> URL {
        let folder = directory.appendingPathComponent("cifar-10-batches-bin")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        for (f, name) in ((1...5).map { "data_batch_\($0).bin" } + ["test_batch.bin"]).enumerated() {
            let bytes = (0..<imagesPerFile).flatMap { i in
                record(image: f * imagesPerFile + i, labels: [UInt8((f * imagesPerFile + i) % 10)])
            }
            try Data(bytes).write(to: folder.appendingPathComponent(name))
        }
        return folder
    }

    @Test func readsCIFAR10AndCIFAR100BinaryRecords() throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        let folder = try writeCIFAR10(imagesPerFile: 3)
        var spec = DataSpec(source: "cifar10")
        spec.path = folder.path
        spec.normalize = false
        let split = try spec.load(relativeTo: directory)
        #expect(split.train.count == 15 && split.test.count == 3)
        #expect(split.train.sampleShape == [3, 32, 32] && split.train.classCount == 10)
        #expect(split.train.labels.prefix(12) == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1])
        // Image 4, green channel, pixel 5: (4·7 + 50 + 5) / 255.
        #expect(split.train.features[4 * 3072 + 1024 + 5] == Float(83) / 255)
        #expect(split.test.labels == [5, 6, 7])
        #expect(split.train.augmentation != nil)  // on by default for CIFAR

        // The first images only, and the folder above the binary one is pointed out.
        spec.samples = 4
        spec.testSamples = 2
        #expect(try spec.load(relativeTo: directory).train.count == 4)
        spec.path = directory.path
        #expect {
            try spec.load(relativeTo: directory)
        } throws: { "\($0)".contains("give that folder as data.path") && "\($0)".contains("cifar-10-batches-bin") }

        // CIFAR-100: coarse then fine label; the fine one is the class.
        let hundred = directory.appendingPathComponent("c100")
        try FileManager.default.createDirectory(at: hundred, withIntermediateDirectories: true)
        try Data((0..<4).flatMap { record(image: $0, labels: [UInt8($0), UInt8(90 + $0)]) }).write(
            to: hundred.appendingPathComponent("train.bin"))
        try Data(record(image: 9, labels: [1, 42])).write(to: hundred.appendingPathComponent("test.bin"))
        var c100 = DataSpec(source: "cifar100")
        c100.path = hundred.path
        let split100 = try c100.load(relativeTo: directory)
        #expect(split100.train.labels == [90, 91, 92, 93] && split100.test.labels == [42])
        #expect(split100.train.classCount == 100)
        // Per channel: the training set's channels have mean 0 and std 1 now.
        let (mean, std) = split100.train.channelStatistics()
        #expect(mean.allSatisfy { abs($0) < 1e-5 } && std.allSatisfy { abs($0 - 1) < 1e-4 }, "\(mean) \(std)")
    }

    @Test func malformedFilesAreOneSentenceNamingTheFile() throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        let folder = try writeCIFAR10(imagesPerFile: 2)
        let truncated = folder.appendingPathComponent("data_batch_3.bin")
        try Data(count: 3073 * 2 - 5).write(to: truncated)
        var spec = DataSpec(source: "cifar10")
        spec.path = folder.path
        #expect {
            try spec.load(relativeTo: directory)
        } throws: { "\($0)".hasPrefix(truncated.path) && "\($0)".contains("3073-byte") }
        var bad = record(image: 0, labels: [12])
        bad += record(image: 1, labels: [3])
        try Data(bad).write(to: truncated)
        #expect {
            try spec.load(relativeTo: directory)
        } throws: { "\($0)".contains("record 0 has label 12") }
        try FileManager.default.removeItem(at: folder.appendingPathComponent("test_batch.bin"))
        try Data(count: 3073).write(to: truncated)
        #expect {
            try spec.load(relativeTo: directory)
        } throws: { "\($0)".contains("test_batch.bin: cannot read the file") }
        var missing = DataSpec(source: "cifar10")
        #expect { try missing.load(relativeTo: directory) } throws: { "\($0)".contains("needs 'path'") }
        missing.source = "cifar-synthetic"
        missing.mean = [0.5, 0.5]
        #expect { try missing.load(relativeTo: directory) } throws: { "\($0)".contains("one value per channel") }
    }

    /// The crop-and-flip of torchvision (`RandomCrop(32, padding=4)` then `RandomHorizontalFlip`):
    /// every augmented image is a shifted, maybe mirrored window of the original with the pad
    /// value outside it; the draw depends on (seed, epoch, index) only.
    @Test func augmentationIsAShiftedMirroredWindowKeyedBySeedEpochAndIndex() throws {
        var spec = DataSpec(source: "cifar-synthetic")
        spec.samples = 64
        spec.seed = 3
        let split = try spec.load(relativeTo: directory)
        let data = split.train
        let augmentation = try #require(data.augmentation)
        #expect(augmentation.padding == 4 && augmentation.flip && augmentation.fill.count == 3)
        let workspace = Workspace(network: try Network(ModelDescription(input: [3, 32, 32], layers: [.flatten])), capacity: 8)
        func gathered(_ indices: [Int], epoch: Int, seed: UInt64) throws -> [[Float]] {
            var model = try Network(ModelDescription(input: [3, 32, 32], layers: [.flatten])).initialize(seed: 0)
            var gradients: [Float] = []
            _ = Trainer.gradient(
                of: &model, on: data, samples: indices[...], loss: .crossEntropy, mode: .eval, workspace: workspace,
                into: &gradients, augment: (seed, epoch))
            return indices.indices.map { Array(workspace.input[($0 * 3072)..<(($0 + 1) * 3072)]) }
        }
        let a = try gathered([5, 9, 2], epoch: 1, seed: 7)
        let b = try gathered([2, 5], epoch: 1, seed: 7)
        #expect(a[0] == b[1] && a[2] == b[0])  // the same sample, epoch and seed: the same crop
        // Another epoch draws another crop (among 8 epochs, at least one differs).
        let moved = (0..<8).contains { e in (try? gathered([5], epoch: e + 2, seed: 7))?[0] != a[0] }
        #expect(moved)
        // Each result is a window of the original at some shift, maybe mirrored.
        let original = Array(data.features[(5 * 3072)..<(6 * 3072)])
        var shifts: Set<String> = []
        for epoch in 0..<40 {
            let image = try gathered([5], epoch: epoch, seed: 7)[0]
            var found = false
            search: for top in -4...4 {
                for left in -4...4 {
                    for mirrored in [false, true] {
                        var same = true
                        check: for c in 0..<3 {
                            for y in 0..<32 {
                                for x in 0..<32 {
                                    let sy = y + top, sx = (mirrored ? 31 - x : x) + left
                                    let expected =
                                        sy >= 0 && sy < 32 && sx >= 0 && sx < 32
                                        ? original[(c * 32 + sy) * 32 + sx] : augmentation.fill[c]
                                    if image[(c * 32 + y) * 32 + x] != expected {
                                        same = false
                                        break check
                                    }
                                }
                            }
                        }
                        if same {
                            found = true
                            shifts.insert("\(top),\(left),\(mirrored)")
                            break search
                        }
                    }
                }
            }
            #expect(found, "epoch \(epoch): not a shifted window of the original")
        }
        #expect(shifts.count > 10, "\(shifts)")
    }

    /// cifar-synthetic carries a signal a small CNN learns, and training on it is bitwise
    /// reproducible, augmentation included.
    @Test func syntheticCIFARIsLearnableAndTrainingIsReproducible() throws {
        var spec = DataSpec(source: "cifar-synthetic")
        spec.samples = 600
        spec.classes = 4
        let split = try spec.load(relativeTo: directory)
        let description = try ModelDescription.fromJSON(
            """
            {"input": [3, 32, 32], "layers": [
              {"type": "conv2d", "out_channels": 8, "kernel_size": 3, "stride": 2, "padding": 1}, "relu",
              {"type": "adaptive_avgpool2d", "output_size": 1}, "flatten", {"type": "linear", "out_features": 4}]}
            """, source: "test")
        var config = TrainingConfig()
        config.optimizer = .sgd
        config.momentum = 0.9
        config.nesterov = true
        config.weightDecay = 5e-4
        config.lr = 0.05
        config.epochs = 6
        config.batchSize = 32
        config.schedule = .garipov
        func train() throws -> Model {
            var model = try Network(description).initialize(seed: 1)
            try Trainer(config: config).train(&model, on: split.train)
            return model
        }
        let first = try train(), second = try train()
        #expect(first.parameters == second.parameters)
        let accuracy = try first.evaluate(on: split.test, loss: .crossEntropy).accuracy
        #expect(accuracy > 0.5, "test accuracy \(accuracy) on 4 classes")
    }
}
