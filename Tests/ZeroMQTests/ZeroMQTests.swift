import Foundation
import Testing
import ZeroMQ

@Suite struct ZeroMQTests {
    @Test func routerAndDealerExchangeMultipartMessages() throws {
        let context = try ZMQContext()
        let router = try ZMQSocket(context, .router)
        try router.setLinger(0)
        try router.setRouterMandatory(true)
        try router.bind("tcp://127.0.0.1:*")
        let endpoint = router.lastEndpoint
        #expect(endpoint.hasPrefix("tcp://127.0.0.1:"))
        let dealer = try ZMQSocket(context, .dealer)
        try dealer.setLinger(0)
        try dealer.setRoutingID("worker-1")
        try dealer.connect(endpoint)
        let payload = Data((0..<100_000).map { UInt8($0 % 251) })
        try dealer.send([Data("BASIN/1".utf8), Data("HELLO".utf8), Data(), payload])
        #expect(try ZMQSocket.poll([router], timeout: 5000) == [0])
        let frames = try #require(try router.receive())
        #expect(frames.count == 5)
        #expect(String(decoding: frames[0], as: UTF8.self) == "worker-1")
        #expect(frames[3].isEmpty && frames[4] == payload)
        try router.send([frames[0], Data("WELCOME".utf8)])
        #expect(try ZMQSocket.poll([dealer], timeout: 5000) == [0])
        #expect(try dealer.receive()?.map { String(decoding: $0, as: UTF8.self) } == ["WELCOME"])
        #expect(try dealer.receive(dontWait: true) == nil)
        // ROUTER_MANDATORY: a message to an unknown peer fails instead of vanishing.
        #expect(throws: ZMQError.self) { try router.send([Data("nobody".utf8), Data("x".utf8)]) }
        router.close()
        dealer.close()
    }

    @Test func oversizedMessagesAreRefused() throws {
        let context = try ZMQContext()
        let router = try ZMQSocket(context, .router)
        try router.setLinger(0)
        try router.setMaximumMessageSize(1000)
        try router.bind("tcp://127.0.0.1:*")
        let dealer = try ZMQSocket(context, .dealer)
        try dealer.setLinger(0)
        try dealer.connect(router.lastEndpoint)
        try dealer.send([Data(count: 5000)])
        try dealer.send([Data("small".utf8)])
        // The oversized frame closes that connection; nothing of it is delivered.
        let readable = try ZMQSocket.poll([router], timeout: 300)
        if !readable.isEmpty {
            let frames = try #require(try router.receive())
            #expect(frames.last?.count != 5000)
        }
        router.close()
        dealer.close()
    }

    @Test func pollTimesOutAndErrorsReadAsSentences() throws {
        let context = try ZMQContext()
        let socket = try ZMQSocket(context, .dealer)
        try socket.setLinger(0)
        let start = Date()
        #expect(try ZMQSocket.poll([socket], timeout: 50).isEmpty)
        #expect(Date().timeIntervalSince(start) >= 0.04)
        do {
            try socket.bind("tcp://not-an-address")
            Issue.record("bind should fail")
        } catch let error as ZMQError {
            #expect(error.description.hasPrefix("binding tcp://not-an-address failed: "))
        }
        socket.close()
        #expect(throws: ZMQError.self) { try socket.send([Data()]) }
    }

    @Test func terminatedContextEndsBlockingReceive() async throws {
        let context = try ZMQContext()
        let socket = try ZMQSocket(context, .pull)
        try socket.setLinger(0)
        try socket.bind("inproc://t")
        let finished = Task.detached { () -> Bool in
            do {
                _ = try socket.receive()
                return false
            } catch let error as ZMQError {
                socket.close()
                return error.isTerminated
            } catch {
                return false
            }
        }
        try await Task.sleep(nanoseconds: 50_000_000)
        context.shutdown()
        #expect(await finished.value)
    }
}
