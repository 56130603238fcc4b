import Foundation

/// Element types of safetensors, `.npy` and Basin's tensors.
public enum DType: String, Sendable, CaseIterable, Codable {
    case f64 = "F64", f32 = "F32", f16 = "F16", bf16 = "BF16"
    case i64 = "I64", i32 = "I32", i16 = "I16", i8 = "I8"
    case u64 = "U64", u32 = "U32", u16 = "U16", u8 = "U8", bool = "BOOL"

    public var byteSize: Int {
        switch self {
        case .f64, .i64, .u64: 8
        case .f32, .i32, .u32: 4
        case .f16, .bf16, .i16, .u16: 2
        case .i8, .u8, .bool: 1
        }
    }
}

/// One tensor of a safetensors file: dtype, shape and its raw little-endian bytes.
public struct TensorData: Sendable, Equatable {
    public var dtype: DType
    public var shape: [Int]
    public var bytes: Data

    public var count: Int { shape.reduce(1, *) }

    public init(dtype: DType, shape: [Int], bytes: Data) {
        self.dtype = dtype
        self.shape = shape
        self.bytes = bytes
    }

    public init(_ values: [Float], shape: [Int]) {
        self.init(dtype: .f32, shape: shape, bytes: values.withUnsafeBytes { Data($0) })
    }

    public init(_ values: [Double], shape: [Int]) {
        self.init(dtype: .f64, shape: shape, bytes: values.withUnsafeBytes { Data($0) })
    }

    public init(_ values: [Int64], shape: [Int]) {
        self.init(dtype: .i64, shape: shape, bytes: values.withUnsafeBytes { Data($0) })
    }

    public init(_ values: [Int32], shape: [Int]) {
        self.init(dtype: .i32, shape: shape, bytes: values.withUnsafeBytes { Data($0) })
    }

    public init(_ values: [UInt8], shape: [Int]) {
        self.init(dtype: .u8, shape: shape, bytes: Data(values))
    }

    private func load<T>(_ type: T.Type) -> [T] {
        [T](unsafeUninitializedCapacity: count) { buffer, initialized in
            _ = bytes.copyBytes(to: buffer)
            initialized = count
        }
    }

    /// The values as Float32 (F64 rounds; integer types convert), or nil for half types.
    public func floats() -> [Float]? {
        switch dtype {
        case .f32: load(Float.self)
        case .f64: load(Double.self).map { Float($0) }
        case .i64: load(Int64.self).map { Float($0) }
        case .i32: load(Int32.self).map { Float($0) }
        case .i16: load(Int16.self).map { Float($0) }
        case .i8: load(Int8.self).map { Float($0) }
        case .u64: load(UInt64.self).map { Float($0) }
        case .u32: load(UInt32.self).map { Float($0) }
        case .u16: load(UInt16.self).map { Float($0) }
        case .u8, .bool: bytes.map { Float($0) }
        case .f16, .bf16: nil
        }
    }

    /// The values as Float64 for F64 and F32 tensors (exactly), or nil for other types.
    public func doubles() -> [Double]? {
        switch dtype {
        case .f64: load(Double.self)
        case .f32: load(Float.self).map { Double($0) }
        default: nil
        }
    }

    /// The values as Int64 for integer and boolean types, or nil for floating types.
    public func integers() -> [Int64]? {
        switch dtype {
        case .i64: load(Int64.self)
        case .i32: load(Int32.self).map { Int64($0) }
        case .i16: load(Int16.self).map { Int64($0) }
        case .i8: load(Int8.self).map { Int64($0) }
        case .u64: load(UInt64.self).map { Int64(truncatingIfNeeded: $0) }
        case .u32: load(UInt32.self).map { Int64($0) }
        case .u16: load(UInt16.self).map { Int64($0) }
        case .u8, .bool: bytes.map { Int64($0) }
        case .f64, .f32, .f16, .bf16: nil
        }
    }
}

/// A safetensors file: 8-byte little-endian header length, a JSON header mapping names to
/// `{dtype, shape, data_offsets}` plus optional `__metadata__` strings, then the data.
///
/// Tensors keep the order they were added in (written in that order); reading keeps the
/// file's data order.
public struct SafeTensors: Sendable {
    /// Largest header accepted (the reference implementation's limit).
    public static let maximumHeaderLength = 100_000_000

    public private(set) var names: [String] = []
    private var tensors: [String: TensorData] = [:]
    public var metadata: [String: String] = [:]

    public init() {}

    public subscript(name: String) -> TensorData? {
        get { tensors[name] }
        set {
            if tensors[name] == nil, newValue != nil { names.append(name) }
            if newValue == nil { names.removeAll { $0 == name } }
            tensors[name] = newValue
        }
    }

    // MARK: Reading

    public init(contentsOf url: URL) throws {
        let data = try AtomicFile.read(url)
        try self.init(data: data, source: url.path)
    }

