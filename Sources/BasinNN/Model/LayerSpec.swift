/// One layer of a Sequential model, with PyTorch's constructor arguments; a residual block
/// holds layers of its own.
///
/// Sizes that follow from the previous layer (`in_features`, `in_channels`, `num_features`)
/// may be left out of a description; they are filled in when the model is built and checked
/// when given.
public enum LayerSpec: Equatable, Sendable {
    case linear(inFeatures: Int?, outFeatures: Int, bias: Bool)
    case conv2d(
        inChannels: Int?, outChannels: Int, kernel: Pair, stride: Pair, padding: Pair, bias: Bool)
    case relu
    case leakyReLU(negativeSlope: Double)
    case tanh
    case sigmoid
    case gelu(tanhApproximation: Bool)
    case maxPool2d(kernel: Pair, stride: Pair, padding: Pair)
    case avgPool2d(kernel: Pair, stride: Pair, padding: Pair)
    case flatten
    case batchNorm1d(numFeatures: Int?, eps: Double, momentum: Double)
    case batchNorm2d(numFeatures: Int?, eps: Double, momentum: Double)
    case dropout(p: Double)
    /// `body(x) + shortcut(x)`; an empty shortcut is the identity.
    indirect case residual(body: [LayerSpec], shortcut: [LayerSpec])
    case identity
    /// `nn.AdaptiveAvgPool2d`; only an output of 1×1 (global average pooling).
    case adaptiveAvgPool2d(outputSize: Pair)
    /// `nn.LayerNorm` over the last dimensions of a sample (nil: all of them, C·H·W).
    case layerNorm(normalizedShape: [Int]?, eps: Double)
    case groupNorm(numGroups: Int, numChannels: Int?, eps: Double)

    /// Two integers (height, width), written in a description as `3` or `[3, 3]`.
    public struct Pair: Equatable, Sendable, Codable {
        public var h: Int
        public var w: Int

        public init(_ h: Int, _ w: Int) {
            self.h = h
            self.w = w
        }

        public init(_ both: Int) {
            self.init(both, both)
        }

        public init(from decoder: Decoder) throws {
            let container = try decoder.singleValueContainer()
            if let value = try? container.decode(Int.self) {
                self.init(value)
            } else {
                let values = try container.decode([Int].self)
                guard values.count == 2 else {
                    throw DecodingError.dataCorruptedError(
                        in: container, debugDescription: "expected an integer or two integers")
                }
                self.init(values[0], values[1])
            }
        }

        public func encode(to encoder: Encoder) throws {
            var container = encoder.singleValueContainer()
            if h == w { try container.encode(h) } else { try container.encode([h, w]) }
        }
    }

    /// The PyTorch class-like name used in descriptions (`linear`, `conv2d`, ...).
    public var typeName: String {
        switch self {
        case .linear: "linear"
        case .conv2d: "conv2d"
        case .relu: "relu"
        case .leakyReLU: "leaky_relu"
        case .tanh: "tanh"
        case .sigmoid: "sigmoid"
        case .gelu: "gelu"
        case .maxPool2d: "maxpool2d"
        case .avgPool2d: "avgpool2d"
        case .flatten: "flatten"
        case .batchNorm1d: "batchnorm1d"
        case .batchNorm2d: "batchnorm2d"
        case .dropout: "dropout"
        case .residual: "residual"
        case .identity: "identity"
        case .adaptiveAvgPool2d: "adaptive_avgpool2d"
        case .layerNorm: "layernorm"
        case .groupNorm: "groupnorm"
        }
    }
}

extension LayerSpec: Codable {
    private enum Key: String, CodingKey, CaseIterable {
        case type
        case inFeatures = "in_features", outFeatures = "out_features"
        case inChannels = "in_channels", outChannels = "out_channels"
        case kernelSize = "kernel_size", stride, padding, bias
        case negativeSlope = "negative_slope", approximate
        case numFeatures = "num_features", eps, momentum, p
        case body, shortcut, outputSize = "output_size", normalizedShape = "normalized_shape"
        case numGroups = "num_groups", numChannels = "num_channels"
    }

