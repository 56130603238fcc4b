import ArgumentParser
import BasinCluster
import BasinNN
import BasinSweep
import Foundation
import Logging

/// `basin compute-child`: the process a worker runs its computations in (not for direct use).
struct ComputeChildCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compute-child", abstract: "A worker's compute process (started by `basin worker`).",
        shouldDisplay: false)

    @Option(help: "The worker's artifact cache.")
    var cache: String

    @Option(help: "OpenBLAS threads.")
    var threads: Int = 1

    func run() throws {
        BLAS.setThreads(threads)
        let store = ArtifactStore(directory: URL(fileURLWithPath: cache))
        // Deep networks recurse: give the computation a roomy stack of its own.
        final class Status: @unchecked Sendable {
            // Written by the compute thread before it signals `done`.
            var value: Int32 = 0
            let done = DispatchSemaphore(value: 0)
        }
        let status = Status()
        let thread = Thread {
            status.value = ComputeChild.serve(cache: store)
            status.done.signal()
        }
        thread.stackSize = 16 << 20
        thread.start()
        status.done.wait()
        // The computation's BLAS threads may still be winding down: leave without teardown.
        _exit(status.value)
    }
}
