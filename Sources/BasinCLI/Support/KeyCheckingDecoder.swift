import Foundation

/// Wraps any `Decoder` and records, for every keyed container, the keys the file has and the
/// keys the types asked for (every optional field asks, present or not). A key that is there
/// but that nothing asked for is a typo (`nrom: filter`, `seeed: 1`, `hesian:`): the spec
/// would otherwise run with defaults and exit 0. Containers read by enumerating their keys (a
/// dictionary, a one-key mapping such as `- surface: {…}`) accept every key.
final class KeyLog {
    struct Place {
        var path: [CodingKey]
        var present: [String] = []
        var asked: Set<String> = []
        var open = false
    }

    private(set) var places: [String: Place] = [:]

    static func name(_ path: [CodingKey]) -> String {
        let text = path.map { key in key.intValue.map { "[\($0)]" } ?? ".\(key.stringValue)" }.joined()
        return String(text.drop { $0 == "." })
    }

    func saw(_ path: [CodingKey], present: [String]) {
        let key = Self.name(path)
        if places[key] == nil { places[key] = Place(path: path) }
        for name in present where !(places[key]?.present.contains(name) ?? true) { places[key]?.present.append(name) }
    }

    func asked(_ path: [CodingKey], _ name: String) {
        let key = Self.name(path)
        if places[key] == nil { places[key] = Place(path: path) }
        places[key]?.asked.insert(name)
    }

    func opened(_ path: [CodingKey]) {
        let key = Self.name(path)
        if places[key] == nil { places[key] = Place(path: path) }
        places[key]?.open = true
    }

    /// The first key nothing asked for, as (place, key, nearest known key), in file order.
    func unknown(tolerating tolerated: Set<String>) -> (place: String, key: String, suggestion: String?)? {
        for (name, place) in places.sorted(by: { $0.key < $1.key }) where !place.open {
            for key in place.present where !place.asked.contains(key) {
                if name.isEmpty && tolerated.contains(key) { continue }
                // Closest by edit distance; ties go to the same letters rearranged, then the
                // same first letter.
                func rank(_ candidate: String) -> (Int, Int, Int, String) {
                    (
                        Self.distance(candidate, key), candidate.sorted() == key.sorted() ? 0 : 1,
                        candidate.first == key.first ? 0 : 1, candidate
                    )
                }
                let nearest = place.asked.union(name.isEmpty ? tolerated : [])
                    .filter { Self.distance($0, key) <= max(2, key.count / 3) }
                    .min { rank($0) < rank($1) }
                return (name.isEmpty ? "the top level" : name, key, nearest)
            }
        }
        return nil
    }

    /// A key at `path` that nothing asked for and that is close to `missing` (a required key
    /// found missing): the misspelling of it, if there is one.
    func misspelling(of missing: String, at path: [CodingKey]) -> (place: String, key: String)? {
        let name = Self.name(path)
        guard let place = places[name], !place.open else { return nil }
        let near = place.present.filter {
            !place.asked.contains($0) && Self.distance($0, missing) <= max(2, missing.count / 3)
        }
        return near.min { Self.distance($0, missing) < Self.distance($1, missing) }.map {
            (name.isEmpty ? "the top level" : name, $0)
        }
    }

    /// Levenshtein distance (with transpositions counting 1).
    static func distance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        guard !a.isEmpty else { return b.count }
        guard !b.isEmpty else { return a.count }
        var table = [[Int]](repeating: [Int](repeating: 0, count: b.count + 1), count: a.count + 1)
        for i in 0...a.count { table[i][0] = i }
        for j in 0...b.count { table[0][j] = j }
        for i in 1...a.count {
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                table[i][j] = min(table[i - 1][j] + 1, table[i][j - 1] + 1, table[i - 1][j - 1] + cost)
                if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] {
                    table[i][j] = min(table[i][j], table[i - 2][j - 2] + 1)
                }
            }
        }
        return table[a.count][b.count]
    }
}

struct AnyCodingKey: CodingKey {
    var stringValue: String
    var intValue: Int?
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) {
        self.stringValue = String(intValue)
        self.intValue = intValue
    }
}

struct KeyCheckingDecoder: Decoder {
    let base: any Decoder
    let log: KeyLog

