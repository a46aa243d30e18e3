import Foundation
import Testing

/// The Debian package scripts/package-deb builds (scripts/test builds it before the suites
/// run and names it in ARTICLES_TEST_DEB; otherwise this test builds it).
@Suite(.lane(.long)) struct PackageTests {
    private func package() throws -> String {
        if let built = ProcessInfo.processInfo.environment["ARTICLES_TEST_DEB"], !built.isEmpty { return built }
        let out = try TestEnvironment.scratchFolder("deb")
        let built = try run(TestEnvironment.path("scripts/package-deb"), [out], timeout: 900)
        try #require(built.status == 0, "\(built.output.suffix(2000))")
        return try #require(built.output.split(separator: "\n").last.map(String.init))
    }

    @Test func theDebianPackageHoldsEverythingAndLintianFindsNothing() throws {
        let deb = try package()
        let version = try String(contentsOfFile: TestEnvironment.path("VERSION"), encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let arch = try run("/usr/bin/dpkg", ["--print-architecture"]).output.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(deb.hasSuffix("/articles-fcgi_\(version)_\(arch).deb"))

        func field(_ name: String) throws -> String {
            try run("/usr/bin/dpkg-deb", ["--field", deb, name]).output.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        #expect(try field("Package") == "articles-fcgi")
        #expect(try field("Version") == version)
        let depends = try field("Depends").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).split(separator: " ")[0] }
        for needed in ["libfcgi0ldbl", "libpq5", "libssl3", "libcurl4", "adduser", "init-system-helpers"] {
            #expect(depends.contains(Substring(needed)), "\(needed) in \(depends)")
        }
        #expect(!depends.contains { $0.hasPrefix("swift") }, "no Swift toolchain needed")
        #expect(try field("Depends").contains("libfcgi0ldbl (>= 2.4.2-2+deb12u1)"), "libfcgi with the CVE-2025-23016 fix")

        // Unpacked once: the file list and the binary's checks below read the tree.
        let root = try TestEnvironment.scratchFolder("unpacked")
        #expect(try run("/usr/bin/dpkg-deb", ["--extract", deb, root]).status == 0)
        let files = Set(try FileManager.default.subpathsOfDirectory(atPath: root).map { "/" + $0 })
        for path in [
            "/usr/bin/articles-fcgi", "/lib/systemd/system/articles-fcgi.socket", "/lib/systemd/system/articles-fcgi.service",
            "/etc/nginx/sites-available/articles-fcgi", "/etc/articles-fcgi/env", "/usr/share/articles-fcgi/openapi.yaml",
            "/usr/share/articles-fcgi/sql/migrations/0001_create_users.sql", "/usr/share/articles-fcgi/sql/admin/create_user.sql",
            "/usr/share/man/man1/articles-fcgi.1.gz", "/usr/share/doc/articles-fcgi/copyright",
            "/usr/share/articles-fcgi/web/index.html", "/usr/share/articles-fcgi/web/assets/app.js",
            "/usr/share/articles-fcgi/web/assets/auth.js", "/usr/share/articles-fcgi/web/assets/style.css",
        ] {
            #expect(files.contains(path), "\(path)")
        }

        let control = try TestEnvironment.scratchFolder("control")
        #expect(try run("/usr/bin/dpkg-deb", ["--control", deb, control]).status == 0)
        #expect(try String(contentsOfFile: "\(control)/conffiles", encoding: .utf8)
            == "/etc/articles-fcgi/env\n/etc/nginx/sites-available/articles-fcgi\n")
        for script in ["postinst", "prerm", "postrm"] {
            #expect(try run("/bin/sh", ["-n", "\(control)/\(script)"]).status == 0, "\(script) parses")
        }
        let postinst = try String(contentsOfFile: "\(control)/postinst", encoding: .utf8)
        #expect(postinst.contains("adduser --system --group --quiet --no-create-home --home /nonexistent articles-fcgi"))

        // The binary carries the Swift runtime: nothing of the toolchain is linked dynamically.
        let linked = try run("/usr/bin/ldd", ["\(root)/usr/bin/articles-fcgi"])
        #expect(!linked.output.contains("libswift") && !linked.output.contains("libFoundation"), "\(linked.output)")
        let help = try run("\(root)/usr/bin/articles-fcgi", ["--help"], environment: ["PATH": "/usr/bin:/bin"])
        #expect(help.status == 0 && help.output.contains("serve"))
        // The project's license, as the copyright file says.
        let copyright = try String(contentsOfFile: "\(root)/usr/share/doc/articles-fcgi/copyright", encoding: .utf8)
        #expect(copyright.contains("Files: *\nCopyright: 2026 the articles-fcgi authors\nLicense: Apache-2.0\n"))
        #expect(try String(contentsOfFile: TestEnvironment.path("LICENSE"), encoding: .utf8).contains("Apache License\n                           Version 2.0, January 2004"))

        let lintian = try run("/usr/bin/lintian", ["--tag-display-limit", "0", deb], timeout: 600)
        let findings = lintian.output.split(separator: "\n").filter { $0.hasPrefix("E:") || $0.hasPrefix("W:") }
        #expect(lintian.status == 0)
        #expect(findings.isEmpty, "\(findings)")
    }
}
