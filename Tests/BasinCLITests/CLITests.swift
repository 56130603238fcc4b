import ArgumentParser
import BasinNN
import BasinSweep
import BasinTestSupport
import Foundation
import Testing

@testable import BasinCLI

/// The commands driven in-process, as a user types them.
@Suite struct CLITests {
    let directory = TestSupport.temporaryDirectory("basin-cli")

    private func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    private func run(_ arguments: [String]) throws {
        var command = try BasinCommand.parseAsRoot(arguments)
        try command.run()
    }

    /// The message and exit code `basin` would print for these arguments.
    private func failure(_ arguments: [String]) -> (message: String, code: Int32) {
        do {
            try run(arguments)
            return ("", 0)
        } catch {
            return (BasinCommand.message(for: error), BasinCommand.exitCode(for: error).rawValue)
        }
    }

    @Test func trainThenEvalWithSnapshotsIsReproducible() throws {
        try run(["example", "spirals", "-o", path("spirals.yaml")])
        try run([
            "train", path("spirals.yaml"), "-o", path("a.safetensors"), "--epochs", "3", "--snapshots", path("snaps"),
        ])
        try run(["train", path("spirals.yaml"), "-o", path("b.safetensors"), "--epochs", "3"])
        let a = try Data(contentsOf: URL(fileURLWithPath: path("a.safetensors")))
        let b = try Data(contentsOf: URL(fileURLWithPath: path("b.safetensors")))
        #expect(a == b)
        let snapshots = try FileManager.default.contentsOfDirectory(atPath: path("snaps")).sorted()
        #expect(snapshots == (0...3).map { String(format: "epoch-%04d.safetensors", $0) })
        // The last snapshot is the final model; the first is the initialization.
        let last = try Checkpoint.load(contentsOf: URL(fileURLWithPath: path("snaps/epoch-0003.safetensors")))
        let final = try Checkpoint.load(contentsOf: URL(fileURLWithPath: path("a.safetensors")))
        #expect(last.parameters == final.parameters)
        let first = try Checkpoint.load(contentsOf: URL(fileURLWithPath: path("snaps/epoch-0000.safetensors")))
        #expect(first.parameters == final.network.initialize(seed: 0).parameters)
        try run(["eval", path("a.safetensors"), "--spec", path("spirals.yaml")])
        try run(["train", path("spirals.yaml"), "-o", path("c.safetensors"), "--epochs", "3", "--seed", "1"])
        let c = try Data(contentsOf: URL(fileURLWithPath: path("c.safetensors")))
        #expect(c != a)
    }

    @Test func everyExampleTrains() throws {
        // The digits example reads files scripts/digits-export writes: stand-ins of the same shape.
        let digits = directory.appendingPathComponent("digits")
        try FileManager.default.createDirectory(at: digits, withIntermediateDirectories: true)
        try NpyArray(TensorData(TestSupport.gaussian(300 * 64, seed: 1), shape: [300, 64])).serialized()
            .write(to: digits.appendingPathComponent("features.npy"))
        try NpyArray(TensorData((0..<300).map { Int64($0 % 10) }, shape: [300])).serialized()
            .write(to: digits.appendingPathComponent("labels.npy"))
        for name in Examples.all.keys.sorted() {
            try run(["example", name, "-o", path("\(name).yaml")])
            try run(["train", path("\(name).yaml"), "-o", path("\(name).safetensors"), "--epochs", "1"])
            let model = try Checkpoint.load(contentsOf: URL(fileURLWithPath: path("\(name).safetensors")))
            let finite = model.parameters.allSatisfy { $0.isFinite }
            #expect(finite, "\(name)")
        }
    }

