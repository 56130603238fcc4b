import BasinNN

/// Evenly spaced values from `min` to `max` inclusive, written `MIN:MAX:STEPS`.
public struct Axis: Codable, Sendable, Equatable, CustomStringConvertible {
    public var min: Double
    public var max: Double
    public var steps: Int

    public init(min: Double, max: Double, steps: Int) {
        self.min = min
        self.max = max
        self.steps = steps
    }

    /// Parses `MIN:MAX:STEPS` (for example `-1:1:21`).
    public init(parsing text: String, name: String) throws {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 3, let low = Double(parts[0]), let high = Double(parts[1]), let steps = Int(parts[2])
        else {
            throw NNError("\(name): '\(text)' is not MIN:MAX:STEPS (for example -1:1:21)")
        }
        guard steps >= 1, low.isFinite, high.isFinite, steps == 1 || high > low else {
            throw NNError("\(name): '\(text)' needs STEPS ≥ 1 and MAX > MIN")
        }
        self.init(min: low, max: high, steps: steps)
    }

    /// The values; the i-th is computed directly (min + i·(max−min)/(steps−1)), not accumulated.
    public var values: [Double] {
        steps == 1 ? [min] : (0..<steps).map { min + Double($0) * (max - min) / Double(steps - 1) }
    }

    public var description: String { "\(min):\(max):\(steps)" }

    private enum CodingKeys: String, CodingKey { case min, max, steps }

    /// Decodes `"MIN:MAX:STEPS"` or `{min, max, steps}`.
    public init(from decoder: Decoder) throws {
        if let text = try? decoder.singleValueContainer().decode(String.self) {
            do {
                try self.init(parsing: text, name: "axis")
            } catch let error as NNError {
                throw DecodingError.dataCorrupted(
                    .init(codingPath: decoder.codingPath, debugDescription: error.description))
            }
            return
        }
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            min: try c.decode(Double.self, forKey: .min), max: try c.decode(Double.self, forKey: .max),
            steps: try c.decode(Int.self, forKey: .steps))
    }

    /// Encodes as `"MIN:MAX:STEPS"`.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }
}
