import BasinNN
import Foundation

/// A Basin result: named arrays and a `basin.json` metadata document, stored as a `.npz`
/// that `numpy.load` opens. Missing points are NaN, with a boolean `done` mask beside them.
public struct ResultFile: Sendable {
    public var arrays: [(name: String, tensor: TensorData)]
    public var metadata: JSONValue

    public static let metadataMember = "basin.json"

    public init(arrays: [(name: String, tensor: TensorData)] = [], metadata: JSONValue = .object([:])) {
        self.arrays = arrays
        self.metadata = metadata
    }

    public subscript(name: String) -> TensorData? {
        arrays.first { $0.name == name }?.tensor
    }

    public mutating func set(_ name: String, _ tensor: TensorData) {
        if let i = arrays.firstIndex(where: { $0.name == name }) {
            arrays[i].tensor = tensor
        } else {
            arrays.append((name, tensor))
        }
    }

    public func serialized() throws -> Data {
        try pieces().reduce(into: Data()) { $0.append($1) }
    }

    /// The file's bytes as pieces in order; the arrays' bytes are pieces of their own.
    func pieces() throws -> [Data] {
        var members = arrays.map { (name: "\($0.name).npy", parts: [NpyArray($0.tensor).header, $0.tensor.bytes]) }
        members.append((Self.metadataMember, [metadata.serialized(pretty: true)]))
        return try Npz.pieces(members)
    }

    /// Writes to a temporary file, fsyncs, renames over `url` (the arrays written from where
    /// they are, not copied into one buffer first).
    public func write(to url: URL) throws {
        try AtomicFile.write(try pieces(), to: url)
    }

    public init(contentsOf url: URL) throws {
        try self.init(data: try AtomicFile.read(url), source: url.path)
    }

    public init(data: Data, source: String) throws {
        arrays = []
        metadata = .object([:])
        for (name, bytes) in try Npz.members(of: data, source: source) {
            if name == Self.metadataMember {
                do {
                    metadata = try JSONDecoder().decode(JSONValue.self, from: bytes)
                } catch {
                    throw NNError("\(source): member '\(name)' is not valid JSON")
                }
            } else if name.hasSuffix(".npy") {
                arrays.append(
                    (String(name.dropLast(4)), try NpyArray(data: bytes, source: "\(source) member '\(name)'").tensor))
            }
        }
    }
}
