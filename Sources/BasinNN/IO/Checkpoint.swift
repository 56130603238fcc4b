import Foundation

/// Reading and writing a model as safetensors with PyTorch `state_dict` names.
///
/// A Basin checkpoint stores, in state_dict order: each layer's parameters and buffers
/// (`i.weight`, `i.bias`, `i.running_mean`, `i.running_var`, `i.num_batches_tracked` as I64),
/// and the model description as JSON in `__metadata__["basin.model"]`. The file loads into
/// `nn.Sequential.load_state_dict` and its safetensors can be produced by
/// `safetensors.torch.save_file(model.state_dict(), path)`.
public enum Checkpoint {
    public static let modelMetadataKey = "basin.model"

    /// The model's tensors in `state_dict` order, with the description in the metadata.
    public static func tensors(of model: Model, metadata: [String: String] = [:]) -> SafeTensors {
        let network = model.network
        var file = SafeTensors()
        // Layer by layer: its parameters, its statistics, its BatchNorm counters.
        for layer in 0..<network.layerCount {
            let prefix = "\(layer)."
            for entry in network.parameterLayout.entries where entry.name.hasPrefix(prefix) {
                file[entry.name] = TensorData(Array(model.parameters[entry.range]), shape: entry.shape)
            }
            for entry in network.stateLayout.entries where entry.name.hasPrefix(prefix) {
                file[entry.name] = TensorData(Array(model.state[entry.range]), shape: entry.shape)
            }
            for (i, name) in network.batchNormNames.enumerated() where name == "\(layer)" || name.hasPrefix(prefix) {
                file["\(name).num_batches_tracked"] = TensorData([model.batchesTracked[i]], shape: [])
            }
        }
        file.metadata = metadata
        file.metadata[modelMetadataKey] = network.description.canonicalJSON()
        return file
    }

    public static func save(_ model: Model, to url: URL, metadata: [String: String] = [:]) throws {
        try tensors(of: model, metadata: metadata).write(to: url)
    }

    /// The model description stored in a checkpoint, if it has one.
    public static func description(in file: SafeTensors, source: String) throws -> ModelDescription? {
        guard let json = file.metadata[modelMetadataKey] else { return nil }
        return try ModelDescription.fromJSON(json, source: "\(source) metadata '\(modelMetadataKey)'")
    }

    /// Loads a checkpoint into `network`, strictly: every tensor present with its exact shape,
    /// a float dtype for parameters and statistics, an integer one for counters, nothing extra.
    public static func load(_ file: SafeTensors, into network: Network, source: String) throws -> Model {
        var model = network.initialize(seed: 0)
        var expected = Set<String>()
        func tensor(_ name: String, shape: [Int]) throws -> TensorData {
            expected.insert(name)
            guard let tensor = file[name] else {
                throw NNError("\(source): no tensor '\(name)' (the model needs shape \(shape))")
            }
            guard tensor.shape == shape else {
                throw NNError("\(source): tensor '\(name)' has shape \(tensor.shape) but the model needs \(shape)")
            }
            return tensor
        }
        func floats(_ entry: TensorLayout.Entry) throws -> [Float] {
            let t = try tensor(entry.name, shape: entry.shape)
            guard t.dtype == .f32 || t.dtype == .f64, let values = t.floats() else {
                throw NNError(
                    "\(source): tensor '\(entry.name)' has dtype \(t.dtype.rawValue) but the model needs F32 (or F64)")
            }
            if let bad = values.firstIndex(where: { !$0.isFinite }) {
                throw NNError(
                    "\(source): tensor '\(entry.name)' holds \(values[bad]) at element \(bad); a checkpoint's weights and statistics must be finite")
            }
            return values
        }
        for entry in network.parameterLayout.entries {
            model.parameters.replaceSubrange(entry.range, with: try floats(entry))
        }
        for entry in network.stateLayout.entries {
            model.state.replaceSubrange(entry.range, with: try floats(entry))
        }
        for (i, layer) in network.batchNormNames.enumerated() {
            let name = "\(layer).num_batches_tracked"
            let t = try tensor(name, shape: [])
            guard let values = t.integers(), let value = values.first else {
                throw NNError("\(source): tensor '\(name)' has dtype \(t.dtype.rawValue) but the model needs I64")
            }
            model.batchesTracked[i] = value
        }
        if let extra = file.names.first(where: { !expected.contains($0) }) {
            throw NNError(
                "\(source): tensor '\(extra)' is not part of the model (is the description the one it was saved from?)")
        }
        return model
    }

    /// Reads a checkpoint file; the model comes from `description`, else from the file's metadata.
    public static func load(contentsOf url: URL, description: ModelDescription? = nil) throws -> Model {
        let file = try SafeTensors(contentsOf: url)
        guard let model = try description ?? Self.description(in: file, source: url.path) else {
            throw NNError("\(url.path): the checkpoint carries no model description; pass one with --model")
        }
        return try load(file, into: try Network(model), source: url.path)
    }
}
