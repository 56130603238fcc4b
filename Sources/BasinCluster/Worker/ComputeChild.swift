import BasinNN
import BasinSweep
import Foundation

/// The worker's compute process (`basin compute-child`): reads tasks from standard input,
/// evaluates them with an `Executor` per spec (kept between tasks, so data and prepared jobs
/// load once), and answers on standard output. Whatever a computation does to this process
/// (a crash, the kernel's out-of-memory killer), the worker that supervises it survives and
/// reports it as a FAIL of that shard (Celery's prefork pool is the model).
public enum ComputeChild {
    /// Environment variable naming a job (a substring of its name) whose evaluation kills
    /// this process with SIGSEGV: a seam for fault-injection tests, never set in production.
    public static let crashSwitch = "BASIN_FAULT_CRASH_JOB"
    /// Environment variable that, set to 1, makes this process lie: every training loss it
    /// reports is the next larger Float64, plausible but wrong. A seam for verification tests.
    public static let lieSwitch = "BASIN_FAULT_LIE"

    /// Serves tasks until standard input ends or the parent dies; returns the exit status.
    public static func serve(cache: ArtifactStore) -> Int32 {
        // Replies go on the original standard output; anything else printed goes to stderr.
        let replyDescriptor = dup(STDOUT_FILENO)
        guard replyDescriptor >= 0, dup2(STDERR_FILENO, STDOUT_FILENO) >= 0 else { return 2 }
        let replies = FileHandle(fileDescriptor: replyDescriptor, closeOnDealloc: true)
        let requests = FileHandle.standardInput
        watchParent()
        let crashOn = ProcessInfo.processInfo.environment[crashSwitch].flatMap { $0.isEmpty ? nil : $0 }
        let lies = ProcessInfo.processInfo.environment[lieSwitch] == "1"
        var executors: [String: Executor] = [:]
        while true {
            let request: ComputeChannel.Request
            do {
                guard let (next, _) = try ComputeChannel.read(ComputeChannel.Request.self, from: requests) else { return 0 }
                request = next
            } catch {
                FileHandle.standardError.write(Data("basin compute-child: \(error)\n".utf8))
                return 2
            }
            if let crashOn, request.name.contains(crashOn) {
                // A real fault on the computing thread, as a bug in a computation would cause.
                UnsafeMutablePointer<Int>(bitPattern: 8)?.pointee = 1
            }
            let started = DispatchTime.now().uptimeNanoseconds
            var reply = ComputeChannel.Reply(lease: request.lease, seconds: 0)
            var payload = Data()
            do {
                if executors[request.specKey] == nil {
                    let executor = Executor(spec: request.spec, base: URL(fileURLWithPath: request.base))
                    executor.localFiles = request.files.mapValues { cache.url($0) }
                    executors[request.specKey] = executor
                }
                guard let executor = executors[request.specKey] else { throw ClusterError("no executor") }
                executor.readOutputs(request.inputs, in: cache)
                let output = try executor.execute(request.definition, id: request.job, range: request.start..<request.end)
                reply.artifact = try output.artifact.map { try cache.put($0) }
                var values = output.values
                if lies { for i in stride(from: 0, to: values.count, by: 4) { values[i] = values[i].nextUp } }
                payload = values.littleEndianData
            } catch {
                reply.error = String(describing: error)
            }
            reply.seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
            do {
                try ComputeChannel.write(reply, payload: payload, to: replies)
            } catch {
                return 0  // the worker is gone
            }
        }
    }

    /// Exits at once when the parent dies (it was killed from outside: nothing to report to).
    private static func watchParent() {
        let parent = getppid()
        let thread = Thread {
            while true {
                if getppid() != parent { _exit(0) }
                usleep(200_000)
            }
        }
        thread.name = "basin-parent-watch"
        thread.start()
    }
}
