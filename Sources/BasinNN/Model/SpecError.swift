/// A spec that cannot be run as written: which field (`data`, `stages.train.grid`,
/// `jobs[0] (surface/a)`), what is wrong with it, and, once the reader knows it, the file.
/// Code decides on the type, never on the text: whoever read the file adds its name.
public struct SpecError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The spec file, when known.
    public var file: String?
    /// Where in the spec: a field path, or a job's place and name.
    public var field: String
    public var message: String

    public init(_ field: String, _ message: String, file: String? = nil) {
        self.field = field
        self.message = message
        self.file = file
    }

    /// The same error, naming the file it came from.
    public func inFile(_ file: String) -> SpecError {
        var named = self
        named.file = file
        return named
    }

    public var description: String {
        (file.map { "\($0): " } ?? "") + "\(field): \(message)"
    }
}
