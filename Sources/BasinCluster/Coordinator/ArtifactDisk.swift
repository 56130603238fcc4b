import BasinSweep
import Foundation

/// Artifact I/O for both state machines: performs the `.write`, `.read` and `.discard` actions
/// of `CoordinatorCore` against the run's `ArtifactStore`, and those of `WorkerCore` (and its
/// `.adopt`) against the worker's cache, and hands each outcome back. The server and the
/// worker client use it between their state machine and the socket; tests use it the same way.
public final class ArtifactDisk {
    public let store: ArtifactStore
    /// Partial files of uploads under way, by peer and hash.
    private var uploads: [Data: [String: ArtifactStore.Upload]] = [:]

    public init(store: ArtifactStore) {
        self.store = store
    }

    /// Performs every disk action in `actions` (and in what the core answers to them) and
    /// returns the rest, in order: messages to send, records to journal, events.
    public func settle(_ actions: [CoordinatorCore.Action], into core: inout CoordinatorCore) -> [CoordinatorCore.Action]
    {
        var rest: [CoordinatorCore.Action] = []
        for action in actions {
            switch action {
            case .write(let peer, let chunk):
                let outcome = write(peer, chunk)
                rest += settle(core.wrote(peer: peer, artifact: chunk.artifact, outcome), into: &core)
            case .read(let peer, let artifact, let offset, let length):
                let outcome = read(artifact, offset: offset, length: length)
                rest += settle(core.read(peer: peer, artifact: artifact, offset: offset, outcome), into: &core)
            case .discard(let peer, let artifact):
                uploads[peer]?.removeValue(forKey: artifact)?.abandon()
                if uploads[peer]?.isEmpty == true { uploads[peer] = nil }
            default:
                rest.append(action)
            }
        }
        return rest
    }

    /// The worker's side: performs the cache actions in `actions` (and in what the core answers
    /// to them) and returns the rest, in order.
    public func settle(_ actions: [WorkerCore.Action], into core: inout WorkerCore, now: Double) -> [WorkerCore.Action] {
        var rest: [WorkerCore.Action] = []
        for action in actions {
            switch action {
            case .write(let chunk):
                let outcome = write(Self.worker, chunk)
                rest += settle(core.wrote(chunk.artifact, outcome, now: now), into: &core, now: now)
            case .read(let artifact, let offset, let length):
                let outcome = read(artifact, offset: offset, length: length)
                rest += settle(core.read(artifact, offset: offset, outcome), into: &core, now: now)
            case .discard(let artifact):
                uploads[Self.worker]?.removeValue(forKey: artifact)?.abandon()
            case .adopt(let artifact, let path):
                let found = store.adopt(URL(fileURLWithPath: path), as: artifact)
                rest += settle(core.adopted(artifact, found: found), into: &core, now: now)
            default:
                rest.append(action)
            }
        }
        return rest
    }

    /// The key of a worker's own fetches (it has one peer, the coordinator).
    private static let worker = Data()

    func write(_ peer: Data, _ chunk: ArtifactChunk) -> WriteOutcome {
        let hash = chunk.artifact
        do {
            if chunk.offset == 0 {
                uploads[peer]?.removeValue(forKey: hash)?.abandon()
                if store.contains(hash) { return .stored(store.size(hash) ?? chunk.size) }
                uploads[peer, default: [:]][hash] = try store.upload(hash, size: chunk.size)
            }
            guard let upload = uploads[peer]?[hash] else {
                return .failed("a chunk at \(chunk.offset) of an upload that never started")
            }
            try upload.append(chunk.bytes, at: chunk.offset)
            guard upload.isComplete else { return .received(upload.received) }
            uploads[peer]?[hash] = nil
            try upload.finish()
            return .stored(upload.size)
        } catch {
            uploads[peer]?.removeValue(forKey: hash)?.abandon()
            return .failed("\(error)")
        }
    }

    func read(_ hash: String, offset: Int, length: Int) -> ReadOutcome {
        guard let size = store.size(hash) else { return .missing }
        guard offset <= size else { return .bytes(Data(), size: size) }
        do {
            return .bytes(try store.read(hash, offset: offset, length: length), size: size)
        } catch {
            return .failed("\(error)")
        }
    }
}
