import ArgumentParser
import FoundationEssentials

struct CheckConfig: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-config",
        abstract: "Validate the environment and print the settings the worker would use.",
        discussion: "Secrets are masked. Exits non-zero with the first error found.")

    func run() throws {
        let config = try Config.fromEnvironment(ProcessInfo.processInfo.environment)
        for (name, value) in config.summary { print("\(name)=\(value)") }
        print("configuration OK")
    }
}
