import BasinNN
import BasinTestSupport
import Foundation
import Testing

/// Residual blocks as a user writes them: parsed from YAML-like JSON, named as PyTorch names a
/// module with `body` and `shortcut` children, saved and loaded bit for bit, and refused with
/// one sentence when the two branches disagree.
@Suite struct ResidualTests {
    static let description = """
        {"input": [3, 8, 8], "layers": [
          {"type": "conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1, "bias": false},
          {"type": "batchnorm2d"}, "relu",
          {"type": "residual",
           "body": [{"type": "conv2d", "out_channels": 6, "kernel_size": 3, "stride": 2, "padding": 1, "bias": false},
                    {"type": "batchnorm2d"}, "relu",
                    {"type": "residual", "body": [{"type": "conv2d", "out_channels": 6, "kernel_size": 3, "padding": 1},
                                                   {"type": "batchnorm2d"}]}],
           "shortcut": [{"type": "conv2d", "out_channels": 6, "kernel_size": 1, "stride": 2, "bias": false},
                        {"type": "batchnorm2d"}]},
          "relu", {"type": "groupnorm", "num_groups": 2}, "layernorm",
          {"type": "adaptive_avgpool2d", "output_size": 1}, "flatten", {"type": "linear", "out_features": 5}]}
        """

    @Test func namesFollowPyTorchAndCheckpointsRoundTrip() throws {
        let network = try Network(try ModelDescription.fromJSON(Self.description, source: "test"))
        let names = network.parameterLayout.entries.map(\.name) + network.stateLayout.entries.map(\.name)
        for name in [
            "3.body.0.weight", "3.body.1.running_var", "3.body.3.body.0.bias", "3.body.3.body.1.weight",
            "3.shortcut.0.weight", "3.shortcut.1.running_mean", "5.weight", "6.weight", "9.bias",
        ] {
            #expect(names.contains(name), "\(name) not in \(names)")
        }
        #expect(network.batchNormNames == ["1", "3.body.1", "3.body.3.body.1", "3.shortcut.1"])
        #expect(network.parameterLayout.entry(named: "6.weight")?.shape == [6, 4, 4])
        #expect(network.outputShape(ofLayer: 3) == [6, 4, 4])

        var model = network.initialize(seed: 4)
        for i in model.state.indices { model.state[i] = Float(i % 7) * 0.25 + 0.5 }
        model.batchesTracked = [3, 5, 7, 9]
        let url = TestSupport.temporaryDirectory("residual").appendingPathComponent("m.safetensors")
        defer { try? FileManager.default.removeItem(at: url.deletingLastPathComponent()) }
        try Checkpoint.save(model, to: url)
        let file = try SafeTensors(contentsOf: url)
        #expect(file["3.body.3.body.1.num_batches_tracked"]?.integers() == [7])
        let loaded = try Checkpoint.load(contentsOf: url)
        #expect(loaded.parameters == model.parameters && loaded.state == model.state)
        #expect(loaded.batchesTracked == model.batchesTracked)
        #expect(loaded.network.description == network.description)
    }

    @Test func branchesOfDifferentShapesAreRefusedNamingTheBlock() throws {
        let text = """
            {"input": [3, 8, 8], "layers": [{"type": "residual", "body": [
              {"type": "conv2d", "out_channels": 6, "kernel_size": 3, "stride": 2, "padding": 1}]}]}
            """
        let description = try ModelDescription.fromJSON(text, source: "test")
        #expect {
            try Network(description)
        } throws: { error in
            let text = "\(error)"
            return text.contains("layer 0 (residual)") && text.contains("[6, 4, 4]") && text.contains("[3, 8, 8]")
        }
        let unknown = """
            {"input": [4], "layers": [{"type": "residual", "body": [{"type": "linear", "out_features": 4}],
              "shortcut": [{"type": "groupnorm", "num_groups": 3}]}]}
            """
        #expect {
            try Network(try ModelDescription.fromJSON(unknown, source: "test"))
        } throws: { "\($0)".contains("layer 0 shortcut 0 (groupnorm): 'num_groups' 3 must divide the 4 channels") }
    }
}
