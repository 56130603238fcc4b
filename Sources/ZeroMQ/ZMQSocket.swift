import CZeroMQ
import Foundation

/// A libzmq socket. Not thread-safe: one thread owns it, from creation to `close`.
public final class ZMQSocket {
    public enum Kind: Sendable {
        case router, dealer, req, rep, pair, pub, sub, push, pull

        var raw: Int32 {
            switch self {
            case .router: ZMQ_ROUTER
            case .dealer: ZMQ_DEALER
            case .req: ZMQ_REQ
            case .rep: ZMQ_REP
            case .pair: ZMQ_PAIR
            case .pub: ZMQ_PUB
            case .sub: ZMQ_SUB
            case .push: ZMQ_PUSH
            case .pull: ZMQ_PULL
            }
        }
    }

    private(set) var handle: UnsafeMutableRawPointer?
    public let kind: Kind
    /// Kept so the context outlives its sockets.
    private let context: ZMQContext

    public init(_ context: ZMQContext, _ kind: Kind) throws {
        guard let handle = zmq_socket(context.handle, kind.raw) else { throw ZMQError.last("zmq_socket") }
        self.handle = handle
        self.kind = kind
        self.context = context
    }

    deinit {
        close()
    }

    /// Closes the socket (idempotent). Pending messages follow LINGER.
    public func close() {
        if let handle {
            zmq_close(handle)
            self.handle = nil
        }
    }

    private func live(_ operation: String) throws -> UnsafeMutableRawPointer {
        guard let handle else { throw ZMQError(code: ENOTSOCK, operation: operation) }
        return handle
    }

    // MARK: Options

    public func set(_ option: Int32, int32 value: Int32, _ name: String) throws {
        var v = value
        guard zmq_setsockopt(try live(name), option, &v, MemoryLayout<Int32>.size) == 0 else {
            throw ZMQError.last("setting \(name)")
        }
    }

    public func set(_ option: Int32, int64 value: Int64, _ name: String) throws {
        var v = value
        guard zmq_setsockopt(try live(name), option, &v, MemoryLayout<Int64>.size) == 0 else {
            throw ZMQError.last("setting \(name)")
        }
    }

    public func set(_ option: Int32, bytes: [UInt8], _ name: String) throws {
        let handle = try live(name)
        let status = bytes.withUnsafeBytes { zmq_setsockopt(handle, option, $0.baseAddress, bytes.count) }
        guard status == 0 else { throw ZMQError.last("setting \(name)") }
    }

    /// Milliseconds pending messages may linger after close (0: drop them).
    public func setLinger(_ milliseconds: Int32) throws { try set(ZMQ_LINGER, int32: milliseconds, "ZMQ_LINGER") }
    /// ROUTER: fail (EHOSTUNREACH) instead of silently dropping a message to an unknown peer.
    public func setRouterMandatory(_ on: Bool) throws {
        try set(ZMQ_ROUTER_MANDATORY, int32: on ? 1 : 0, "ZMQ_ROUTER_MANDATORY")
    }
    /// Largest inbound message in bytes; a larger one closes the peer's connection.
    public func setMaximumMessageSize(_ bytes: Int64) throws { try set(ZMQ_MAXMSGSIZE, int64: bytes, "ZMQ_MAXMSGSIZE") }
    public func setRoutingID(_ id: String) throws { try set(ZMQ_ROUTING_ID, bytes: Array(id.utf8), "ZMQ_ROUTING_ID") }
    /// Queue messages only to completed connections.
    public func setImmediate(_ on: Bool) throws { try set(ZMQ_IMMEDIATE, int32: on ? 1 : 0, "ZMQ_IMMEDIATE") }
    public func setHighWaterMarks(send: Int32, receive: Int32) throws {
        try set(ZMQ_SNDHWM, int32: send, "ZMQ_SNDHWM")
        try set(ZMQ_RCVHWM, int32: receive, "ZMQ_RCVHWM")
    }
    /// Reconnect delay, doubling up to `maximum` milliseconds.
    public func setReconnect(initial: Int32, maximum: Int32) throws {
        try set(ZMQ_RECONNECT_IVL, int32: initial, "ZMQ_RECONNECT_IVL")
        try set(ZMQ_RECONNECT_IVL_MAX, int32: maximum, "ZMQ_RECONNECT_IVL_MAX")
    }
    /// CURVE server side: this socket's secret key (32 bytes).
    public func setCurveServer(secretKey: [UInt8]) throws {
        try set(ZMQ_CURVE_SERVER, int32: 1, "ZMQ_CURVE_SERVER")
        try set(ZMQ_CURVE_SECRETKEY, bytes: secretKey, "ZMQ_CURVE_SECRETKEY")
    }
    /// CURVE client side: the server's public key and this socket's key pair (32 bytes each).
    public func setCurveClient(serverKey: [UInt8], publicKey: [UInt8], secretKey: [UInt8]) throws {
        try set(ZMQ_CURVE_SERVERKEY, bytes: serverKey, "ZMQ_CURVE_SERVERKEY")
        try set(ZMQ_CURVE_PUBLICKEY, bytes: publicKey, "ZMQ_CURVE_PUBLICKEY")
        try set(ZMQ_CURVE_SECRETKEY, bytes: secretKey, "ZMQ_CURVE_SECRETKEY")
    }

