import ArgumentParser
import BasinNN
import BasinTestSupport
import Foundation
import Testing

@testable import BasinCLI

/// Specs with typos, grids that cannot fit, checkpoints and data that cannot be right: each a
/// sentence naming the file, the place and (for a typo) the nearest valid name, and a failure,
/// never a run with defaults or an abort.
@Suite struct BadInputTests {
    let directory = TestSupport.temporaryDirectory("basin-bad-input")

    private func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    /// The message `basin` would print for these arguments ("" when they succeed).
    private func failure(_ arguments: [String]) -> String {
        do {
            var command = try BasinCommand.parseAsRoot(arguments)
            try command.run()
            return ""
        } catch {
            return BasinCommand.message(for: error)
        }
    }

    private func study(_ body: String) throws -> String {
        let network = try Network(
            ModelDescription(input: [2], layers: [.linear(inFeatures: nil, outFeatures: 2, bias: true)]))
        try Checkpoint.save(network.initialize(seed: 1), to: directory.appendingPathComponent("m.safetensors"))
        let text = """
            model: {input: [2], layers: [{type: linear, out_features: 2}]}
            data: {source: spirals, samples: 40}
            \(body)
            """
        let url = directory.appendingPathComponent("spec-\(UUID().uuidString).yaml")
        try Data(text.utf8).write(to: url)
        return url.path
    }

    @Test func typosInSpecKeysAreNamedWithTheNearestValidName() throws {
        let cases: [(String, String)] = [
            ("jobs:\n  - surface: {checkpoint: m.safetensors, x: \"-1:1:3\", y: \"-1:1:3\", nrom: filter}",
             "unknown key 'nrom' in jobs[0].surface; did you mean 'norm'?"),
            ("stages:\n  train: {seeed: 1}", "unknown key 'seeed' in stages.train; did you mean 'seeds'?"),
            ("stages:\n  train: {seeds: [0]}\n  hesian: {iterations: 5}",
             "unknown key 'hesian' in stages; did you mean 'hessian'?"),
            ("stages:\n  train: {seeds: [0, 1]}\n  connect: {aling: true}",
             "unknown key 'aling' in stages.connect; did you mean 'align'?"),
            ("train: {epoch: 3}\njobs:\n  - surface: {checkpoint: m.safetensors}",
             "unknown key 'epoch' in train; did you mean 'epochs'?"),
            ("swep: {shard_points: 5}\njobs:\n  - surface: {checkpoint: m.safetensors}",
             "unknown key 'swep' in the top level; did you mean 'sweep'?"),
            ("sweep: {shard_point: 5}\njobs:\n  - surface: {checkpoint: m.safetensors}",
             "unknown key 'shard_point' in sweep; did you mean 'shard_points'?"),
            // Each kind reads its own fields: another kind's field is not silently ignored.
            ("jobs:\n  - surface: {checkpoint: m.safetensors, t: \"0:1:5\"}", "unknown key 't' in jobs[0].surface"),
            ("jobs:\n  - interpolate: {from: m.safetensors, to: m.safetensors, x: \"0:1:5\"}",
             "unknown key 'x' in jobs[0].interpolate"),
            ("jobs:\n  - plane: {models: [m.safetensors, m.safetensors]}", "a plane needs three checkpoints, not 2"),
            ("jobs:\n  - plane: {models: [m.safetensors, m.safetensors, m.safetensors], basis: skew}",
             "is raw or orthonormal, not 'skew'"),
            ("jobs:\n  - surface: {x: \"0:1:5\"}", "missing field 'jobs[0].surface.checkpoint'"),
            ("jobs:\n  - surface: {x: \"0:1:5\", chekpoint: m.safetensors}",
             "unknown key 'chekpoint' in jobs[0].surface; did you mean 'checkpoint'?"),
        ]
        for (body, expected) in cases {
            let spec = try study(body)
            let message = failure(["run", spec, "--out", path("run-\(UUID().uuidString)"), "--workers", "0"])
            #expect(message.contains(expected), "\(body)\n→ \(message)")
            #expect(message.hasPrefix("Error: \(spec): ") || message.contains(spec), "\(message)")
            // `basin check` refuses it with the same sentence, before any run directory exists.
            #expect(failure(["check", spec]) == message)
        }
        // The same spec without the typo runs.
        let good = try study("jobs:\n  - surface: {checkpoint: m.safetensors, x: \"-1:1:3\", y: \"-1:1:3\", norm: filter}")
        #expect(failure(["run", good, "--out", path("good"), "--workers", "0"]) == "")
        // A study spec still serves `basin train` (its jobs and sweep are basin run's).
        #expect(failure(["train", good, "-o", path("t.safetensors"), "--epochs", "1"]) == "")
    }

    @Test func gridsThatCannotFitAreRefusedBeforeAllocating() throws {
        let line = try study("jobs:\n  - surface: {checkpoint: m.safetensors, line: true, x: \"0:1:1000000000\"}")
        let message = failure(["run", line, "--out", path("huge"), "--workers", "0"])
        #expect(message.contains("1000000000 steps; at most 1000000 are allowed"), "\(message)")
        let square = try study("jobs:\n  - surface: {checkpoint: m.safetensors, x: \"0:1:100000\", y: \"0:1:100000\"}")
        let big = failure(["run", square, "--out", path("square"), "--workers", "0"])
        #expect(big.contains("larger than 50000000 points"), "\(big)")
        #expect(failure(["check", line]) == message && failure(["check", square]) == big)
        #expect(!FileManager.default.fileExists(atPath: path("square") + "/results"))
    }

