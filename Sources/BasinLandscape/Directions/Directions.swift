import BasinNN
import Foundation

/// Direction vectors in a model's flat parameter space.
public enum Directions {
    /// `count` random directions around `model`'s parameters, drawn from the `direction`
    /// stream of `spec.seed` (direction i, tensor j: stream `direction.id(i << 20 | j)`).
    public static func random(around model: Model, count: Int, spec: DirectionSpec) -> [[Float]] {
        let layout = model.network.parameterLayout
        var directions: [[Float]] = []
        for index in 0..<count {
            var d = [Float](repeating: 0, count: layout.count)
            for (tensor, entry) in layout.entries.enumerated() {
                var random = RandomSource(seed: spec.seed, stream: RandomStream.direction.id(index << 20 | tensor))
                for i in entry.range { d[i] = Float(random.nextGaussian()) }
            }
            normalize(&d, like: model.parameters, layout: layout, spec: spec)
            directions.append(d)
        }
        if spec.orthogonalize && count >= 2 {
            orthogonalize(&directions[1], against: directions[0])
        }
        return directions
    }

    /// Applies `spec`'s normalization and one-dimensional rule to `d` against `weights`.
    public static func normalize(_ d: inout [Float], like weights: [Float], layout: TensorLayout, spec: DirectionSpec) {
        for entry in layout.entries {
            if entry.shape.count <= 1 {
                for i in entry.range { d[i] = spec.ignore == .biasbn ? 0 : weights[i] }
                continue
            }
            switch spec.norm {
            case .none:
                break
            case .layer:
                scale(&d, entry.range, to: VectorMath.norm(weights[entry.range]))
            case .filter:
                let sliceCount = entry.count / entry.shape[0]
                for slice in 0..<entry.shape[0] {
                    let range = (entry.offset + slice * sliceCount)..<(entry.offset + (slice + 1) * sliceCount)
                    scale(&d, range, to: VectorMath.norm(weights[range]))
                }
            }
        }
    }

    private static func scale(_ d: inout [Float], _ range: Range<Int>, to target: Double) {
        let factor = target / (VectorMath.norm(d[range]) + 1e-10)
        for i in range { d[i] = Float(Double(d[i]) * factor) }
    }

    /// b ← b − (b·a / a·a)·a.
    public static func orthogonalize(_ b: inout [Float], against a: [Float]) {
        let projection = VectorMath.dot(b, a) / max(VectorMath.dot(a, a), .leastNormalMagnitude)
        for i in b.indices { b[i] = Float(Double(b[i]) - projection * Double(a[i])) }
    }

    /// A direction set as safetensors: tensor `d<i>.<parameter name>` per direction, the spec
    /// and the count in the metadata.
    public static func save(
        _ directions: [[Float]], layout: TensorLayout, metadata: [String: String], to url: URL
    ) throws {
        var file = SafeTensors()
        for (i, d) in directions.enumerated() {
            for entry in layout.entries {
                file["d\(i).\(entry.name)"] = TensorData(Array(d[entry.range]), shape: entry.shape)
            }
        }
        file.metadata = metadata
        file.metadata["basin.directions"] = String(directions.count)
        try file.write(to: url)
    }

    /// Reads a direction set written by `save` for a model with `layout`.
    public static func load(contentsOf url: URL, layout: TensorLayout) throws -> [[Float]] {
        let file = try SafeTensors(contentsOf: url)
        guard let count = file.metadata["basin.directions"].flatMap(Int.init) else {
            throw NNError("\(url.path): not a Basin direction set (no 'basin.directions' metadata)")
        }
        return try (0..<count).map { i in
            var d = [Float](repeating: 0, count: layout.count)
            for entry in layout.entries {
                let name = "d\(i).\(entry.name)"
                guard let tensor = file[name], tensor.shape == entry.shape, let values = tensor.floats() else {
                    throw NNError(
                        "\(url.path): tensor '\(name)' is missing or not shaped \(entry.shape) like the model")
                }
                d.replaceSubrange(entry.range, with: values)
            }
            return d
        }
    }
}