    /// A study's sharpness with the top eigenvalues and the eigenvalue density: stored in the
    /// result (Lanczos's largest agrees with power iteration's λmax), drawn by `basin plot`, and
    /// bad settings refused by name.
    @Test func hessianTopEigenvaluesAndDensityAreStoredAndDrawn() throws {
        let spec = path("hessian.yaml")
        try Data(
            """
            model: {input: [2], layers: [{type: linear, out_features: 8}, tanh, {type: linear, out_features: 2}]}
            data: {source: spirals, samples: 200}
            train: {epochs: 3}
            stages:
              train: {seeds: [0]}
              hessian: {iterations: 100, tolerance: 1e-6, probes: 3, top_k: 4, density: {runs: 2, steps: 20, bins: 50}}
            """.utf8
        ).write(to: URL(fileURLWithPath: spec))
        try run(["run", spec, "--out", path("hessian-run"), "--workers", "0"])
        let result = try ResultFile(contentsOf: URL(fileURLWithPath: path("hessian-run/results/hessian/seed=0.npz")))
        let top = try #require(result["top_eigenvalues"]?.doubles())
        let lambda = try #require(result["top_eigenvalue"]?.doubles()?.first)
        #expect(top.count == 4 && top == top.sorted(by: >), "\(top)")
        #expect(abs(top[0] - lambda) <= 1e-3 * abs(lambda), "Lanczos \(top[0]) vs power iteration \(lambda)")
        let grid: [Double] = try #require(result["density_grid"]?.doubles())
        let density: [Double] = try #require(result["density"]?.doubles())
        #expect(grid.count == 50 && density.count == 50 && density.allSatisfy { $0 >= 0 })
        let mass = density.reduce(0, +) * (grid[1] - grid[0])
        #expect(abs(mass - 1) < 1e-6)
        try run(["plot", path("hessian-run/results/hessian/seed=0.npz"), "-o", path("density.svg")])
        let svg = try String(contentsOfFile: path("density.svg"), encoding: .utf8)
        #expect(svg.contains(">eigenvalue<") && svg.contains("top-4 eigenvalues"))
        let bad = path("bad-hessian.yaml")
        let text = try String(contentsOfFile: spec, encoding: .utf8)
        try Data(text.replacingOccurrences(of: "top_k: 4", with: "top_k: 0").utf8).write(to: URL(fileURLWithPath: bad))
        #expect(failure(["run", bad, "--out", path("bad-run"), "--workers", "0"]).message.contains("'top_k' must be from 1 to 1000"))
    }

    @Test func dataCommandWritesTheSplitAsNpy() throws {
        try run(["example", "cnn", "-o", path("cnn.yaml")])
        try run(["data", path("cnn.yaml"), "-o", path("data")])
        let x = try NpyArray(contentsOf: URL(fileURLWithPath: path("data/train_x.npy")))
        let y = try NpyArray(contentsOf: URL(fileURLWithPath: path("data/train_y.npy")))
        #expect(x.shape == [1600, 1, 8, 8] && x.dtype == .f32)
        #expect(y.shape == [1600] && y.dtype == .i64)
    }

    private func spec(_ name: String, _ text: String) throws -> String {
        try Data(text.utf8).write(to: URL(fileURLWithPath: path(name)))
        return path(name)
    }

    @Test func badInputGivesOneSentenceAndNonZeroExit() throws {
        let cases: [(String, String, String)] = [
            (
                "layer.yaml",
                "model:\n  input: [2]\n  layers: [{type: lineer, out_features: 3}]\ndata: {source: blobs}\n",
                "field 'model.layers[0]': unknown layer type 'lineer'"
            ),
            (
                "field.yaml", "model:\n  input: [2]\n  layers: [{type: linear}]\ndata: {source: blobs}\n",
                "missing field 'model.layers[0].out_features'"
            ),
            ("yaml.yaml", "model:\n  input: [2\n", "not valid YAML"),
            (
                "shape.yaml",
                "model:\n  input: [3]\n  layers: [{type: linear, out_features: 3}]\ndata: {source: blobs}\n",
                "the model takes [3] inputs but the data has samples of shape [2]"
            ),
            (
                "lr.yaml",
                "model:\n  input: [2]\n  layers: [{type: linear, out_features: 3}]\ndata: {source: blobs}\ntrain: {lr: 0}\n",
                "train: 'lr' must be positive"
            ),
            (
                "source.yaml", "model:\n  input: [2]\n  layers: [relu]\ndata: {source: mnist}\n",
                "data: unknown source 'mnist'"
            ),
        ]
        for (name, text, fragment) in cases {
            let file = try spec(name, text)
            let (message, code) = failure(["train", file, "-o", path("x.safetensors")])
            #expect(code != 0, "\(name)")
            #expect(message.contains(fragment), "\(name): \(message)")
            #expect(message.contains(name) || message.contains("cannot train"), "\(name) names no file: \(message)")
            #expect(!message.contains("\n"), "\(name): \(message)")
        }
        try run(["example", "spirals", "-o", path("ok.yaml")])
        let missing = failure(["eval", path("none.safetensors"), "--spec", path("ok.yaml")])
        #expect(missing.code != 0 && missing.message.contains("none.safetensors"))
        let example = failure(["example", "nope"])
        #expect(example.code != 0 && example.message.contains("unknown example 'nope'"))
        #expect(!FileManager.default.fileExists(atPath: path("x.safetensors")))
    }
}

