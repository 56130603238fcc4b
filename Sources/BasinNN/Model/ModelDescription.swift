import Foundation

/// A Sequential model: the shape of one input sample and the layers in order.
///
/// Layer `i` owns the PyTorch names `i.weight`, `i.bias`, `i.running_mean`, ... exactly as
/// `nn.Sequential` numbers its children.
public struct ModelDescription: Codable, Equatable, Sendable {
    /// Shape of one sample without the batch dimension: `[features]` or `[channels, height, width]`.
    public var input: [Int]
    public var layers: [LayerSpec]

    public init(input: [Int], layers: [LayerSpec]) {
        self.input = input
        self.layers = layers
    }

    /// The description as canonical JSON (sorted keys), as stored in checkpoints.
    public func canonicalJSON() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        // Encoding plain integers, strings and doubles cannot fail.
        let data = (try? encoder.encode(self)) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }

    /// Parses a description from JSON text.
    public static func fromJSON(_ text: String, source: String) throws -> ModelDescription {
        do {
            return try JSONDecoder().decode(ModelDescription.self, from: Data(text.utf8))
        } catch let error as DecodingError {
            throw NNError("\(source): invalid model description: \(error.readable)")
        }
    }
}

extension DecodingError {
    /// One sentence naming the field path, for user-facing errors.
    public var readable: String {
        func path(_ context: Context) -> String {
            let keys = context.codingPath.map { key in
                key.intValue.map { "[\($0)]" } ?? ".\(key.stringValue)"
            }.joined()
            return keys.isEmpty ? "top level" : String(keys.drop(while: { $0 == "." }))
        }
        switch self {
        case .keyNotFound(let key, let context):
            let detail = context.debugDescription.hasPrefix("No value") ? "" : " (\(context.debugDescription))"
            let prefix = context.codingPath.isEmpty ? "" : path(context) + "."
            return "missing field '\(prefix)\(key.stringValue)'\(detail)"
        case .typeMismatch(let type, let context):
            return "field '\(path(context))' has the wrong type (expected \(type))"
        case .valueNotFound(let type, let context):
            return "field '\(path(context))' is empty (expected \(type))"
        case .dataCorrupted(let context):
            return "field '\(path(context))': \(context.debugDescription)"
        @unknown default:
            return "\(self)"
        }
    }
}
