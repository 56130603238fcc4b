import Foundation

/// An array in NumPy's `.npy` format: dtype, shape (C order) and raw little-endian bytes.
///
/// Reads format versions 1.0–3.0 with little-endian or single-byte dtypes; writes version 1.0
/// with the header padded so the data starts on a 64-byte boundary.
public struct NpyArray: Sendable, Equatable {
    public var tensor: TensorData

    public var dtype: DType { tensor.dtype }
    public var shape: [Int] { tensor.shape }

    public init(_ tensor: TensorData) {
        self.tensor = tensor
    }

    static let descriptors: [String: DType] = [
        "<f8": .f64, "<f4": .f32, "<f2": .f16, "<i8": .i64, "<i4": .i32, "<i2": .i16, "|i1": .i8,
        "<u8": .u64, "<u4": .u32, "<u2": .u16, "|u1": .u8, "|b1": .bool,
    ]

    static func descriptor(_ dtype: DType) -> String {
        descriptors.first { $0.value == dtype }?.key ?? "<f4"
    }

    public init(contentsOf url: URL) throws {
        let data = try AtomicFile.read(url)
        try self.init(data: data, source: url.path)
    }

    public init(data: Data, source: String) throws {
        func fail(_ message: String) -> NNError { NNError("\(source): \(message)") }
        let bytes = [UInt8](data.prefix(12))
        guard bytes.count >= 10, bytes[0] == 0x93, Array(bytes[1..<6]) == Array("NUMPY".utf8) else {
            throw fail("not a .npy file (no \\x93NUMPY magic at byte offset 0)")
        }
        let major = bytes[6]
        let headerLength: Int
        let headerStart: Int
        switch major {
        case 1:
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
            headerStart = 10
        case 2, 3:
            guard bytes.count >= 12 else { throw fail("the header length at byte offset 8 is truncated") }
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8 | Int(bytes[10]) << 16 | Int(bytes[11]) << 24
            headerStart = 12
        default:
            throw fail("unsupported .npy format version \(major)")
        }
        guard headerStart + headerLength <= data.count else {
            throw fail(
                "the header at byte offset \(headerStart) says \(headerLength) bytes but the file ends at \(data.count)"
            )
        }
        let base = data.startIndex
        let header = String(decoding: data[(base + headerStart)..<(base + headerStart + headerLength)], as: UTF8.self)
        func value(_ key: String) -> String? {
            guard let range = header.range(of: "'\(key)':") else { return nil }
            return String(header[range.upperBound...]).trimmingCharacters(in: .whitespaces)
        }
        guard let descrPart = value("descr"), descrPart.hasPrefix("'"),
            let descr = descrPart.dropFirst().split(separator: "'", maxSplits: 1).first.map(String.init)
        else {
            throw fail("the header has no 'descr' string")
        }
        let normalized = descr.replacingOccurrences(of: "=", with: "<").replacingOccurrences(of: "|f", with: "<f")
        guard let dtype = Self.descriptors[normalized] else {
            throw fail("dtype '\(descr)' is not supported (use little-endian float, integer or bool)")
        }
        if let fortran = value("fortran_order"), fortran.hasPrefix("True") {
            throw fail("Fortran-ordered arrays are not supported; save with np.ascontiguousarray first")
        }
        guard let shapePart = value("shape"), shapePart.hasPrefix("("), let close = shapePart.firstIndex(of: ")") else {
            throw fail("the header has no 'shape' tuple")
        }
        let shapeText = shapePart[shapePart.index(after: shapePart.startIndex)..<close]
        var shape: [Int] = []
        for part in shapeText.split(separator: ",") {
            let trimmed = part.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty { continue }
            guard let size = Int(trimmed), size >= 0 else { throw fail("shape entry '\(trimmed)' is not a size") }
            shape.append(size)
        }
        let count = shape.reduce(1, *)
        let dataStart = headerStart + headerLength
        let needed = count * dtype.byteSize
        guard data.count - dataStart >= needed else {
            throw fail(
                "shape \(shape) of \(descr) needs \(needed) data bytes from byte offset \(dataStart) but only \(data.count - dataStart) remain"
            )
        }
        tensor = TensorData(
            dtype: dtype, shape: shape, bytes: Data(data[(base + dataStart)..<(base + dataStart + needed)]))
    }

    /// The `.npy` bytes, version 1.0, data aligned to 64 bytes from the start of the file.
    public func serialized() -> Data {
        header + tensor.bytes
    }

    /// The magic, version and header dictionary, padded so the data starts on a 64-byte
    /// boundary; the array's bytes (`tensor.bytes`) follow it.
    public var header: Data {
        let shapeText = shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
        var header = "{'descr': '\(Self.descriptor(dtype))', 'fortran_order': False, 'shape': \(shapeText), }"
        let unpadded = 10 + header.utf8.count + 1
        header += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
        var out = Data([0x93] + Array("NUMPY".utf8) + [1, 0])
        let length = UInt16(header.utf8.count)
        out.append(contentsOf: [UInt8(length & 0xff), UInt8(length >> 8)])
        out.append(Data(header.utf8))
        return out
    }

    public func write(to url: URL) throws {
        try AtomicFile.write(serialized(), to: url)
    }
}
