import BasinNN
import Foundation

/// An uncompressed zip archive in NumPy's `.npz` layout: `NAME.npy` members (and any other
/// files, such as `basin.json`), each member's data starting on a 64-byte boundary so arrays
/// can be memory-mapped. Written deterministically (fixed timestamps).
public enum Npz {
    public static let alignment = 64

    /// The archive's bytes for `members` (name, bytes) in order.
    public static func archive(_ members: [(name: String, bytes: Data)]) throws -> Data {
        try pieces(members.map { ($0.name, [$0.bytes]) }).reduce(into: Data()) { $0.append($1) }
    }

    /// The archive as pieces to write in order: each member's headers, then its own pieces
    /// (a member given as an `.npy` header and the array's bytes is never joined into one
    /// buffer), then the central directory.
    public static func pieces(_ members: [(name: String, parts: [Data])]) throws -> [Data] {
        var pieces: [Data] = []
        var out = Data()
        var written = 0
        var central = Data()
        func u16(_ v: Int, _ d: inout Data) { d.append(contentsOf: [UInt8(v & 0xff), UInt8((v >> 8) & 0xff)]) }
        func u32(_ v: UInt32, _ d: inout Data) {
            d.append(contentsOf: [UInt8(v & 0xff), UInt8((v >> 8) & 0xff), UInt8((v >> 16) & 0xff), UInt8(v >> 24)])
        }
        let dosDate = (0 << 9) | (1 << 5) | 1  // 1980-01-01
        for (name, parts) in members {
            let nameBytes = Data(name.utf8)
            let offset = written
            let size = parts.reduce(0) { $0 + $1.count }
            guard offset + 30 + nameBytes.count + 68 + size < Int(UInt32.max) else {
                throw NNError("result file: member '\(name)' would pass 4 GiB; zip64 is not supported")
            }
            var padding = (alignment - (offset + 30 + nameBytes.count) % alignment) % alignment
            if padding > 0 && padding < 4 { padding += alignment }
            let crc = parts.reduce(UInt32(0)) { CRC32.checksum($1, continuing: $0) }
            out = Data()
            u32(0x0403_4b50, &out)
            u16(20, &out); u16(0, &out); u16(0, &out); u16(0, &out); u16(dosDate, &out)
            u32(crc, &out); u32(UInt32(size), &out); u32(UInt32(size), &out)
            u16(nameBytes.count, &out); u16(padding, &out)
            out.append(nameBytes)
            if padding > 0 {
                // An extra field of its own id holding the alignment (as Android's zipalign does).
                u16(0xD935, &out); u16(padding - 4, &out)
                out.append(Data(repeating: 0, count: padding - 4))
            }
            pieces.append(out)
            pieces += parts
            written += out.count + size
            u32(0x0201_4b50, &central)
            u16(0x0314, &central); u16(20, &central); u16(0, &central); u16(0, &central); u16(0, &central)
            u16(dosDate, &central)
            u32(crc, &central); u32(UInt32(size), &central); u32(UInt32(size), &central)
            u16(nameBytes.count, &central); u16(0, &central); u16(0, &central); u16(0, &central); u16(0, &central)
            u32(0o100644 << 16, &central); u32(UInt32(offset), &central)
            central.append(nameBytes)
        }
        let centralOffset = written
        out = central
        u32(0x0605_4b50, &out)
        u16(0, &out); u16(0, &out); u16(members.count, &out); u16(members.count, &out)
        u32(UInt32(central.count), &out); u32(UInt32(centralOffset), &out); u16(0, &out)
        pieces.append(out)
        return pieces
    }

    /// The members of an uncompressed zip (stored entries only), in central-directory order.
    public static func members(of data: Data, source: String) throws -> [(name: String, bytes: Data)] {
        func fail(_ message: String) -> NNError { NNError("\(source): \(message)") }
        let bytes = [UInt8](data)
        func u16(_ o: Int) -> Int { Int(bytes[o]) | Int(bytes[o + 1]) << 8 }
        func u32(_ o: Int) -> Int { u16(o) | u16(o + 2) << 16 }
        guard bytes.count >= 22 else { throw fail("too short to be a zip/.npz file") }
        var end = bytes.count - 22
        while end >= 0 && !(bytes[end] == 0x50 && bytes[end + 1] == 0x4b && bytes[end + 2] == 5 && bytes[end + 3] == 6)
        {
            end -= 1
        }
        guard end >= 0 else { throw fail("no zip end-of-central-directory record; not a .npz file or truncated") }
        let count = u16(end + 10)
        var offset = u32(end + 16)
        var result: [(String, Data)] = []
        for _ in 0..<count {
            guard offset + 46 <= bytes.count, u32(offset) == 0x0201_4b50 else {
                throw fail("corrupt central directory at byte offset \(offset)")
            }
            let method = u16(offset + 10), size = u32(offset + 20), nameLength = u16(offset + 28)
            let extraLength = u16(offset + 30), commentLength = u16(offset + 32), local = u32(offset + 42)
            let name = String(decoding: bytes[(offset + 46)..<(offset + 46 + nameLength)], as: UTF8.self)
            guard method == 0 else {
                throw fail("member '\(name)' is compressed (method \(method)); Basin reads uncompressed .npz only")
            }
            guard local + 30 <= bytes.count, u32(local) == 0x0403_4b50 else {
                throw fail("member '\(name)': no local header at byte offset \(local)")
            }
            let start = local + 30 + u16(local + 26) + u16(local + 28)
            guard start + size <= bytes.count else { throw fail("member '\(name)' runs past the end of the file") }
            let member = Data(bytes[start..<(start + size)])
            guard CRC32.checksum(member) == UInt32(u32(offset + 16)) else {
                throw fail("member '\(name)' fails its CRC-32 check; the file is corrupt")
            }
            result.append((name, member))
            offset += 46 + nameLength + extraLength + commentLength
        }
        return result
    }
}
