import Foundation

/// Records the first SIGINT or SIGTERM (which stop being fatal once one exists), for loops
/// that poll it; a second one ends the process at once (a computation that takes minutes is
/// not waited for; the journal keeps what was synced). The coordinator's I/O loop is synchronous and wakes at least every 50 ms, so
/// a flag it reads is all it needs (swift-service-lifecycle's `UnixSignals` is an async
/// sequence, for code that awaits).
public final class SignalFlag: @unchecked Sendable {
    // `caught` is guarded by `lock`; the dispatch sources only ever set it.
    private let lock = NSLock()
    private var caught: Int32?
    private var sources: [DispatchSourceSignal] = []

    public init(_ signals: [Int32] = [SIGINT, SIGTERM]) {
        for number in signals {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { [weak self] in
                guard let self else { return }
                let again = self.lock.withLock { () -> Bool in
                    if self.caught == nil {
                        self.caught = number
                        return false
                    }
                    return true
                }
                if again {
                    let line = "\n\(Self.name(number)) again: stopping now (the journal keeps every result synced so far)\n"
                    FileHandle.standardError.write(Data(line.utf8))
                    _exit(128 + number)
                }
            }
            source.resume()
            sources.append(source)
        }
    }

    /// The first signal caught, if any.
    public var raised: Int32? { lock.withLock { caught } }

    /// "SIGINT", "SIGTERM" or the number.
    public static func name(_ number: Int32) -> String {
        switch number {
        case SIGINT: "SIGINT"
        case SIGTERM: "SIGTERM"
        default: "signal \(number)"
        }
    }
}