    /// The endpoint actually bound (resolves `tcp://127.0.0.1:*`).
    public var lastEndpoint: String {
        guard let handle else { return "" }
        var buffer = [CChar](repeating: 0, count: 256)
        var size = buffer.count
        guard zmq_getsockopt(handle, ZMQ_LAST_ENDPOINT, &buffer, &size) == 0 else { return "" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    // MARK: Connections

    public func bind(_ endpoint: String) throws {
        guard zmq_bind(try live("bind"), endpoint) == 0 else { throw ZMQError.last("binding \(endpoint)") }
    }

    public func connect(_ endpoint: String) throws {
        guard zmq_connect(try live("connect"), endpoint) == 0 else { throw ZMQError.last("connecting to \(endpoint)") }
    }

    public func disconnect(_ endpoint: String) throws {
        guard zmq_disconnect(try live("disconnect"), endpoint) == 0 else {
            throw ZMQError.last("disconnecting \(endpoint)")
        }
    }

    // MARK: Messages

    /// Sends all frames as one multipart message. Returns false when `dontWait` and the
    /// message cannot be queued now (EAGAIN). EINTR is retried. With `moreFollows` the
    /// message stays open: the next send continues it.
    @discardableResult
    public func send(_ frames: [Data], dontWait: Bool = false, moreFollows: Bool = false) throws -> Bool {
        let handle = try live("send")
        for (index, frame) in frames.enumerated() {
            var flags: Int32 = index < frames.count - 1 || moreFollows ? ZMQ_SNDMORE : 0
            if dontWait { flags |= ZMQ_DONTWAIT }
            while true {
                let status = frame.withUnsafeBytes { zmq_send(handle, $0.baseAddress, frame.count, flags) }
                if status >= 0 { break }
                let error = ZMQError.last("send")
                if error.isInterrupted { continue }
                if error.isAgain && dontWait && index == 0 { return false }
                throw error
            }
        }
        return true
    }

    /// Receives one whole multipart message, or nil when `dontWait` and none is waiting.
    /// EINTR is retried; ETERM is thrown (`isTerminated`).
    public func receive(dontWait: Bool = false) throws -> [Data]? {
        let handle = try live("receive")
        var frames: [Data] = []
        var message = zmq_msg_t()
        while true {
            zmq_msg_init(&message)
            defer { zmq_msg_close(&message) }
            var received: Int32
            repeat {
                received = zmq_msg_recv(&message, handle, dontWait && frames.isEmpty ? ZMQ_DONTWAIT : 0)
            } while received < 0 && zmq_errno() == EINTR
            if received < 0 {
                let error = ZMQError.last("receive")
                if error.isAgain && frames.isEmpty { return nil }
                throw error
            }
            let size = zmq_msg_size(&message)
            frames.append(size == 0 ? Data() : Data(bytes: zmq_msg_data(&message), count: size))
            if zmq_msg_more(&message) == 0 { return frames }
        }
    }

    /// Waits up to `timeout` milliseconds (−1: forever) for any of `sockets` to have a message;
    /// returns the indices of the readable ones. EINTR returns an empty list.
    public static func poll(_ sockets: [ZMQSocket], timeout: Int) throws -> [Int] {
        var items = sockets.map { zmq_pollitem_t(socket: $0.handle, fd: 0, events: Int16(ZMQ_POLLIN), revents: 0) }
        let status = zmq_poll(&items, Int32(items.count), timeout)
        if status < 0 {
            let error = ZMQError.last("zmq_poll")
            if error.isInterrupted { return [] }
            throw error
        }
        return items.indices.filter { items[$0].revents & Int16(ZMQ_POLLIN) != 0 }
    }
}
