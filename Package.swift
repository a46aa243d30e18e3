// swift-tools-version:6.0
import PackageDescription

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

        // MARK: - Swift targets
        .target(name: "PG", dependencies: ["CLibPQ"]),
        // articles-fcgi --version, from the VERSION file.
        .plugin(name: "VersionFile", capability: .buildTool()),
        .executableTarget(
            name: "FCGIApp",
            dependencies: [
                "PG", "CFastCGI", "COpenSSL", "CCurl",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            plugins: ["VersionFile"]
        ),

        // MARK: - Tests
        .testTarget(name: "PGTests", dependencies: ["PG"]),
        .testTarget(name: "FCGIAppTests", dependencies: ["FCGIApp", "PG"], resources: [.copy("Vectors")]),
    ],
    swiftLanguageModes: [.v6]
)
