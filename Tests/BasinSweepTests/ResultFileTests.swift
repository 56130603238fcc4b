import BasinLandscape
import BasinNN
import BasinSweep
import BasinTestSupport
import Foundation
import Testing

@Suite struct ResultFileTests {
    let directory = TestSupport.temporaryDirectory("basin-results")

    @Test func roundTripAlignedAndChecked() throws {
        var file = ResultFile(metadata: .object(["kind": .string("test"), "nan": .number(.nan)]))
        file.set("a", TensorData([1, .nan, 3, 4, 5, 6] as [Float], shape: [2, 3]))
        file.set("b", TensorData([1, 0, 1] as [UInt8], shape: [3]))
        let data = try file.serialized()
        let back = try ResultFile(data: data, source: "r.npz")
        #expect(back.arrays.map(\.name) == ["a", "b"])
        #expect(back["a"]?.shape == [2, 3] && back["a"]?.floats()?[2] == 3 && back["a"]!.floats()![1].isNaN)
        #expect(back.metadata["kind"]?.stringValue == "test" && back.metadata["nan"] == .null)
        // Each array's data starts on a 64-byte boundary of the file.
        let bytes = [UInt8](data)
        var searchFrom = 0
        for _ in 0..<2 {
            let magic: [UInt8] = [0x93] + Array("NUMPY".utf8)
            let start = (searchFrom..<(bytes.count - 6)).first { Array(bytes[$0..<($0 + 6)]) == magic }!
            let headerLength = Int(bytes[start + 8]) | Int(bytes[start + 9]) << 8
            #expect(start % 64 == 0 && (start + 10 + headerLength) % 64 == 0)
            searchFrom = start + 1
        }
        // Flip a bit inside the value 3.0 of array 'a': the CRC-32 check catches it.
        var corrupt = data
        let three: [UInt8] = [0, 0, 0x40, 0x40]
        let at = (0..<(bytes.count - 4)).first { Array(bytes[$0..<($0 + 4)]) == three }!
        corrupt[at + 2] ^= 0x01
        #expect(throws: NNError.self) { try ResultFile(data: corrupt, source: "bad.npz") }
    }

    /// A non-square analytic surface: model y = w·x + b on one sample x = 1 with MSE target 0,
    /// directions d1 = (1, 0), d2 = (0, 2), so loss(x, y) = (w0 + b0 + x + 2y)². Row j of each
    /// array is y[j], column i is x[i].
    @Test func surfaceArraysAreRowsOfY() throws {
        let network = try Network(
            ModelDescription(input: [1], layers: [.linear(inFeatures: nil, outFeatures: 1, bias: true)]))
        let model = Model(network: network, parameters: [0.5, -0.25], state: [], batchesTracked: [])
        let data = Dataset(sampleShape: [1], features: [1], targets: [0], targetSize: 1)
        let job = LandscapeJob.surface(
            around: model, directions: [[1, 0], [0, 2]], x: Axis(min: -1, max: 1, steps: 5),
            y: Axis(min: 0, max: 1, steps: 3))
        let metrics = try job.evaluate(
            0..<job.points.count, data: DataSplit(train: data, test: data.subset([])), loss: .mse, batchNorm: .eval)
        let url = directory.appendingPathComponent("analytic.npz")
        try job.result(metrics).write(to: url)
        let file = try ResultFile(contentsOf: url)
        let loss = try #require(file["train_loss"])
        #expect(loss.shape == [3, 5])
        let xs = file["x"]!.floats()!, ys = file["y"]!.floats()!
        #expect(xs.count == 5 && ys.count == 3)
        let values = loss.floats()!
        for j in 0..<3 {
            for i in 0..<5 {
                let expected = pow(0.25 + Double(xs[i]) + 2 * Double(ys[j]), 2)
                #expect(abs(Double(values[j * 5 + i]) - expected) < 1e-5, "[\(j), \(i)]")
            }
        }
        #expect(file["test_loss"]!.floats()!.allSatisfy { $0.isNaN })
        #expect(file.metadata["complete"] == JSONValue.bool(true))
        if TestSupport.numpyAvailable {
            let script =
                "import sys, numpy as np, json; d = np.load(sys.argv[1]); l = d['train_loss']; "
                + "print(l.shape, l.dtype, d['done'].dtype, d['done'].all(), round(float(l[2, 4]), 4), json.loads(d['basin.json'])['kind'])"
            #expect(try TestSupport.python(script, url.path) == "(3, 5) float32 bool True 10.5625 surface")
        } else {
            print("numpy not importable: skipping the numpy.load check")
        }
    }

    /// Missing points are NaN with `done` false.
    @Test func partialResultsMarkMissingPoints() throws {
        let network = try Network(
            ModelDescription(input: [1], layers: [.linear(inFeatures: nil, outFeatures: 2, bias: true)]))
        let model = network.initialize(seed: 0)
        let job = LandscapeJob.surface(
            around: model, directions: [[Float](repeating: 0.1, count: 4)], x: Axis(min: 0, max: 1, steps: 4), y: nil)
        let data = Dataset(sampleShape: [1], features: [1, 2], labels: [0, 1])
        let some = try job.evaluate(
            0..<2, data: DataSplit(train: data, test: data.subset([])), loss: .crossEntropy, batchNorm: .eval)
        let result = job.result([some[0], nil, some[1], nil])
        #expect(result["done"]?.integers() == [1, 0, 1, 0])
        let loss = result["train_loss"]!.floats()!
        #expect(!loss[0].isNaN && loss[1].isNaN && !loss[2].isNaN && loss[3].isNaN)
        #expect(result.metadata["complete"] == JSONValue.bool(false))
        #expect(result.metadata["points_done"] == JSONValue.integer(2))
    }