    private static let typeAliases: [String: String] = [
        "leakyrelu": "leaky_relu", "max_pool2d": "maxpool2d", "avg_pool2d": "avgpool2d",
        "batch_norm1d": "batchnorm1d", "batch_norm2d": "batchnorm2d", "conv": "conv2d",
        "adaptiveavgpool2d": "adaptive_avgpool2d", "adaptive_avg_pool2d": "adaptive_avgpool2d",
        "layer_norm": "layernorm", "group_norm": "groupnorm",
    ]

    /// Decodes either a bare type name (`relu`) or a mapping with `type` and PyTorch arguments.
    public init(from decoder: Decoder) throws {
        if let single = try? decoder.singleValueContainer(), let name = try? single.decode(String.self) {
            try self.init(type: name, container: nil, decoder: decoder)
            return
        }
        let container = try decoder.container(keyedBy: Key.self)
        let name = try container.decode(String.self, forKey: .type)
        try self.init(type: name, container: container, decoder: decoder)
    }

    private init(type rawName: String, container: KeyedDecodingContainer<Key>?, decoder: Decoder) throws {
        let lowered = rawName.lowercased()
        let name = Self.typeAliases[lowered] ?? lowered
        func opt<T: Decodable>(_ key: Key, _ type: T.Type) throws -> T? {
            try container?.decodeIfPresent(T.self, forKey: key)
        }
        func req<T: Decodable>(_ key: Key, _ type: T.Type) throws -> T {
            guard let value = try opt(key, type) else {
                throw DecodingError.keyNotFound(
                    key,
                    .init(codingPath: decoder.codingPath, debugDescription: "layer '\(name)' needs '\(key.rawValue)'"))
            }
            return value
        }
        switch name {
        case "linear":
            self = .linear(
                inFeatures: try opt(.inFeatures, Int.self), outFeatures: try req(.outFeatures, Int.self),
                bias: try opt(.bias, Bool.self) ?? true)
        case "conv2d":
            let kernel = try req(.kernelSize, Pair.self)
            self = .conv2d(
                inChannels: try opt(.inChannels, Int.self), outChannels: try req(.outChannels, Int.self),
                kernel: kernel, stride: try opt(.stride, Pair.self) ?? Pair(1),
                padding: try opt(.padding, Pair.self) ?? Pair(0), bias: try opt(.bias, Bool.self) ?? true)
        case "relu": self = .relu
        case "leaky_relu": self = .leakyReLU(negativeSlope: try opt(.negativeSlope, Double.self) ?? 0.01)
        case "tanh": self = .tanh
        case "sigmoid": self = .sigmoid
        case "gelu":
            let approximate = try opt(.approximate, String.self) ?? "none"
            guard approximate == "none" || approximate == "tanh" else {
                throw DecodingError.dataCorrupted(
                    .init(
                        codingPath: decoder.codingPath, debugDescription: "gelu 'approximate' must be 'none' or 'tanh'")
                )
            }
            self = .gelu(tanhApproximation: approximate == "tanh")
        case "maxpool2d", "avgpool2d":
            let kernel = try req(.kernelSize, Pair.self)
            let stride = try opt(.stride, Pair.self) ?? kernel
            let padding = try opt(.padding, Pair.self) ?? Pair(0)
            self =
                name == "maxpool2d"
                ? .maxPool2d(kernel: kernel, stride: stride, padding: padding)
                : .avgPool2d(kernel: kernel, stride: stride, padding: padding)
        case "flatten": self = .flatten
        case "batchnorm1d", "batchnorm2d":
            let features = try opt(.numFeatures, Int.self)
            let eps = try opt(.eps, Double.self) ?? 1e-5
            let momentum = try opt(.momentum, Double.self) ?? 0.1
            self =
                name == "batchnorm1d"
                ? .batchNorm1d(numFeatures: features, eps: eps, momentum: momentum)
                : .batchNorm2d(numFeatures: features, eps: eps, momentum: momentum)
        case "dropout": self = .dropout(p: try opt(.p, Double.self) ?? 0.5)
        case "residual":
            self = .residual(body: try req(.body, [LayerSpec].self), shortcut: try opt(.shortcut, [LayerSpec].self) ?? [])
        case "identity": self = .identity
        case "adaptive_avgpool2d": self = .adaptiveAvgPool2d(outputSize: try opt(.outputSize, Pair.self) ?? Pair(1))
        case "layernorm":
            self = .layerNorm(normalizedShape: try opt(.normalizedShape, [Int].self), eps: try opt(.eps, Double.self) ?? 1e-5)
        case "groupnorm":
            self = .groupNorm(
                numGroups: try req(.numGroups, Int.self), numChannels: try opt(.numChannels, Int.self),
                eps: try opt(.eps, Double.self) ?? 1e-5)
        default:
            throw DecodingError.dataCorrupted(
                .init(
                    codingPath: decoder.codingPath,
                    debugDescription: "unknown layer type '\(rawName)' (known: linear, conv2d, relu, leaky_relu, "
                        + "tanh, sigmoid, gelu, maxpool2d, avgpool2d, adaptive_avgpool2d, flatten, batchnorm1d, "
                        + "batchnorm2d, layernorm, groupnorm, dropout, identity, residual)"))
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: Key.self)
        try c.encode(typeName, forKey: .type)
        switch self {
        case .linear(let inFeatures, let outFeatures, let bias):
            try c.encodeIfPresent(inFeatures, forKey: .inFeatures)
            try c.encode(outFeatures, forKey: .outFeatures)
            try c.encode(bias, forKey: .bias)
        case .conv2d(let inChannels, let outChannels, let kernel, let stride, let padding, let bias):
            try c.encodeIfPresent(inChannels, forKey: .inChannels)
            try c.encode(outChannels, forKey: .outChannels)
            try c.encode(kernel, forKey: .kernelSize)
            try c.encode(stride, forKey: .stride)
            try c.encode(padding, forKey: .padding)
            try c.encode(bias, forKey: .bias)
        case .relu, .tanh, .sigmoid, .flatten, .identity:
            break
        case .residual(let body, let shortcut):
            try c.encode(body, forKey: .body)
            try c.encode(shortcut, forKey: .shortcut)
        case .adaptiveAvgPool2d(let size):
            try c.encode(size, forKey: .outputSize)
        case .layerNorm(let shape, let eps):
            try c.encodeIfPresent(shape, forKey: .normalizedShape)
            try c.encode(eps, forKey: .eps)
        case .groupNorm(let groups, let channels, let eps):
            try c.encode(groups, forKey: .numGroups)
            try c.encodeIfPresent(channels, forKey: .numChannels)
            try c.encode(eps, forKey: .eps)
        case .leakyReLU(let slope):
            try c.encode(slope, forKey: .negativeSlope)
        case .gelu(let tanhApproximation):
            try c.encode(tanhApproximation ? "tanh" : "none", forKey: .approximate)
        case .maxPool2d(let kernel, let stride, let padding), .avgPool2d(let kernel, let stride, let padding):
            try c.encode(kernel, forKey: .kernelSize)
            try c.encode(stride, forKey: .stride)
            try c.encode(padding, forKey: .padding)
        case .batchNorm1d(let features, let eps, let momentum), .batchNorm2d(let features, let eps, let momentum):
            try c.encodeIfPresent(features, forKey: .numFeatures)
            try c.encode(eps, forKey: .eps)
            try c.encode(momentum, forKey: .momentum)
        case .dropout(let p):
            try c.encode(p, forKey: .p)
        }
    }
}