/// `basin plot` on a study's summary.csv.
@Suite struct BarrierChartTests {
    @Test func summaryRowsBecomeBarsAndOtherCsvIsRefused() throws {
        let csv = """
            level,cell,name,train_loss,line_loss_barrier,aligned_loss_barrier,curve_loss_barrier
            pair,"lr=0.1","lr=0.1,seed=0-seed=1",,0.5,0.1,0.2
            cell_mean,"lr=0.1","",,0.5,0.1,0.2
            cell_std,"lr=0.1","",,0.05,0.01,0
            cell_mean,"lr=0.2","",,0.7,,0.3
            cell_std,"lr=0.2","",,0,,0

            """
        let chart = try BarrierChart(csv: csv, source: "summary.csv", quantity: "loss")
        #expect(chart.cells.map(\.name) == ["lr=0.1", "lr=0.2"])
        #expect(chart.cells[0].means == [0.5, 0.1, 0.2] && chart.cells[1].means == [0.7, nil, 0.3])
        let svg = chart.svg(title: "t")
        #expect(svg.contains("lr=0.2") && svg.contains("aligned line"))
        #expect(throws: NNError.self) {
            try BarrierChart(csv: "job,kind\nsurface/a,surface\n", source: "jobs.csv", quantity: "loss")
        }
        #expect(throws: NNError.self) {
            try BarrierChart(csv: "level,cell,name,line_loss_barrier\n", source: "s.csv", quantity: "loss")
        }
    }
}

extension CLITests {
    /// A saved curve evaluated from the command line on any range of t, extrapolation included,
    /// gives the numbers a study's curve job gives; and `basin check` lists the study's jobs with
    /// the ids and point counts its run uses.
    @Test func aSavedCurveEvaluatesAsTheStudyJobDoes() throws {
        try run(["example", "spirals", "-o", path("curve-spec.yaml")])
        try run(["train", path("curve-spec.yaml"), "-o", path("ca.safetensors"), "--epochs", "2"])
        try run(["train", path("curve-spec.yaml"), "-o", path("cb.safetensors"), "--epochs", "2", "--seed", "1"])
        try run([
            "curve", path("curve-spec.yaml"), path("ca.safetensors"), path("cb.safetensors"), "-o", path("fit.npz"),
            "--epochs", "1", "--points", "3", "--save-curve", path("fitted.safetensors"),
        ])
        try run([
            "curve", path("curve-spec.yaml"), "--from-file", path("fitted.safetensors"), "--t", "-0.5:1.5:41", "-o",
            path("from-file.npz"),
        ])
        let spec = try String(contentsOfFile: path("curve-spec.yaml"), encoding: .utf8)
        try Data((spec + "\njobs:\n  - curve: {name: saved, file: fitted.safetensors, t: \"-0.5:1.5:41\"}\n").utf8)
            .write(to: URL(fileURLWithPath: path("curve-study.yaml")))
        try run(["run", path("curve-study.yaml"), "--out", path("curve-run"), "--workers", "0"])
        let standalone = try ResultFile(contentsOf: URL(fileURLWithPath: path("from-file.npz")))
        let job = try ResultFile(contentsOf: URL(fileURLWithPath: path("curve-run/results/saved.npz")))
        #expect(standalone["t"]?.doubles()?.first == -0.5 && standalone["t"]?.doubles()?.last == 1.5)
        for metric in ["train_loss", "train_acc", "test_loss", "test_acc"] {
            let a = try #require(standalone[metric]?.floats()), b = try #require(job[metric]?.floats())
            #expect(a.count == 41 && a == b, "\(metric)")
        }
        #expect(standalone["line_train_loss"]?.floats()?.count == 41)
        // Fitting and --from-file do not mix; a fit needs both models.
        #expect(failure(["curve", path("curve-spec.yaml"), path("ca.safetensors"), "--from-file", path("fitted.safetensors"), "-o", path("x.npz")]).code != 0)
        #expect(failure(["curve", path("curve-spec.yaml"), path("ca.safetensors"), "-o", path("x.npz")]).code != 0)

        // basin check: the ids and point counts of the run, nothing written.
        try run(["check", path("curve-study.yaml")])
        let study = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path("curve-run/study.json"))))
        let ids = ((study as? [String: Any])?["jobs"] as? [[String: Any]])?.compactMap { $0["id"] as? String } ?? []
        let (checked, _, url) = try SpecFile.studySpec(path("curve-study.yaml"))
        let table = CheckCommand.table(try Study(spec: checked, executor: Executor(spec: checked, base: url.deletingLastPathComponent())))
        #expect(!ids.isEmpty && ids.allSatisfy { table.contains($0.prefix(12)) }, "\(table)")
        #expect(table.contains("43 (41 + 2 ends)"), "\(table)")
    }
}

