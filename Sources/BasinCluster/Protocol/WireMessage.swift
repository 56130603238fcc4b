import BasinSweep
import Foundation

/// One protocol message: `"BASIN/1"` | command | JSON header | binary frames (PROTOCOL.md).
///
/// The header stays the bytes that came off the wire until a typed header (`HelloHeader`,
/// `ResultHeader`, …) decodes it, so every field is read once, at the edge, with its range
/// checked there.
public struct WireMessage: Sendable, Equatable {
    public static let version = "BASIN/1"
    /// Bytes of artifact per PUT or CHUNK message.
    public static let artifactChunk = 1 << 20
    /// Artifact chunks a peer may have in flight (unanswered) at once.
    public static let artifactCredit = 4

    public enum Command: String, Sendable, CaseIterable {
        // worker → coordinator
        case hello = "HELLO", heartbeat = "HEARTBEAT", result = "RESULT", fail = "FAIL", bye = "BYE"
        case put = "PUT", fetch = "FETCH"
        // coordinator → worker
        case welcome = "WELCOME", task = "TASK", ack = "ACK", cancel = "CANCEL", disconnect = "DISCONNECT", done =
            "DONE"
        case taken = "TAKEN", chunk = "CHUNK"

        /// The binary frames a message of this command carries after its header.
        var binaryFrames: ClosedRange<Int> {
            switch self {
            case .result, .put: 1...1
            case .chunk: 0...1
            default: 0...0
            }
        }
    }

    public var command: Command
    /// The header frame: a JSON object in UTF-8.
    public var headerFrame: Data
    public var binary: [Data]

    /// A message with an untyped header (tests, tools and hand-made messages).
    public init(_ command: Command, _ header: [String: JSONValue] = [:], binary: [Data] = []) {
        self.command = command
        self.headerFrame = JSONValue.object(header).serialized()
        self.binary = binary
    }

    /// A message with a typed header, encoded once (sorted keys, so equal headers give equal bytes).
    public init(_ command: Command, header: some Encodable, binary: [Data] = []) {
        self.command = command
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        self.headerFrame = (try? encoder.encode(header)) ?? Data("{}".utf8)
        self.binary = binary
    }

    /// A message whose header frame is already JSON (the hot one-field headers build theirs).
    init(_ command: Command, headerFrame: Data, binary: [Data] = []) {
        self.command = command
        self.headerFrame = headerFrame
        self.binary = binary
    }

    public func frames() -> [Data] {
        [Data(Self.version.utf8), Data(command.rawValue.utf8), headerFrame] + binary
    }

    /// Reads the envelope: frame count, version, command word and the header's size (at most
    /// `maxHeader` bytes). The header is decoded by the typed header the command names
    /// (`decode(_:)`).
    public init(frames: [Data], maxHeader: Int = .max) throws(ProtocolError) {
        guard frames.count >= 3 else {
            throw ProtocolError(
                .envelope, "a message needs at least 3 frames (version, command, header), got \(frames.count)")
        }
        guard frames[0] == Data(Self.version.utf8) else {
            throw ProtocolError(
                .envelope,
                "protocol version '\(LogText.escaped(frames[0].prefix(32)))' is not \(Self.version)")
        }
        guard let command = Command(rawValue: String(decoding: frames[1].prefix(16), as: UTF8.self)),
            frames[1].count <= 16
        else {
            throw ProtocolError(.envelope, "unknown command '\(LogText.escaped(frames[1].prefix(32)))'")
        }
        guard frames[2].count <= maxHeader else {
            throw ProtocolError(
                .envelope, "\(command.rawValue) header is \(frames[2].count) bytes; at most \(maxHeader) are read")
        }
        let binary = frames.count - 3
        guard command.binaryFrames.contains(binary) else {
            let range = command.binaryFrames
            let expected = range.count == 1 ? "\(range.lowerBound)" : "\(range.lowerBound) to \(range.upperBound)"
            throw ProtocolError(
                .envelope, "\(command.rawValue) carries \(expected) binary frame(s) after its header, got \(binary)")
        }
        self.command = command
        self.headerFrame = frames[2]
        self.binary = Array(frames[3...])
    }

    /// The header as its command's typed header; a field that is missing, mistyped or out of
    /// range throws a `ProtocolError` naming it.
    public func decode<Header: Decodable>(_ type: Header.Type) throws(ProtocolError) -> Header {
        if let quick = Header.self as? any QuickHeader.Type, let flat = FlatJSON(headerFrame),
            let header = quick.init(quick: flat) as? Header
        {
            return header
        }
        do {
            return try JSONDecoder().decode(Header.self, from: headerFrame)
        } catch {
            throw ProtocolError.decoding(command, error)
        }
    }

    /// The header as plain JSON (empty when it is not an object): for tests and tools; the
    /// protocol logic reads typed headers.
    public var header: [String: JSONValue] {
        guard case .object(let fields)? = try? JSONDecoder().decode(JSONValue.self, from: headerFrame) else {
            return [:]
        }
        return fields
    }

    public func string(_ key: String) -> String? { header[key]?.stringValue }
    public func double(_ key: String) -> Double? { header[key]?.doubleValue }
    /// An integer field, or nil when it is absent or not an exact integer.
    public func int(_ key: String) -> Int? { header[key]?.doubleValue.flatMap { Int(exactly: $0) } }
}

extension Array where Element == Double {
    /// Raw little-endian Float64 bytes.
    var littleEndianData: Data { withUnsafeBytes { Data($0) } }

    init?(littleEndian data: Data) {
        guard data.count % 8 == 0 else { return nil }
        var values = [Double](repeating: 0, count: data.count / 8)
        values.withUnsafeMutableBytes { target in _ = data.copyBytes(to: target) }
        self = values
    }
}
