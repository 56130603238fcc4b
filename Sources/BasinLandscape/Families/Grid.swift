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

    /// Steps of an axis the spec leaves out.
    public static let defaultSteps = 21
    /// −1…1: a surface's axes where the spec gives none.
    public static let around = Axis(min: -1, max: 1, steps: defaultSteps)
    /// 0…1: a path's `t` where the spec gives none.
    public static let unit = Axis(min: 0, max: 1, steps: defaultSteps)

    /// Most steps one axis may have, and most points one job's grid may have: checked when a
    /// spec is read, before anything is allocated.
    public static let maximumSteps = 1_000_000
    public static let maximumPoints = 50_000_000

    /// Why `steps` values cannot be an axis, or nil.
    static func problem(steps: Int, low: Double, high: Double) -> String? {
        guard steps >= 1, low.isFinite, high.isFinite, steps == 1 || high > low else {
            return "needs STEPS ≥ 1 and MAX > MIN"
        }
        guard steps <= maximumSteps else {
            return "has \(steps) steps; at most \(maximumSteps) are allowed"
        }
        return nil
    }

    /// Parses `MIN:MAX:STEPS` (for example `-1:1:21`).
    public init(parsing text: String, name: String) throws {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 3, let low = Double(parts[0]), let high = Double(parts[1]), let steps = Int(parts[2])
        else {
            throw NNError("\(name): '\(text)' is not MIN:MAX:STEPS (for example -1:1:21)")
        }
        if let problem = Self.problem(steps: steps, low: low, high: high) {
            throw NNError("\(name): '\(text)' \(problem)")
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
        let (low, high, steps) = (
            try c.decode(Double.self, forKey: .min), try c.decode(Double.self, forKey: .max),
            try c.decode(Int.self, forKey: .steps)
        )
        if let problem = Self.problem(steps: steps, low: low, high: high) {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "axis \(problem)"))
        }
        self.init(min: low, max: high, steps: steps)
    }

    /// Encodes as `"MIN:MAX:STEPS"`.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }
}
