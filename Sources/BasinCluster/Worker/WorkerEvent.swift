import Logging

/// What the worker's state machine reports: values, which the client logs as a short message
/// with the values as swift-log metadata (tests compare the values).
public enum WorkerEvent: Sendable, Equatable {
    /// A message from the coordinator that did not decode or check out.
    case messageRefused(error: String)
    case joined(epoch: Int)
    /// The coordinator said DISCONNECT (not a quarantine): the worker reconnects.
    case disconnected(reason: String)
    /// A TASK refused before it was queued (its lease is failed).
    case taskRefused(lease: Int, error: String)
    case fetched(artifact: String, bytes: Int, seconds: Double)
    /// An input artifact could not be fetched; the tasks that needed it fail.
    case fetchFailed(artifact: String, error: String)
    case uploaded(artifact: String, bytes: Int, seconds: Double, alreadyThere: Bool)
    case uploadRefused(artifact: String, error: String)
    /// An artifact this worker made could not be read back from its cache to upload.
    case uploadFailed(artifact: String, error: String)
    /// A file the spec names was copied from the coordinator's path instead of fetched.
    case tookLocalFile(artifact: String, path: String)
    /// A result computed for an earlier connection (its lease is gone).
    case staleResult(lease: Int)
    case shardFailed(job: String, shard: Int, error: String)
    case coordinatorSilent(seconds: Int)
}

extension WorkerEvent {
    public var level: Logger.Level {
        switch self {
        case .joined, .fetched, .uploaded, .staleResult, .tookLocalFile: .info
        case .messageRefused, .disconnected, .taskRefused, .coordinatorSilent: .warning
        case .fetchFailed, .uploadRefused, .uploadFailed, .shardFailed: .error
        }
    }

    /// A fixed sentence per kind; the values go in `metadata`.
    public var message: Logger.Message {
        switch self {
        case .messageRefused: "refused a message from the coordinator"
        case .joined: "joined the coordinator"
        case .disconnected: "the coordinator disconnected this worker; reconnecting"
        case .taskRefused: "refused a task"
        case .fetched: "fetched an artifact"
        case .fetchFailed: "cannot fetch an artifact; the tasks that need it fail"
        case .uploaded: "uploaded an artifact"
        case .uploadRefused: "the coordinator refused an artifact"
        case .uploadFailed: "cannot upload an artifact this worker made; its results fail"
        case .tookLocalFile: "took a file from the local file system"
        case .staleResult: "dropped a result from an earlier connection"
        case .shardFailed: "shard failed"
        case .coordinatorSilent: "the coordinator is silent; reconnecting"
        }
    }

    public var metadata: Logger.Metadata {
        func transfer(_ bytes: Int, _ seconds: Double) -> Logger.Metadata {
            let rate = Double(bytes) / 1_048_576 / max(seconds, 1e-6)
            return [
                "bytes": "\(bytes)", "seconds": "\(String(format: "%.3f", seconds))",
                "mb_per_s": "\(String(format: "%.1f", rate))",
            ]
        }
        switch self {
        case .messageRefused(let error): return ["error": "\(error)"]
        case .joined(let epoch): return ["epoch": "\(epoch)"]
        case .disconnected(let reason): return ["reason": "\(reason)"]
        case .taskRefused(let lease, let error): return ["lease": "\(lease)", "error": "\(error)"]
        case .fetched(let artifact, let bytes, let seconds):
            return transfer(bytes, seconds).merging(["artifact": "\(artifact.prefix(12))"]) { a, _ in a }
        case .fetchFailed(let artifact, let error): return ["artifact": "\(artifact.prefix(12))", "error": "\(error)"]
        case .uploaded(let artifact, let bytes, let seconds, let alreadyThere):
            if alreadyThere { return ["artifact": "\(artifact.prefix(12))", "coordinator_had_it": "true"] }
            return transfer(bytes, seconds).merging(["artifact": "\(artifact.prefix(12))"]) { a, _ in a }
        case .uploadRefused(let artifact, let error), .uploadFailed(let artifact, let error):
            return ["artifact": "\(artifact.prefix(12))", "error": "\(error)"]
        case .tookLocalFile(let artifact, let path): return ["artifact": "\(artifact.prefix(12))", "path": "\(path)"]
        case .staleResult(let lease): return ["lease": "\(lease)"]
        case .shardFailed(let job, let shard, let error): return ["job": "\(job)", "shard": "\(shard)", "error": "\(error)"]
        case .coordinatorSilent(let seconds): return ["seconds": "\(seconds)"]
        }
    }
}

extension Logger {
    /// Logs a worker event: its fixed message, with its values as metadata.
    public func log(_ event: WorkerEvent) {
        log(level: event.level, event.message, metadata: event.metadata)
    }
}
