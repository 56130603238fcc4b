import BasinNN
import BasinTestSupport
import Foundation
import Testing

@Suite struct SafeTensorsTests {
    static let description = ModelDescription(
        input: [1, 5, 5],
        layers: [
            .conv2d(inChannels: nil, outChannels: 2, kernel: .init(3), stride: .init(1), padding: .init(1), bias: true),
            .batchNorm2d(numFeatures: nil, eps: 1e-5, momentum: 0.1), .relu, .flatten,
            .linear(inFeatures: nil, outFeatures: 3, bias: true),
        ])

    @Test func everyDTypeRoundTrips() throws {
        var file = SafeTensors()
        file["f32"] = TensorData([1.5, -2, 3] as [Float], shape: [3])
        file["f64"] = TensorData([1e-300, 2] as [Double], shape: [2, 1])
        file["i64"] = TensorData([Int64.min, 7] as [Int64], shape: [2])
        file["i32"] = TensorData([-5, 9, 11, 13] as [Int32], shape: [2, 2])
        file["u8"] = TensorData([0, 255] as [UInt8], shape: [2])
        file["scalar"] = TensorData([42] as [Int64], shape: [])
        file.metadata = ["format": "pt", "note": "quote \" and \\ survive"]
        let data = file.serialized()
        let headerLength = data.prefix(8).reversed().reduce(0) { $0 << 8 | Int($1) }
        #expect(headerLength % 8 == 0)  // data starts 8-byte aligned
        let back = try SafeTensors(data: data, source: "memory")
        #expect(back.names == file.names)
        for name in file.names { #expect(back[name] == file[name], "\(name)") }
        #expect(back.metadata == file.metadata)
        #expect(back["i64"]?.integers() == [Int64.min, 7])
        #expect(back["f64"]?.floats() == [0, 2])
    }

    @Test func checkpointRoundTripKeepsStateDictOrder() throws {
        let network = try Network(Self.description)
        var model = network.initialize(seed: 4)
        model.state[0] = 0.25
        model.batchesTracked = [17]
        let url = TestSupport.temporaryDirectory().appendingPathComponent("m.safetensors")
        try Checkpoint.save(model, to: url)
        let file = try SafeTensors(contentsOf: url)
        #expect(
            file.names == [
                "0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var", "1.num_batches_tracked",
                "4.weight", "4.bias",
            ])
        let loaded = try Checkpoint.load(contentsOf: url)
        #expect(loaded.parameters == model.parameters)
        #expect(loaded.state == model.state)
        #expect(loaded.batchesTracked == [17])
        #expect(loaded.network.description == network.description)
    }

    private func expectError(_ data: Data, contains fragments: [String]) {
        do {
            _ = try SafeTensors(data: data, source: "bad.safetensors")
            Issue.record("no error for \(fragments)")
        } catch {
            let message = String(describing: error)
            #expect(message.hasPrefix("bad.safetensors: "), "\(message)")
            for fragment in fragments { #expect(message.contains(fragment), "\(message)") }
        }
    }

    private func file(header: String, data: [UInt8] = []) -> Data {
        var out = Data()
        var length = UInt64(header.utf8.count).littleEndian
        withUnsafeBytes(of: &length) { out.append(contentsOf: $0) }
        out.append(Data(header.utf8))
        out.append(contentsOf: data)
        return out
    }

    @Test func malformedFilesGiveOneSentenceErrors() {
        expectError(Data([1, 2, 3]), contains: ["too short", "byte offset 0"])
        var huge = Data()
        var length = UInt64(200_000_000).littleEndian
        withUnsafeBytes(of: &length) { huge.append(contentsOf: $0) }
        expectError(huge + Data("{}".utf8), contains: ["header length", "over the", "limit"])
        var truncatedHeader = file(header: "{\"a\":{}}")
        truncatedHeader.removeLast(3)
        expectError(truncatedHeader, contains: ["header length", "truncated"])
        expectError(file(header: "[1, 2]"), contains: ["not a JSON object", "byte offset 8"])
        expectError(
            file(header: "{\"w\":{\"dtype\":\"Q8\",\"shape\":[1],\"data_offsets\":[0,1]}}", data: [0]),
            contains: ["'w'", "unknown dtype"])
        expectError(
            file(
                header: "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}",
                data: [UInt8](repeating: 0, count: 8)),
            contains: ["'w'", "truncated", "byte offset"])
        expectError(
            file(
                header: "{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}",
                data: [UInt8](repeating: 0, count: 8)),
            contains: ["'w'", "shape [3]", "12 bytes"])
    }

    private func loadError(_ edit: (inout SafeTensors) -> Void) throws -> String {
        let network = try Network(Self.description)
        var file = Checkpoint.tensors(of: network.initialize(seed: 1))
        edit(&file)
        do {
            _ = try Checkpoint.load(file, into: network, source: "ckpt.safetensors")
            return ""
        } catch {
            return String(describing: error)
        }
    }

    @Test func loadingIntoAModelIsStrict() throws {
        let missing = try loadError { $0["4.bias"] = nil }
        #expect(missing == "ckpt.safetensors: no tensor '4.bias' (the model needs shape [3])")
        let shape = try loadError { $0["4.weight"] = TensorData([Float](repeating: 0, count: 30), shape: [3, 10]) }
        #expect(shape == "ckpt.safetensors: tensor '4.weight' has shape [3, 10] but the model needs [3, 50]")
        let dtype = try loadError { $0["0.bias"] = TensorData([1, 2] as [Int64], shape: [2]) }
        #expect(dtype.contains("tensor '0.bias' has dtype I64 but the model needs F32"))
        let counter = try loadError { $0["1.num_batches_tracked"] = TensorData([1.0] as [Float], shape: []) }
        #expect(counter.contains("'1.num_batches_tracked' has dtype F32 but the model needs I64"))
        let extra = try loadError { $0["9.weight"] = TensorData([1] as [Float], shape: [1]) }
        #expect(extra.contains("tensor '9.weight' is not part of the model"))
        #expect(
            try loadError { $0["0.weight"] = TensorData([Double](repeating: 0.5, count: 18), shape: [2, 1, 3, 3]) }
                == "")
    }
}
