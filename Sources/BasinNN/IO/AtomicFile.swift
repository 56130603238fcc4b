import Foundation

/// Whole-file reads with errors naming the file, and writes that never leave a half-written
/// file under the final name.
public enum AtomicFile {
    /// The file's bytes, memory-mapped where possible.
    public static func read(_ url: URL) throws -> Data {
        do {
            return try Data(contentsOf: url, options: .mappedIfSafe)
        } catch {
            throw NNError("\(url.path): cannot read the file (\(error.localizedDescription))")
        }
    }

    /// Writes `data` to a temporary file in the same directory, fsyncs it, renames it over
    /// `url`, then fsyncs the directory.
    public static func write(_ data: Data, to url: URL) throws {
        try write([data], to: url)
    }

    /// The same for a file given as pieces, written one after the other: large arrays go to
    /// the file from where they are, never copied into one buffer first.
    public static func write(_ pieces: [Data], to url: URL) throws {
        let directory = url.deletingLastPathComponent()
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        } catch {
            throw NNError("\(directory.path): cannot create the directory (\(error.localizedDescription))")
        }
        let temporary = directory.appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())")
        let fd = open(temporary.path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw NNError("\(temporary.path): cannot create (\(String(cString: strerror(errno))))") }
        var ok = true
        for piece in pieces where ok {
            piece.withUnsafeBytes { raw in
                guard let base = raw.baseAddress else { return }
                var written = 0
                while written < raw.count {
                    let n = Foundation.write(fd, base + written, raw.count - written)
                    if n < 0 {
                        if errno == EINTR { continue }
                        ok = false
                        return
                    }
                    written += n
                }
            }
        }
        let error = String(cString: strerror(errno))
        if !ok || fsync(fd) != 0 {
            close(fd)
            unlink(temporary.path)
            throw NNError("\(url.path): write failed (\(error))")
        }
        close(fd)
        guard rename(temporary.path, url.path) == 0 else {
            let message = String(cString: strerror(errno))
            unlink(temporary.path)
            throw NNError("\(url.path): cannot rename the temporary file into place (\(message))")
        }
        syncDirectory(directory)
    }

    /// fsyncs a directory, so a rename in it survives a crash.
    public static func syncDirectory(_ directory: URL) {
        let dirfd = open(directory.path, O_RDONLY)
        if dirfd >= 0 {
            fsync(dirfd)
            close(dirfd)
        }
    }
}
