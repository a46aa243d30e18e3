import Foundation

/// Reads a JWKS document from a file or over HTTP(S).
///
/// Over HTTP (`HTTPFetch`): certificates and host names are verified, redirects are not
/// followed, the whole fetch is abandoned after `timeout`, and anything but a 200 of at most
/// `maxBytes` is a failure.
package enum KeyFetcher {
    package struct Failure: Error, CustomStringConvertible { package let description: String }

    package static let timeout: TimeInterval = 5
    package static let maxBytes = 256 * 1024

    @Sendable package static func fetch(_ source: CognitoConfig.KeySource) throws -> [UInt8] {
        switch source {
        case .file(let path):
            guard let data = FileManager.default.contents(atPath: path) else {
                throw Failure(description: "cannot read \(path)")
            }
            guard data.count <= maxBytes else { throw Failure(description: "\(path) is larger than \(maxBytes) bytes") }
            return Array(data)
        case .url(let url):
            return try get(url)
        }
    }

    private static func get(_ url: String) throws -> [UInt8] {
        let answer: HTTPFetch.Answer
        do {
            answer = try HTTPFetch.send(url, timeout: timeout, maxBytes: maxBytes)
        } catch {
            throw Failure(description: error.description)
        }
        guard answer.status == 200 else { throw Failure(description: "HTTP status \(answer.status)") }
        return answer.body
    }
}
