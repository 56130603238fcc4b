import BasinSweep
import Foundation
import Logging
import ZeroMQ

/// The coordinator's I/O loop: one thread owns the ROUTER socket, feeds messages and clock
/// ticks to `CoordinatorCore`, journals results with group commit (one fsync per loop pass
/// at most every few milliseconds) and acknowledges them only once durable.
public final class CoordinatorServer {
    public var core: CoordinatorCore
    let journal: Journal
    /// Artifact uploads and downloads: the disk I/O the core asks for.
    let disk: ArtifactDisk
    let logger: Logger
    let socket: ZMQSocket
    let context: ZMQContext
    /// The ZAP handler's socket when CURVE is on.
    let zap: ZMQSocket?
    let zapHandler: ZapHandler?
    /// The endpoint actually bound (a `*` port resolved).
    public let endpoint: String
    /// Called about once a second with (points done, total, points/s, workers alive).
    public var onProgress: ((Int, Int, Double, Int) -> Void)?
    /// Messages handled per pass of the I/O loop before it syncs, acknowledges and ticks.
    static let batch = 512
    /// Messages one peer may have queued unread at the coordinator.
    static let receiveQueue: Int32 = 256
    /// Largest message accepted (a bigger one closes its connection).
    public static let maximumMessageSize: Int64 = 64 << 20

    public init(
        core: CoordinatorCore, journal: Journal, store: ArtifactStore, bind: String, curve: CurveServer? = nil,
        logger: Logger
    ) throws {
        self.core = core
        self.journal = journal
        disk = ArtifactDisk(store: store)
        self.logger = logger
        context = try ZMQContext()
        if let curve {
            // The ZAP handler must be bound before the server socket accepts connections.
            let zap = try ZMQSocket(context, .rep)
            try zap.setLinger(0)
            try zap.bind("inproc://zeromq.zap.01")
            self.zap = zap
            zapHandler = ZapHandler(allowed: curve.allowed)
        } else {
            zap = nil
            zapHandler = nil
        }
        socket = try ZMQSocket(context, .router)
        if let curve { try socket.setCurveServer(secretKey: Array(curve.keys.secretKey.utf8)) }
        try socket.setLinger(0)
        try socket.setRouterMandatory(true)
        try socket.setMaximumMessageSize(Self.maximumMessageSize)
        // Sends are never dropped (ROUTER_MANDATORY, no send limit); what one peer may have
        // queued here unread is bounded, so a peer that floods is held back by TCP instead of
        // growing the coordinator's memory (a genuine worker has a few messages in flight,
        // bounded by its slots and upload credit).
        try socket.setHighWaterMarks(send: 0, receive: Self.receiveQueue)
        do {
            try socket.bind(bind)
        } catch let error as ZMQError {
            throw ClusterError("cannot bind \(bind): \(error)")
        }
        endpoint = socket.lastEndpoint
        // Every worker connection holds a descriptor: take what the hard limit allows and keep
        // the worker count under it, so the limit is met with a clear refusal, not EMFILE.
        let descriptors = Self.raiseDescriptorLimit()
        let room = max(1, descriptors - 128)
        if room < self.core.settings.maxWorkers {
            self.core.settings.maxWorkers = room
        }
        logger.info("open-file limit \(descriptors): up to \(self.core.settings.maxWorkers) workers at once")
    }

