import ArgumentParser

public struct BasinCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(commandName: "basin")
    public init() {}
}
