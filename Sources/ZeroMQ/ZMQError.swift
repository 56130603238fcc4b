import CZeroMQ

/// A libzmq call that failed, with its errno and libzmq's message.
public struct ZMQError: Error, CustomStringConvertible, Sendable, Equatable {
    public let code: Int32
    public let operation: String

    public init(code: Int32, operation: String) {
        self.code = code
        self.operation = operation
    }

    /// The last error of this thread.
    static func last(_ operation: String) -> ZMQError {
        ZMQError(code: zmq_errno(), operation: operation)
    }

    public var description: String {
        "\(operation) failed: \(String(cString: zmq_strerror(code)))"
    }

    /// The context was terminated: a loop owning the socket should end.
    public var isTerminated: Bool { code == ETERM }
    public var isAgain: Bool { code == EAGAIN }
    var isInterrupted: Bool { code == EINTR }
}
