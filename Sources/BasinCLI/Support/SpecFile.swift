import BasinNN
import BasinSweep
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

    /// Decodes `text`; a key no field reads (a typo) is an error naming the key, its place and
    /// the nearest valid name. `tolerating`: top-level keys another command reads (a study
    /// spec's `jobs`, `stages` and `sweep` in a training spec).
    static func decode<T: Decodable>(
        _ type: T.Type, from text: String, source: String, tolerating: Set<String> = []
    ) throws -> T {
        let log = KeyLog()
        func unknownKey() -> NNError? {
            guard let unknown = log.unknown(tolerating: tolerating) else { return nil }
            let hint = unknown.suggestion.map { "; did you mean '\($0)'?" } ?? ""
            return NNError("\(source): unknown key '\(unknown.key)' in \(unknown.place)\(hint)")
        }
        do {
            let value = try YAMLDecoder().decode(Checked<T>.self, from: text, userInfo: [Checked<T>.logKey: log]).value
            if let unknown = unknownKey() { throw unknown }
            return value
        } catch let error as DecodingError {
            // A misspelt required key shows as a missing one: name the misspelling instead.
            if case .keyNotFound(let missing, let context) = error,
                let typo = log.misspelling(of: missing.stringValue, at: context.codingPath)
            {
                throw NNError(
                    "\(source): unknown key '\(typo.key)' in \(typo.place); did you mean '\(missing.stringValue)'?")
            }
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

    static func load<T: Decodable>(_ type: T.Type, path: String, tolerating: Set<String> = []) throws -> (
        value: T, url: URL
    ) {
        let (text, url) = try read(path)
        return (try decode(T.self, from: text, source: path, tolerating: tolerating), url)
    }

    /// A training spec and the directory its relative data paths start from (a study spec
    /// serves as one: its `jobs`, `stages` and `sweep` are left to `basin run`).
    static func trainingSpec(_ path: String) throws -> (spec: TrainingSpec, base: URL) {
        let (spec, url) = try load(
            TrainingSpec.self, path: path, tolerating: ["jobs", "stages", "sweep", "bn_recompute"])
        if let problem = spec.train.validationError() { throw SpecError("train", problem, file: path) }
        return (spec, url.deletingLastPathComponent())
    }

    /// A study spec checked as `basin run`, `basin coordinator` and `basin check` check it: its
    /// text and URL beside it.
    static func studySpec(_ path: String) throws -> (spec: StudySpec, text: String, url: URL) {
        let (text, url) = try read(path)
        let spec = try decode(StudySpec.self, from: text, source: path)
        if let problem = spec.train.validationError() { throw SpecError("train", problem, file: path) }
        guard !spec.jobs.isEmpty || spec.stages != nil else {
            throw NNError("\(path): neither 'jobs' nor 'stages'; nothing to run")
        }
        return (spec, text, url)
    }

    /// The study spec a run directory holds (`RUN/spec.yaml`), for the commands that read a run.
    static func runSpec(_ directory: URL) throws -> StudySpec {
        let path = RunDirectory(directory).specFile.path
        guard FileManager.default.fileExists(atPath: path) else {
            throw NNError("\(directory.path): not a run directory (no spec.yaml)")
        }
        let (text, _) = try read(path)
        return try decode(StudySpec.self, from: text, source: path)
    }

    /// The spec's data, with errors about the `data` section prefixed by the spec's path.
    static func loadData(_ spec: TrainingSpec, base: URL, path: String) throws -> DataSplit {
        do {
            return try spec.data.load(relativeTo: base)
        } catch let error as SpecError {
            throw error.inFile(path)
        }
    }
}

/// Decodes `T` through a `KeyCheckingDecoder` whose log comes in the decoder's `userInfo`.
private struct Checked<T: Decodable>: Decodable {
    // Only the KeyLog of one decode travels under this key.
    static var logKey: CodingUserInfoKey { CodingUserInfoKey(rawValue: "basin.keylog")! }
    let value: T

    init(from decoder: any Decoder) throws {
        guard let log = decoder.userInfo[Self.logKey] as? KeyLog else {
            value = try T(from: decoder)
            return
        }
        value = try T(from: KeyCheckingDecoder(base: decoder, log: log))
    }
}
