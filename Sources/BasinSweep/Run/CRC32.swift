/// CRC-32 with zlib's polynomial (0xEDB88320, reflected), as zip and the journal use.
public enum CRC32 {
    private static let table: [UInt32] = (0..<256).map { n in
        var c = UInt32(n)
        for _ in 0..<8 { c = (c & 1) != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    public static func checksum<C: Collection>(_ bytes: C, continuing crc: UInt32 = 0) -> UInt32
    where C.Element == UInt8 {
        // Contiguous bytes (Data, arrays, their slices) take the pointer loop; others iterate.
        if let fast = bytes.withContiguousStorageIfAvailable({ update(~crc, $0) }) { return ~fast }
        var c = ~crc
        for byte in bytes { c = table[Int((c ^ UInt32(byte)) & 0xff)] ^ (c >> 8) }
        return ~c
    }

    private static func update(_ start: UInt32, _ bytes: UnsafeBufferPointer<UInt8>) -> UInt32 {
        table.withUnsafeBufferPointer { table in
            var c = start
            for byte in bytes { c = table[Int((c ^ UInt32(byte)) & 0xff)] ^ (c >> 8) }
            return c
        }
    }
}
