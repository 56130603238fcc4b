import ArgumentParser
import BasinCluster
import BasinNN
import BasinSweep
import Foundation
import Logging

/// `basin worker`: computes shards for a coordinator.
struct WorkerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Compute shards for a coordinator; reconnects by itself when the coordinator restarts."
    )

    @Option(help: "Coordinator endpoint, e.g. tcp://HOST:5555.")
    var connect: String

    @Option(help: "Leases held at once (one computing, the rest queued so the worker never idles).")
    var slots: Int = 2

    @Option(help: "OpenBLAS threads.")
    var threads: Int = 1

    @Option(help: "Worker name in logs (default: host-pid).")
    var name: String?

    @Flag(name: .customLong("keep-alive"), help: "Stay connected after the coordinator says DONE.")
    var keepAlive = false

    @Option(
        name: .customLong("give-up-after"),
        help:
            "Seconds without a word from the coordinator after which an idle worker exits with an error (0: never); long enough to outlast a coordinator restart."
    )
    var giveUpAfter: Double = 600

    @Option(name: .customLong("curve-keys"), help: "CURVE: this worker's key pair (NAME.key from basin keygen).")
    var curveKeys: String?

    @Option(name: .customLong("curve-server"), help: "CURVE: the coordinator's public key (its .pub file).")
    var curveServer: String?

    @Option(
        help:
            "Directory of artifacts (checkpoints, curves) by SHA-256: fetched inputs and made outputs are kept there (default: $XDG_CACHE_HOME/basin or ~/.cache/basin)."
    )
    var cache: String?

    /// The default artifact cache.
    static var defaultCache: URL {
        let environment = ProcessInfo.processInfo.environment
        if let xdg = environment["XDG_CACHE_HOME"], !xdg.isEmpty {
            return URL(fileURLWithPath: xdg).appendingPathComponent("basin")
        }
        if let home = environment["HOME"], !home.isEmpty {
            return URL(fileURLWithPath: home).appendingPathComponent(".cache/basin")
        }
        return URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("basin-cache-\(getuid())")
    }

    func validate() throws {
        guard slots >= 1 else { throw ValidationError("--slots must be at least 1") }
        guard giveUpAfter >= 0 && giveUpAfter.isFinite else {
            throw ValidationError("--give-up-after must be 0 (never) or a number of seconds, got \(giveUpAfter)")
        }
        guard (curveKeys == nil) == (curveServer == nil) else {
            throw ValidationError("CURVE needs both --curve-keys and --curve-server")
        }
        guard connect.hasPrefix("tcp://") || connect.hasPrefix("ipc://") else {
            throw ValidationError("--connect must be an endpoint such as tcp://HOST:5555, got '\(connect)'")
        }
    }

    func run() throws {
        BLAS.setThreads(threads)
        let logger = Logger(label: "basin.worker")
        let workerName = name ?? "\(ProcessInfo.processInfo.hostName)-\(getpid())"
        var curve: CurveClient?
        if let curveKeys, let curveServer {
            curve = CurveClient(
                keys: try CurveKeyPair(contentsOf: curveKeys),
                serverKey: try CurveKeyPair.publicKey(contentsOf: curveServer))
        }
        let cacheURL = cache.map { URL(fileURLWithPath: $0) } ?? Self.defaultCache
        let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
        let client = try WorkerClient(
            endpoint: connect, name: workerName, slots: slots, exitWhenDone: !keepAlive,
            giveUpAfter: giveUpAfter > 0 ? giveUpAfter : nil, cache: cacheURL,
            computeCommand: [executable, "compute-child", "--cache", cacheURL.path, "--threads", String(threads)],
            curve: curve, logger: logger)
        let reason = try client.run()
        logger.info("worker \(workerName) leaving: \(reason)")
    }
}
