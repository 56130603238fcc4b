import CZeroMQ

/// CURVE key handling: key pairs and Z85 text (40 characters for a 32-byte key).
public enum ZMQCurve {
    /// A new key pair as Z85 text.
    public static func keypair() throws -> (publicKey: String, secretKey: String) {
        var publicKey = [CChar](repeating: 0, count: 41), secretKey = [CChar](repeating: 0, count: 41)
        guard zmq_curve_keypair(&publicKey, &secretKey) == 0 else { throw ZMQError.last("zmq_curve_keypair") }
        return (text(publicKey), text(secretKey))
    }

    /// Z85 text of 32 bytes.
    public static func encode(_ bytes: [UInt8]) -> String? {
        guard bytes.count == 32 else { return nil }
        var out = [CChar](repeating: 0, count: 41)
        guard zmq_z85_encode(&out, bytes, 32) != nil else { return nil }
        return text(out)
    }

    /// The 32 bytes of a 40-character Z85 key, or nil when it is not one.
    public static func decode(_ key: String) -> [UInt8]? {
        guard key.utf8.count == 40 else { return nil }
        var out = [UInt8](repeating: 0, count: 32)
        guard zmq_z85_decode(&out, key) != nil else { return nil }
        return out
    }

    private static func text(_ chars: [CChar]) -> String {
        String(decoding: chars.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
