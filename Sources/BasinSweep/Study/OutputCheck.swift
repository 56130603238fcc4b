import Foundation

/// What a job's output may hold: the number of values and the range of each (the executor's
/// contract, `Executor.execute`), so a coordinator refuses a broken or lying worker's numbers
/// before they are journaled (PROTOCOL.md "Values"). Losses are never negative (cross-entropy and MSE), but may be NaN or +∞ far
/// from a minimum; accuracies lie in [0, 1] (NaN where there is no test set).
public enum OutputCheck {
    /// Why `values` cannot be what `job` produces for `points` points, or nil when they can.
    public static func problem(_ values: [Double], job: Study.Job, points: Int) -> String? {
        switch job.definition {
        case .surface, .interpolate, .plane, .curve:
            guard values.count == 4 * points else {
                return "has \(values.count) values where \(points) point(s) need \(4 * points)"
            }
            for point in 0..<points {
                if let problem = metrics(values, at: 4 * point) { return "point \(point): \(problem)" }
            }
        case .train(let training):
            let epochs = training.config.epochs
            guard values.count == 4 + epochs else {
                return "has \(values.count) values where a training of \(epochs) epoch(s) gives \(4 + epochs)"
            }
            if let problem = metrics(values, at: 0) { return problem }
            if let bad = values[4...].firstIndex(where: { !isLoss($0) }) {
                return "epoch \(bad - 3)'s loss is \(values[bad])"
            }
        case .fit(let fit):
            let epochs = fit.config.epochs
            guard values.count == epochs else {
                return "has \(values.count) values where a fit of \(epochs) epoch(s) gives \(epochs)"
            }
            if let bad = values.firstIndex(where: { !isLoss($0) }) { return "epoch \(bad + 1)'s loss is \(values[bad])" }
        case .align:
            guard values.count == 6 else { return "has \(values.count) values where an alignment gives 6" }
            let (difference, passes) = (values[0], values[1])
            guard difference.isFinite, difference >= 0, difference <= 1e-4 else {
                return "reports a relative output difference of \(difference) (at most 1e-4 is accepted)"
            }
            guard isCount(passes), values[2...3].allSatisfy({ $0.isFinite && $0 >= 0 }),
                values[4...5].allSatisfy(\.isFinite)
            else {
                return "has passes, distances or similarities no alignment gives"
            }
        case .hessian(let hessian):
            let count = 7 + hessian.extraValueCount
            guard values.count == count else { return "has \(values.count) values where this Hessian job gives \(count)" }
            if let bins = hessian.density?.settings.bins, let bad = values.suffix(bins).first(where: { !($0.isNaN || $0 >= 0) }) {
                return "has a negative eigenvalue density \(bad)"
            }
            guard isCount(values[1]), isCount(values[6]), values[3] == 0 || values[3] == 1,
                values[2].isNaN || values[2] >= 0, values[5].isNaN || values[5] >= 0
            else {
                return "has counts, flags or errors no sharpness measurement gives"
            }
        }
        return nil
    }

    private static func isLoss(_ value: Double) -> Bool { value.isNaN || value >= 0 }
    private static func isAccuracy(_ value: Double) -> Bool { value.isNaN || (0...1).contains(value) }
    private static func isCount(_ value: Double) -> Bool { value >= 0 && value <= 1e15 && value.rounded() == value }

    private static func metrics(_ values: [Double], at i: Int) -> String? {
        if !isLoss(values[i]) { return "train loss \(values[i]) is negative" }
        if !isAccuracy(values[i + 1]) { return "train accuracy \(values[i + 1]) is outside [0, 1]" }
        if !isLoss(values[i + 2]) { return "test loss \(values[i + 2]) is negative" }
        if !isAccuracy(values[i + 3]) { return "test accuracy \(values[i + 3]) is outside [0, 1]" }
        return nil
    }
}
