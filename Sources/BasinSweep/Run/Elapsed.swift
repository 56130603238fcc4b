/// Seconds since an instant of the monotonic clock, as a Double: the time the state machines
/// (`ShardScheduler`, the coordinator's and worker's cores) are given.
extension ContinuousClock.Instant {
    public var secondsSince: Double {
        let d = ContinuousClock.now - self
        return Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
    }
}
