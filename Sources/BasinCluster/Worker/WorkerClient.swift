import BasinNN
import BasinSweep
import Foundation
import Logging
import ZeroMQ

/// A worker process: the calling thread owns the DEALER socket and runs `WorkerCore`; a
/// supervising thread has a compute child process evaluate shards with the `Executor` and
/// hands results back over an inproc socket, so heartbeats continue while it computes and a
/// computation that crashes is reported, not fatal.
public final class WorkerClient {
    let endpoint: String
    var core: WorkerCore
    /// The cache's reads and writes, which the core asks for.
    let disk: ArtifactDisk
    let logger: Logger
    let context: ZMQContext

    let curve: CurveClient?
    /// The compute child's executable and arguments (`basin compute-child …`).
    let computeCommand: [String]

    public init(
        endpoint: String, name: String, slots: Int, exitWhenDone: Bool, giveUpAfter: Double? = nil, cache: URL,
        computeCommand: [String], curve: CurveClient? = nil, logger: Logger
    ) throws {
        self.endpoint = endpoint
        self.curve = curve
        self.computeCommand = computeCommand
        disk = ArtifactDisk(store: ArtifactStore(directory: cache))
        core = WorkerCore(
            name: name, slots: slots, cached: disk.store.hashes(), host: ProcessInfo.processInfo.hostName,
            pid: Int(getpid()))
        core.exitWhenDone = exitWhenDone
        core.giveUpAfter = giveUpAfter
        self.logger = logger
        context = try ZMQContext()
    }

    /// The DEALER socket of a connection and the PAIR socket its monitor events arrive on.
    private func makeSocket(generation: Int) throws -> (ZMQSocket, ZMQSocket) {
        let socket = try ZMQSocket(context, .dealer)
        try socket.setLinger(0)
        try socket.setImmediate(true)
        // Unpredictable, so no other peer can take this connection's routing id first and lock
        // it out (a ROUTER ignores a second connection under an id in use).
        try socket.setRoutingID("\(core.name.prefix(100))#\(generation).\(String(UInt64.random(in: 0...UInt64.max), radix: 36))")
        try socket.setMaximumMessageSize(CoordinatorServer.maximumMessageSize)
        try socket.setReconnect(initial: 1000, maximum: 32000)
        if let curve {
            try socket.setCurveClient(
                serverKey: Array(curve.serverKey.utf8), publicKey: Array(curve.keys.publicKey.utf8),
                secretKey: Array(curve.keys.secretKey.utf8))
        }
        let monitorEndpoint = "inproc://monitor-\(UUID().uuidString)"
        try socket.monitor(monitorEndpoint)
        let monitor = try ZMQSocket(context, .pair)
        try monitor.setLinger(0)
        try monitor.connect(monitorEndpoint)
        try socket.connect(endpoint)
        return (socket, monitor)
    }

    /// "no coordinator answered at ENDPOINT for N s: CAUSE".
    private func unanswered(_ seconds: Double, _ link: LinkDiagnosis) -> String {
        let whole = Int(exactly: seconds.rounded(.down)) ?? 0
        return "no coordinator answered at \(endpoint) for \(whole) s: \(link.cause(curve: curve != nil))"
    }

