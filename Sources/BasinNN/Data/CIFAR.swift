import Foundation

/// The CIFAR datasets' binary version, and a synthetic stand-in of the same shape.
///
/// CIFAR-10 (`cifar-10-batches-bin/`): `data_batch_1.bin` … `data_batch_5.bin` and
/// `test_batch.bin`, records of 1 label byte and 3,072 pixel bytes (1,024 red, green, blue,
/// row-major). CIFAR-100 (`cifar-100-binary/`): `train.bin` and `test.bin`, records of a
/// coarse and a fine label byte, then the pixels; the fine label (100 classes) is used.
/// Pixels become `byte / 255` as torchvision's `ToTensor` makes them.
public enum CIFAR {
    public static let shape = [3, 32, 32]
    static let pixels = 3072

    public enum Kind: String, Sendable {
        case cifar10, cifar100

        var classes: Int { self == .cifar10 ? 10 : 100 }
        var labelBytes: Int { self == .cifar10 ? 1 : 2 }
        var trainFiles: [String] { self == .cifar10 ? (1...5).map { "data_batch_\($0).bin" } : ["train.bin"] }
        var testFiles: [String] { self == .cifar10 ? ["test_batch.bin"] : ["test.bin"] }
        var folder: String { self == .cifar10 ? "cifar-10-batches-bin" : "cifar-100-binary" }
    }

    /// Reads the train and test files of `kind` from `directory` (`url` finds each by name:
    /// the folder's file, or a copy fetched into a worker's cache); `limit` keeps the first
    /// images of each split. A missing, truncated or malformed file is one sentence naming it.
    public static func load(
        _ kind: Kind, directory: URL, url: (String) -> URL, trainLimit: Int?, testLimit: Int?
    ) throws -> (Dataset, Dataset) {
        let first = url(kind.trainFiles[0])
        if !FileManager.default.fileExists(atPath: first.path) {
            let nested = directory.appendingPathComponent(kind.folder)
            if FileManager.default.fileExists(atPath: nested.appendingPathComponent(kind.trainFiles[0]).path) {
                throw NNError("\(first.path): no such file; the binary files are in \(nested.path): give that folder as data.path")
            }
        }
        let train = try read(kind, kind.trainFiles.map(url), limit: trainLimit)
        let test = try read(kind, kind.testFiles.map(url), limit: testLimit)
        return (train, test)
    }

    static func read(_ kind: Kind, _ files: [URL], limit: Int?) throws -> Dataset {
        let record = kind.labelBytes + pixels
        var features: [Float] = [], labels: [Int32] = []
        let table = (0...255).map { Float($0) / 255 }
        for url in files {
            if let limit, labels.count >= limit { break }
            guard let data = FileManager.default.contents(atPath: url.path) else {
                throw NNError(
                    "\(url.path): cannot read the file (the \(kind.rawValue) binary version needs \((kind.trainFiles + kind.testFiles).joined(separator: ", ")))")
            }
            guard !data.isEmpty, data.count % record == 0 else {
                throw NNError(
                    "\(url.path): \(data.count) bytes is not a whole number of \(record)-byte \(kind.rawValue) records (is it the binary version, not the Python one?)")
            }
            let count = min(data.count / record, (limit ?? Int.max) - labels.count)
            features.reserveCapacity(features.count + count * pixels)
            try data.withUnsafeBytes { (bytes: UnsafeRawBufferPointer) in
                for r in 0..<count {
                    let base = r * record
                    let label = Int32(bytes[base + kind.labelBytes - 1])
                    guard label < kind.classes else {
                        throw NNError(
                            "\(url.path): record \(r) has label \(label), outside the \(kind.classes) classes of \(kind.rawValue)")
                    }
                    labels.append(label)
                    for p in 0..<pixels { features.append(table[Int(bytes[base + kind.labelBytes + p])]) }
                }
            }
        }
        return Dataset(sampleShape: shape, features: features, labels: labels, classCount: kind.classes)
    }

