import BasinNN
import Foundation

/// A fitted curve on disk: safetensors with tensor `p<j>.<parameter name>` for control point
/// j (and `p<j>.<state name>` for BatchNorm statistics), the kind, bend count and model
/// description in the metadata.
public enum CurveFile {
    public static func save(_ curve: Curve, controlPoints: [Model], to url: URL) throws {
        try tensors(curve, controlPoints: controlPoints).write(to: url)
    }

    /// The file's contents (see `save`).
    public static func tensors(_ curve: Curve, controlPoints: [Model]) -> SafeTensors {
        var file = SafeTensors()
        for (j, point) in controlPoints.enumerated() {
            for entry in point.network.parameterLayout.entries {
                file["p\(j).\(entry.name)"] = TensorData(Array(point.parameters[entry.range]), shape: entry.shape)
            }
            for entry in point.network.stateLayout.entries {
                file["p\(j).\(entry.name)"] = TensorData(Array(point.state[entry.range]), shape: entry.shape)
            }
        }
        file.metadata = [
            "basin.curve": curve.kind.rawValue, "basin.bends": String(curve.bends),
            Checkpoint.modelMetadataKey: controlPoints[0].network.description.canonicalJSON(),
        ]
        return file
    }

    /// The curve and its control points; the network comes from the file (or `fallback`).
    public static func load(contentsOf url: URL, fallback: ModelDescription? = nil) throws -> (Curve, [Model]) {
        let file = try SafeTensors(contentsOf: url)
        guard let kindName = file.metadata["basin.curve"], let kind = Curve.Kind(rawValue: kindName),
            let bends = file.metadata["basin.bends"].flatMap(Int.init), bends >= 0
        else {
            throw NNError("\(url.path): not a Basin curve file (no 'basin.curve' and 'basin.bends' metadata)")
        }
        guard let description = try Checkpoint.description(in: file, source: url.path) ?? fallback else {
            throw NNError("\(url.path): the curve file carries no model description")
        }
        let network = try Network(description)
        let curve = Curve(kind: kind, bends: bends)
        let points = try (0..<curve.controlPointCount).map { j -> Model in
            var model = network.initialize(seed: 0)
            for (layout, isState) in [(network.parameterLayout, false), (network.stateLayout, true)] {
                for entry in layout.entries {
                    let name = "p\(j).\(entry.name)"
                    guard let tensor = file[name], tensor.shape == entry.shape, let values = tensor.floats() else {
                        throw NNError("\(url.path): tensor '\(name)' is missing or not shaped \(entry.shape)")
                    }
                    if isState {
                        model.state.replaceSubrange(entry.range, with: values)
                    } else {
                        model.parameters.replaceSubrange(entry.range, with: values)
                    }
                }
            }
            return model
        }
        return (curve, points)
    }
}