    /// In both bases the plane puts each model at its stated coordinates: the loss there is
    /// that model's own loss.
    @Test(arguments: [false, true])
    func planeThroughThreeModels(_ orthonormal: Bool) throws {
        let network = try Network(
            ModelDescription(
                input: [4],
                layers: [
                    .linear(inFeatures: nil, outFeatures: 8, bias: true),
                    .batchNorm1d(numFeatures: nil, eps: 1e-5, momentum: 0.1),
                    .relu, .linear(inFeatures: nil, outFeatures: 3, bias: true),
                ]))
        var spec = DataSpec(source: "blobs")
        spec.features = 4
        spec.samples = 200
        let split = try spec.load(relativeTo: directory)
        let models = (1...3).map { seed -> Model in
            var m = network.initialize(seed: UInt64(seed))
            m.recomputeBatchNormStatistics(on: split.train)
            return m
        }
        let (_, coordinates) = LandscapeJob.plane(
            through: models, orthonormal: orthonormal, x: Axis(min: 0, max: 1, steps: 1),
            y: Axis(min: 0, max: 1, steps: 1))
        for (k, point) in coordinates.enumerated() {
            let (job, _) = LandscapeJob.plane(
                through: models, orthonormal: orthonormal, x: Axis(min: point[0], max: point[0], steps: 1),
                y: Axis(min: point[1], max: point[1], steps: 1))
            let metrics = try job.evaluate(0..<1, data: split, loss: .crossEntropy, batchNorm: .eval)[0]
            let own = try models[k].evaluate(on: split.train, loss: .crossEntropy)
            #expect(abs(metrics.trainLoss - own.meanLoss) <= 1e-5 * own.meanLoss, "model \(k + 1) at \(point)")
            #expect(metrics.trainAccuracy == own.accuracy)
        }
        if !orthonormal { #expect(coordinates == [[0, 0], [1, 0], [0, 1]]) }
    }
}

@Suite struct ResultExportTests {
    /// A 2×3 surface result with one point not computed.
    func surface() -> ResultFile {
        var file = ResultFile(metadata: .object(["kind": .string("surface")]))
        let loss: [Float] = [0.1, 0.25, .nan, 1e-8, 3.5, 12345.678]
        file.set("train_loss", TensorData(loss, shape: [2, 3]))
        file.set("train_acc", TensorData([Float](repeating: 0.5, count: 6), shape: [2, 3]))
        file.set("x", TensorData([-1, 0, 1] as [Double], shape: [3]))
        file.set("y", TensorData([-0.5, 0.5] as [Double], shape: [2]))
        file.set("done", TensorData([1, 1, 0, 1, 1, 1] as [UInt8], shape: [2, 3]))
        return file
    }

    @Test func csvHasARowPerPointXFastestAndValuesThatReadBackExactly() throws {
        let lines = try ResultExport.csv(surface(), source: "s.npz").split(separator: "\n").map(String.init)
        #expect(lines[0] == "x,y,train_loss,train_acc,done")
        #expect(lines.count == 7)
        #expect(lines[2] == "0.0,-0.5,0.25,0.5,1")
        #expect(lines[3] == "1.0,-0.5,nan,0.5,0")
        #expect(lines[4].hasPrefix("-1.0,0.5,"))
        let loss = lines.dropFirst().map { Float($0.split(separator: ",")[2])! }
        #expect(loss[5] == 12345.678 && loss[3] == 1e-8 && loss[2].isNaN)
    }

    @Test func vtkIsARectilinearGridWithEveryArray() throws {
        let text = try ResultExport.vtk(surface(), title: "surface\nof a", source: "s.npz")
        let lines = text.split(separator: "\n").map(String.init)
        #expect(lines[0] == "# vtk DataFile Version 3.0" && lines[1] == "Basin surface of a")
        #expect(lines[2] == "ASCII" && lines[3] == "DATASET RECTILINEAR_GRID" && lines[4] == "DIMENSIONS 3 2 1")
        #expect(lines[5] == "X_COORDINATES 3 double" && lines[6] == "-1.0 0.0 1.0")
        #expect(lines[7] == "Y_COORDINATES 2 double" && lines[8] == "-0.5 0.5")
        #expect(lines.contains("POINT_DATA 6"))
        let scalars = lines.filter { $0.hasPrefix("SCALARS") }
        #expect(scalars == ["SCALARS train_loss double 1", "SCALARS train_acc double 1", "SCALARS done int 1"])
        let loss = lines[lines.firstIndex(of: "SCALARS train_loss double 1")! + 2]
        #expect(loss == "0.1 0.25 nan 1e-08 3.5 12345.678")
    }

    @Test func pathsExportAlongTAndBadShapesAreRefused() throws {
        var path = ResultFile()
        path.set("train_loss", TensorData([1, 2] as [Float], shape: [2]))
        path.set("t", TensorData([0, 1] as [Double], shape: [2]))
        #expect(try ResultExport.csv(path, source: "p.npz") == "t,train_loss\n0.0,1.0\n1.0,2.0\n")
        path.set("t", TensorData([0, 0.5, 1] as [Double], shape: [3]))
        #expect(throws: NNError.self) { try ResultExport.csv(path, source: "p.npz") }
        #expect(throws: NNError.self) { try ResultExport.vtk(ResultFile(), title: "", source: "e.npz") }
    }
}
