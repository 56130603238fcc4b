import Foundation

/// Where a study's data comes from: a built-in generator or files, and how it is split and
/// normalized. Decoded from the `data:` section of a spec.
public struct DataSpec: Codable, Sendable, Equatable {
    /// Files for one split: `.npy` or IDX features and labels, or one CSV.
    public struct Files: Codable, Sendable, Equatable {
        public var features: String?
        public var labels: String?
        public var csv: String?
        /// CSV column holding the label; negative counts from the end (default -1, the last).
        public var labelColumn: Int?

        public init(features: String? = nil, labels: String? = nil, csv: String? = nil, labelColumn: Int? = nil) {
            self.features = features
            self.labels = labels
            self.csv = csv
            self.labelColumn = labelColumn
        }

        private enum CodingKeys: String, CodingKey { case features, labels, csv, labelColumn = "label_column" }
    }

    /// `blobs`, `spirals`, `teacher`, `cifar-synthetic`, `cifar10` / `cifar100` (the binary
    /// version's files in `path`), or `files` (train/test below).
    public var source: String
    public var samples: Int?
    public var features: Int?
    public var classes: Int?
    public var noise: Double?
    public var spread: Double?
    public var turns: Double?
    public var hidden: Int?
    public var seed: UInt64?
    public var train: Files?
    public var test: Files?
    /// Share of the samples held out as the test set when no test files are given (default 0.2).
    public var testFraction: Double?
    /// Standardize each feature with the training set's mean and standard deviation (default true).
    public var normalize: Bool?
    /// Shape of one sample, to reshape flat features (for example `[1, 28, 28]`).
    public var shape: [Int]?
    /// The folder of a CIFAR source's binary files.
    public var path: String?
    /// Test images kept (a CIFAR source's first ones); `samples` keeps the first training images.
    public var testSamples: Int?
    /// Per-channel mean and standard deviation to normalize with (torchvision's `Normalize`);
    /// CIFAR sources default to the training set's own.
    public var mean: [Double]?
    public var std: [Double]?
    /// Random crop of the 4-padded image and horizontal flip in training (default: on for
    /// CIFAR sources, off otherwise).
    public var augment: Bool?

    public init(source: String) {
        self.source = source
    }

    private enum CodingKeys: String, CodingKey {
        case source, samples, features, classes, noise, spread, turns, hidden, seed, train, test
        case testFraction = "test_fraction", normalize, shape
        case path, testSamples = "test_samples", mean, std, augment
    }

    public static let builtinSources = ["blobs", "spirals", "teacher", "cifar-synthetic"]

    /// The CIFAR dataset a source names, if it names one.
    var cifar: CIFAR.Kind? { CIFAR.Kind(rawValue: source) }

    /// Whether samples are normalized per channel (image datasets) rather than per feature.
    var normalizesChannels: Bool { cifar != nil || source == "cifar-synthetic" || mean != nil || std != nil }
}

/// A training set and a test set, ready for a model.
public struct DataSplit: Sendable {
    public var train: Dataset
    public var test: Dataset

    public init(train: Dataset, test: Dataset) {
        self.train = train
        self.test = test
    }
}

extension DataSpec {
    /// The files a `files` source reads, as written (train then test; features, labels, csv).
    public var files: [String] {
        if let cifar, let path {
            return (cifar.trainFiles + cifar.testFiles).map { (path as NSString).appendingPathComponent($0) }
        }
        guard source == "files" else { return [] }
        return [train, test].compactMap { $0 }.flatMap { [$0.features, $0.labels, $0.csv].compactMap { $0 } }
    }

