import Foundation

/// This build's version: in `basin --version` and in every result file.
public enum BasinVersion {
    public static let string = "0.1.0"
}

/// What every merged result file says about where it came from: the Basin version that
/// merged it and the SHA-256 of the study spec (canonical JSON), the same on every machine and
/// whatever the workers, so results stay bitwise equal across runs of one spec.
public enum Provenance {
    public static func metadata(spec: StudySpec) -> [String: JSONValue] {
        let canonical = (try? JSONValue(encoding: spec).serialized()) ?? Data()
        return ["basin_version": .string(BasinVersion.string), "spec_sha256": .string(ArtifactStore.hash(canonical))]
    }
}