extension CLITests {
    /// A study's per-cell table for a paper (`basin summary --format`), the same numbers as
    /// summary.csv's cell rows; and `basin plot` refuses what it would otherwise draw wrongly.
    @Test func aStudysTableForAPaperAndPlotRefusals() throws {
        try run(["example", "connectivity", "-o", path("conn.yaml")])
        try run(["run", path("conn.yaml"), "--out", path("conn-run"), "--workers", "0"])
        let spec = try SpecFile.studySpec(path("conn.yaml")).spec
        let summary = try #require(try Sweep.summary(directory: URL(fileURLWithPath: path("conn-run")), spec: spec))
        let csv = summary.cellTable(.csv).split(separator: "\n")
        #expect(csv.count == 3 && csv[0].hasPrefix("cell,models,pairs,train_loss_mean,train_loss_std"), "\(csv)")
        #expect(csv[1].hasPrefix("lr=0.05,3,3,") && csv[2].hasPrefix("lr=0.2,3,3,"), "\(csv)")
        // The means are summary.csv's cell_mean rows.
        let written = try String(contentsOfFile: path("conn-run/summary.csv"), encoding: .utf8).split(separator: "\n")
        let meanRow = try #require(written.first { $0.hasPrefix("cell_mean,\"lr=0.05\"") })
        let trainLoss = meanRow.split(separator: ",", omittingEmptySubsequences: false)[3]
        #expect(csv[1].split(separator: ",")[3] == trainLoss)
        let markdown = summary.cellTable(.markdown)
        #expect(markdown.contains("| cell | train loss |") && markdown.contains("| lr=0.05 | ") && markdown.contains(" ± "))
        let latex = summary.cellTable(.latex)
        #expect(latex.hasPrefix("\\begin{tabular}{l") && latex.contains("\\pm") && latex.hasSuffix("\\end{tabular}\n"))
        #expect(latex.contains("$\\lambda$max"))
        #expect(failure(["summary", path("conn-run"), "--format", "latex"]).code == 0)
        #expect(failure(["summary", path("conn-run"), "--format", "html"]).code != 0)
        #expect(failure(["summary", path("nowhere")]).message.contains("not a run directory"))

        #expect(failure(["plot", path("conn-run"), "-o", path("barriers.png")]).message.contains("SVG"))
        #expect(failure(["plot", path("conn-run"), "-o", path("b.svg"), "--metric", "bogus"]).message.contains("bogus"))
        #expect(failure(["plot", path("conn-run"), "-o", path("b.svg"), "--metric", "error"]).code == 0)
    }
}

