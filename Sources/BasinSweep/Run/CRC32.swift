/// CRC-32 with zlib's polynomial (0xEDB88320, reflected), as zip and the journal use.
/// Contiguous bytes go eight at a time (slicing-by-8: eight tables, one lookup per byte, no
/// dependency between the eight lookups), several times faster than a byte at a time.
public enum CRC32 {
    /// `tables[k][n]`: the CRC of byte `n` followed by `k` zero bytes.
    private static let tables: [UInt32] = {
        var t = [UInt32](repeating: 0, count: 8 * 256)
        for n in 0..<256 {
            var c = UInt32(n)
            for _ in 0..<8 { c = (c & 1) != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
            t[n] = c
        }
        for k in 1..<8 {
            for n in 0..<256 {
                let previous = t[(k - 1) * 256 + n]
                t[k * 256 + n] = (previous >> 8) ^ t[Int(previous & 0xff)]
            }
        }
        return t
    }()

    public static func checksum<C: Collection>(_ bytes: C, continuing crc: UInt32 = 0) -> UInt32
    where C.Element == UInt8 {
        // Contiguous bytes (Data, arrays, their slices) take the pointer loop; others iterate.
        if let fast = bytes.withContiguousStorageIfAvailable({ update(~crc, UnsafeRawBufferPointer($0)) }) {
            return ~fast
        }
        return tables.withUnsafeBufferPointer { t in
            var c = ~crc
            for byte in bytes { c = t[Int((c ^ UInt32(byte)) & 0xff)] ^ (c >> 8) }
            return ~c
        }
    }

    private static func update(_ start: UInt32, _ bytes: UnsafeRawBufferPointer) -> UInt32 {
        tables.withUnsafeBufferPointer { t in
            var c = start
            var i = 0
            let n = bytes.count
            while n - i >= 8 {
                let low = c ^ bytes.loadUnaligned(fromByteOffset: i, as: UInt32.self).littleEndian
                let high = bytes.loadUnaligned(fromByteOffset: i + 4, as: UInt32.self).littleEndian
                c = t[7 * 256 + Int(low & 0xff)] ^ t[6 * 256 + Int((low >> 8) & 0xff)]
                    ^ t[5 * 256 + Int((low >> 16) & 0xff)] ^ t[4 * 256 + Int(low >> 24)]
                    ^ t[3 * 256 + Int(high & 0xff)] ^ t[2 * 256 + Int((high >> 8) & 0xff)]
                    ^ t[256 + Int((high >> 16) & 0xff)] ^ t[Int(high >> 24)]
                i += 8
            }
            while i < n {
                c = t[Int((c ^ UInt32(bytes[i])) & 0xff)] ^ (c >> 8)
                i += 1
            }
            return c
        }
    }
}
