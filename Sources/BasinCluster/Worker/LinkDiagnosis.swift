import ZeroMQ

/// What a worker has learned about its link to the coordinator from the socket's monitor
/// events, folded into the likely cause when no coordinator answers: nothing listening, the
/// CURVE key refused, a handshake that broke, or a peer that accepts but is no coordinator.
struct LinkDiagnosis {
    var refusals = 0
    var connected = false
    var handshakes = 0
    var authFailures = 0
    var handshakeFailures = 0
    var disconnects = 0

    mutating func note(_ event: ZMQMonitorEvent) {
        switch event.kind {
        case .connectRetried: refusals += 1
        case .connected: connected = true
        case .handshakeSucceeded: handshakes += 1
        case .handshakeFailedAuth: authFailures += 1
        case .handshakeFailedProtocol, .handshakeFailedNoDetail: handshakeFailures += 1
        case .disconnected: disconnects += 1
        default: break
        }
    }

    /// The likely cause, as a clause for "no coordinator answered at ENDPOINT …: CAUSE".
    func cause(curve: Bool) -> String {
        if authFailures > 0 {
            return "the coordinator refused this worker's CURVE key (its .pub must be in the coordinator's --curve-allow directory)"
        }
        if handshakeFailures > 0 || (curve && connected && handshakes == 0) {
            return curve
                ? "the CURVE handshake failed (is --curve-server the coordinator's public key, and does the coordinator run with CURVE?)"
                : "the handshake failed (the coordinator may require CURVE: --curve-keys and --curve-server)"
        }
        if connected {
            return "something there accepts connections but does not speak the Basin protocol (is it a basin coordinator, and is this its port?)"
        }
        if refusals > 0 {
            // A refused port and a network that is down look the same from here.
            return "the connection is refused or the network unreachable (is the coordinator running, are the host and port right, and is the network up?)"
        }
        return "no connection could be made yet (the host may be unreachable, or a firewall drops the packets)"
    }
}
