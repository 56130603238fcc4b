import BasinNN
import BasinTestSupport
import Foundation
import Testing

@Suite struct DataTests {
    let directory = TestSupport.temporaryDirectory("basin-data")

    private func write(_ bytes: [UInt8], _ name: String) throws {
        try Data(bytes).write(to: directory.appendingPathComponent(name))
    }

    /// A `.npy` exactly as `np.save` writes it (format 1.0, header padded to 64 bytes).
    private func numpyFile(descr: String, shape: String, payload: [UInt8]) -> [UInt8] {
        var header = "{'descr': '\(descr)', 'fortran_order': False, 'shape': \(shape), }"
        header += String(repeating: " ", count: 63 - (10 + header.utf8.count) % 64) + "\n"
        let length = header.utf8.count
        return [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(length & 0xff), UInt8(length >> 8)] + Array(header.utf8)
            + payload
    }

    @Test func readsNumpyFilesAndWritesThemBack() throws {
        let doubles: [Double] = [1, 2, 3, 4, 5, 6]
        let bytes = numpyFile(descr: "<f8", shape: "(2, 3)", payload: doubles.withUnsafeBytes { Array($0) })
        let array = try NpyArray(data: Data(bytes), source: "x.npy")
        #expect(array.shape == [2, 3] && array.dtype == .f64)
        #expect(array.tensor.floats() == [1, 2, 3, 4, 5, 6])
        let written = NpyArray(TensorData([1, 2, 3] as [Float], shape: [3])).serialized()
        let headerEnd = written.firstIndex(of: 0x0a)! + 1
        #expect(headerEnd % 64 == 0)  // data aligned for memory mapping
        #expect(try NpyArray(data: written, source: "y.npy").tensor.floats() == [1, 2, 3])
        #expect(
            throws: NNError("z.npy: Fortran-ordered arrays are not supported; save with np.ascontiguousarray first")
        ) {
            try NpyArray(
                data: Data(
                    numpyFile(descr: "<f4", shape: "(1,)", payload: [0, 0, 0, 0]).replacing(
                        Array("False".utf8), with: Array("True ".utf8))),
                source: "z.npy")
        }
        #expect(throws: NNError("b.npy: dtype '>f4' is not supported (use little-endian float, integer or bool)")) {
            try NpyArray(data: Data(numpyFile(descr: ">f4", shape: "(1,)", payload: [0, 0, 0, 0])), source: "b.npy")
        }
    }

    @Test func loadsNpyAndIdxFilesThroughTheSpec() throws {
        // Features as IDX unsigned bytes [4, 2, 2] (MNIST layout), labels as .npy int64.
        let pixels: [UInt8] = Array(0..<16)
        try write([0, 0, 0x08, 3, 0, 0, 0, 4, 0, 0, 0, 2, 0, 0, 0, 2] + pixels, "images-idx3-ubyte")
        let labels: [Int64] = [0, 1, 2, 1]
        try write(numpyFile(descr: "<i8", shape: "(4,)", payload: labels.withUnsafeBytes { Array($0) }), "labels.npy")
        var spec = DataSpec(source: "files")
        spec.train = .init(features: "images-idx3-ubyte", labels: "labels.npy")
        spec.testFraction = 0
        spec.normalize = false
        let split = try spec.load(relativeTo: directory)
        #expect(split.train.sampleShape == [2, 2])
        #expect(split.train.count == 4 && split.test.count == 0)
        #expect(split.train.classCount == 3)
        // The split permutes samples; each keeps its label.
        for i in 0..<4 {
            let first = Int(split.train.features[i * 4])
            #expect(split.train.labels[i] == Int32(labels[first / 4]))
        }
        // Big-endian IDX int32 values come out right.
        try write([0, 0, 0x0C, 1, 0, 0, 0, 2, 0, 0, 1, 2, 0xff, 0xff, 0xff, 0xfe], "ints.idx")
        #expect(try Idx.read(contentsOf: directory.appendingPathComponent("ints.idx")).integers() == [258, -2])
        #expect(throws: NNError("\(directory.path)/gz.idx: the file is gzip-compressed; decompress it first (gunzip)"))
        {
            try write([0x1f, 0x8b, 0, 0], "gz.idx")
            return try Idx.read(contentsOf: directory.appendingPathComponent("gz.idx"))
        }
    }

    @Test func loadsCSVWithHeaderAndLabelColumn() throws {
        try Data("label,a,b\n1,0.5,2\n0,1.5,-1\n\n2,3,4\n".utf8).write(to: directory.appendingPathComponent("d.csv"))
        var spec = DataSpec(source: "files")
        spec.train = .init(csv: "d.csv", labelColumn: 0)
        spec.testFraction = 0
        spec.normalize = false
        let data = try spec.load(relativeTo: directory).train
        #expect(data.sampleShape == [2] && data.count == 3 && data.classCount == 3)
        var rows: [Int32: [Float]] = [:]
        for i in 0..<3 { rows[data.labels[i]] = Array(data.features[(2 * i)..<(2 * i + 2)]) }
        let expected: [Int32: [Float]] = [1: [0.5, 2], 0: [1.5, -1], 2: [3, 4]]
        #expect(rows == expected)
        try Data("1,2,0.5\n3,4,x\n".utf8).write(to: directory.appendingPathComponent("bad.csv"))
        spec.train = .init(csv: "bad.csv")
        #expect(throws: NNError("\(directory.path)/bad.csv: line 2 has a field that is not a number")) {
            try spec.load(relativeTo: directory)
        }
    }

    @Test func builtinSetsAreDeterministicSplitAndNormalized() throws {
        for source in DataSpec.builtinSources {
            var spec = DataSpec(source: source)
            spec.samples = 500
            spec.seed = 4
            let a = try spec.load(relativeTo: directory), b = try spec.load(relativeTo: directory)
            #expect(a.train == b.train && a.test == b.test, "\(source)")
            #expect(a.train.count == 400 && a.test.count == 100, "\(source)")
            // Images per channel (as torchvision normalizes), other sets per feature.
            let perFeature = a.train.featureStatistics()
            let (mean, std) =
                source == "cifar-synthetic"
                ? a.train.channelStatistics() : (perFeature.mean.map(Double.init), perFeature.std.map(Double.init))
            #expect(mean.allSatisfy { abs($0) < 1e-4 } && std.allSatisfy { abs($0 - 1) < 1e-3 }, "\(source)")
            #expect(Set(a.train.labels).count == a.train.classCount, "\(source)")
            spec.seed = 5
            #expect(try spec.load(relativeTo: directory).train != a.train, "\(source)")
        }
    }

    @Test func badDataSpecsNameTheField() {
        #expect(throws: SpecError("data", "unknown source 'mnist' (known: blobs, spirals, teacher, cifar-synthetic, cifar10, cifar100, files)")) {
            try DataSpec(source: "mnist").load(relativeTo: directory)
        }
        #expect(throws: SpecError("data", "source 'files' needs a 'train' section")) {
            try DataSpec(source: "files").load(relativeTo: directory)
        }
        var spec = DataSpec(source: "blobs")
        spec.shape = [3, 3]
        #expect(throws: SpecError("data.shape", "shape [3, 3] does not hold samples of 2 values")) {
            try spec.load(relativeTo: directory)
        }
    }
}
