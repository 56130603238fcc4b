import BasinSweep
import Foundation

/// Artifacts moving between workers and the coordinator, as a state machine: it checks PUT
/// and FETCH against the limits and the open uploads, and returns `.write` / `.read` /
/// `.discard` actions; the server does the disk I/O (`ArtifactDisk`) and hands the outcome
/// back (`wrote`, `read`), which becomes the TAKEN or CHUNK reply.
struct ArtifactTransfer {
    struct Open {
        var size: Int
        var received = 0
    }

    /// Artifacts the coordinator holds (found at the start, or uploaded whole since).
    private(set) var stored: Set<String>
    /// Uploads under way, by peer and hash.
    private var uploads: [Data: [String: Open]] = [:]
    var maxArtifactBytes: Int
    var budgetBytes: Int

    init(stored: Set<String>, maxArtifactBytes: Int, budgetBytes: Int) {
        self.stored = stored
        self.maxArtifactBytes = maxArtifactBytes
        self.budgetBytes = budgetBytes
    }

    typealias Action = CoordinatorCore.Action

    /// A chunk of an artifact a worker made. `makers`: the leases it holds of jobs that make
    /// one (each may upload one artifact at a time). Breaking a limit is a `ProtocolError`.
    mutating func put(peer: Data, _ header: PutHeader, chunk: Data, makers: Int, worker: String) throws(ProtocolError)
        -> [Action]
    {
        let hash = header.artifact
        guard makers > 0 else {
            throw ProtocolError(.authority, "PUT of artifact \(hash.prefix(12)) from a worker that holds no job making one")
        }
        guard chunk.count <= WireMessage.artifactChunk, header.offset + chunk.count <= header.size else {
            throw .field(.put, "offset", "with a chunk of \(chunk.count) bytes passes the announced size \(header.size)")
        }
        let write = Action.write(
            peer: peer, ArtifactChunk(artifact: hash, size: header.size, offset: header.offset, bytes: chunk))
        if stored.contains(hash) {
            return discard(peer, hash) + [taken(peer, TakenHeader(artifact: hash, offset: header.size, complete: true))]
        }
        if header.offset == 0 {
            let restart = discard(peer, hash)
            let open = uploads[peer] ?? [:]
            guard header.size <= maxArtifactBytes else {
                throw ProtocolError(.limit, "artifact of \(header.size) bytes is larger than the limit of \(maxArtifactBytes)")
            }
            guard open.count < makers else {
                throw ProtocolError(.limit, "a new upload while \(open.count) are open for \(makers) job(s) that make artifacts")
            }
            guard open.values.reduce(header.size, { $0 + $1.size }) <= budgetBytes else {
                throw ProtocolError(.limit, "uploads beyond this worker's budget of \(budgetBytes) bytes")
            }
            uploads[peer, default: [:]][hash] = Open(size: header.size)
            return restart + [write]
        }
        guard let upload = uploads[peer]?[hash] else {
            return refused(peer, hash, worker, "a chunk at \(header.offset) of an upload that never started")
        }
        guard upload.size == header.size else {
            return refused(peer, hash, worker, "a chunk announcing \(header.size) bytes for an upload of \(upload.size)")
        }
        guard header.offset == upload.received else {
            return refused(peer, hash, worker, "a chunk at \(header.offset), expected \(upload.received)")
        }
        return [write]
    }

    /// The disk's answer to a `.write`.
    mutating func wrote(peer: Data, artifact hash: String, _ outcome: WriteOutcome, worker: String) -> [Action] {
        switch outcome {
        case .received(let bytes):
            uploads[peer]?[hash]?.received = bytes
            return [taken(peer, TakenHeader(artifact: hash, offset: bytes))]
        case .stored(let bytes):
            uploads[peer]?[hash] = nil
            stored.insert(hash)
            return [
                .event(.artifactStored(artifact: hash, bytes: bytes, worker: worker)),
                taken(peer, TakenHeader(artifact: hash, offset: bytes, complete: true)),
            ]
        case .failed(let error):
            return refused(peer, hash, worker, error)
        }
    }

    /// A worker asks for at most one chunk of an artifact from `offset`.
    func fetch(peer: Data, _ header: FetchHeader) -> [Action] {
        [.read(peer: peer, artifact: header.artifact, offset: header.offset, length: header.length)]
    }

    /// The disk's answer to a `.read`.
    func read(peer: Data, artifact hash: String, offset: Int, _ outcome: ReadOutcome) -> [Action] {
        let chunk: WireMessage
        switch outcome {
        case .missing:
            chunk = ChunkHeader(artifact: hash, error: "no artifact \(hash) here").message()
        case .bytes(_, let size) where offset > size:
            chunk = ChunkHeader(artifact: hash, error: "offset \(offset) is past the artifact's \(size) bytes").message()
        case .bytes(let bytes, let size):
            chunk = ChunkHeader(artifact: hash, offset: offset, size: size).message(binary: [bytes])
        case .failed(let error):
            chunk = ChunkHeader(artifact: hash, error: error).message()
        }
        return [.send(peer: peer, chunk)]
    }

    /// A worker left: its open uploads are dropped.
    mutating func left(_ peer: Data) -> [Action] {
        (uploads.removeValue(forKey: peer) ?? [:]).keys.sorted().map { .discard(peer: peer, artifact: $0) }
    }

    private mutating func discard(_ peer: Data, _ hash: String) -> [Action] {
        guard uploads[peer]?.removeValue(forKey: hash) != nil else { return [] }
        return [.discard(peer: peer, artifact: hash)]
    }

    private mutating func refused(_ peer: Data, _ hash: String, _ worker: String, _ error: String) -> [Action] {
        uploads[peer]?[hash] = nil
        return [
            .discard(peer: peer, artifact: hash), .event(.artifactRefused(artifact: hash, worker: worker, error: error)),
            taken(peer, TakenHeader(artifact: hash, error: error)),
        ]
    }

    private func taken(_ peer: Data, _ header: TakenHeader) -> Action { .send(peer: peer, header.message()) }
}

/// Bytes of an upload for the disk: `size` is the whole artifact's, `offset` where `bytes` go.
public struct ArtifactChunk: Sendable, Equatable {
    public var artifact: String
    public var size: Int
    public var offset: Int
    public var bytes: Data
}

/// What writing a chunk did: bytes held so far, the artifact stored whole (and checked), or why not.
public enum WriteOutcome: Sendable, Equatable {
    case received(Int)
    case stored(Int)
    case failed(String)
}

/// What reading a chunk found: bytes from the offset (empty past the end) and the artifact's
/// size; no such artifact; or why not.
public enum ReadOutcome: Sendable, Equatable {
    case bytes(Data, size: Int)
    case missing
    case failed(String)
}
