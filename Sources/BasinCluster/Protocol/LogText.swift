import Foundation

/// Text a peer chose, made safe for one log line: control characters, quotes, backslashes and
/// bytes that are not UTF-8 are escaped, and the result is cut to a bounded length, so no
/// peer can forge a log line or blow one up.
public enum LogText {
    /// Longest escaped text a log line carries from a peer.
    public static let limit = 200

    public static func escaped(_ text: String, limit: Int = LogText.limit) -> String {
        escaped(Data(text.utf8), limit: limit)
    }

    public static func escaped(_ bytes: some Collection<UInt8>, limit: Int = LogText.limit) -> String {
        var out = ""
        var kept = 0
        let text = String(decoding: bytes.prefix(4 * limit), as: UTF8.self)
        for scalar in text.unicodeScalars {
            kept += 1
            if kept > limit {
                out += "…"
                return out
            }
            switch scalar {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{FFFD}": out += "\\ufffd"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F || (0x80...0x9F).contains(scalar.value)
                    || (0x2028...0x2029).contains(scalar.value) || (0x202A...0x202E).contains(scalar.value)
                {
                    out += String(format: "\\u%04x", scalar.value)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        if bytes.count > 4 * limit { out += "…" }
        return out
    }

    /// A routing id as text: printable ASCII as is, anything else as hexadecimal.
    public static func peer(_ id: Data) -> String {
        let printable = !id.isEmpty && id.count <= 64 && id.allSatisfy { (0x21...0x7E).contains($0) }
        return printable
            ? String(decoding: id, as: UTF8.self) : id.prefix(32).map { String(format: "%02x", $0) }.joined()
    }
}
