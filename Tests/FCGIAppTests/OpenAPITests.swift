import Foundation
import Testing

/// openapi.yaml: a valid OpenAPI 3.1 document, served by nginx, and what the running API does
/// according to schemathesis.
@Suite(.lane()) struct OpenAPITests {
    @Test func theDocumentIsValidOpenAPI() throws {
        let check = try run("/usr/bin/env", ["python3", "-c", """
            from openapi_spec_validator import validate
            from openapi_spec_validator.readers import read_from_filename
            document, _ = read_from_filename('\(TestEnvironment.path("openapi.yaml"))')
            validate(document)
            print(document['openapi'])
            """], environment: ProcessInfo.processInfo.environment)
        #expect(check.status == 0, "\(check.output)")
        #expect(check.output == "3.1.0\n")
    }

    @Test(.lane(.heavy)) func nginxServesItAndSchemathesisFindsNothing() throws {
        let stack = try Stack()
        let served = try stack.get("/openapi.yaml")
        #expect(served.status == 200)
        #expect(served.header("Content-Type") == "application/yaml")
        #expect(served.body == FileManager.default.contents(atPath: TestEnvironment.path("openapi.yaml")))

        try stack.database.connect().query("INSERT INTO users (username, email) VALUES ('fuzz', 'fuzz@example.com')")
        let token = TestPool.token(claims: TestPool.idClaims(email: "fuzz@example.com"))
        let result = try run("/usr/bin/env", [
            "schemathesis", "--config-file", TestEnvironment.path("schemathesis.toml"), "run", TestEnvironment.path("openapi.yaml"),
            "--url", "http://127.0.0.1:\(stack.httpPort)", "-H", "Authorization: Bearer \(token)",
            "--max-examples", "50", "--seed", "20261127", "--no-color",
        ], environment: ProcessInfo.processInfo.environment, timeout: 600)
        #expect(result.status == 0, "\(result.output.suffix(6000))")
        #expect(result.output.contains(" passed"), "\(result.output.suffix(2000))")
    }
}
