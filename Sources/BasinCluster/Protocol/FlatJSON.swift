import BasinSweep
import Foundation

/// A quick reading of the flat headers the hot commands carry (TASK without its first-task
/// fields, RESULT, HEARTBEAT): one object of numbers and plain strings, nothing nested, no
/// escapes. Anything else, and any value a header would refuse, is left to `JSONDecoder`,
/// which reads every form and names the field in its error: the quick path only ever accepts
/// what the full one accepts, with the same values, at a fraction of its cost per message.
struct FlatJSON {
    enum Value: Equatable {
        case number(Double)
        case string(String)
    }

    private(set) var fields: [(key: String, value: Value)] = []

    /// The object in `data`, or nil when it is not one this reading takes.
    init?(_ data: Data) {
        let parsed: [(String, Value)]? = data.withUnsafeBytes { raw in
            let bytes = raw.bindMemory(to: UInt8.self)
            var i = 0
            func skipSpace() { while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x0A || bytes[i] == 0x0D || bytes[i] == 0x09 { i += 1 } }
            func string() -> String? {
                guard i < bytes.count, bytes[i] == 0x22 else { return nil }
                i += 1
                let start = i
                while i < bytes.count, bytes[i] != 0x22 {
                    // Escapes and control characters: the full decoder's business.
                    guard bytes[i] != 0x5C, bytes[i] >= 0x20 else { return nil }
                    i += 1
                }
                guard i < bytes.count else { return nil }
                defer { i += 1 }
                return String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<i]), as: UTF8.self)
            }
            func digits() -> Int {
                let start = i
                while i < bytes.count, bytes[i] >= 0x30, bytes[i] <= 0x39 { i += 1 }
                return i - start
            }
            /// JSON's number grammar exactly: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
            func number() -> Double? {
                let start = i
                if i < bytes.count, bytes[i] == 0x2D { i += 1 }
                let leading = i
                let whole = digits()
                guard whole > 0, whole == 1 || bytes[leading] != 0x30 else { return nil }
                if i < bytes.count, bytes[i] == 0x2E {
                    i += 1
                    guard digits() > 0 else { return nil }
                }
                if i < bytes.count, bytes[i] == 0x45 || bytes[i] == 0x65 {
                    i += 1
                    if i < bytes.count, bytes[i] == 0x2B || bytes[i] == 0x2D { i += 1 }
                    guard digits() > 0 else { return nil }
                }
                guard i - start <= 32 else { return nil }
                return Double(String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<i]), as: UTF8.self))
            }
            var fields: [(String, Value)] = []
            skipSpace()
            guard i < bytes.count, bytes[i] == 0x7B else { return nil }
            i += 1
            skipSpace()
            if i < bytes.count, bytes[i] == 0x7D {
                i += 1
            } else {
                while true {
                    skipSpace()
                    guard let key = string(), fields.count < 16 else { return nil }
                    skipSpace()
                    guard i < bytes.count, bytes[i] == 0x3A else { return nil }
                    i += 1
                    skipSpace()
                    guard i < bytes.count else { return nil }
                    if bytes[i] == 0x22 {
                        guard let text = string() else { return nil }
                        fields.append((key, .string(text)))
                    } else {
                        guard let value = number(), value.isFinite else { return nil }
                        fields.append((key, .number(value)))
                    }
                    skipSpace()
                    guard i < bytes.count else { return nil }
                    if bytes[i] == 0x2C {
                        i += 1
                        continue
                    }
                    guard bytes[i] == 0x7D else { return nil }
                    i += 1
                    break
                }
            }
            skipSpace()
            return i == bytes.count ? fields : nil
        }
        guard let parsed else { return nil }
        // Each key once, and only keys the header knows (checked by `only`).
        guard Set(parsed.map(\.0)).count == parsed.count else { return nil }
        fields = parsed.map { (key: $0.0, value: $0.1) }
    }

    /// Whether every key is one of `keys`.
    func only(_ keys: Set<String>) -> Bool { fields.allSatisfy { keys.contains($0.key) } }

    func value(_ key: String) -> Value? { fields.first { $0.key == key }?.value }

    /// The integer at `key` within `range`; nil when absent, not an integer, or outside.
    func int(_ key: String, in range: ClosedRange<Int>) -> Int? {
        guard case .number(let number)? = value(key), let integer = Int(exactly: number), range.contains(integer)
        else { return nil }
        return integer
    }

    /// `.some(nil)` when `key` is absent, the integer when it is one within `range`, nil otherwise.
    func intIfPresent(_ key: String, in range: ClosedRange<Int>) -> Int?? {
        guard value(key) != nil else { return .some(nil) }
        return int(key, in: range).map { .some($0) }
    }

    /// The 64-digit lowercase hex hash at `key`, or nil.
    func hash(_ key: String) -> String? {
        guard case .string(let text)? = value(key), ArtifactStore.isHash(text) else { return nil }
        return text
    }
}

/// Hand-written JSON for the hot headers: the bytes `JSONEncoder` would write (sorted keys
/// aside), without it.
enum FlatJSONWriter {
    /// `{"key":value,…}` from fields whose values are already JSON text.
    static func object(_ fields: [(String, String)]) -> Data {
        var text = "{"
        for (index, (key, value)) in fields.enumerated() {
            if index > 0 { text += "," }
            text += "\"\(key)\":\(value)"
        }
        return Data((text + "}").utf8)
    }

    /// A finite number as JSON (its shortest round-trip spelling); 0 for one that is not.
    static func number(_ value: Double) -> String {
        value.isFinite ? "\(value)" : "0"
    }
}