    /// CIFAR-shaped images with a learnable signal, for tests, benches and examples without the
    /// dataset: each class has a colour pattern (a tint and a few low-frequency waves per
    /// channel, drawn from `seed`); an image is its class's pattern at a random strength and
    /// brightness, plus pixel noise, quantized to bytes as real images are.
    public static func synthetic(samples: Int, classes: Int, noise: Double, seed: UInt64) -> Dataset {
        let (c, h, w) = (3, 32, 32)
        var templates = [[Float]](repeating: [], count: classes)
        for k in 0..<classes {
            var random = RandomSource(seed: seed, stream: RandomStream.data.id(1_000 + k))
            var template = [Float](repeating: 0, count: c * h * w)
            for ch in 0..<c {
                // A tint per class and channel, which survives crops, flips and pooling ...
                let tint = Float(random.uniform(-0.6, 0.6))
                for j in 0..<(h * w) { template[ch * h * w + j] = tint }
                // ... and waves, which a convolution can tell apart.
                for _ in 0..<3 {
                    let fx = random.uniform(0.5, 3), fy = random.uniform(0.5, 3)
                    let phase = random.uniform(0, 2 * .pi), amplitude = random.uniform(0.3, 1)
                    for y in 0..<h {
                        for x in 0..<w {
                            let value = amplitude * sin(2 * .pi * (fx * Double(x) / Double(w) + fy * Double(y) / Double(h)) + phase)
                            template[(ch * h + y) * w + x] += Float(value / 3)
                        }
                    }
                }
            }
            templates[k] = template
        }
        var features = [Float](repeating: 0, count: samples * c * h * w)
        var labels = [Int32](repeating: 0, count: samples)
        for i in 0..<samples {
            var random = RandomSource(seed: seed, stream: RandomStream.data.id(), offset: UInt64(i) << 16)
            let k = random.nextInt(below: classes)
            labels[i] = Int32(k)
            let strength = random.uniform(0.15, 0.35), offset = random.uniform(0.35, 0.65)
            for j in 0..<(c * h * w) {
                let value = offset + strength * Double(templates[k][j]) + noise * random.nextGaussian()
                features[i * c * h * w + j] = Float((min(max(value, 0), 1) * 255).rounded()) / 255
            }
        }
        return Dataset(sampleShape: [c, h, w], features: features, labels: labels, classCount: classes)
    }
}

extension Dataset {
    /// Per-channel mean and standard deviation (population) of `[C, …]` samples, in Double.
    public func channelStatistics() -> (mean: [Double], std: [Double]) {
        let c = sampleShape.first ?? 1, plane = sampleSize / max(c, 1), n = count
        var sums = [Double](repeating: 0, count: c), squares = [Double](repeating: 0, count: c)
        for i in 0..<n {
            for ch in 0..<c {
                let start = i * sampleSize + ch * plane
                var s = 0.0, q = 0.0
                for j in start..<(start + plane) {
                    let v = Double(features[j])
                    s += v
                    q += v * v
                }
                sums[ch] += s
                squares[ch] += q
            }
        }
        let total = Double(max(n * plane, 1))
        let mean = sums.map { $0 / total }
        let std = zip(squares, mean).map { q, m in max(q / total - m * m, 0).squareRoot() }
        return (mean, std.map { $0 < 1e-12 ? 1 : $0 })
    }

    /// `(x − mean[c]) / std[c]` per channel (torchvision's `Normalize`).
    public mutating func normalizeChannels(mean: [Double], std: [Double]) {
        let c = sampleShape.first ?? 1, plane = sampleSize / max(c, 1)
        for i in 0..<count {
            for ch in 0..<c {
                let m = Float(mean[ch]), s = Float(std[ch]), start = i * sampleSize + ch * plane
                for j in start..<(start + plane) { features[j] = (features[j] - m) / s }
            }
        }
    }
}