extension CLITests {
    /// Plots for a paper: axes named after the directions, the models marked, a log scale chosen
    /// when the values span more than two decades, missing points called partial, a study's
    /// paths of one pair drawn together with the barrier marked, n on the barrier chart, and a
    /// plain sweep's run directory plotted result by result.
    @Test func plotsSayWhatTheyShow() throws {
        // A raw plane with one corner at loss 99 and one point missing.
        var plane = ResultFile()
        var loss: [Float] = (0..<9).map { Float(0.1 + 0.05 * Double($0)) }
        loss[8] = 99
        loss[4] = .nan
        plane.set("train_loss", TensorData(loss, shape: [3, 3]))
        plane.set("x", TensorData([0, 0.5, 1] as [Double], shape: [3]))
        plane.set("y", TensorData([0, 0.5, 1] as [Double], shape: [3]))
        plane.set("model_x", TensorData([0, 1, 0] as [Double], shape: [3]))
        plane.set("model_y", TensorData([0, 0, 1] as [Double], shape: [3]))
        plane.set("done", TensorData(dtype: .bool, shape: [3, 3], bytes: Data([1, 1, 1, 1, 0, 1, 1, 1, 1])))
        plane.metadata = .object(["kind": .string("plane"), "basis": .string("raw")])
        try plane.write(to: URL(fileURLWithPath: path("plane.npz")))
        try run(["plot", path("plane.npz")])
        let svg = try String(contentsOfFile: path("plane.svg"), encoding: .utf8)
        for text in ["α (toward θ₂)", "β (toward θ₃)", "θ1", "log scale", "partial: 8 of 9 points", "train loss"] {
            #expect(svg.contains(text), "the plane's plot lacks '\(text)'")
        }
        #expect(!svg.contains("0.3162") && !svg.contains("3.162"), "log ticks must sit at round values")

        // A study: its curve drawn with the straight and aligned lines of the same pair.
        try run(["example", "connectivity", "-o", path("plots.yaml")])
        try run(["run", path("plots.yaml"), "--out", path("plots-run"), "--workers", "0"])
        let curve = path("plots-run/results/curve/lr=0.05,seed=0-seed=1.npz")
        try run(["plot", curve, "-o", path("pair.svg")])
        let pair = try String(contentsOfFile: path("pair.svg"), encoding: .utf8)
        for text in ["straight line train", "aligned line train", "fitted curve train", "loss barrier", "θ₁", "t (θ₁ at 0"] {
            #expect(pair.contains(text), "the path plot lacks '\(text)'")
        }
        try run(["plot", path("plots-run")])
        #expect(try String(contentsOfFile: path("plots-run/barriers.svg"), encoding: .utf8).contains("n = 3"))

        // A plain sweep: every result plotted beside itself.
        try run(["example", "spirals", "-o", path("plain-model.yaml")])
        try run(["train", path("plain-model.yaml"), "-o", path("p0.safetensors"), "--epochs", "1"])
        try run(["train", path("plain-model.yaml"), "-o", path("p1.safetensors"), "--epochs", "1", "--seed", "1"])
        let text =
            try String(contentsOfFile: path("plain-model.yaml"), encoding: .utf8)
            + "\njobs:\n  - surface: {checkpoint: p0.safetensors, x: \"-1:1:5\", y: \"-1:1:5\"}\n"
            + "  - interpolate: {from: p0.safetensors, to: p1.safetensors, t: \"0:1:5\"}\n"
        try Data(text.utf8).write(to: URL(fileURLWithPath: path("plain.yaml")))
        try run(["run", path("plain.yaml"), "--out", path("plain-run"), "--workers", "0"])
        try run(["plot", path("plain-run")])
        let surface = try String(contentsOfFile: path("plain-run/results/surface/p0.svg"), encoding: .utf8)
        #expect(surface.contains("α (direction 1)") && surface.contains("θ (the model)"))
        #expect(FileManager.default.fileExists(atPath: path("plain-run/results/interpolate/p0-p1.svg")))
        #expect(failure(["plot", path("plain-run"), "-o", path("one.svg")]).code != 0)
    }
}
