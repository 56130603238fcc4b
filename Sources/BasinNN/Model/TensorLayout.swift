/// Named tensors packed one after another in a flat Float32 buffer.
public struct TensorLayout: Sendable, Equatable {
    public struct Entry: Sendable, Equatable {
        public let name: String
        public let shape: [Int]
        public let offset: Int
        public var count: Int { shape.reduce(1, *) }
        public var range: Range<Int> { offset..<(offset + count) }
    }

    public private(set) var entries: [Entry] = []
    public private(set) var count = 0

    public init() {}

    mutating func append(name: String, shape: [Int]) {
        let entry = Entry(name: name, shape: shape, offset: count)
        entries.append(entry)
        count += entry.count
    }

    public func entry(named name: String) -> Entry? {
        entries.first { $0.name == name }
    }
}
