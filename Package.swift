// swift-tools-version:6.0
import PackageDescription

let log = Target.Dependency.product(name: "Logging", package: "swift-log")
let prometheus = Target.Dependency.product(name: "Prometheus", package: "swift-prometheus")

let package = Package(
    name: "articles-fcgi",
    products: [
        .executable(name: "articles-fcgi", targets: ["FCGIApp"]),
        .library(name: "PG", targets: ["PG"]),
    ],
    dependencies: [
        // Subcommands (serve, migrate, check-config) and their options.
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        // Leveled logging to standard error, which systemd sends to the journal.
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        // GET /metrics in Prometheus' text format: counters, gauges and histograms.
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        // MARK: - C libraries (Debian -dev packages)
        .systemLibrary(name: "CFastCGI", pkgConfig: "fcgi", providers: [.apt(["libfcgi-dev"])]),
        .systemLibrary(name: "COpenSSL", pkgConfig: "openssl", providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CLibPQ", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),

        // The serving loops' epoll and eventfd, which Swift's Glibc module leaves out.
        .systemLibrary(name: "CLinux"),

        // MARK: - Swift targets, one per layer; the graph is the layering (LayeringTests)
        .target(name: "PG", dependencies: ["CLibPQ"]),
        // The serving loops, threads, the clock, system calls.
        .target(name: "Support", dependencies: ["CLinux"]),
        .target(name: "JSON", dependencies: ["Support"]),
        .target(name: "Observability", dependencies: ["Support", log, prometheus]),
        // Records, connections, the listening socket: bytes and loops, no HTTP meaning.
        .target(name: "FastCGI", dependencies: ["Support", "CFastCGI", "CLinux", log]),
        // Requests, responses, routing, errors.
        .target(name: "HTTP", dependencies: ["Support", "JSON"]),
        // Tokens, keys, claims, who may do what: no database.
        .target(name: "Auth", dependencies: ["Support", "JSON", "HTTP", "Observability", "COpenSSL", "CCurl", log]),
        // Articles and users in PostgreSQL, the loops' caches and the change feed that keeps them current.
        .target(name: "Stores", dependencies: ["PG", "Support", "JSON", "HTTP", "Auth", "Observability", log]),
        // articles-fcgi --version and the sign-in pages' asset path, from the VERSION file.
        .plugin(name: "VersionFile", capability: .buildTool()),
        // The local stand-in for Cognito's managed login (articles-fcgi dev-login).
        .target(name: "LoginStandIn", dependencies: ["Support", "JSON", "HTTP", "Auth"], plugins: ["VersionFile"]),
        // The executable: commands, configuration, the handlers, and the composition of the layers.
        .executableTarget(
            name: "FCGIApp",
            dependencies: [
                "PG", "Support", "JSON", "Observability", "FastCGI", "HTTP", "Auth", "Stores", "LoginStandIn",
                .product(name: "ArgumentParser", package: "swift-argument-parser"), log,
            ],
            plugins: ["VersionFile"]
        ),

        // MARK: - Tests
        .testTarget(name: "PGTests", dependencies: ["PG"]),
        .testTarget(
            name: "FCGIAppTests",
            dependencies: ["FCGIApp", "PG", "Support", "JSON", "Observability", "FastCGI", "HTTP", "Auth", "Stores", "LoginStandIn"],
            resources: [.copy("Vectors")]),
    ],
    swiftLanguageModes: [.v6]
)
