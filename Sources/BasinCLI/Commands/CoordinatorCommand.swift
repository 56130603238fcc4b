import ArgumentParser
import BasinCluster
import BasinNN
import BasinSweep
import Foundation
import Logging

/// `basin coordinator`: the coordinator alone; workers connect from anywhere.
struct CoordinatorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "coordinator",
        abstract: "Run a study's coordinator; workers join with `basin worker --connect`. Resumes OUT."
    )

    @OptionGroup var options: SweepOptions

    @Option(
        help:
            "Endpoint to bind, e.g. tcp://127.0.0.1:5555 (loopback unless told otherwise; tcp://*:5555 for all interfaces)."
    )
    var bind: String = "tcp://127.0.0.1:5555"

    @Option(name: .customLong("curve-secret"), help: "CURVE: this coordinator's key pair (NAME.key from basin keygen).")
    var curveSecret: String?

    @Option(name: .customLong("curve-allow"), help: "CURVE: directory of allowed worker public keys (*.pub).")
    var curveAllow: String?

    @Flag(
        name: .customLong("keep-serving"),
        help:
            "After the sweep and the merge, stay up (telling late workers DONE) until SIGTERM: for supervisors that restart a coordinator that exits, like a Kubernetes StatefulSet."
    )
    var keepServing = false

    func validate() throws {
        guard (curveSecret == nil) == (curveAllow == nil) else {
            throw ValidationError("CURVE needs both --curve-secret and --curve-allow")
        }
    }

    func run() throws {
        let logger = Logger(label: "basin.coordinator")
        var curve: CurveServer?
        if let curveSecret, let curveAllow {
            curve = CurveServer(
                keys: try CurveKeyPair(contentsOf: curveSecret),
                allowed: try CurveKeyPair.allowList(directory: curveAllow))
        }
        let sweep = try options.open(logger: logger)
        let host = bind.hasPrefix("tcp://") ? String(bind.dropFirst(6).prefix { $0 != ":" }) : ""
        let address = bind.hasPrefix("tcp://[") ? String(bind.dropFirst(7).prefix { $0 != "]" }) : host
        let loopback =
            address.hasPrefix("127.") || address == "localhost" || address == "::1" || bind.hasPrefix("ipc://")
            || bind.hasPrefix("inproc://")
        if curve == nil && !loopback {
            logger.warning(
                "binding \(bind) without CURVE: anyone who can reach this port can join the sweep and submit results; turn CURVE on with `basin keygen` and --curve-secret/--curve-allow (README: Deploy)"
            )
        }
        try options.coordinate(sweep, bind: bind, curve: curve, keepServing: keepServing, logger: logger)
    }
}
