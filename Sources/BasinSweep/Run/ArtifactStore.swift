import BasinNN
import Crypto
import Foundation

/// Content-addressed blobs (checkpoints, fitted curves): `DIR/ab/abcdef…` named by the SHA-256
/// of their bytes. The run directory's `artifacts/` is one; a worker's `--cache` is another.
///
/// Writes go to a temporary file, are fsynced and renamed, so a blob under its name is always
/// whole. Large blobs move in chunks (`Upload`, `read(_:offset:length:)`), hashed as they
/// stream, so memory stays bounded by a chunk.
public final class ArtifactStore: Sendable {
    public let directory: URL

    public init(directory: URL) {
        self.directory = directory
    }

    /// Whether `text` can name a blob: 64 lowercase hexadecimal digits (never a path).
    public static func isHash(_ text: String) -> Bool {
        text.utf8.count == 64 && text.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
    }

    public static func hash(_ data: Data) -> String {
        SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined()
    }

    public func url(_ hash: String) -> URL {
        precondition(Self.isHash(hash), "not a SHA-256 hash: \(hash)")
        return directory.appendingPathComponent(String(hash.prefix(2))).appendingPathComponent(hash)
    }

    public func contains(_ hash: String) -> Bool {
        Self.isHash(hash) && FileManager.default.fileExists(atPath: url(hash).path)
    }

    public func size(_ hash: String) -> Int? {
        guard contains(hash) else { return nil }
        return (try? FileManager.default.attributesOfItem(atPath: url(hash).path)[.size] as? Int) ?? nil
    }

    /// Every blob stored (names only; partial uploads and set-aside blobs are not blobs).
    public func hashes() -> Set<String> {
        let manager = FileManager.default
        var found: Set<String> = []
        for folder in (try? manager.contentsOfDirectory(atPath: directory.path)) ?? [] where folder.utf8.count == 2 {
            let names = (try? manager.contentsOfDirectory(atPath: directory.appendingPathComponent(folder).path)) ?? []
            for name in names where Self.isHash(name) && name.hasPrefix(folder) { found.insert(name) }
        }
        return found
    }

    /// Stores `data` under its hash (nothing to do when it is there) and returns the hash.
    @discardableResult
    public func put(_ data: Data) throws -> String {
        let hash = Self.hash(data)
        if contains(hash) { return hash }
        try FileManager.default.createDirectory(
            at: url(hash).deletingLastPathComponent(), withIntermediateDirectories: true)
        try AtomicFile.write(data, to: url(hash))
        return hash
    }

    /// The whole blob, checked against its name.
    public func data(_ hash: String) throws -> Data {
        guard contains(hash) else { throw NNError("artifact \(hash.prefix(12)) is not in \(directory.path)") }
        let data = try Data(contentsOf: url(hash))
        guard Self.hash(data) == hash else {
            throw NNError("artifact \(hash.prefix(12)) in \(directory.path) is corrupt (its SHA-256 differs)")
        }
        return data
    }

    /// Whether the blob's bytes hash to its name (read in chunks, never whole in memory).
    public func verify(_ hash: String) -> Bool {
        guard contains(hash), let handle = try? FileHandle(forReadingFrom: url(hash)) else { return false }
        defer { try? handle.close() }
        var hasher = SHA256()
        while let chunk = try? handle.read(upToCount: 1 << 20), !chunk.isEmpty { hasher.update(data: chunk) }
        return hasher.finalize().map { String(format: "%02x", $0) }.joined() == hash
    }

    /// Moves a blob that failed `verify` out of the way (`DIR/corrupt/`), so it is made again.
    @discardableResult
    public func setAside(_ hash: String) -> Bool {
        guard contains(hash) else { return false }
        let folder = directory.appendingPathComponent("corrupt")
        try? FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let target = folder.appendingPathComponent("\(hash).\(UInt32.random(in: 0...UInt32.max))")
        return rename(url(hash).path, target.path) == 0
    }

    /// Up to `length` bytes from `offset` (fewer at the end).
    public func read(_ hash: String, offset: Int, length: Int) throws -> Data {
        guard contains(hash) else { throw NNError("artifact \(hash.prefix(12)) is not stored here") }
        let handle = try FileHandle(forReadingFrom: url(hash))
        defer { try? handle.close() }
        try handle.seek(toOffset: UInt64(max(0, offset)))
        return try handle.read(upToCount: max(0, length)) ?? Data()
    }

