import CZeroMQ

/// A libzmq context.
///
/// `@unchecked Sendable`: libzmq documents contexts as thread-safe; sockets made from one are
/// not, and each belongs to the thread that uses it.
public final class ZMQContext: @unchecked Sendable {
    let handle: UnsafeMutableRawPointer

    /// - Parameter maxSockets: sockets this context may hold (libzmq's default is 1023).
    public init(ioThreads: Int32 = 1, maxSockets: Int32? = nil) throws {
        guard let handle = zmq_ctx_new() else { throw ZMQError.last("zmq_ctx_new") }
        self.handle = handle
        zmq_ctx_set(handle, ZMQ_IO_THREADS, ioThreads)
        if let maxSockets { zmq_ctx_set(handle, ZMQ_MAX_SOCKETS, maxSockets) }
    }

    /// Ends the context: blocking calls on its sockets return ETERM. Sockets must still be closed.
    public func shutdown() {
        zmq_ctx_shutdown(handle)
    }

    deinit {
        while zmq_ctx_term(handle) != 0 && zmq_errno() == EINTR {}
    }

    /// libzmq's version as (major, minor, patch).
    public static var version: (Int32, Int32, Int32) {
        var major: Int32 = 0, minor: Int32 = 0, patch: Int32 = 0
        zmq_version(&major, &minor, &patch)
        return (major, minor, patch)
    }

    /// Whether this libzmq was built with CURVE security.
    public static var hasCurve: Bool { zmq_has("curve") == 1 }
}
