import BasinCLI

@main
struct Entrypoint {
    static func main() async {
        BasinCommand.bootstrapLogging()
        await BasinCommand.main()
    }
}
