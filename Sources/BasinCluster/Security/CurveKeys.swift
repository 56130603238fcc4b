import Foundation
import ZeroMQ

/// CURVE keys on disk, as `basin keygen` writes them: `NAME.pub` holds the public key (Z85,
/// one line); `NAME.key` holds `public = …` and `secret = …` lines and stays private.
public struct CurveKeyPair: Sendable, Equatable {
    public var publicKey: String
    public var secretKey: String

    public static func generate() throws -> CurveKeyPair {
        let (publicKey, secretKey) = try ZMQCurve.keypair()
        return CurveKeyPair(publicKey: publicKey, secretKey: secretKey)
    }

    /// Writes `NAME.key` (mode 0600) and `NAME.pub`.
    public func write(name: String) throws {
        let secret = "# Basin CURVE key pair: keep this file private\npublic = \(publicKey)\nsecret = \(secretKey)\n"
        guard
            FileManager.default.createFile(
                atPath: name + ".key", contents: Data(secret.utf8), attributes: [.posixPermissions: 0o600])
        else {
            throw ClusterError("\(name).key: cannot write the key file")
        }
        guard FileManager.default.createFile(atPath: name + ".pub", contents: Data((publicKey + "\n").utf8)) else {
            throw ClusterError("\(name).pub: cannot write the public key file")
        }
    }

    /// Reads a `.key` file.
    public init(contentsOf path: String) throws {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw ClusterError("\(path): cannot read the CURVE key file")
        }
        var fields: [String: String] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            let parts = line.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            if parts.count == 2 { fields[parts[0]] = parts[1] }
        }
        guard let publicKey = fields["public"], ZMQCurve.decode(publicKey) != nil, let secretKey = fields["secret"],
            ZMQCurve.decode(secretKey) != nil
        else {
            throw ClusterError(
                "\(path): not a CURVE key file (needs 'public = <40 Z85 characters>' and 'secret = …' lines)")
        }
        self.init(publicKey: publicKey, secretKey: secretKey)
    }

    public init(publicKey: String, secretKey: String) {
        self.publicKey = publicKey
        self.secretKey = secretKey
    }

    /// Reads a `.pub` file (or the `public` line of a `.key` file).
    public static func publicKey(contentsOf path: String) throws -> String {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw ClusterError("\(path): cannot read the public key file")
        }
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            let trimmed = line.replacingOccurrences(of: "public =", with: "").trimmingCharacters(in: .whitespaces)
            if ZMQCurve.decode(trimmed) != nil { return trimmed }
        }
        throw ClusterError("\(path): no 40-character Z85 public key in it")
    }

    /// The public keys of every `.pub` file in `directory`.
    public static func allowList(directory: String) throws -> Set<String> {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else {
            throw ClusterError("\(directory): cannot list the directory of allowed worker keys")
        }
        return Set(
            try names.filter { $0.hasSuffix(".pub") }.map {
                try publicKey(contentsOf: (directory as NSString).appendingPathComponent($0))
            })
    }
}

/// CURVE settings of a coordinator: its key pair and the workers it lets in.
public struct CurveServer: Sendable {
    public var keys: CurveKeyPair
    public var allowed: Set<String>

    public init(keys: CurveKeyPair, allowed: Set<String>) {
        self.keys = keys
        self.allowed = allowed
    }
}

/// CURVE settings of a worker: its key pair and the coordinator's public key.
public struct CurveClient: Sendable {
    public var keys: CurveKeyPair
    public var serverKey: String

    public init(keys: CurveKeyPair, serverKey: String) {
        self.keys = keys
        self.serverKey = serverKey
    }
}

/// The ZAP handler (RFC 27) that decides, per connection, whether a CURVE client's public key
/// is on the allow list. Served by the coordinator's I/O thread on `inproc://zeromq.zap.01`.
struct ZapHandler {
    let allowed: Set<String>

    /// The reply frames for a request, and a log line when a key is refused.
    func reply(to frames: [Data]) -> (reply: [Data], refused: String?) {
        guard frames.count >= 6 else { return ([], nil) }
        let version = frames[0], requestID = frames[1]
        let address = String(decoding: frames[3], as: UTF8.self)
        let mechanism = String(decoding: frames[5], as: UTF8.self)
        var key = ""
        if mechanism == "CURVE", frames.count >= 7, let text = ZMQCurve.encode([UInt8](frames[6])) { key = text }
        if !key.isEmpty && allowed.contains(key) {
            return ([version, requestID, Data("200".utf8), Data("OK".utf8), Data(key.utf8), Data()], nil)
        }
        let refused =
            "refused a connection from \(address.isEmpty ? "?" : address) with \(key.isEmpty ? mechanism : "unknown public key \(key)")"
        return ([version, requestID, Data("400".utf8), Data("key not allowed".utf8), Data(), Data()], refused)
    }
}
