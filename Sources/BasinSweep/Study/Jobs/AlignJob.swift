/// `align` (from `stages.connect.align`): weight matching of the model `to` onto `from`.
public struct AlignJob: Codable, Sendable, Equatable {
    public var name: String?
    public var from: String
    public var to: String
    /// Seeds the order in which layers are visited.
    public var seed: UInt64?

    public init(name: String, from: String, to: String) {
        self.name = name
        self.from = from
        self.to = to
    }
}
