import ArgumentParser
import BasinCluster
import BasinNN
import BasinSweep
import Foundation
import Logging

/// `basin keygen`: a CURVE key pair for a coordinator or a worker.
struct KeygenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keygen",
        abstract: "Write a CURVE key pair: NAME.key (private) and NAME.pub (give it to the other side)."
    )

    @Argument(help: "File name without extension.")
    var name: String = "basin"

    func run() throws {
        try CurveKeyPair.generate().write(name: name)
        print("wrote \(name).key (keep private) and \(name).pub")
    }
}
