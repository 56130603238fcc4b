/// An error in a model description, a checkpoint, a data file or a training setting.
///
/// The message is one sentence that names the file, field or tensor at fault.
public struct NNError: Error, CustomStringConvertible, Sendable, Equatable {
    public let description: String

    public init(_ description: String) {
        self.description = description
    }
}