    /// Raises the soft open-file limit to the hard one; returns the limit in force.
    public static func raiseDescriptorLimit() -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 1024 }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { limit = raised }
        }
        return Int(clamping: limit.rlim_cur)
    }

    /// Waits up to 50 ms, answers ZAP requests, and hands every message to the state machine.
    func pollOnce(now: () -> Double) throws {
        let readable = try ZMQSocket.poll([socket] + (zap.map { [$0] } ?? []), timeout: 50)
        if readable.contains(1), let zap, let zapHandler {
            while let request = try zap.receive(dontWait: true) {
                let (reply, refused) = zapHandler.reply(to: request)
                if let refused { logger.warning("\(refused)") }
                if !reply.isEmpty { try zap.send(reply) }
            }
        }
        if readable.contains(0) {
            // A bounded batch, so journal syncs, ACKs, heartbeats and retirements still go out
            // however fast messages arrive (the rest wait in the socket for the next pass).
            var handled = 0
            while handled < Self.batch, let frames = try socket.receive(dontWait: true) {
                handled += 1
                guard frames.count >= 1 else { continue }
                let actions = core.receive(peer: frames[0], frames: Array(frames.dropFirst()), now: now())
                try perform(actions)
            }
        }
    }

    /// Runs until every shard is done or quarantined, then tells workers DONE and waits a
    /// moment for their BYE; or until `stop()` is true (checked every pass, at least every
    /// 50 ms), leaving with the journal synced and workers not told anything (they reconnect
    /// to the next coordinator on this run directory). Returns whether the sweep finished.
    @discardableResult
    public func run(until stop: () -> Bool = { false }) throws -> Bool {
        let start = ContinuousClock().now
        let now = { start.secondsSince }
        var lastTick = 0.0, lastProgress = 0.0, lastSync = 0.0
        var progressPoints = core.pointsThisRun, progressTime = 0.0
        while !core.isFinished {
            if stop() {
                try syncJournal()
                return false
            }
            try pollOnce(now: now)
            let t = now()
            if journal.unsynced > 0 && (t - lastSync >= 0.002 || journal.unsynced >= 64) {
                try syncJournal()
                lastSync = t
                try perform(core.durable(now: t))
            }
            if t - lastTick >= 0.1 {
                lastTick = t
                try perform(core.tick(now: t))
            }
            if t - lastProgress >= 1 {
                let rate = Double(core.pointsThisRun - progressPoints) / max(t - progressTime, 1e-9)
                onProgress?(core.pointsDone, core.pointsTotal, rate, core.workersAlive)
                lastProgress = t
                if t - progressTime >= 5 { (progressPoints, progressTime) = (core.pointsThisRun, t) }
            }
        }
        try syncJournal()
        try perform(core.finish())
        // Workers answer DONE with BYE. Until every worker that joined has (or `doneGrace` has
        // passed), whoever speaks hears DONE: a worker that was reconnecting when the sweep
        // ended would otherwise wait for a coordinator that is gone.
        let end = now() + doneGrace
        while core.awaitingGoodbyes && now() < end && !stop() { try pollOnce(now: now) }
        // Close only once the last DONEs are on the wire.
        try? socket.setLinger(1000)
        return true
    }

    /// Seconds a finished coordinator waits for its workers' BYE.
    public var doneGrace = 3.0

    /// After `run`: keeps the socket open so late workers are told `DONE` and heartbeats are
    /// answered, until `stop()` is true (checked every 50 ms). For deployments that restart a
    /// coordinator that exits (a Kubernetes StatefulSet): a finished sweep then stays up, idle.
    public func serve(until stop: () -> Bool) throws {
        let start = ContinuousClock().now
        let now = { start.secondsSince }
        var lastTick = 0.0, lastProgress = -1.0
        while !stop() {
            try pollOnce(now: now)
            let t = now()
            if t - lastTick >= 0.1 {
                lastTick = t
                try perform(core.tick(now: t))
            }
            if t - lastProgress >= 1 {
                lastProgress = t
                onProgress?(core.pointsDone, core.pointsTotal, 0, core.workersAlive)
            }
        }
    }

    /// Makes the journal durable, or stops the coordinator (fail-stop): nothing is acknowledged
    /// after a failed fsync, so nothing acknowledged is ever lost.
    func syncJournal() throws {
        do {
            try journal.sync()
        } catch {
            throw ClusterError("stopping: \(error); nothing after the last durable record was acknowledged")
        }
    }

    /// Performs the state machine's actions. A journal append that fails stops the coordinator
    /// at once (fail-stop): the records before it are synced and acknowledged, none after.
    func perform(_ actions: [CoordinatorCore.Action]) throws {
        for action in disk.settle(actions, into: &core) {
            switch action {
            case .send(let peer, let message):
                do {
                    try socket.send([peer] + message.frames(), dontWait: true)
                } catch {
                    logger.debug(
                        "could not send \(message.command.rawValue) to \(LogText.peer(peer)): \(error)")
                }
            case .journal(var record):
                record.time = Date().timeIntervalSince1970
                do {
                    try journal.append(.shardDone(record))
                } catch {
                    throw ClusterError("stopping: \(error); nothing after the last durable record was acknowledged")
                }
            case .revoke(let record):
                do {
                    try journal.append(.shardRevoked(record))
                } catch {
                    throw ClusterError("stopping: \(error); nothing after the last durable record was acknowledged")
                }
            case .event(let event):
                logger.log(event)
            case .write, .read, .discard:
                // Performed by `disk.settle` above.
                break
            }
        }
    }

    deinit {
        socket.close()
        zap?.close()
    }
}

/// A cluster failure worth one sentence.
public struct ClusterError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
