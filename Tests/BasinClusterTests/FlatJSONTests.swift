import BasinFuzz
import BasinSweep
import Foundation
import Testing

@testable import BasinCluster

/// The quick reading of the hot headers never disagrees with the full decoder: whatever it
/// accepts, JSONDecoder accepts with the same value; and what the hand-written writers send,
/// JSONDecoder reads back as the header that was written.
@Suite struct FlatJSONTests {
    let job = String(repeating: "ab", count: 32)

    func full<Header: Decodable>(_ type: Header.Type, _ frame: Data) -> Header? {
        try? JSONDecoder().decode(Header.self, from: frame)
    }

    func quick<Header: QuickHeader>(_ type: Header.Type, _ frame: Data) -> Header? {
        FlatJSON(frame).flatMap { Header(quick: $0) }
    }

    @Test func theQuickReadingAcceptsOnlyWhatTheFullOneAcceptsWithTheSameValues() {
        let templates = [
            TaskHeader(lease: 7, job: job, jobIndex: 0, shard: 3, start: 30, end: 40, deadlineMilliseconds: 5000)
                .message(),
            ResultHeader(lease: 7, job: job, jobIndex: 0, shard: 3, seconds: 0.0123).message(binary: [Data(count: 8)]),
            ResultHeader(lease: 8, job: job, jobIndex: 1, shard: 0, seconds: 2, artifact: job).message(),
            HeartbeatHeader(computing: 7, queued: 2).message(),
        ]
        var mutator = MessageMutator(seed: 12, templates: templates)
        var quickly = 0
        for _ in 0..<30_000 {
            let frames = mutator.message()
            guard frames.count >= 3 else { continue }
            let frame = frames[2]
            func agree<Header: QuickHeader & Decodable & Equatable>(_ type: Header.Type) {
                guard let fast = quick(Header.self, frame) else { return }
                quickly += 1
                #expect(fast == full(Header.self, frame), "\(String(decoding: frame.prefix(300), as: UTF8.self))")
            }
            agree(TaskHeader.self)
            agree(ResultHeader.self)
            agree(HeartbeatHeader.self)
        }
        #expect(quickly > 1000, "the quick reading took only \(quickly) messages")
        // JSON the quick reading must refuse (the full decoder refuses it too, or reads it
        // another way), and spellings it must take as the full one does.
        for text in [
            #"{"lease":07,"job":"\#(job)","job_index":0,"shard":0}"#, #"{"lease":.5,"job":"\#(job)","job_index":0,"shard":0}"#,
            #"{"lease":+1,"job":"\#(job)","job_index":0,"shard":0}"#, #"{"lease":1,"lease":2,"job":"\#(job)","job_index":0,"shard":0}"#,
            #"{"lease":1,"job":"\#(job)","job_index":0,"shard":0,"seconds":null}"#,
            #"{"lease":1,"job":"\#(job)","job_index":0,"shard":0,"extra":{"a":1}}"#,
        ] {
            #expect(quick(ResultHeader.self, Data(text.utf8)) == nil, "\(text)")
        }
        for text in [
            #"{"lease": 1, "job": "\#(job)", "job_index": 0, "shard": 2, "seconds": 1.5e-3}"#,
            #"{ "shard":2 ,"job_index":0,"job":"\#(job)","lease":1.0 }"#,
        ] {
            let fast = quick(ResultHeader.self, Data(text.utf8))
            #expect(fast != nil && fast == full(ResultHeader.self, Data(text.utf8)), "\(text)")
        }
    }

    @Test func theHandWrittenHeadersReadBackAsWritten() throws {
        let task = TaskHeader(lease: 1 << 40, job: job, jobIndex: 3, shard: 9, start: 90, end: 100, deadlineMilliseconds: 1)
        let results = [
            ResultHeader(lease: 5, job: job, jobIndex: 2, shard: 4, seconds: 1e-7),
            ResultHeader(lease: 5, job: job, jobIndex: 2, shard: 4, seconds: 12345.678, artifact: job),
        ]
        let beats = [HeartbeatHeader(computing: 0, queued: 0), HeartbeatHeader(epoch: 3), HeartbeatHeader()]
        #expect(full(TaskHeader.self, task.message().headerFrame) == task)
        for result in results { #expect(full(ResultHeader.self, result.message().headerFrame) == result) }
        for beat in beats { #expect(full(HeartbeatHeader.self, beat.message().headerFrame) == beat) }
        // A first task still carries its definition and spec, through the encoder.
        var first = task
        first.inputs = ["train/a": job]
        #expect(try first.message().decode(TaskHeader.self) == first)
    }
}
