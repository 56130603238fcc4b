import BasinNN
import Foundation

/// Train/test metrics of one model, printed as one line or as JSON.
struct ModelSummary: Codable {
    var trainLoss: Double
    var trainAccuracy: Double
    var testLoss: Double?
    var testAccuracy: Double?
    var parameters: Int
    var seconds: Double?

    init(model: Model, data: DataSplit, loss: LossFunction, seconds: Double?) throws {
        let train = try model.evaluate(on: data.train, loss: loss)
        trainLoss = train.meanLoss
        trainAccuracy = train.accuracy
        if data.test.count > 0 {
            let test = try model.evaluate(on: data.test, loss: loss)
            testLoss = test.meanLoss
            testAccuracy = test.accuracy
        }
        parameters = model.parameters.count
        self.seconds = seconds
    }

    private static func format(_ value: Double) -> String {
        value.isNaN ? "n/a" : String(format: "%.6g", value)
    }

    var line: String {
        var parts = ["train loss \(Self.format(trainLoss)) acc \(Self.format(trainAccuracy))"]
        if let testLoss, let testAccuracy {
            parts.append("test loss \(Self.format(testLoss)) acc \(Self.format(testAccuracy))")
        }
        if let seconds { parts.append(String(format: "%.2f s", seconds)) }
        return parts.joined(separator: " | ")
    }

    var json: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return String(decoding: (try? encoder.encode(self)) ?? Data(), as: UTF8.self)
    }
}
