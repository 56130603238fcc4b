import Foundation

/// Why a peer's message was refused: one sentence naming the command and field, sent as the
/// DISCONNECT reason (or logged by a worker) and never a trap. Code decides on `kind`.
public struct ProtocolError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        /// The frames are not `BASIN/1` | command | header | binary (count, version, command word).
        case envelope
        /// A header field is missing, of the wrong type or out of its range.
        case field
        /// Well formed, but the peer speaks for something it does not hold (a lease, an upload).
        case authority
        /// Values a job cannot produce (an accuracy above 1, a negative loss, a wrong count).
        case values
        /// A per-peer limit (uploads, bytes, peers) was reached.
        case limit
    }

    public let kind: Kind
    public let description: String

    public init(_ kind: Kind, _ description: String) {
        self.kind = kind
        self.description = description
    }

    static func field(_ command: WireMessage.Command, _ field: String, _ problem: String) -> ProtocolError {
        ProtocolError(.field, "\(command.rawValue) field '\(field)' \(problem)")
    }

    /// The sentence for a `DecodingError` of a header: which field, and what was wrong with it.
    static func decoding(_ command: WireMessage.Command, _ error: any Error) -> ProtocolError {
        guard let error = error as? DecodingError else {
            return ProtocolError(.field, "\(command.rawValue) header cannot be read: \(error)")
        }
        func path(_ context: DecodingError.Context) -> String {
            context.codingPath.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".")
        }
        switch error {
        case .keyNotFound(let key, let context):
            let place = path(context)
            return field(command, place.isEmpty ? key.stringValue : "\(place).\(key.stringValue)", "is missing")
        case .typeMismatch(let type, let context):
            return field(command, path(context), "is not \(Self.typeName(type))")
        case .valueNotFound(let type, let context):
            return field(command, path(context), "is null where \(Self.typeName(type)) is needed")
        case .dataCorrupted(let context):
            let place = path(context)
            if place.isEmpty {
                return ProtocolError(.field, "\(command.rawValue) header is not a JSON object")
            }
            return field(command, place, context.debugDescription)
        @unknown default:
            return ProtocolError(.field, "\(command.rawValue) header cannot be read")
        }
    }

    static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: "a string"
        case is Double.Type, is Int.Type: "a number"
        case is Bool.Type: "true or false"
        default:
            String(describing: type).contains("Dictionary") ? "an object" : "of the expected type"
        }
    }
}
