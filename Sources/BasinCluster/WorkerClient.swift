import BasinNN
import BasinSweep
import Foundation
import Logging
import ZeroMQ

/// A worker process: the calling thread owns the DEALER socket and runs `WorkerCore`; a
/// compute thread evaluates shards with the `Executor` and hands results back over an
/// inproc socket, so heartbeats continue while it computes.
public final class WorkerClient {
    let endpoint: String
    var core: WorkerCore
    let logger: Logger
    let context: ZMQContext

    let curve: CurveClient?

    public init(
        endpoint: String, name: String, slots: Int, exitWhenDone: Bool, giveUpAfter: Double? = nil, cache: URL,
        curve: CurveClient? = nil, logger: Logger
    ) throws {
        self.endpoint = endpoint
        self.curve = curve
        core = WorkerCore(name: name, slots: slots, cache: ArtifactStore(directory: cache))
        core.exitWhenDone = exitWhenDone
        core.giveUpAfter = giveUpAfter
        self.logger = logger
        context = try ZMQContext()
    }

    private func makeSocket(generation: Int) throws -> ZMQSocket {
        let socket = try ZMQSocket(context, .dealer)
        try socket.setLinger(0)
        try socket.setImmediate(true)
        try socket.setRoutingID("\(core.name)#\(generation)")
        try socket.setMaximumMessageSize(CoordinatorServer.maximumMessageSize)
        try socket.setReconnect(initial: 1000, maximum: 32000)
        if let curve {
            try socket.setCurveClient(
                serverKey: Array(curve.serverKey.utf8), publicKey: Array(curve.keys.publicKey.utf8),
                secretKey: Array(curve.keys.secretKey.utf8))
        }
        try socket.connect(endpoint)
        return socket
    }

    /// Runs until the coordinator says DONE (when `exitWhenDone`); returns the reason. Throws
    /// when no coordinator answers for `giveUpAfter` seconds.
    public func run() throws -> String {
        let clock = ContinuousClock()
        let start = clock.now
        func now() -> Double {
            let d = clock.now - start
            return Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
        }
        let results = try ZMQSocket(context, .pull)
        try results.setLinger(0)
        let inbox = "inproc://results-\(UUID().uuidString)"
        try results.bind(inbox)
        let compute = ComputeThread(context: context, endpoint: inbox, cache: core.cache, logger: logger)
        compute.start()
        defer { compute.stop() }
        var generation = 0
        var socket = try makeSocket(generation: generation)
        var reconnectAt: Double?
        var pending = core.connected(now: now())
        var lastTick = 0.0
        while true {
            for action in pending {
                switch action {
                case .send(let message):
                    _ = try? socket.send(message.frames(), dontWait: true)
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
                case .giveUp(let seconds):
                    socket.close()
                    throw ClusterError(
                        "no coordinator answered at \(endpoint) for \(Int(seconds)) s; giving up (--give-up-after)")
                case .log(let level, let text):
                    logger.log(level: level, "\(text)")
                }
            }
            pending = []
            if let at = reconnectAt, now() >= at {
                reconnectAt = nil
                socket.close()
                generation += 1
                socket = try makeSocket(generation: generation)
                pending += core.connected(now: now())
                continue
            }
            let readable = try ZMQSocket.poll([socket, results], timeout: 50)
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

/// The worker's compute thread: evaluates one task at a time with an `Executor` per spec.
final class ComputeThread: @unchecked Sendable {
    enum Outcome {
        case success(WorkerCore.Task, [Double], String?, Double)
        case failure(WorkerCore.Task, String)
    }

    private let context: ZMQContext
    private let endpoint: String
    private let cache: ArtifactStore
    private let logger: Logger
    private let condition = NSCondition()
    private var tasks: [(WorkerCore.Task, JSONValue, String, [String: String])] = []
    private var outcomes: [Int: Outcome] = [:]
    private var stopped = false
    private var nextTicket = 0
    private var thread: Thread?

    init(context: ZMQContext, endpoint: String, cache: ArtifactStore, logger: Logger) {
        self.context = context
        self.endpoint = endpoint
        self.cache = cache
        self.logger = logger
    }

    func start() {
        let thread = Thread { [self] in loop() }
        thread.name = "basin-compute"
        thread.stackSize = 16 << 20
        self.thread = thread
        thread.start()
    }

    func stop() {
        condition.lock()
        stopped = true
        condition.signal()
        condition.unlock()
    }

    func submit(_ task: WorkerCore.Task, spec: JSONValue, base: String, files: [String: String]) {
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

    private func loop() {
        // This thread owns its PUSH socket.
        guard let notify = try? ZMQSocket(context, .push) else { return }
        try? notify.setLinger(0)
        try? notify.connect(endpoint)
        var executors: [String: Executor] = [:]
        while true {
            condition.lock()
            while tasks.isEmpty && !stopped { condition.wait() }
            if stopped {
                condition.unlock()
                notify.close()
                return
            }
            let (task, specJSON, base, files) = tasks.removeFirst()
            condition.unlock()
            let outcome: Outcome
            let started = DispatchTime.now().uptimeNanoseconds
            do {
                let key = task.specKey
                if executors[key] == nil {
                    let spec = try JSONDecoder().decode(StudySpec.self, from: specJSON.serialized())
                    let executor = Executor(spec: spec, base: URL(fileURLWithPath: base))
                    executor.localFiles = files.mapValues { self.cache.url($0) }
                    executors[key] = executor
                }
                let executor = executors[key]!
                executor.readOutputs(task.inputs, in: cache)
                let output = try executor.execute(task.definition, id: task.job, range: task.range)
                let artifact = try output.artifact.map { try cache.put($0) }
                let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
                outcome = .success(task, output.values, artifact, seconds)
            } catch {
                outcome = .failure(task, String(describing: error))
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