    var codingPath: [CodingKey] { base.codingPath }
    var userInfo: [CodingUserInfoKey: Any] { base.userInfo }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        let container = try base.container(keyedBy: type)
        let present = (try? base.container(keyedBy: AnyCodingKey.self).allKeys.map(\.stringValue)) ?? []
        log.saw(codingPath, present: present)
        return KeyedDecodingContainer(KeyedChecking(base: container, decoder: base, log: log))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        UnkeyedChecking(base: try base.unkeyedContainer(), log: log)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer {
        SingleChecking(base: try base.singleValueContainer(), decoder: base, log: log)
    }
}

/// Scalars need no recording; everything else is decoded through the checking decoder.
private func isScalar(_ type: Any.Type) -> Bool {
    type == String.self || type == Int.self || type == Double.self || type == Bool.self || type == Float.self
        || type == UInt64.self || type == Int64.self || type == UInt32.self || type == Int32.self
        || type == UInt.self
}

private struct KeyedChecking<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let base: KeyedDecodingContainer<Key>
    let decoder: any Decoder
    let log: KeyLog

    var codingPath: [CodingKey] { base.codingPath }
    var allKeys: [Key] {
        log.opened(codingPath)
        return base.allKeys
    }

    func contains(_ key: Key) -> Bool {
        log.asked(codingPath, key.stringValue)
        return base.contains(key)
    }

    func decodeNil(forKey key: Key) throws -> Bool {
        log.asked(codingPath, key.stringValue)
        return try base.decodeNil(forKey: key)
    }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        log.asked(codingPath, key.stringValue)
        if isScalar(type) { return try base.decode(type, forKey: key) }
        return try T(from: KeyCheckingDecoder(base: try base.superDecoder(forKey: key), log: log))
    }

    func decodeIfPresent<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T? {
        log.asked(codingPath, key.stringValue)
        guard base.contains(key), !(try base.decodeNil(forKey: key)) else { return nil }
        if isScalar(type) { return try base.decode(type, forKey: key) }
        return try T(from: KeyCheckingDecoder(base: try base.superDecoder(forKey: key), log: log))
    }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws
        -> KeyedDecodingContainer<NestedKey>
    {
        log.asked(codingPath, key.stringValue)
        return try KeyCheckingDecoder(base: try base.superDecoder(forKey: key), log: log).container(keyedBy: type)
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        log.asked(codingPath, key.stringValue)
        return UnkeyedChecking(base: try base.nestedUnkeyedContainer(forKey: key), log: log)
    }

    func superDecoder() throws -> any Decoder {
        KeyCheckingDecoder(base: try base.superDecoder(), log: log)
    }

    func superDecoder(forKey key: Key) throws -> any Decoder {
        log.asked(codingPath, key.stringValue)
        return KeyCheckingDecoder(base: try base.superDecoder(forKey: key), log: log)
    }
}

private struct UnkeyedChecking: UnkeyedDecodingContainer {
    var base: any UnkeyedDecodingContainer
    let log: KeyLog

    var codingPath: [CodingKey] { base.codingPath }
    var count: Int? { base.count }
    var isAtEnd: Bool { base.isAtEnd }
    var currentIndex: Int { base.currentIndex }

    mutating func decodeNil() throws -> Bool { try base.decodeNil() }

    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
        if isScalar(type) { return try base.decode(type) }
        return try T(from: KeyCheckingDecoder(base: try base.superDecoder(), log: log))
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws
        -> KeyedDecodingContainer<NestedKey>
    {
        try KeyCheckingDecoder(base: try base.superDecoder(), log: log).container(keyedBy: type)
    }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
        UnkeyedChecking(base: try base.nestedUnkeyedContainer(), log: log)
    }

    mutating func superDecoder() throws -> any Decoder {
        KeyCheckingDecoder(base: try base.superDecoder(), log: log)
    }
}

private struct SingleChecking: SingleValueDecodingContainer {
    let base: any SingleValueDecodingContainer
    let decoder: any Decoder
    let log: KeyLog

    var codingPath: [CodingKey] { base.codingPath }
    func decodeNil() -> Bool { base.decodeNil() }

    func decode<T: Decodable>(_ type: T.Type) throws -> T {
        if isScalar(type) { return try base.decode(type) }
        return try T(from: KeyCheckingDecoder(base: decoder, log: log))
    }
}