    public init(data: Data, source: String) throws {
        func fail(_ message: String) -> NNError { NNError("\(source): \(message)") }
        guard data.count >= 8 else {
            throw fail("the file is \(data.count) bytes, too short for the 8-byte header length at byte offset 0")
        }
        let base = data.startIndex
        var headerLength: UInt64 = 0
        for i in 0..<8 { headerLength |= UInt64(data[base + i]) << (8 * UInt64(i)) }
        guard headerLength <= UInt64(Self.maximumHeaderLength) else {
            throw fail(
                "the header length at byte offset 0 is \(headerLength) bytes, over the \(Self.maximumHeaderLength)-byte limit"
            )
        }
        guard headerLength <= UInt64(data.count - 8) else {
            throw fail(
                "the header length at byte offset 0 says \(headerLength) bytes but only \(data.count - 8) bytes follow; the file is truncated"
            )
        }
        let headerEnd = 8 + Int(headerLength)
        let headerBytes = data[(base + 8)..<(base + headerEnd)]
        guard let json = try? JSONSerialization.jsonObject(with: headerBytes), let header = json as? [String: Any]
        else {
            throw fail("the header at byte offset 8 (\(headerLength) bytes) is not a JSON object")
        }
        let dataLength = data.count - headerEnd
        var entries: [(name: String, start: Int, tensor: TensorData)] = []
        for (name, value) in header {
            if name == "__metadata__" {
                guard let dict = value as? [String: Any] else {
                    throw fail("'__metadata__' in the header is not an object")
                }
                for (key, item) in dict {
                    guard let string = item as? String else {
                        throw fail("'__metadata__' entry '\(key)' is not a string")
                    }
                    metadata[key] = string
                }
                continue
            }
            guard let info = value as? [String: Any] else {
                throw fail("tensor '\(name)': header entry is not an object")
            }
            guard let dtypeName = info["dtype"] as? String else {
                throw fail("tensor '\(name)': header entry has no 'dtype'")
            }
            guard let dtype = DType(rawValue: dtypeName) else {
                throw fail("tensor '\(name)': unknown dtype '\(dtypeName)'")
            }
            guard let shapeValues = info["shape"] as? [Any],
                let shape = shapeValues.map({ ($0 as? NSNumber)?.intValue ?? -1 }) as [Int]?,
                shape.allSatisfy({ $0 >= 0 })
            else {
                throw fail("tensor '\(name)': 'shape' is not a list of non-negative integers")
            }
            guard let offsets = info["data_offsets"] as? [Any], offsets.count == 2,
                let begin = (offsets[0] as? NSNumber)?.intValue, let end = (offsets[1] as? NSNumber)?.intValue,
                begin >= 0, end >= begin
            else {
                throw fail("tensor '\(name)': 'data_offsets' is not a pair [begin, end] with 0 <= begin <= end")
            }
            guard end <= dataLength else {
                throw fail(
                    "tensor '\(name)': data_offsets [\(begin), \(end)] reach byte offset \(headerEnd + end) but the file ends at \(data.count); the file is truncated"
                )
            }
            var expected = dtype.byteSize, overflow = false
            for size in shape {
                let (product, didOverflow) = expected.multipliedReportingOverflow(by: size)
                expected = product
                overflow = overflow || didOverflow
            }
            guard !overflow, expected == end - begin else {
                throw fail(
                    "tensor '\(name)': shape \(shape) of \(dtypeName) needs \(expected) bytes but data_offsets [\(begin), \(end)] hold \(end - begin)"
                )
            }
            let bytes = Data(data[(base + headerEnd + begin)..<(base + headerEnd + end)])
            entries.append((name, begin, TensorData(dtype: dtype, shape: shape, bytes: bytes)))
        }
        entries.sort { ($0.start, $0.name) < ($1.start, $1.name) }
        var previousEnd = 0
        for entry in entries where entry.tensor.bytes.count > 0 {
            guard entry.start >= previousEnd else {
                throw fail(
                    "tensor '\(entry.name)': data at byte offset \(headerEnd + entry.start) overlaps the previous tensor"
                )
            }
            previousEnd = entry.start + entry.tensor.bytes.count
        }
        for entry in entries { self[entry.name] = entry.tensor }
    }

    // MARK: Writing

    /// The file's bytes: header (padded with spaces to a multiple of 8) and data in `names` order.
    public func serialized() -> Data {
        var header = "{"
        var parts: [String] = []
        if !metadata.isEmpty {
            let items = metadata.keys.sorted().map { "\(jsonString($0)):\(jsonString(metadata[$0]!))" }
            parts.append("\"__metadata__\":{\(items.joined(separator: ","))}")
        }
        var offset = 0
        for name in names {
            let tensor = tensors[name]!
            let end = offset + tensor.bytes.count
            let shape = tensor.shape.map(String.init).joined(separator: ",")
            parts.append(
                "\(jsonString(name)):{\"dtype\":\"\(tensor.dtype.rawValue)\",\"shape\":[\(shape)],\"data_offsets\":[\(offset),\(end)]}"
            )
            offset = end
        }
        header += parts.joined(separator: ",") + "}"
        var headerBytes = Data(header.utf8)
        while headerBytes.count % 8 != 0 { headerBytes.append(0x20) }
        var out = Data(capacity: 8 + headerBytes.count + offset)
        var length = UInt64(headerBytes.count).littleEndian
        withUnsafeBytes(of: &length) { out.append(contentsOf: $0) }
        out.append(headerBytes)
        for name in names { out.append(tensors[name]!.bytes) }
        return out
    }

    /// Writes atomically: a temporary file beside `url`, fsynced, then renamed over it.
    public func write(to url: URL) throws {
        try AtomicFile.write(serialized(), to: url)
    }
}

/// A JSON string literal for `value`.
func jsonString(_ value: String) -> String {
    var out = "\""
    for scalar in value.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        default:
            if scalar.value < 0x20 {
                out += String(format: "\\u%04x", scalar.value)
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
    }
    return out + "\""
}
