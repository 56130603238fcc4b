import BasinSweep
import Logging

/// What the coordinator's state machine reports: values, which the server logs as a short
/// message with the values as swift-log metadata (tests compare the values).
public enum CoordinatorEvent: Sendable, Equatable {
    case schedule(ScheduleEvent)
    case workerJoined(worker: String, host: String, pid: Int, slots: Int, kinds: [String]?)
    case workerLeft(worker: String, reason: LeaveReason)
    /// A message broke the protocol: its sender is disconnected.
    case messageRefused(peer: String, error: String)
    case quarantinedHello(identity: String)
    /// A HELLO at the worker limit (the first of a window; the rest are counted).
    case workerLimit(worker: String, limit: Int)
    case moreAtWorkerLimit(count: Int, limit: Int)
    /// Bad messages not logged one by one in the last window (`peer` nil: from other peers).
    case badMessagesCounted(peer: String?, count: Int, seconds: Int)
    case membershipCounted(count: Int, seconds: Int)
    case artifactStored(artifact: String, bytes: Int, worker: String)
    case artifactRefused(artifact: String, worker: String, error: String)

    public enum LeaveReason: Sendable, Equatable {
        case bye
        case silent(seconds: Int)
    }
}

extension CoordinatorEvent.LeaveReason: CustomStringConvertible {
    public var description: String {
        switch self {
        case .bye: "said BYE"
        case .silent(let seconds): "silent for \(seconds) s"
        }
    }
}

extension CoordinatorEvent {
    public var level: Logger.Level {
        switch self {
        case .schedule(let event):
            switch event.severity {
            case .debug: .debug
            case .info: .info
            case .warning: .warning
            case .error: .error
            }
        case .workerJoined, .membershipCounted: .info
        case .workerLeft(_, let reason): if case .silent = reason { .warning } else { .info }
        case .artifactStored: .debug
        case .messageRefused, .quarantinedHello, .workerLimit, .moreAtWorkerLimit, .badMessagesCounted,
            .artifactRefused:
            .warning
        }
    }

    /// The line's fixed text: what happened, without the values.
    public var message: Logger.Message {
        switch self {
        case .schedule(let event):
            switch event {
            case .jobReady: "job ready"
            case .stragglerCopied: "duplicating a straggling shard"
            case .leaseExpired: "lease passed its deadline; re-issuing"
            case .shardRequeued: "shard back in the queue"
            case .shardQuarantined: "shard quarantined"
            case .shardReleased: "shard leaves quarantine: its evidence came from a quarantined worker"
            case .workerQuarantined: "worker quarantined"
            case .duplicateMismatch: "DUPLICATE MISMATCH: a copy differs bit for bit from the first result; the first is kept"
            case .verified: "verified"
            case .verifyMismatch: "VERIFY MISMATCH: two answers differ; a third worker decides"
            case .verifyUndecided: "VERIFY: no two of three workers agree; the first result is kept"
            case .resultsVoided: "voided a worker's results (and those of jobs that read its outputs); computing them again"
            case .declined: "worker declined a job"
            }
        case .workerJoined: "worker joined"
        case .workerLeft: "worker left"
        case .messageRefused: "refused a message; disconnected"
        case .quarantinedHello: "refused HELLO from a quarantined worker"
        case .workerLimit: "refused HELLO at the worker limit (further refusals are counted once a minute)"
        case .moreAtWorkerLimit: "refused more HELLOs at the worker limit"
        case .badMessagesCounted: "more bad messages, not logged one by one"
        case .membershipCounted: "more worker joins or departures, not logged one by one"
        case .artifactStored: "stored an artifact"
        case .artifactRefused: "refused an artifact"
        }
    }

    public var metadata: Logger.Metadata {
        switch self {
        case .schedule(let event):
            switch event {
            case .jobReady(let job): ["job": "\(job)"]
            case .stragglerCopied(let job, let shard, let worker):
                ["job": "\(job)", "shard": "\(shard)", "worker": "\(worker)"]
            case .leaseExpired(let lease, let job, let shard, let worker):
                ["lease": "\(lease)", "job": "\(job)", "shard": "\(shard)", "worker": "\(worker)"]
            case .shardRequeued(let job, let shard, let failure):
                ["job": "\(job)", "shard": "\(shard)", "failure": "\(failure)"]
            case .shardQuarantined(let job, let shard, let points, let workers, let reasons):
                [
                    "job": "\(job)", "shard": "\(shard)", "points": "\(points.lowerBound)..<\(points.upperBound)",
                    "workers": "\(workers)", "reasons": "\(reasons.joined(separator: "; "))",
                ]
            case .shardReleased(let job, let shard, let identity):
                ["job": "\(job)", "shard": "\(shard)", "identity": "\(identity)"]
            case .workerQuarantined(let identity, let reason): ["identity": "\(identity)", "reason": "\(reason)"]
            case .duplicateMismatch(let job, let shard, let worker):
                ["job": "\(job)", "shard": "\(shard)", "worker": "\(worker)"]
            case .verified(let job, let shard, let worker, let against),
                .verifyMismatch(let job, let shard, let worker, let against):
                ["job": "\(job)", "shard": "\(shard)", "worker": "\(worker)", "against": "\(against)"]
            case .verifyUndecided(let job, let shard): ["job": "\(job)", "shard": "\(shard)"]
            case .resultsVoided(let count, let identity): ["count": "\(count)", "identity": "\(identity)"]
            case .declined(let worker, let job, let reason): ["worker": "\(worker)", "job": "\(job)", "reason": "\(reason)"]
            }
        case .workerJoined(let worker, let host, let pid, let slots, let kinds):
            [
                "worker": "\(worker)", "host": "\(host)", "pid": "\(pid)", "slots": "\(slots)",
                "kinds": "\(kinds?.joined(separator: "/") ?? "all")",
            ]
        case .workerLeft(let worker, let reason): ["worker": "\(worker)", "reason": "\(reason)"]
        case .messageRefused(let peer, let error): ["peer": "\(peer)", "error": "\(error)"]
        case .quarantinedHello(let identity): ["identity": "\(identity)"]
        case .workerLimit(let worker, let limit): ["worker": "\(worker)", "limit": "\(limit)"]
        case .moreAtWorkerLimit(let count, let limit): ["count": "\(count)", "limit": "\(limit)"]
        case .badMessagesCounted(let peer, let count, let seconds):
            ["peer": "\(peer ?? "others")", "count": "\(count)", "seconds": "\(seconds)"]
        case .membershipCounted(let count, let seconds): ["count": "\(count)", "seconds": "\(seconds)"]
        case .artifactStored(let artifact, let bytes, let worker):
            ["artifact": "\(artifact.prefix(12))", "bytes": "\(bytes)", "worker": "\(worker)"]
        case .artifactRefused(let artifact, let worker, let error):
            ["artifact": "\(artifact.prefix(12))", "worker": "\(worker)", "error": "\(error)"]
        }
    }
}

extension Logger {
    /// Logs an event at its level: its fixed message, its values as metadata.
    public func log(_ event: CoordinatorEvent) {
        log(level: event.level, event.message, metadata: event.metadata)
    }
}
