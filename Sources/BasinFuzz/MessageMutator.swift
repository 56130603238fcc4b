import BasinCluster
import BasinSweep
import Foundation

/// Seeded mutations of valid protocol messages, for the fuzz tests and `basin-bench fuzz`:
/// numbers become ±1e300, 2^63, −1, 0.5, NaN-like strings, null or nested objects; strings
/// become 1 MB, invalid UTF-8, paths or control characters; fields are dropped or added;
/// frames are dropped, duplicated, appended or replaced by random bytes; commands and
/// versions become unknown ones. The same seed gives the same messages on every machine.
public struct MessageMutator {
    var state: UInt64
    /// The valid messages mutations start from (frames after the routing id), and their headers.
    public var templates: [[Data]]
    var headers: [[String: JSONValue]]
    /// How many mutated messages were made.
    public private(set) var count = 0
    private let megabyte = String(repeating: "x", count: 1 << 20)

    public init(seed: UInt64, templates: [WireMessage]) {
        state = seed ^ 0x9E37_79B9_7F4A_7C15
        self.templates = templates.map { $0.frames() }
        headers = templates.map(\.header)
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(max(n, 1))) }

    /// Replacement values for a header field.
    mutating func value() -> JSONValue {
        let choices: [JSONValue] = [
            .number(1e300), .number(-1e300), .number(9_223_372_036_854_775_808.0), .number(18_446_744_073_709_551_616.0),
            .integer(-1), .integer(0), .number(0.5), .number(-0.0), .number(1e-300), .integer(Int.max),
            .integer(Int.min), .integer(1 << 53 + 1), .string("NaN"), .string("Infinity"), .string("-Infinity"),
            .null, .object(["a": .integer(1)]), .array([.integer(1), .integer(2)]), .bool(true), .string(""),
            .string("../../etc/passwd"), .string("/etc/passwd"), .string("line\nforged: ERROR\u{0}\u{1B}[31m"),
            .string(String(repeating: "a", count: 63)), .string(String(repeating: "A", count: 64)),
            .string(String(repeating: "f", count: 65)), .integer(3), .integer(64), .integer(65),
            .object(["../x": .string(String(repeating: "0", count: 64))]),
        ]
        if below(400) == 0 { return .string(megabyte) }
        return choices[below(choices.count)]
    }

    /// One mutated message (frames after the routing id).
    public mutating func message() -> [Data] {
        count += 1
        let template = below(templates.count)
        var frames = templates[template]
        switch below(12) {
        case 0, 1, 2, 3:
            frames[2] = JSONValue.object(mutated(headers[template])).serialized()
        case 4:
            // A field's value replaced by bytes that are not UTF-8.
            var header = frames[2]
            if let colon = header.firstIndex(of: UInt8(ascii: ":")) {
                header.insert(contentsOf: [0x22, 0xFF, 0xFE, 0xC3, 0x22, 0x2C], at: header.index(after: colon))
            }
            frames[2] = header
        case 5:
            switch below(4) {
            case 0: frames.remove(at: below(frames.count))
            case 1: frames.insert(frames[below(frames.count)], at: below(frames.count + 1))
            case 2: frames.append(randomBytes(below(64)))
            default: frames = Array(frames.prefix(below(frames.count)))
            }
        case 6:
            let words = ["JUMP", "hello", "", "HELLO\0", "RESULTS", String(repeating: "X", count: 300), "TASK", "DONE"]
            frames[1] = Data(words[below(words.count)].utf8)
        case 7:
            let versions = ["BASIN/2", "", "BASIN/1\0", "basin/1", String(repeating: "V", count: 100)]
            frames[0] = Data(versions[below(versions.count)].utf8)
        case 8:
            frames = (0..<below(6)).map { _ in randomBytes(below(200)) }
        case 9:
            // Binary frames: wrong lengths, NaN and infinite values, random bytes.
            if frames.count > 3 {
                switch below(3) {
                case 0: frames[3] = randomBytes(below(100))
                case 1: frames[3] = [Double](repeating: [.nan, .infinity, -1, 2, -.infinity][below(5)], count: 1 + below(64)).withUnsafeBytes { Data($0) }
                default: frames[3] = frames[3] + frames[3]
                }
            } else {
                frames.append(randomBytes(below(64)))
            }
        case 10:
            // Deeply nested values.
            let depth = [10, 100, 600, 5000][below(4)]
            frames[2] = Data(("{\"lease\":" + String(repeating: "[", count: depth) + String(repeating: "]", count: depth) + "}").utf8)
        default:
            frames[2] = JSONValue.object(mutated(mutated(headers[template]))).serialized()
        }
        return frames
    }

    mutating func mutated(_ header: [String: JSONValue]) -> [String: JSONValue] {
        var fields = header
        let keys = fields.keys.sorted()
        switch below(5) {
        case 0 where !keys.isEmpty:
            fields[keys[below(keys.count)]] = nil
        case 1:
            fields[["extra", "lease", "slots", "worker", "size", "offset", "length", "files", "inputs"][below(9)]] = value()
        case 2 where !keys.isEmpty:
            // Inside a nested object (definition, spec, files, inputs).
            let key = keys[below(keys.count)]
            if case .object(var inner)? = fields[key], let innerKey = inner.keys.sorted().first {
                inner[innerKey] = value()
                fields[key] = .object(inner)
            } else {
                fields[key] = value()
            }
        default:
            if !keys.isEmpty { fields[keys[below(keys.count)]] = value() }
        }
        return fields
    }

    mutating func randomBytes(_ n: Int) -> Data {
        Data((0..<n).map { _ in UInt8(truncatingIfNeeded: next()) })
    }
}
