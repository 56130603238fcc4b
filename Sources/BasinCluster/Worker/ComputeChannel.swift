import BasinSweep
import Foundation

/// What the worker and its compute child say to each other over a pipe: each message is a
/// JSON header and a binary payload, both prefixed by their length (u32 little-endian).
enum ComputeChannel {
    /// A task for the child: the shard, its job and the spec it belongs to.
    struct Request: Codable {
        var lease: Int
        var job: String
        var name: String
        var start: Int
        var end: Int
        var definition: JobDefinition
        var inputs: [String: String]
        var specKey: String
        var spec: StudySpec
        var base: String
        var files: [String: String]
    }

    /// The child's answer: values in the payload (Float64, little-endian) or an error.
    struct Reply: Codable {
        var lease: Int
        var error: String?
        var artifact: String?
        var seconds: Double
    }

    /// Largest message accepted from the other side.
    static let limit = 1 << 30

    static func write(_ header: some Encodable, payload: Data = Data(), to handle: FileHandle) throws {
        let json = try JSONEncoder().encode(header)
        var bytes = Data()
        for part in [json, payload] {
            var length = UInt32(part.count).littleEndian
            withUnsafeBytes(of: &length) { bytes.append(contentsOf: $0) }
            bytes.append(part)
        }
        try handle.write(contentsOf: bytes)
    }

    /// The next message, or nil at the end of the stream (the other side is gone).
    static func read<Header: Decodable>(_ type: Header.Type, from handle: FileHandle) throws -> (Header, Data)? {
        guard let json = try part(handle), let payload = try part(handle) else { return nil }
        return (try JSONDecoder().decode(Header.self, from: json), payload)
    }

    private static func part(_ handle: FileHandle) throws -> Data? {
        guard let prefix = try exactly(4, handle) else { return nil }
        let length = prefix.reduce(0) { $0 >> 8 | Int($1) << 24 }
        guard length <= limit else { throw ClusterError("a compute message of \(length) bytes") }
        return length == 0 ? Data() : try exactly(length, handle)
    }

    private static func exactly(_ count: Int, _ handle: FileHandle) throws -> Data? {
        var data = Data()
        while data.count < count {
            guard let chunk = try handle.read(upToCount: count - data.count), !chunk.isEmpty else { return nil }
            data.append(chunk)
        }
        return data
    }
}