    @Test func checkpointsAndDataThatCannotBeRightAreNamed() throws {
        let network = try Network(
            ModelDescription(input: [2], layers: [.linear(inFeatures: nil, outFeatures: 2, bias: true)]))
        var model = network.initialize(seed: 1)
        model.parameters[1] = .nan
        try Checkpoint.save(model, to: directory.appendingPathComponent("nan.safetensors"))
        let spec = try study("jobs:\n  - surface: {checkpoint: nan.safetensors, x: \"-1:1:3\", y: \"-1:1:3\"}")
        let message = failure(["run", spec, "--out", path("nan-run"), "--workers", "0"])
        #expect(message.contains("nan.safetensors") && message.contains("'0.weight'") && message.contains("finite"), "\(message)")
        #expect(failure(["check", spec]) == message)
        #expect(!FileManager.default.fileExists(atPath: path("nan-run") + "/results"))

        // Features with an infinity, and a file with no rows.
        func npy(_ values: [Float], shape: [Int], name: String) throws {
            let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (\(shape.map(String.init).joined(separator: ", "))\(shape.count == 1 ? "," : "")), }"
            var text = header
            while (10 + text.utf8.count + 1) % 64 != 0 { text += " " }
            text += "\n"
            var data = Data([0x93]) + Data("NUMPY".utf8) + Data([1, 0])
            data.append(contentsOf: [UInt8(text.utf8.count & 0xFF), UInt8(text.utf8.count >> 8)])
            data.append(Data(text.utf8))
            values.withUnsafeBytes { data.append(contentsOf: $0) }
            try data.write(to: directory.appendingPathComponent(name))
        }
        try npy([1, 2, .infinity, 4], shape: [2, 2], name: "x.npy")
        try npy([0, 1], shape: [2], name: "y.npy")
        try npy([], shape: [0, 2], name: "empty.npy")
        try npy([], shape: [0], name: "none.npy")
        for (features, labels, expected) in [("x.npy", "y.npy", "is inf; features must be finite"), ("empty.npy", "none.npy", "no rows")] {
            let text = """
                model: {input: [2], layers: [{type: linear, out_features: 2}]}
                data: {source: files, train: {features: \(features), labels: \(labels)}}
                train: {epochs: 1}
                """
            let url = directory.appendingPathComponent("data-\(features).yaml")
            try Data(text.utf8).write(to: url)
            let refused = failure(["train", url.path, "-o", path("never.safetensors")])
            #expect(refused.contains(features) && refused.contains(expected), "\(refused)")
        }
        #expect(!FileManager.default.fileExists(atPath: path("never.safetensors")))
    }
}

extension BadInputTests {
    /// Durations and batch sizes from the spec become integers and deadlines: out of range they
    /// are refused by name (a lease of 1e300 s once trapped converting to milliseconds).
    @Test func sweepSettingsAndTheBatchNormConventionAreBounded() throws {
        let job = "\njobs:\n  - surface: {checkpoint: m.safetensors, x: \"-1:1:3\", y: \"-1:1:3\"}"
        for (body, expected) in [
            ("sweep: {lease_seconds: 1e300}", "lease_seconds"), ("sweep: {lease_seconds: 0.5}", "lease_seconds"),
            ("sweep: {shard_seconds: 0}", "shard_seconds"), ("sweep: {shard_seconds: .nan}", "shard_seconds"),
            ("bn_recompute: {batch_size: 0}", "batch_size"), ("bn_recompute: {weighting: mean}", "weighting"),
        ] {
            let spec = try study(body + job)
            let message = failure(["run", spec, "--out", path("bounded-\(UUID().uuidString)"), "--workers", "0"])
            #expect(message.contains(expected) && message.contains(spec), "\(body)\n→ \(message)")
            #expect(failure(["check", spec]) == message)
        }
        let good = try study("bn_recompute: {batch_size: 16, weighting: samples}" + job)
        #expect(failure(["check", good]) == "")
    }

    /// An artifact whose bytes no longer hash to its name (a bit flipped on disk) is found at
    /// the next start, set aside, and the job that made it runs again: the results come out
    /// the same as before the damage.
    @Test func aCorruptArtifactIsFoundByItsHashAndItsJobRunsAgain() throws {
        let spec = try study(
            "train: {epochs: 2}\nstages:\n  train: {seeds: [0]}\n  surface: {x: \"-1:1:3\", y: \"-1:1:3\"}")
        let run = path("corrupt-run")
        #expect(failure(["run", spec, "--out", run, "--workers", "0"]) == "")
        let surface = URL(fileURLWithPath: run).appendingPathComponent("results/surface")
        let file = try #require(try FileManager.default.contentsOfDirectory(atPath: surface.path).first)
        let before = try Data(contentsOf: surface.appendingPathComponent(file))
        // Flip a byte of the one checkpoint in the store.
        let artifacts = URL(fileURLWithPath: run).appendingPathComponent("artifacts")
        let blobs = (FileManager.default.enumerator(atPath: artifacts.path)?.compactMap { $0 as? String } ?? [])
            .filter { $0.split(separator: "/").last?.count == 64 }
        let blob = artifacts.appendingPathComponent(try #require(blobs.first))
        var bytes = try Data(contentsOf: blob)
        bytes[bytes.count / 2] ^= 0xFF
        try bytes.write(to: blob)
        #expect(failure(["run", spec, "--out", run, "--workers", "0"]) == "")
        #expect(FileManager.default.fileExists(atPath: artifacts.appendingPathComponent("corrupt").path))
        #expect(try Data(contentsOf: surface.appendingPathComponent(file)) == before)
        #expect(try Data(contentsOf: blob) != bytes)
    }
}