    /// Runs until the coordinator says DONE (when `exitWhenDone`); returns the reason. Throws
    /// when no coordinator answers for `giveUpAfter` seconds.
    public func run() throws -> String {
        let start = ContinuousClock.now
        func now() -> Double { start.secondsSince }
        let results = try ZMQSocket(context, .pull)
        try results.setLinger(0)
        let inbox = "inproc://results-\(UUID().uuidString)"
        try results.bind(inbox)
        let compute = ComputeSupervisor(context: context, endpoint: inbox, command: computeCommand, logger: logger)
        compute.start()
        defer { compute.stop() }
        var generation = 0
        var (socket, monitor) = try makeSocket(generation: generation)
        var link = LinkDiagnosis()
        var unsentHello: WireMessage?
        var reconnectAt: Double?
        var pending = core.connected(now: now())
        var lastTick = 0.0
        while true {
            // The cache's actions are done first; what they answer joins the rest.
            for action in disk.settle(pending, into: &core, now: now()) {
                switch action {
                case .send(let message):
                    let sent = (try? socket.send(message.frames(), dontWait: true)) ?? false
                    // In immediate mode a HELLO before the link is up goes nowhere: it goes
                    // when the handshake succeeds (waiting for the next HELLO costs a second).
                    if message.command == .hello { unsentHello = sent ? nil : message }
                case .compute(let task):
                    guard let spec = core.specs[task.specKey] else { continue }
                    compute.submit(task, spec: spec.spec, base: spec.base, files: spec.files)
                case .reconnect(let delay):
                    reconnectAt = now() + delay
                case .exit(let reason):
                    // Let the BYE leave: the coordinator waits for it before it exits.
                    try? socket.setLinger(500)
                    socket.close()
                    return reason
                case .quarantined(let reason):
                    socket.close()
                    throw ClusterError("the coordinator at \(endpoint) quarantined this worker: \(reason)")
                case .giveUp(let seconds):
                    socket.close()
                    throw ClusterError("\(unanswered(seconds, link)); giving up (--give-up-after)")
                case .unanswered(let seconds):
                    logger.warning("\(unanswered(seconds, link)); still saying HELLO")
                case .event(let event):
                    logger.log(event)
                case .adopt, .write, .read, .discard:
                    break  // done by `disk.settle`
                }
            }
            pending = []
            if let at = reconnectAt, now() >= at {
                reconnectAt = nil
                socket.close()
                monitor.close()
                generation += 1
                (socket, monitor) = try makeSocket(generation: generation)
                link = LinkDiagnosis()
                unsentHello = nil
                pending += core.connected(now: now())
                continue
            }
            let readable = try ZMQSocket.poll([socket, results, monitor], timeout: 50)
            if readable.contains(2) {
                while let frames = try monitor.receive(dontWait: true) {
                    guard let event = ZMQMonitorEvent(frames: frames) else { continue }
                    link.note(event)
                    // A HELLO sent before the link was up was dropped (immediate mode).
                    if event.kind == .handshakeSucceeded, let hello = unsentHello {
                        unsentHello = nil
                        _ = try? socket.send(hello.frames(), dontWait: true)
                    }
                }
            }
            if readable.contains(0) {
                while let frames = try socket.receive(dontWait: true) {
                    pending += core.receive(frames: frames, now: now())
                }
            }
            if readable.contains(1) {
                while let frames = try results.receive(dontWait: true) {
                    guard let outcome = compute.take(frames) else { continue }
                    switch outcome {
                    case .success(let task, let metrics, let artifact, let seconds):
                        pending += core.computed(
                            task, metrics: metrics, artifact: artifact, seconds: seconds, now: now())
                    case .failure(let task, let error):
                        pending += core.failed(task, error: error, now: now())
                    }
                }
            }
            if now() - lastTick >= 0.1 && reconnectAt == nil {
                lastTick = now()
                pending += core.tick(now: now())
            }
        }
    }
}

/// Runs the worker's computations in a child process (`basin compute-child`), one task at a
/// time, from a thread of its own that hands outcomes back over an inproc socket, so
/// heartbeats continue while it computes. A child that dies mid-task (a signal, the memory
/// limit) fails that task with the cause, and a new child takes the next one.
final class ComputeSupervisor: @unchecked Sendable {
    // `tasks`, `outcomes`, `stopped` and `child` are guarded by `condition`; the pipes are
    // used by the supervising thread only.
    enum Outcome {
        case success(WorkerCore.Task, [Double], String?, Double)
        case failure(WorkerCore.Task, String)
    }

    private let context: ZMQContext
    private let endpoint: String
    private let command: [String]
    private let logger: Logger
    private let condition = NSCondition()
    private var tasks: [(WorkerCore.Task, StudySpec, String, [String: String])] = []
    private var outcomes: [Int: Outcome] = [:]
    private var stopped = false
    private var nextTicket = 0
    private var child: Process?
    private var toChild: FileHandle?
    private var fromChild: FileHandle?

    /// - Parameter command: the compute child's executable and arguments.
    init(context: ZMQContext, endpoint: String, command: [String], logger: Logger) {
        self.context = context
        self.endpoint = endpoint
        self.command = command
        self.logger = logger
    }

    func start() {
        let thread = Thread { [self] in loop() }
        thread.name = "basin-compute"
        thread.start()
    }

