import ArgumentParser
import BasinTestSupport
import Foundation
import Testing
import Yams

@testable import BasinCLI

/// The files under deploy/: they parse, carry the fields a cluster needs, and every `basin`
/// command line in them is one the real argument parser accepts.
@Suite struct DeployFileTests {
    let deploy = TestSupport.repositoryRoot.appendingPathComponent("deploy")

    func text(_ path: String) throws -> String {
        try String(contentsOf: deploy.appendingPathComponent(path), encoding: .utf8)
    }

    /// Every YAML document in a Kubernetes manifest, by kind.
    func manifests(_ path: String) throws -> [String: [String: Any]] {
        var out: [String: [String: Any]] = [:]
        for document in try Yams.load_all(yaml: try text(path)) {
            guard let object = document as? [String: Any], let kind = object["kind"] as? String else {
                Issue.record("\(path): a document without 'kind'")
                continue
            }
            #expect(object["apiVersion"] is String, "\(path): \(kind) has no apiVersion")
            #expect((object["metadata"] as? [String: Any])?["name"] is String, "\(path): \(kind) has no name")
            out[kind] = object
        }
        return out
    }

    /// `dictionary[a][b]...`, following string keys.
    func value(_ object: Any?, _ path: String...) -> Any? {
        var current = object
        for key in path { current = (current as? [String: Any])?[key] }
        return current
    }

    /// The only container of a workload's pod template.
    func container(_ workload: [String: Any]) throws -> [String: Any] {
        let containers = try #require(value(workload, "spec", "template", "spec", "containers") as? [[String: Any]])
        #expect(containers.count == 1)
        return containers[0]
    }

    /// Parses a `basin` command line with the real CLI (nothing runs).
    func parses(_ arguments: [String], _ source: String) {
        do {
            _ = try BasinCommand.parseAsRoot(arguments)
        } catch {
            Issue.record("\(source): `basin \(arguments.joined(separator: " "))` does not parse: \(error)")
        }
    }

