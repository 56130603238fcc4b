/// What the scheduler decided that someone should hear of: values, not sentences. The
/// coordinator's server and `--workers 0` turn them into log lines (with the values as metadata).
public enum ScheduleEvent: Sendable, Equatable {
    /// Every input of the job exists: its shards join the queue.
    case jobReady(job: String)
    /// The queue is empty and an idle worker takes a second copy of the oldest outstanding lease.
    case stragglerCopied(job: String, shard: Int, worker: String)
    case leaseExpired(lease: Int, job: String, shard: Int, worker: String)
    /// A shard failed and goes back to the queue.
    case shardRequeued(job: String, shard: Int, failure: String)
    case shardQuarantined(job: String, shard: Int, points: Range<Int>, workers: Int, reasons: [String])
    /// A quarantined shard's evidence came from a worker since quarantined itself.
    case shardReleased(job: String, shard: Int, evidenceFrom: String)
    case workerQuarantined(identity: String, reason: String)
    /// A straggler's copy of a shard differs bit for bit from the stored result (the stored one is kept).
    case duplicateMismatch(job: String, shard: Int, worker: String)
    case verified(job: String, shard: Int, worker: String, against: String)
    case verifyMismatch(job: String, shard: Int, worker: String, against: String)
    /// Three answers, no two agreeing: the first is kept.
    case verifyUndecided(job: String, shard: Int)
    /// Results of a worker found lying (and of jobs that read its outputs) are computed again.
    case resultsVoided(count: Int, identity: String)
    case declined(worker: String, job: String, reason: String)

    /// Whether the event is news that something went wrong (a warning or worse), for callers
    /// that pick a log level.
    public var severity: Severity {
        switch self {
        case .jobReady, .verified: .debug
        case .stragglerCopied, .declined: .info
        case .leaseExpired, .shardRequeued, .shardReleased: .warning
        case .shardQuarantined, .workerQuarantined, .duplicateMismatch, .verifyMismatch, .verifyUndecided,
            .resultsVoided:
            .error
        }
    }

    public enum Severity: Sendable, Equatable { case debug, info, warning, error }
}

/// What a scheduler call asks its driver to do.
public enum ScheduleEffect: Sendable, Equatable {
    /// Hand the shard to the taker under this lease.
    case grant(ShardScheduler.Grant)
    /// The lease is useless now (its shard is done elsewhere or quarantined): tell the taker.
    case cancel(taker: Int, lease: Int)
    /// Acknowledge a result at once (a copy or verification answer that is not stored).
    case acknowledge(taker: Int, lease: Int)
    /// The taker's identity is quarantined: it has left the books; disconnect it, saying why.
    case evict(taker: Int, reason: String)
    /// Journal a result (its `time` is stamped by whoever writes it); acknowledge it once
    /// durable (`durable()`).
    case journal(Journal.ShardDone)
    /// A journaled result found false: void it.
    case revoke(Journal.ShardRevoked)
    case event(ScheduleEvent)
}
