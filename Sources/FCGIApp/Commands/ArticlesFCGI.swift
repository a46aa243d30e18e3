import ArgumentParser

@main
struct ArticlesFCGI: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "articles-fcgi",
        abstract: "The articles API: a FastCGI worker for nginx over PostgreSQL.",
        discussion: "Configured through the environment; docs/configuration.md (installed in /usr/share/doc/articles-fcgi) lists every variable.",
        version: articlesFCGIVersion,
        subcommands: [Serve.self, Migrate.self, CheckConfig.self, DevToken.self, DevLogin.self],
        defaultSubcommand: Serve.self)
}
