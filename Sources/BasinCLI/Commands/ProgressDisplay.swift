import ArgumentParser
import BasinCluster
import BasinNN
import BasinSweep
import Foundation
import Logging

/// Progress on a terminal (one rewritten line) or as log lines every 10 s elsewhere.
/// `@unchecked Sendable`: its two variables are touched by one thread only, the loop that
/// reports progress (the coordinator's I/O loop, or the in-process run's).
final class ProgressDisplay: @unchecked Sendable {
    let logger: Logger
    let isTerminal = isatty(STDERR_FILENO) == 1
    var lastLog = Date.distantPast
    var shown = false

    init(logger: Logger) {
        self.logger = logger
    }

    static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds < 1e12 else { return "more than 30,000 years" }
        let s = Int(max(0, seconds).rounded())
        return s >= 3600
            ? "\(s / 3600)h\(String(format: "%02d", s % 3600 / 60))m"
            : s >= 60 ? "\(s / 60)m\(String(format: "%02d", s % 60))s" : "\(s)s"
    }

    func show(done: Int, total: Int, rate: Double?, workers: Int) {
        var text = "\(done)/\(total) points"
        if let rate, rate > 0 {
            text += String(format: ", %.1f points/s", rate)
            if done < total { text += ", ETA " + Self.duration(Double(total - done) / rate) }
        }
        if workers > 0 { text += ", \(workers) worker(s)" }
        if isTerminal {
            FileHandle.standardError.write(Data("\r\u{1B}[K\(text)".utf8))
            shown = true
        } else if Date().timeIntervalSince(lastLog) >= 10 {
            lastLog = Date()
            logger.info("\(text)")
        }
    }

    func finish() {
        if shown { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}
