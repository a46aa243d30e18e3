import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Reads a JWKS document from a file or over HTTP(S).
///
/// Over HTTP: certificates and host names are verified (by URLSession), redirects are not
/// followed, the whole fetch is abandoned after `timeout`, and anything but a 200 of at most
/// `maxBytes` is a failure.
enum KeyFetcher {
    struct Failure: Error, CustomStringConvertible { let description: String }

    static let timeout: TimeInterval = 5
    static let maxBytes = 256 * 1024

    @Sendable static func fetch(_ source: CognitoConfig.KeySource) throws -> [UInt8] {
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

    private final class NoRedirects: NSObject, URLSessionTaskDelegate, @unchecked Sendable {
        func urlSession(
            _ session: URLSession, task: URLSessionTask, willPerformHTTPRedirection response: HTTPURLResponse,
            newRequest request: URLRequest, completionHandler: @escaping @Sendable (URLRequest?) -> Void
        ) {
            completionHandler(nil)
        }
    }

    private final class Outcome: @unchecked Sendable {
        var data: Data?
        var response: URLResponse?
        var error: (any Error)?
    }

    private static func get(_ text: String) throws -> [UInt8] {
        guard let url = URL(string: text) else { throw Failure(description: "not a URL") }
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = timeout
        configuration.timeoutIntervalForResource = timeout
        configuration.requestCachePolicy = .reloadIgnoringLocalCacheData
        let session = URLSession(configuration: configuration, delegate: NoRedirects(), delegateQueue: nil)
        defer { session.invalidateAndCancel() }
        let done = DispatchSemaphore(value: 0)
        let outcome = Outcome()
        let task = session.dataTask(with: url) { data, response, error in
            outcome.data = data
            outcome.response = response
            outcome.error = error
            done.signal()
        }
        task.resume()
        guard done.wait(timeout: .now() + timeout + 0.5) == .success else {
            task.cancel()
            throw Failure(description: "no answer within \(Int(timeout)) s")
        }
        if let error = outcome.error as? URLError {
            throw Failure(description: error.code == .timedOut ? "no answer within \(Int(timeout)) s" : "\(error.code): \(error.localizedDescription)")
        }
        if let error = outcome.error { throw Failure(description: "\(error)") }
        guard let response = outcome.response as? HTTPURLResponse else { throw Failure(description: "no HTTP response") }
        guard response.statusCode == 200 else { throw Failure(description: "HTTP status \(response.statusCode)") }
        guard let data = outcome.data, data.count <= maxBytes else {
            throw Failure(description: "response larger than \(maxBytes) bytes")
        }
        return Array(data)
    }
}
