import ArgumentParser
import BasinCluster
import BasinSweep
import Foundation
import HeapModule
import ZeroMQ

/// A simulated worker's answer, sent at `time`.
struct DueResult: Comparable {
    var time: Double
    var worker: Int
    var message: WireMessage
    static func < (a: Self, b: Self) -> Bool { a.time < b.time }
    static func == (a: Self, b: Self) -> Bool { a.time == b.time }
}

/// Many simulated workers in one process against a running `basin coordinator`: each a
/// DEALER socket that says HELLO and answers every TASK with valid trivial values after a
/// random delay; prints results acknowledged per second, RESULT → next TASK latency and the
/// coordinator's peak RSS. `--idle`: the workers announce a job kind the sweep has none of,
/// so they only heartbeat, and the coordinator's CPU is measured.
struct ScaleBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scale", abstract: "Simulated workers against a live coordinator: shards/s, latency, RSS, CPU.")

    @Option(help: "Coordinator endpoint.")
    var connect: String

    @Option(help: "Simulated workers.")
    var workers: Int = 100

    @Option(help: "Seconds to measure (after a warm-up of 3 s).")
    var seconds: Double = 15

    @Option(help: "Most milliseconds a simulated worker takes to answer a TASK.")
    var delay: Double = 50

    @Option(help: "The coordinator's pid, for its RSS and CPU.")
    var pid: Int32

    @Flag(help: "Workers that take no work: measure the coordinator's CPU with idle workers.")
    var idle = false

    @Option(help: "Name suffix of the printed figures.")
    var suffix: String = ""

    func resident() -> Double {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return 0 }
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return Double(line.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0) / 1024
        }
        return 0
    }

    /// Coordinator CPU seconds so far (user + system).
    func cpu() -> Double {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return 0 }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    func run() throws {
        _ = CoordinatorServer.raiseDescriptorLimit()
        let context = try ZMQContext(maxSockets: Int32(workers + 64))
        var sockets: [ZMQSocket] = []
        for i in 0..<workers {
            let socket = try ZMQSocket(context, .dealer)
            try socket.setLinger(0)
            try socket.setRoutingID("sim-\(i)#0.\(UInt32.random(in: 0...UInt32.max))")
            try socket.setHighWaterMarks(send: 0, receive: 0)
            try socket.connect(connect)
            sockets.append(socket)
        }
        let start = ContinuousClock.now
        func now() -> Double { start.secondsSince }
        var lastSent = [Double](repeating: 0, count: workers)
        func send(_ i: Int, _ message: WireMessage) {
            _ = try? sockets[i].send(message.frames(), dontWait: true)
            lastSent[i] = now()
        }
        for i in 0..<workers {
            send(
                i,
                HelloHeader(
                    worker: "sim-\(i)", host: "sim", pid: i + 1, slots: 2, version: WireMessage.version,
                    kinds: idle ? ["hessian"] : nil
                ).message())
        }
        // Answers by time (a heap), so a pass costs what is due, not what is waiting; passes are
        // at least a millisecond apart, so the simulator does not spin polling a thousand sockets
        // and take the coordinator's CPU on a small machine.
        var due = Heap<DueResult>()
        var lastHeartbeats = 0.0
        var resultSent = [Double?](repeating: nil, count: workers)
        var latencies: [Double] = []
        var acks = 0, measuredAcks = 0, disconnects = 0, joined = 0
        var peak = 0.0
        var random = SystemRandomNumberGenerator()
        let warm = 3.0, end = warm + seconds
        var cpuAtWarm = 0.0
        var done = false
        while now() < end && !done {
            let wait = due.min.map { min(max(1, Int((($0.time - now()) * 1000).rounded(.up))), 20) } ?? 20
            let readable = try ZMQSocket.poll(sockets, timeout: wait)
            let t = now()
            for i in readable {
                while let frames = try sockets[i].receive(dontWait: true) {
                    guard let message = try? WireMessage(frames: frames) else { continue }
                    switch message.command {
                    case .welcome: joined += 1
                    case .task:
                        guard let task = try? message.decode(TaskHeader.self) else { continue }
                        if let sent = resultSent[i], t >= warm { latencies.append(t - sent) }
                        resultSent[i] = nil
                        let values = [Double](repeating: 0.5, count: 4 * (task.end - task.start))
                        let result = ResultHeader(
                            lease: task.lease, job: task.job, jobIndex: task.jobIndex, shard: task.shard, seconds: 0.001
                        ).message(binary: [values.withUnsafeBytes { Data($0) }])
                        due.insert(DueResult(time: t + Double.random(in: 0...(delay / 1000), using: &random), worker: i, message: result))
                    case .ack:
                        acks += 1
                        if t >= warm { measuredAcks += 1 }
                    case .disconnect: disconnects += 1
                    case .done: done = true
                    default: break
                    }
                }
            }
            while let first = due.min, first.time <= t {
                let item = due.removeMin()
                send(item.worker, item.message)
                resultSent[item.worker] = now()
            }
            if t - lastHeartbeats >= 0.1 {
                lastHeartbeats = t
                for i in 0..<workers where t - lastSent[i] >= 1 { send(i, HeartbeatHeader(computing: 0, queued: 0).message()) }
            }
            if t >= warm && cpuAtWarm == 0 { cpuAtWarm = max(cpu(), 1e-9) }
            if Int(t * 10) % 5 == 0 { peak = max(peak, resident()) }
        }
        let measured = max(now() - warm, 1e-9)
        let cpuShare = 100 * (cpu() - cpuAtWarm) / measured
        latencies.sort()
        let p99 = latencies.isEmpty ? 0 : latencies[min(latencies.count - 1, Int(Double(latencies.count) * 0.99))]
        let rate = Double(measuredAcks) / measured
        print(
            String(
                format: "scale: %d workers (%d welcomed, %d disconnects): %.0f shards/s acknowledged over %.1f s, RESULT->next TASK p99 %.1f ms, coordinator peak RSS %.0f MB, CPU %.1f%%",
                workers, joined, disconnects, rate, measured, p99 * 1000, peak, cpuShare))
        if idle {
            print("figure heartbeat_cpu_pct\(suffix) " + String(format: "%.1f", cpuShare))
        } else {
            print("figure shards_per_s\(suffix) " + String(format: "%.0f", rate))
            print("figure task_latency_p99_ms\(suffix) " + String(format: "%.1f", p99 * 1000))
            print("figure coordinator_rss_mb\(suffix) " + String(format: "%.0f", peak))
        }
        for socket in sockets { socket.close() }
    }
}
