import Foundation

/// This build's version: in `basin --version` and in every result file.
public enum BasinVersion {
    public static let string = "0.1.0"
}

/// What every merged result file says about where it came from: the Basin version that
/// merged it and the SHA-256 of the study spec (canonical JSON) without its scheduling
/// settings (shard size, leases, verification: they change how a sweep runs, never a value),
/// so runs of one study give bitwise-equal results whatever the workers and settings.
public enum Provenance {
    public static func metadata(spec: StudySpec) -> [String: JSONValue] {
        var value = (try? JSONValue(encoding: spec)) ?? .null
        if case .object(var fields) = value, case .object(let sweep)? = fields["sweep"] {
            // `plain` picks the evaluator, whose float rounding differs: it stays.
            fields["sweep"] = .object(sweep.filter { $0.key == "plain" })
            value = .object(fields)
        }
        return [
            "basin_version": .string(BasinVersion.string),
            "spec_sha256": .string(ArtifactStore.hash(value.serialized())),
        ]
    }
}