    /// Stops the thread and kills the child (a computation in flight is abandoned: its lease
    /// is re-issued by the coordinator).
    func stop() {
        condition.lock()
        stopped = true
        let running = child
        condition.signal()
        condition.unlock()
        if let running, running.isRunning {
            kill(running.processIdentifier, SIGKILL)
            running.waitUntilExit()
        }
    }

    func submit(_ task: WorkerCore.Task, spec: StudySpec, base: String, files: [String: String]) {
        condition.lock()
        tasks.append((task, spec, base, files))
        condition.signal()
        condition.unlock()
    }

    /// The outcome a notification frame refers to.
    func take(_ frames: [Data]) -> Outcome? {
        guard let ticket = frames.first.flatMap({ Int(String(decoding: $0, as: UTF8.self)) }) else { return nil }
        condition.lock()
        defer { condition.unlock() }
        return outcomes.removeValue(forKey: ticket)
    }

    /// Starts a compute child unless one is running.
    private func ensureChild() throws {
        if let child, child.isRunning { return }
        guard let executable = command.first else { throw ClusterError("no compute command") }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = Array(command.dropFirst())
        let input = Pipe(), output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        try process.run()
        condition.lock()
        child = process
        let stop = stopped
        condition.unlock()
        if stop { kill(process.processIdentifier, SIGKILL) }
        toChild = input.fileHandleForWriting
        fromChild = output.fileHandleForReading
    }

    /// Why the child ended, as the sentence a FAIL carries.
    private func death(of process: Process) -> String {
        process.waitUntilExit()
        let status = process.terminationStatus
        if process.terminationReason == .uncaughtSignal {
            let name = String(cString: strsignal(status))
            let memory = status == SIGKILL ? " (killed from outside; often the kernel's out-of-memory killer)" : ""
            return "the computation died of signal \(status) (\(name))\(memory)"
        }
        return "the computation exited with status \(status) before answering"
    }

    private func compute(_ task: WorkerCore.Task, spec: StudySpec, base: String, files: [String: String]) -> Outcome {
        let request = ComputeChannel.Request(
            lease: task.lease, job: task.job, name: task.definition.name ?? task.definition.defaultName,
            start: task.range.lowerBound, end: task.range.upperBound, definition: task.definition,
            inputs: task.inputs, specKey: task.specKey, spec: spec, base: base, files: files)
        do {
            try ensureChild()
            guard let toChild, let fromChild, let child else { throw ClusterError("no compute child") }
            do {
                try ComputeChannel.write(request, to: toChild)
            } catch {
                self.child = nil
                return .failure(task, death(of: child))
            }
            guard let (reply, payload) = try ComputeChannel.read(ComputeChannel.Reply.self, from: fromChild) else {
                condition.lock()
                self.child = nil
                let stop = stopped
                condition.unlock()
                try? toChild.close()
                try? fromChild.close()
                return .failure(task, stop ? "the worker is stopping" : death(of: child))
            }
            guard reply.lease == task.lease else { throw ClusterError("the compute child answered another task") }
            if let error = reply.error { return .failure(task, error) }
            guard let values = [Double](littleEndian: payload) else {
                throw ClusterError("the compute child sent \(payload.count) bytes of values")
            }
            return .success(task, values, reply.artifact, reply.seconds)
        } catch {
            return .failure(task, "cannot run the computation: \(error)")
        }
    }

    private func loop() {
        // This thread owns its PUSH socket.
        guard let notify = try? ZMQSocket(context, .push) else { return }
        try? notify.setLinger(0)
        try? notify.connect(endpoint)
        while true {
            condition.lock()
            while tasks.isEmpty && !stopped { condition.wait() }
            if stopped {
                condition.unlock()
                notify.close()
                return
            }
            let (task, spec, base, files) = tasks.removeFirst()
            condition.unlock()
            let outcome = compute(task, spec: spec, base: base, files: files)
            if case .failure(_, let reason) = outcome, reason.hasPrefix("the computation") {
                logger.error("lease \(task.lease): \(reason); a new compute process takes the next task")
            }
            condition.lock()
            let ticket = nextTicket
            nextTicket += 1
            outcomes[ticket] = outcome
            condition.unlock()
            _ = try? notify.send([Data(String(ticket).utf8)])
        }
    }
}
