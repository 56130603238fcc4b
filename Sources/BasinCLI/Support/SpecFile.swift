import BasinNN
import Foundation
import Yams

/// Reading YAML (or JSON, which is YAML) files into Basin's Codable types with errors that
/// name the file and field.
enum SpecFile {
    static func read(_ path: String) throws -> (text: String, url: URL) {
        let url = URL(fileURLWithPath: path)
        do {
            return (try String(contentsOf: url, encoding: .utf8), url)
        } catch {
            throw NNError("\(path): cannot read the file (\(error.localizedDescription))")
        }
    }

    static func decode<T: Decodable>(_ type: T.Type, from text: String, source: String) throws -> T {
        do {
            return try YAMLDecoder().decode(T.self, from: text)
        } catch let error as DecodingError {
            if case .dataCorrupted(let context) = error, context.codingPath.isEmpty, let yaml = context.underlyingError
            {
                let detail = String(describing: yaml).split(separator: "\n").first.map(String.init) ?? ""
                throw NNError("\(source): not valid YAML (\(detail))")
            }
            throw NNError("\(source): \(error.readable)")
        } catch let error as YamlError {
            throw NNError("\(source): not valid YAML (\(String(describing: error).split(separator: "\n").first ?? ""))")
        } catch let error as NNError {
            throw error
        } catch {
            throw NNError("\(source): \(error)")
        }
    }

    static func load<T: Decodable>(_ type: T.Type, path: String) throws -> (value: T, url: URL) {
        let (text, url) = try read(path)
        return (try decode(T.self, from: text, source: path), url)
    }

    /// A training spec and the directory its relative data paths start from.
    static func trainingSpec(_ path: String) throws -> (spec: TrainingSpec, base: URL) {
        let (spec, url) = try load(TrainingSpec.self, path: path)
        if let problem = spec.train.validationError() { throw NNError("\(path): train: \(problem)") }
        return (spec, url.deletingLastPathComponent())
    }

    /// The spec's data, with errors about the `data` section prefixed by the spec's path.
    static func loadData(_ spec: TrainingSpec, base: URL, path: String) throws -> DataSplit {
        do {
            return try spec.data.load(relativeTo: base)
        } catch let error as NNError where error.description.hasPrefix("data") {
            throw NNError("\(path): \(error.description)")
        }
    }
}
