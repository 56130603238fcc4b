import Foundation

/// A run directory that cannot be used: another coordinator holds it, its lock cannot be
/// taken, or it is not a run directory at all. Code asks `isLocked`; people read the sentence.
public struct RunDirectoryError: Error, CustomStringConvertible, Sendable, Equatable {
    private enum Code: Equatable {
        case locked(owner: String)
        case cannotLock(reason: String)
        case notARun
    }

    /// The run directory.
    public let directory: String
    private let code: Code

    private init(_ directory: URL, _ code: Code) {
        self.directory = directory.path
        self.code = code
    }

    /// Another coordinator (process `owner`, as its lock file says) holds the directory.
    public static func locked(_ directory: URL, owner: String) -> RunDirectoryError {
        RunDirectoryError(directory, .locked(owner: owner.isEmpty ? "?" : owner))
    }

    /// The lock file cannot be opened (`reason`: the system's word for why).
    public static func cannotLock(_ directory: URL, reason: String) -> RunDirectoryError {
        RunDirectoryError(directory, .cannotLock(reason: reason))
    }

    /// No readable `study.json`.
    public static func notARun(_ directory: URL) -> RunDirectoryError {
        RunDirectoryError(directory, .notARun)
    }

    /// Whether another coordinator holds the directory (it may be tried again once it stops).
    public var isLocked: Bool {
        if case .locked = code { true } else { false }
    }

    public var description: String {
        switch code {
        case .locked(let owner): "\(directory): another coordinator (pid \(owner)) is running on this run directory"
        case .cannotLock(let reason): "\(directory)/basin.lock: cannot open the lock file (\(reason))"
        case .notARun: "\(directory): not a Basin run directory (no readable study.json)"
        }
    }
}
