import CZeroMQ
import Foundation

/// What happened to a socket's connections, as libzmq's socket monitor reports it
/// (`zmq_socket_monitor`): TCP connected or refused, handshakes that failed and why.
public struct ZMQMonitorEvent: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        case connected, connectDelayed, connectRetried, disconnected, closed
        /// The peer's ZAP handler refused this socket's credentials (CURVE key); `value` is
        /// the status code (400: denied).
        case handshakeFailedAuth
        /// The security handshake broke (a mechanism mismatch, a malformed or undecryptable
        /// handshake: for CURVE, often the wrong server key).
        case handshakeFailedProtocol, handshakeFailedNoDetail
        case handshakeSucceeded
        case other(UInt16)

        init(raw: UInt16) {
            switch Int32(raw) {
            case ZMQ_EVENT_CONNECTED: self = .connected
            case ZMQ_EVENT_CONNECT_DELAYED: self = .connectDelayed
            case ZMQ_EVENT_CONNECT_RETRIED: self = .connectRetried
            case ZMQ_EVENT_DISCONNECTED: self = .disconnected
            case ZMQ_EVENT_CLOSED: self = .closed
            case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH: self = .handshakeFailedAuth
            case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL: self = .handshakeFailedProtocol
            case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL: self = .handshakeFailedNoDetail
            case ZMQ_EVENT_HANDSHAKE_SUCCEEDED: self = .handshakeSucceeded
            default: self = .other(raw)
            }
        }
    }

    public var kind: Kind
    public var value: UInt32
    public var endpoint: String

    public init(kind: Kind, value: UInt32 = 0, endpoint: String = "") {
        self.kind = kind
        self.value = value
        self.endpoint = endpoint
    }

    /// Parses one monitor message (6 bytes: event number and value, little-endian; then the
    /// endpoint); nil when it is not one.
    public init?(frames: [Data]) {
        guard frames.count >= 1, frames[0].count >= 6 else { return nil }
        let bytes = [UInt8](frames[0].prefix(6))
        kind = Kind(raw: UInt16(bytes[0]) | UInt16(bytes[1]) << 8)
        value = bytes[2...5].reversed().reduce(0) { $0 << 8 | UInt32($1) }
        endpoint = frames.count > 1 ? String(decoding: frames[1], as: UTF8.self) : ""
    }
}

extension ZMQSocket {
    /// Publishes this socket's connection events on `endpoint` (an `inproc://` address) for a
    /// PAIR socket to read as `ZMQMonitorEvent`s.
    public func monitor(_ endpoint: String) throws {
        let events =
            ZMQ_EVENT_CONNECTED | ZMQ_EVENT_CONNECT_RETRIED | ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH
            | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_SUCCEEDED
        guard let handle else { throw ZMQError(code: ENOTSOCK, operation: "zmq_socket_monitor") }
        guard zmq_socket_monitor(handle, endpoint, events) == 0 else { throw ZMQError.last("monitoring on \(endpoint)") }
    }
}