    /// A blob arriving in order, chunk by chunk: hashed as it streams, checked, then renamed
    /// into place. `abandon()` (or dropping it) removes the partial file.
    public final class Upload {
        public let hash: String
        public let size: Int
        public private(set) var received = 0
        private let store: ArtifactStore
        private let partial: URL
        private var handle: FileHandle?
        private var hasher = SHA256()

        init(store: ArtifactStore, hash: String, size: Int) throws {
            self.store = store
            self.hash = hash
            self.size = size
            let folder = store.url(hash).deletingLastPathComponent()
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            partial = folder.appendingPathComponent(".\(hash).\(getpid()).\(UInt32.random(in: 0...UInt32.max)).part")
            guard FileManager.default.createFile(atPath: partial.path, contents: nil) else {
                throw NNError("\(partial.path): cannot create a partial artifact")
            }
            handle = try FileHandle(forWritingTo: partial)
        }

        /// Appends the chunk at `offset` (must be where the last one ended).
        public func append(_ chunk: Data, at offset: Int) throws {
            guard let handle else { throw NNError("artifact \(hash.prefix(12)): upload already finished") }
            guard offset == received else {
                throw NNError("artifact \(hash.prefix(12)): chunk at \(offset), expected \(received)")
            }
            guard received + chunk.count <= size else {
                throw NNError("artifact \(hash.prefix(12)): more than the announced \(size) bytes")
            }
            try handle.write(contentsOf: chunk)
            hasher.update(data: chunk)
            received += chunk.count
        }

        public var isComplete: Bool { received == size }

        /// Checks the hash, fsyncs and renames into place.
        public func finish() throws {
            guard let handle else { return }
            self.handle = nil
            try handle.synchronize()
            try handle.close()
            let actual = hasher.finalize().map { String(format: "%02x", $0) }.joined()
            guard received == size, actual == hash else {
                try? FileManager.default.removeItem(at: partial)
                throw NNError(
                    "artifact \(hash.prefix(12)): received \(received) of \(size) bytes hashing to \(actual.prefix(12)); discarded"
                )
            }
            if rename(partial.path, store.url(hash).path) != 0 {
                let reason = String(cString: strerror(errno))
                try? FileManager.default.removeItem(at: partial)
                throw NNError("\(store.url(hash).path): cannot store the artifact (\(reason))")
            }
            AtomicFile.syncDirectory(store.url(hash).deletingLastPathComponent())
        }

        public func abandon() {
            try? handle?.close()
            handle = nil
            try? FileManager.default.removeItem(at: partial)
        }

        deinit { if handle != nil { abandon() } }
    }

    /// Copies the file at `file` into the store when its bytes hash to `hash` (read once, in
    /// chunks); returns whether the store now holds `hash`. A worker that sees the
    /// coordinator's files (a shared file system, or the same machine) takes them this way
    /// instead of fetching them over the network; a file that differs is left alone.
    public func adopt(_ file: URL, as hash: String) -> Bool {
        if contains(hash) { return true }
        guard Self.isHash(hash), let handle = try? FileHandle(forReadingFrom: file) else { return false }
        defer { try? handle.close() }
        guard let end = try? handle.seekToEnd(), let size = Int(exactly: end), (try? handle.seek(toOffset: 0)) != nil,
            let upload = try? self.upload(hash, size: size)
        else { return false }
        while upload.received < size {
            guard let chunk = try? handle.read(upToCount: 1 << 20), !chunk.isEmpty,
                (try? upload.append(chunk, at: upload.received)) != nil
            else {
                upload.abandon()
                return false
            }
        }
        return (try? upload.finish()) != nil
    }

    public func upload(_ hash: String, size: Int) throws -> Upload {
        guard Self.isHash(hash) else { throw NNError("'\(hash)' is not a SHA-256 artifact name") }
        guard size >= 0 else { throw NNError("artifact \(hash.prefix(12)): negative size") }
        return try Upload(store: self, hash: hash, size: size)
    }
}
