import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// One HTTP request through URLSession, waited for: certificates and host names are verified,
/// redirects are not followed (a 3xx is the answer), and the whole exchange is abandoned after
/// `timeout`.
enum HTTPFetch {
    struct Failure: Error, CustomStringConvertible { let description: String }
    struct Answer {
        let status: Int
        let body: [UInt8]
    }

    static func send(_ request: URLRequest, timeout: TimeInterval, maxBytes: Int) throws(Failure) -> Answer {
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = timeout
        configuration.timeoutIntervalForResource = timeout
        configuration.requestCachePolicy = .reloadIgnoringLocalCacheData
        let session = URLSession(configuration: configuration, delegate: NoRedirects(), delegateQueue: nil)
        defer { session.invalidateAndCancel() }
        let done = DispatchSemaphore(value: 0)
        let outcome = Outcome()
        let task = session.dataTask(with: request) { data, response, error in
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
        guard let data = outcome.data, data.count <= maxBytes else {
            throw Failure(description: "response larger than \(maxBytes) bytes")
        }
        return Answer(status: response.statusCode, body: Array(data))
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
}
