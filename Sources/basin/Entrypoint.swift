import BasinCLI

@main
struct Entrypoint {
    static func main() async {
        await BasinCommand.main()
    }
}
