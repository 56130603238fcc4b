import BasinCluster
import BasinSweep
import Foundation
import Logging
import Testing
import ZeroMQ

/// The coordinator over a real socket, with a journal whose fsync fails: it stops with a
/// sentence naming the file and the cause, and the worker never hears an ACK.
@Suite struct FailStopTests {
    final class Outcome: @unchecked Sendable {
        // Written by the server thread before `finished` is signalled, read after.
        var error: (any Error)?
        let finished = DispatchSemaphore(value: 0)
    }

    final class ServerBox: @unchecked Sendable {
        // Used only by the thread that runs it once the test hands it over.
        let server: CoordinatorServer
        init(_ server: CoordinatorServer) { self.server = server }
    }

    @Test func aFailedFsyncStopsTheCoordinatorBeforeAnyAck() throws {
        let fixture = try StudyFixture()
        defer { try? FileManager.default.removeItem(at: fixture.directory) }
        let layer = Journal.FileLayer(
            write: { descriptor, bytes, count in Foundation.write(descriptor, bytes, count) },
            sync: { _ in
                errno = EIO
                return -1
            })
        let journal = try Journal(directory: fixture.directory.appendingPathComponent("journal"), files: layer)
        let server = ServerBox(
            try CoordinatorServer(
                core: try fixture.core(), journal: journal, store: fixture.store, bind: "tcp://127.0.0.1:*", logger: Logger(label: "test")))
        let endpoint = server.server.endpoint
        let outcome = Outcome()
        let thread = Thread {
            do { try server.server.run() } catch { outcome.error = error }
            outcome.finished.signal()
        }
        thread.start()

        let context = try ZMQContext()
        let dealer = try ZMQSocket(context, .dealer)
        try dealer.setLinger(0)
        try dealer.setRoutingID("w#0.test")
        try dealer.connect(endpoint)
        _ = try dealer.send(HelloHeader(worker: "w", slots: 1).message().frames())
        var received: [WireMessage] = []
        var answered = false
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            if outcome.finished.wait(timeout: .now()) == .success {
                outcome.finished.signal()
                break
            }
            guard try ZMQSocket.poll([dealer], timeout: 50).contains(0) else { continue }
            while let frames = try dealer.receive(dontWait: true) {
                let message = try WireMessage(frames: frames)
                received.append(message)
                if message.command == .task, !answered, let task = try? message.decode(TaskHeader.self) {
                    answered = true
                    let values = [Double](repeating: 0.5, count: 4 * (task.end - task.start))
                    let result = ResultHeader(
                        lease: task.lease, job: task.job, jobIndex: task.jobIndex, shard: task.shard, seconds: 0.1)
                    _ = try dealer.send(result.message(binary: [values.withUnsafeBytes { Data($0) }]).frames())
                }
            }
        }
        #expect(outcome.finished.wait(timeout: .now() + 5) == .success, "the coordinator kept running")
        #expect(answered)
        let error = try #require(outcome.error)
        #expect("\(error)".contains("000001.log") && "\(error)".contains("fsync failed"), "\(error)")
        #expect("\(error)".contains("Input/output error"), "\(error)")
        #expect(!received.contains { $0.command == .ack }, "a result was acknowledged though never durable")
        dealer.close()
    }
}
