import BasinNN
import Foundation

/// Shared helpers for Basin's tests.
public enum TestSupport {
    /// Whether `output` (a process's standard error) has a log line whose message is `message`
    /// and whose metadata holds every `key=value` of `fields` (swift-log's stream format:
    /// `… level label : key=value … [module] message`).
    public static func logged(_ output: String, _ message: String, _ fields: [String: String] = [:]) -> Bool {
        output.split(separator: "\n").contains { line in
            line.hasSuffix("] \(message)") && fields.allSatisfy { line.contains(" \($0.key)=\($0.value)") }
        }
    }

    /// A fresh empty directory under the system's temporary directory.
    public static func temporaryDirectory(_ name: String = "basin-test") -> URL {
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("\(name)-\(getpid())-\(UUID().uuidString.prefix(8))")
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// Deterministic Gaussian values.
    public static func gaussian(_ count: Int, seed: UInt64, scale: Double = 1) -> [Float] {
        var random = RandomSource(seed: seed, stream: 99)
        return (0..<count).map { _ in Float(random.nextGaussian() * scale) }
    }

    /// The set-up's virtual environment (scripts/setup): $BASIN_VENV, else the repository's `.venv`.
    public static var virtualEnvironment: URL {
        if let path = ProcessInfo.processInfo.environment["BASIN_VENV"], !path.isEmpty {
            return URL(fileURLWithPath: path, relativeTo: repositoryRoot).standardizedFileURL
        }
        return repositoryRoot.appendingPathComponent(".venv")
    }

    /// A program the virtual environment installed (`python`, `basin-worker`, ...), if it is there.
    public static func installed(_ name: String) -> URL? {
        let url = virtualEnvironment.appendingPathComponent("bin").appendingPathComponent(name)
        return FileManager.default.isExecutableFile(atPath: url.path) ? url : nil
    }

    /// The Python that tests run: the virtual environment's, else `python3` on PATH.
    static func pythonCommand(_ arguments: [String]) -> Process {
        let process = Process()
        if let python = installed("python") {
            process.executableURL = python
            process.arguments = arguments
        } else {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["python3"] + arguments
        }
        return process
    }

    /// Whether `python -c "import numpy"` works here.
    public static let numpyAvailable: Bool = {
        let process = pythonCommand(["-c", "import numpy"])
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return false }
        process.waitUntilExit()
        return process.terminationStatus == 0
    }()

    /// Runs `python -c script path` and returns its trimmed standard output.
    public static func python(_ script: String, _ path: String) throws -> String {
        let process = pythonCommand(["-c", script, path])
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: output, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The repository root (the directory holding Package.swift), found from this file.
    public static var repositoryRoot: URL {
        var url = URL(fileURLWithPath: #filePath)
        while url.path != "/" {
            url.deleteLastPathComponent()
            if FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) { return url }
        }
        return URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
    }
}

/// Compares a model's analytic parameter gradients with central finite differences of the
/// objective Σ r ⊙ output (r fixed, summed in Double).
public struct GradientCheck {
    public struct Mismatch: CustomStringConvertible {
        public var name: String
        public var index: Int
        public var analytic: Double
        public var numeric: Double
        public var description: String { "\(name)[\(index)]: analytic \(analytic) vs numeric \(numeric)" }
    }

    public var model: Model
    public let input: [Float]
    public let projection: [Float]
    public let batch: Int
    public let mode: ForwardMode

    public init(description: ModelDescription, batch: Int, mode: ForwardMode, seed: UInt64 = 1) throws {
        let network = try Network(description)
        model = network.initialize(seed: seed)
        // Nudge BatchNorm affine parameters and statistics away from 1/0 so they matter.
        for entry in network.parameterLayout.entries + network.stateLayout.entries
        where entry.name.contains("running")
            || (entry.shape.count == 1
                && network.batchNormNames.contains(entry.name.split(separator: ".").dropLast().joined(separator: ".")))
        {
            let noise = TestSupport.gaussian(entry.count, seed: seed &+ UInt64(entry.offset) &+ 7, scale: 0.3)
            for i in 0..<entry.count {
                if entry.name.hasSuffix("running_var") {
                    model.state[entry.offset + i] = 1 + abs(noise[i])
                } else if entry.name.hasSuffix("running_mean") {
                    model.state[entry.offset + i] = noise[i]
                } else {
                    model.parameters[entry.offset + i] += noise[i]
                }
            }
        }
        input = TestSupport.gaussian(batch * network.inputSize, seed: seed &+ 100)
        projection = TestSupport.gaussian(batch * network.outputSize, seed: seed &+ 200)
        self.batch = batch
        self.mode = mode
    }