    @Test func kubernetesCoordinatorIsAStatefulSetWithAVolumeAServiceAndProbes() throws {
        let objects = try manifests("k8s/coordinator.yaml")
        let service = try #require(objects["Service"])
        let statefulSet = try #require(objects["StatefulSet"])
        let labels = try #require(value(statefulSet, "spec", "template", "metadata", "labels") as? [String: String])
        let selector = try #require(value(service, "spec", "selector") as? [String: String])
        #expect(selector.allSatisfy { labels[$0.key] == $0.value }, "the Service selects no coordinator pod")
        #expect(value(statefulSet, "spec", "replicas") as? Int == 1)
        #expect(value(statefulSet, "spec", "serviceName") as? String == value(service, "metadata", "name") as? String)
        let c = try container(statefulSet)
        let args = try #require(c["args"] as? [String])
        parses(args, "k8s/coordinator.yaml")
        #expect(args.first == "coordinator" && args.contains("--keep-serving") && args.contains("--curve-secret"))
        let port = try #require((value(service, "spec", "ports") as? [[String: Any]])?.first?["port"] as? Int)
        #expect(args.contains("tcp://*:\(port)"), "the coordinator must bind the Service's port on all interfaces")
        // The run directory lives on the claim template's volume.
        let out = try #require(args.firstIndex(of: "--out").map { args[$0 + 1] })
        let mounts = try #require(c["volumeMounts"] as? [[String: Any]])
        let claims = try #require(value(statefulSet, "spec", "volumeClaimTemplates") as? [[String: Any]])
        let claimNames = claims.compactMap { value($0, "metadata", "name") as? String }
        #expect(
            mounts.contains { claimNames.contains($0["name"] as? String ?? "") && $0["mountPath"] as? String == out })
        for key in ["requests", "limits"] {
            let r = try #require(value(c, "resources", key) as? [String: Any])
            #expect(r["cpu"] != nil && r["memory"] != nil, "coordinator resources.\(key)")
        }
        #expect(c["readinessProbe"] != nil && c["livenessProbe"] != nil)
    }

    @Test func kubernetesWorkersConnectToTheServiceWithCurveKeysFromTheSecret() throws {
        let coordinator = try manifests("k8s/coordinator.yaml")
        let deployment = try #require(try manifests("k8s/workers.yaml")["Deployment"])
        let secret = try #require(try manifests("k8s/secret.yaml")["Secret"])
        let c = try container(deployment)
        let args = try #require(c["args"] as? [String])
        parses(args, "k8s/workers.yaml")
        let service = try #require(value(coordinator["Service"], "metadata", "name") as? String)
        let port = try #require(
            (value(coordinator["Service"], "spec", "ports") as? [[String: Any]])?.first?["port"] as? Int)
        #expect(args.first == "worker" && args.contains("tcp://\(service):\(port)"))
        #expect(args.contains("--curve-keys") && args.contains("--curve-server") && args.contains("--keep-alive"))
        for key in ["requests", "limits"] {
            #expect((value(c, "resources", key) as? [String: Any])?["cpu"] != nil, "worker resources.\(key)")
        }
        #expect(c["livenessProbe"] != nil)
        // Every key a pod mounts from the Secret exists in it.
        let secretName = try #require(value(secret, "metadata", "name") as? String)
        let keys = Set((value(secret, "stringData") as? [String: Any] ?? [:]).keys)
        for workload in [coordinator["StatefulSet"]!, deployment] {
            let volumes = try #require(value(workload, "spec", "template", "spec", "volumes") as? [[String: Any]])
            let fromSecret = volumes.filter { value($0, "secret", "secretName") as? String == secretName }
            #expect(!fromSecret.isEmpty)
            for volume in fromSecret {
                for item in value(volume, "secret", "items") as? [[String: Any]] ?? [] {
                    #expect(keys.contains(item["key"] as? String ?? ""), "Secret has no key \(item["key"] ?? "")")
                }
            }
        }
        let shared = try #require(try manifests("k8s/shared-volume.yaml")["PersistentVolumeClaim"])
        #expect((value(shared, "spec", "accessModes") as? [String])?.contains("ReadWriteMany") == true)
    }

    @Test func dockerfileBuildsWithSwiftAndRunsOnSlimDebian() throws {
        let lines = try text("docker/Dockerfile").split(separator: "\n").map(String.init)
        let stages = lines.filter { $0.hasPrefix("FROM ") }
        #expect(stages.count == 2)
        #expect(stages.first?.hasPrefix("FROM swift:") == true && stages.first?.hasSuffix(" AS build") == true)
        #expect(stages.last == "FROM debian:bookworm-slim")
        let runtime = lines.drop { !$0.hasPrefix("FROM debian") }.joined(separator: "\n")
        #expect(runtime.contains("libzmq5") && runtime.contains("libopenblas0"))
        #expect(runtime.contains("COPY --from=build") && runtime.contains("ENTRYPOINT [\"basin\"]"))
        #expect(runtime.contains("USER ") && runtime.contains("EXPOSE 5555"))
        // Every path the build stage copies exists in the repository.
        for line in lines where line.hasPrefix("COPY ") && !line.contains("--from") {
            let source = line.split(separator: " ")[1]
            #expect(
                FileManager.default.fileExists(
                    atPath: TestSupport.repositoryRoot.appendingPathComponent(String(source)).path), "\(line)")
        }
    }

    @Test func systemdUnitsRunCommandsBasinAccepts() throws {
        var environment: [String: String] = [:]
        for line in try text("systemd/basin.env").split(separator: "\n") where !line.hasPrefix("#") {
            let parts = line.split(separator: "=", maxSplits: 1).map(String.init)
            if parts.count == 2 { environment[parts[0]] = parts[1] }
        }
        for unit in ["systemd/basin-coordinator.service", "systemd/basin-worker@.service"] {
            let body = try text(unit)
            for section in ["[Unit]", "[Service]", "[Install]"] {
                #expect(body.contains(section), "\(unit) \(section)")
            }
            #expect(body.contains("Restart="), "\(unit) restarts")
            let exec = try #require(body.split(separator: "\n").first { $0.hasPrefix("ExecStart=") })
            var words = exec.dropFirst("ExecStart=".count).split(separator: " ").map(String.init)
            #expect(words.removeFirst().hasSuffix("/basin"))
            words = words.map { word in
                var w = word.replacingOccurrences(of: "%H", with: "host").replacingOccurrences(of: "%i", with: "1")
                for (name, value) in environment { w = w.replacingOccurrences(of: "${\(name)}", with: value) }
                return w
            }
            #expect(!words.contains { $0.contains("${") }, "\(unit): a variable basin.env does not set")
            parses(words, unit)
        }
    }

    @Test func slurmScriptsAreValidBashAndSurviveRequeue() throws {
        for script in ["slurm/basin.sbatch", "slurm/basin-workers.sbatch", "slurm/basin-torch-workers.sbatch"] {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/bin/bash")
            process.arguments = ["-n", deploy.appendingPathComponent(script).path]
            try process.run()
            process.waitUntilExit()
            #expect(process.terminationStatus == 0, "\(script) is not valid bash")
        }
        let main = try text("slurm/basin.sbatch")
        #expect(main.contains("#SBATCH --requeue") && main.contains("#SBATCH --open-mode=append"))
        #expect(main.contains("srun") && main.contains("SLURM_PROCID"))
        #expect(try text("slurm/basin-workers.sbatch").contains("$RUN/endpoint"))
        // The PyTorch workers: one task per GPU, each on the GPU Slurm gave it.
        let torch = try text("slurm/basin-torch-workers.sbatch")
        #expect(torch.contains("#SBATCH --gpus-per-task=1") && torch.contains("srun --gpus-per-task=1"))
        #expect(torch.contains("--device cuda") && torch.contains("$RUN/endpoint"))
    }
}
