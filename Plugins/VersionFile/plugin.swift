import Foundation
import PackagePlugin

/// Makes `Version.swift` from the package's VERSION file, the one place the version is written:
/// `articles-fcgi --version` and the Debian package both read it.
@main
struct VersionFile: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let input = context.package.directoryURL.appending(path: "VERSION")
        let output = context.pluginWorkDirectoryURL.appending(path: "Version.swift")
        return [
            .buildCommand(
                displayName: "Generating Version.swift from VERSION",
                executable: URL(fileURLWithPath: "/bin/sh"),
                arguments: [
                    "-c", #"printf 'let articlesFCGIVersion = "%s"\n' "$(tr -d '[:space:]' < "$1")" > "$2""#, "sh",
                    input.path, output.path,
                ],
                inputFiles: [input],
                outputFiles: [output])
        ]
    }
}