    /// Generates or reads the data, splits and normalizes it. Relative paths are resolved
    /// against `base` (the spec's directory), unless `locate` knows where a file is (a copy
    /// fetched into a worker's cache).
    public func load(relativeTo base: URL, locate: (String) -> URL? = { _ in nil }) throws -> DataSplit {
        func field(_ name: String, _ value: Int?, _ fallback: Int, minimum: Int) throws -> Int {
            let v = value ?? fallback
            guard v >= minimum else { throw SpecError("data", "'\(name)' must be at least \(minimum), got \(v)") }
            return v
        }
        let seed = self.seed ?? 0
        if cifar == nil, path != nil || testSamples != nil {
            throw SpecError(
                "data", "'\(path != nil ? "path" : "test_samples")' belongs to the cifar10 and cifar100 sources, not '\(source)'")
        }
        var full: Dataset
        var givenTest: Dataset?
        switch source {
        case "blobs":
            full = SyntheticData.blobs(
                samples: try field("samples", samples, 1000, minimum: 2),
                features: try field("features", features, 2, minimum: 1),
                classes: try field("classes", classes, 3, minimum: 2), spread: spread ?? 3, noise: noise ?? 1,
                seed: seed)
        case "spirals":
            full = SyntheticData.spirals(
                samples: try field("samples", samples, 1000, minimum: 2),
                classes: try field("classes", classes, 2, minimum: 2),
                turns: turns ?? 1, noise: noise ?? 0.05, seed: seed)
        case "teacher":
            full = SyntheticData.teacher(
                samples: try field("samples", samples, 2000, minimum: 2),
                features: try field("features", features, 10, minimum: 1),
                classes: try field("classes", classes, 4, minimum: 2),
                hidden: try field("hidden", hidden, 32, minimum: 1), seed: seed)
        case "cifar-synthetic":
            full = CIFAR.synthetic(
                samples: try field("samples", samples, 2000, minimum: 2),
                classes: try field("classes", classes, 10, minimum: 2), noise: noise ?? 0.08, seed: seed)
        case "cifar10", "cifar100":
            guard let kind = cifar, let path else {
                throw SpecError("data", "source '\(source)' needs 'path', the folder of its binary files")
            }
            let directory = path.hasPrefix("/") ? URL(fileURLWithPath: path) : base.appendingPathComponent(path)
            let (train, test) = try CIFAR.load(
                kind, directory: directory,
                url: { locate((path as NSString).appendingPathComponent($0)) ?? directory.appendingPathComponent($0) },
                trainLimit: samples.map { try field("samples", $0, 1, minimum: 1) },
                testLimit: testSamples.map { try field("test_samples", $0, 1, minimum: 1) })
            full = train
            givenTest = test
        case "files":
            guard let train else { throw SpecError("data", "source 'files' needs a 'train' section") }
            full = try DataFiles.load(train, relativeTo: base, field: "data.train", locate: locate)
            if let test { givenTest = try DataFiles.load(test, relativeTo: base, field: "data.test", locate: locate) }
        default:
            throw SpecError(
                "data", "unknown source '\(source)' (known: blobs, spirals, teacher, cifar-synthetic, cifar10, cifar100, files)")
        }
        if let shape {
            try DataFiles.reshape(&full, to: shape, field: "data.shape")
            if givenTest != nil { try DataFiles.reshape(&givenTest!, to: shape, field: "data.shape") }
        }
        var split: DataSplit
        if let givenTest {
            guard givenTest.sampleShape == full.sampleShape else {
                throw SpecError(
                    "data", "test samples have shape \(givenTest.sampleShape) but train samples \(full.sampleShape)")
            }
            split = DataSplit(train: full, test: givenTest)
        } else {
            let fraction = testFraction ?? 0.2
            guard fraction >= 0, fraction < 1 else {
                throw SpecError("data", "'test_fraction' must be in [0, 1), got \(fraction)")
            }
            let (train, test) = full.split(testFraction: fraction, seed: seed)
            split = DataSplit(train: train, test: test)
        }
        if split.train.isClassification {
            let classes = max(split.train.classCount, split.test.classCount)
            split.train.classCount = classes
            split.test.classCount = classes
        }
        var fill: [Float]?
        if normalize ?? true, normalizesChannels {
            let channels = split.train.sampleShape.first ?? 1
            let own = split.train.channelStatistics()
            let mean = self.mean ?? own.mean, std = self.std ?? own.std
            guard split.train.sampleShape.count == 3, mean.count == channels, std.count == channels else {
                throw SpecError(
                    "data", "'mean' and 'std' need one value per channel of [channels, height, width] samples (\(channels) here)")
            }
            guard std.allSatisfy({ $0 > 0 && $0.isFinite }), mean.allSatisfy(\.isFinite) else {
                throw SpecError("data", "'std' must be positive and 'mean' finite")
            }
            split.train.normalizeChannels(mean: mean, std: std)
            split.test.normalizeChannels(mean: mean, std: std)
            fill = zip(mean, std).map { Float(-$0 / $1) }
        } else if normalize ?? true {
            let (mean, std) = split.train.featureStatistics()
            split.train.normalize(mean: mean, std: std)
            split.test.normalize(mean: mean, std: std)
        }
        if augment ?? (cifar != nil || source == "cifar-synthetic") {
            let shape = split.train.sampleShape
            guard shape.count == 3 else {
                throw SpecError("data", "'augment' crops and flips images; samples of shape \(shape) are not [channels, height, width]")
            }
            split.train.augmentation = Augmentation(fill: fill ?? [Float](repeating: 0, count: shape[0]))
        }
        return split
    }
}
