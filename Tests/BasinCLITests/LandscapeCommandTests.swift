import ArgumentParser
import BasinNN
import BasinSweep
import BasinTestSupport
import Foundation
import Testing

@testable import BasinCLI

/// The landscape commands end to end, in-process.
@Suite struct LandscapeCommandTests {
    let directory = TestSupport.temporaryDirectory("basin-landscape")

    private func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    private func run(_ arguments: [String]) throws {
        var command = try BasinCommand.parseAsRoot(arguments)
        try command.run()
    }

    private func bytes(_ name: String) throws -> Data { try Data(contentsOf: URL(fileURLWithPath: path(name))) }

    @Test func everyCommandWritesReproducibleResultsNumpyCanOpen() throws {
        try run(["example", "spirals", "-o", path("s.yaml")])
        for seed in ["1", "2", "3"] {
            try run([
                "train", path("s.yaml"), "-o", path("m\(seed).safetensors"), "--epochs", "2", "--seed", seed,
                "--snapshots", path("snaps\(seed)"),
            ])
        }
        let jobs: [(String, [String])] = [
            (
                "surface",
                [
                    "surface", path("s.yaml"), "--checkpoint", path("m1.safetensors"), "--x", "-1:1:5", "--y",
                    "-0.5:0.5:3",
                ]
            ),
            (
                "line",
                [
                    "surface", path("s.yaml"), "--checkpoint", path("m1.safetensors"), "--line", "--x", "-1:1:7",
                    "--plain",
                ]
            ),
            (
                "pca",
                ["surface", path("s.yaml"), "--checkpoint", path("m1.safetensors"), "--trajectory", path("snaps1")]
            ),
            (
                "interpolate",
                ["interpolate", path("s.yaml"), path("m1.safetensors"), path("m2.safetensors"), "--t", "-0.5:1.5:9"]
            ),
            (
                "plane",
                [
                    "plane", path("s.yaml"), path("m1.safetensors"), path("m2.safetensors"), path("m3.safetensors"),
                    "--basis", "orthonormal",
                ]
            ),
            (
                "curve",
                [
                    "curve", path("s.yaml"), path("m1.safetensors"), path("m2.safetensors"), "--epochs", "2",
                    "--points", "5",
                ]
            ),
        ]
        for (name, arguments) in jobs {
            try run(arguments + ["-o", path("\(name)-a.npz")])
            try run(arguments + ["-o", path("\(name)-b.npz")])
            let a = try bytes("\(name)-a.npz"), b = try bytes("\(name)-b.npz")
            #expect(a == b, "\(name) is not bitwise reproducible")
            try run(["plot", path("\(name)-a.npz"), "-o", path("\(name).svg")])
            let svg = String(decoding: try bytes("\(name).svg"), as: UTF8.self)
            #expect(
                svg.hasPrefix("<svg") && svg.contains("fc64")
                    && svg.contains(name == "line" ? "surface" : name == "pca" ? "surface" : name))
            try run(["inspect", path("\(name)-a.npz")])
        }
        let curve = try ResultFile(contentsOf: URL(fileURLWithPath: path("curve-a.npz")))
        #expect(
            curve["line_train_loss"] != nil && curve.metadata["statistics"]?["train_loss_barrier"]?.doubleValue != nil)
        let pca = try ResultFile(contentsOf: URL(fileURLWithPath: path("pca-a.npz")))
        #expect(pca["trajectory_x"]?.shape == [3])  // epochs 0, 1, 2
        guard TestSupport.numpyAvailable else {
            print("numpy not importable: skipping numpy.load of the command results")
            return
        }
        for (name, _) in jobs {
            let script =
                "import sys, numpy as np; d = np.load(sys.argv[1]); print(sorted(k for k in d.files if k.endswith('loss'))[0], d['done'].all())"
            #expect(try TestSupport.python(script, path("\(name)-a.npz")).hasSuffix("True"), "\(name)")
        }
    }

    @Test func badLandscapeInputIsNamed() throws {
        try run(["example", "spirals", "-o", path("s.yaml")])
        try run(["example", "cnn", "-o", path("c.yaml")])
        try run(["train", path("s.yaml"), "-o", path("m.safetensors"), "--epochs", "1"])
        try run(["train", path("c.yaml"), "-o", path("c.safetensors"), "--epochs", "1"])
        func failure(_ arguments: [String]) -> String {
            do {
                try run(arguments)
                return ""
            } catch {
                #expect(BasinCommand.exitCode(for: error).rawValue != 0)
                return BasinCommand.message(for: error)
            }
        }
        #expect(
            failure(["interpolate", path("s.yaml"), path("m.safetensors"), path("c.safetensors"), "-o", path("x.npz")])
                .contains("differs from the one in"))
        #expect(
            failure([
                "surface", path("s.yaml"), "--checkpoint", path("m.safetensors"), "--x", "1:0:3", "-o", path("x.npz"),
            ]).contains("MAX > MIN"))
        #expect(
            failure(["plane", path("s.yaml"), path("m.safetensors"), "-o", path("x.npz")]).contains("three models"))
        #expect(failure(["plot", path("s.yaml"), "-o", path("x.svg")]).contains("s.yaml"))
        #expect(!FileManager.default.fileExists(atPath: path("x.npz")))
    }
}
