import Foundation

/// The IDX format of the MNIST files: two zero bytes, a type code, the number of dimensions,
/// big-endian 32-bit sizes, then big-endian data.
public enum Idx {
    /// Reads an (uncompressed) IDX file into a tensor of the matching little-endian dtype.
    public static func read(contentsOf url: URL) throws -> TensorData {
        let data = try AtomicFile.read(url)
        return try read(data: data, source: url.path)
    }

    public static func read(data: Data, source: String) throws -> TensorData {
        func fail(_ message: String) -> NNError { NNError("\(source): \(message)") }
        let bytes = [UInt8](data)
        if bytes.count >= 2, bytes[0] == 0x1f, bytes[1] == 0x8b {
            throw fail("the file is gzip-compressed; decompress it first (gunzip)")
        }
        guard bytes.count >= 4, bytes[0] == 0, bytes[1] == 0 else {
            throw fail("not an IDX file (the magic number at byte offset 0 must start with two zero bytes)")
        }
        let dtype: DType
        switch bytes[2] {
        case 0x08: dtype = .u8
        case 0x09: dtype = .i8
        case 0x0B: dtype = .i16
        case 0x0C: dtype = .i32
        case 0x0D: dtype = .f32
        case 0x0E: dtype = .f64
        default: throw fail("unknown IDX type code 0x\(String(bytes[2], radix: 16)) at byte offset 2")
        }
        let dims = Int(bytes[3])
        guard bytes.count >= 4 + 4 * dims else { throw fail("the dimension sizes at byte offset 4 are truncated") }
        var shape: [Int] = []
        for d in 0..<dims {
            let o = 4 + 4 * d
            shape.append(Int(bytes[o]) << 24 | Int(bytes[o + 1]) << 16 | Int(bytes[o + 2]) << 8 | Int(bytes[o + 3]))
        }
        let start = 4 + 4 * dims
        let size = dtype.byteSize
        let needed = shape.reduce(1, *) * size
        guard bytes.count - start >= needed else {
            throw fail(
                "shape \(shape) needs \(needed) data bytes from byte offset \(start) but only \(bytes.count - start) remain"
            )
        }
        var out = [UInt8](repeating: 0, count: needed)
        for i in stride(from: 0, to: needed, by: size) {
            for b in 0..<size { out[i + b] = bytes[start + i + size - 1 - b] }
        }
        return TensorData(dtype: dtype, shape: shape, bytes: Data(out))
    }
}
