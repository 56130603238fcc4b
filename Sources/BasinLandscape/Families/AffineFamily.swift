import BasinNN

/// Models θ(c) = Σₖ cₖ·vₖ over fixed basis vectors vₖ: lines, planes, interpolations, planes
/// through three models and curves alike. BatchNorm running statistics combine with the same
/// coefficients (`states`), so `bn: eval` interpolates them along with the weights.
public struct AffineFamily: Sendable {
    public let network: Network
    public let bases: [[Float]]
    public let states: [[Float]]

    public init(network: Network, bases: [[Float]], states: [[Float]]) {
        precondition(bases.count == states.count && !bases.isEmpty)
        precondition(bases.allSatisfy { $0.count == network.parameterLayout.count })
        precondition(states.allSatisfy { $0.count == network.stateLayout.count })
        self.network = network
        self.bases = bases
        self.states = states
    }

    public var dimension: Int { bases.count }

    /// θ(c) as a model (counters zero).
    public func model(at coefficients: [Double]) -> Model {
        Model(
            network: network, parameters: VectorMath.combination(coefficients, bases),
            state: VectorMath.combination(coefficients, states),
            batchesTracked: [Int64](repeating: 0, count: network.batchNormNames.count))
    }

    /// θ0 + Σᵢ xᵢ·dᵢ around a model: bases [θ0, d1, d2, ...], coefficients [1, x1, x2, ...].
    public static func around(_ model: Model, directions: [[Float]]) -> AffineFamily {
        let zero = [Float](repeating: 0, count: model.state.count)
        return AffineFamily(
            network: model.network, bases: [model.parameters] + directions,
            states: [model.state] + directions.map { _ in zero })
    }

    public static func coordinates(around point: [Double]) -> [Double] { [1] + point }

    /// Control points P₀ … Pₙ (two models for a straight line); coefficients come from a `Curve`.
    public static func through(_ models: [Model]) -> AffineFamily {
        AffineFamily(network: models[0].network, bases: models.map(\.parameters), states: models.map(\.state))
    }
}
