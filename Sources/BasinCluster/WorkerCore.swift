import BasinSweep
import Foundation
import Logging

/// The worker's protocol logic as a state machine: HELLO until WELCOME, tasks queued up to its
/// slots and computed one at a time, results sent, heartbeats, reconnection with backoff when
/// the coordinator goes silent or says DISCONNECT.
public struct WorkerCore {
    public struct Task: Sendable, Equatable {
        public var lease: Int
        public var job: String
        public var jobIndex: Int
        public var shard: Int
        public var range: Range<Int>
        public var definition: JobDefinition
        public var specKey: String
    }

    public enum Action: Equatable {
        case send(WireMessage)
        case compute(Task)
        /// Drop the connection and connect again after this many seconds.
        case reconnect(after: Double)
        case exit(String)
        case log(Logger.Level, String)
    }

    public let name: String
    public let slots: Int
    public var heartbeatInterval = 1.0
    public var deadAfter = 5.0
    /// Leave when the coordinator says DONE.
    public var exitWhenDone = true

    var welcomed = false
    var lastHeard = 0.0
    var lastSent = 0.0
    var backoff = 1.0
    var queue: [Task] = []
    var computing: Task?
    /// Job definitions and specs seen on this connection (the coordinator sends each once).
    var definitions: [String: (JobDefinition, String)] = [:]
    /// Spec JSON and base directory by spec key, for the executor.
    public private(set) var specs: [String: (spec: JSONValue, base: String)] = [:]

    public init(name: String, slots: Int) {
        self.name = name
        self.slots = slots
    }

    public var isComputing: Bool { computing != nil }

    /// A new connection: say HELLO.
    public mutating func connected(now: Double) -> [Action] {
        welcomed = false
        lastHeard = now
        lastSent = now
        definitions = [:]
        queue = []
        let host = ProcessInfo.processInfo.hostName
        return [
            .send(
                WireMessage(
                    .hello,
                    [
                        "worker": .string(name), "host": .string(host), "pid": .integer(Int(getpid())),
                        "slots": .integer(slots),
                        "version": .string(WireMessage.version),
                    ]))
        ]
    }

    public mutating func receive(frames: [Data], now: Double) -> [Action] {
        let message: WireMessage
        do {
            message = try WireMessage(frames: frames)
        } catch {
            return [.log(.warning, "dropped a message from the coordinator: \(error)")]
        }
        lastHeard = now
        switch message.command {
        case .welcome:
            welcomed = true
            backoff = 1
            return [.log(.info, "joined the coordinator (epoch \(message.int("epoch") ?? 0))")]
        case .heartbeat, .ack:
            return []
        case .task:
            guard let lease = message.int("lease"), let job = message.string("job"),
                let jobIndex = message.int("job_index"),
                let shard = message.int("shard"), let start = message.int("start"), let end = message.int("end"),
                end >= start
            else {
                return [.log(.warning, "dropped a malformed TASK")]
            }
            if let value = message.header["definition"], let spec = message.header["spec"],
                let base = message.string("base"),
                let definition = try? JSONDecoder().decode(JobDefinition.self, from: value.serialized())
            {
                let key = String(spec.serialized().hashValue)
                specs[key] = (spec, base)
                definitions[job] = (definition, key)
            }
            guard let (definition, key) = definitions[job] else {
                return [
                    .send(
                        WireMessage(
                            .fail,
                            ["lease": .integer(lease), "error": .string("no definition received for job \(job)")]))
                ]
            }
            queue.append(
                Task(
                    lease: lease, job: job, jobIndex: jobIndex, shard: shard, range: start..<end,
                    definition: definition, specKey: key))
            return startNext()
        case .cancel:
            if let lease = message.int("lease") { queue.removeAll { $0.lease == lease } }
            return []
        case .disconnect:
            let reason = message.string("reason") ?? "no reason given"
            return [
                .log(.warning, "the coordinator disconnected this worker: \(reason)"), .reconnect(after: nextBackoff()),
            ]
        case .done:
            return exitWhenDone ? [.send(WireMessage(.bye)), .exit("the sweep is done")] : []
        default:
            return [
                .log(.warning, "the coordinator sent \(message.command.rawValue), which only workers send; dropped")
            ]
        }
    }

    private mutating func startNext() -> [Action] {
        guard computing == nil, !queue.isEmpty else { return [] }
        let task = queue.removeFirst()
        computing = task
        return [.compute(task)]
    }

    /// The compute thread finished a task.
    public mutating func computed(_ task: Task, metrics: [Double], seconds: Double, now: Double) -> [Action] {
        computing = nil
        lastSent = now
        let message = WireMessage(
            .result,
            [
                "lease": .integer(task.lease), "job": .string(task.job), "job_index": .integer(task.jobIndex),
                "shard": .integer(task.shard), "seconds": .number(seconds),
            ], binary: [metrics.littleEndianData])
        return [.send(message)] + startNext()
    }

    public mutating func failed(_ task: Task, error: String, now: Double) -> [Action] {
        computing = nil
        lastSent = now
        return [
            .log(.error, "shard \(task.shard) of job \(task.definition.defaultName) failed: \(error)"),
            .send(WireMessage(.fail, ["lease": .integer(task.lease), "error": .string(error)])),
        ] + startNext()
    }

    public mutating func tick(now: Double) -> [Action] {
        if now - lastHeard > deadAfter {
            return [
                .log(.warning, "the coordinator is silent (\(Int(now - lastHeard)) s); reconnecting"),
                .reconnect(after: nextBackoff()),
            ]
        }
        if welcomed && now - lastSent >= heartbeatInterval {
            lastSent = now
            return [
                .send(
                    WireMessage(
                        .heartbeat, ["computing": .integer(computing?.lease ?? 0), "queued": .integer(queue.count)]))
            ]
        }
        if !welcomed && now - lastSent >= heartbeatInterval {
            // HELLO again until a coordinator answers (it may not have been up yet).
            return connected(now: now)
        }
        return []
    }

    mutating func nextBackoff() -> Double {
        defer { backoff = min(32, backoff * 2) }
        return backoff
    }
}
