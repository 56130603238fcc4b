import BasinSweep
import Foundation

/// One protocol message: `"BASIN/1"` | command | JSON header | binary frames (PROTOCOL.md).
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
    }

    public var command: Command
    public var header: [String: JSONValue]
    public var binary: [Data]

    public init(_ command: Command, _ header: [String: JSONValue] = [:], binary: [Data] = []) {
        self.command = command
        self.header = header
        self.binary = binary
    }

    public func frames() -> [Data] {
        [Data(Self.version.utf8), Data(command.rawValue.utf8), JSONValue.object(header).serialized()] + binary
    }

    /// Why a message could not be read, as the DISCONNECT reason or the log line.
    public enum DecodeError: Error, CustomStringConvertible, Equatable {
        case tooFewFrames(Int)
        case version(String)
        case unknownCommand(String)
        case badHeader

        public var description: String {
            switch self {
            case .tooFewFrames(let n): "a message needs at least 3 frames (version, command, header), got \(n)"
            case .version(let v): "protocol version '\(v)' is not \(WireMessage.version)"
            case .unknownCommand(let c): "unknown command '\(c)'"
            case .badHeader: "the header frame is not a JSON object"
            }
        }
    }

    public init(frames: [Data]) throws {
        guard frames.count >= 3 else { throw DecodeError.tooFewFrames(frames.count) }
        let version = String(decoding: frames[0].prefix(32), as: UTF8.self)
        guard version == Self.version else { throw DecodeError.version(version) }
        let word = String(decoding: frames[1].prefix(32), as: UTF8.self)
        guard let command = Command(rawValue: word) else { throw DecodeError.unknownCommand(word) }
        guard let value = try? JSONDecoder().decode(JSONValue.self, from: frames[2]), case .object(let header) = value
        else {
            throw DecodeError.badHeader
        }
        self.init(command, header, binary: Array(frames[3...]))
    }

    public func string(_ key: String) -> String? { header[key]?.stringValue }
    public func int(_ key: String) -> Int? { header[key]?.doubleValue.map { Int($0) } }
    public func double(_ key: String) -> Double? { header[key]?.doubleValue }
}

extension Array where Element == Double {
    /// Raw little-endian Float64 bytes.
    var littleEndianData: Data { withUnsafeBytes { Data($0) } }

    init?(littleEndian data: Data) {
        guard data.count % 8 == 0 else { return nil }
        self = data.withUnsafeBytes { Array($0.bindMemory(to: Double.self)) }
    }
}