    public func objective(_ parameters: [Float]) -> Double {
        var copy = model
        copy.parameters = parameters
        let workspace = Workspace(network: model.network, capacity: batch)
        input.withUnsafeBufferPointer { copy.forward($0.baseAddress!, batch: batch, mode: mode, workspace: workspace) }
        var sum = 0.0
        for (o, r) in zip(workspace.output(batch: batch), projection) { sum += Double(o) * Double(r) }
        return sum
    }

    public func analyticGradients() -> [Float] {
        var copy = model
        let workspace = Workspace(network: model.network, capacity: batch)
        input.withUnsafeBufferPointer { copy.forward($0.baseAddress!, batch: batch, mode: mode, workspace: workspace) }
        let gradOut = workspace.outputGradient(batch: batch)
        for i in 0..<gradOut.count { gradOut[i] = projection[i] }
        var gradients = [Float](repeating: .nan, count: model.parameters.count)
        input.withUnsafeBufferPointer { x in
            gradients.withUnsafeMutableBufferPointer {
                copy.backward(x.baseAddress!, batch: batch, mode: mode, workspace: workspace, gradients: $0)
            }
        }
        return gradients
    }

    /// Checks up to `perTensor` entries of every parameter tensor; returns the mismatches.
    public func mismatches(
        step: Float = 1e-3, relativeTolerance: Double = 2e-2, absoluteTolerance: Double = 3e-3, perTensor: Int = 24
    ) -> [Mismatch] {
        let analytic = analyticGradients()
        var found: [Mismatch] = []
        var random = RandomSource(seed: 5, stream: 5)
        for entry in model.network.parameterLayout.entries {
            let indices =
                entry.count <= perTensor
                ? Array(entry.range) : (0..<perTensor).map { _ in entry.offset + random.nextInt(below: entry.count) }
            for i in indices {
                var plus = model.parameters, minus = model.parameters
                plus[i] += step
                minus[i] -= step
                let actualStep = Double(plus[i]) - Double(minus[i])
                let numeric = (objective(plus) - objective(minus)) / actualStep
                let a = Double(analytic[i])
                if !(abs(a - numeric) <= absoluteTolerance + relativeTolerance * max(abs(a), abs(numeric))) {
                    found.append(Mismatch(name: entry.name, index: i - entry.offset, analytic: a, numeric: numeric))
                }
            }
        }
        return found
    }
}

extension TestSupport {
    /// Spirals data and two 2-32-32-2 MLPs trained from seeds 1 and 2 with Adam: the pair the
    /// path and alignment tests connect.
    public static func trainedSpiralsPair(samples: Int, epochs: Int) throws -> (split: DataSplit, ends: [Model]) {
        var dataSpec = DataSpec(source: "spirals")
        dataSpec.samples = samples
        let split = try dataSpec.load(relativeTo: URL(fileURLWithPath: "/"))
        let network = try Network(
            ModelDescription(
                input: [2],
                layers: [
                    .linear(inFeatures: nil, outFeatures: 32, bias: true), .relu,
                    .linear(inFeatures: nil, outFeatures: 32, bias: true), .relu,
                    .linear(inFeatures: nil, outFeatures: 2, bias: true),
                ]))
        var config = TrainingConfig()
        config.optimizer = .adam
        config.lr = 0.01
        config.epochs = epochs
        var ends: [Model] = []
        for seed in [UInt64(1), 2] {
            config.seed = seed
            var model = network.initialize(seed: seed)
            try Trainer(config: config).train(&model, on: split.train)
            ends.append(model)
        }
        return (split, ends)
    }
}
