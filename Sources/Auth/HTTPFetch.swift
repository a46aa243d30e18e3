import CCurl

/// One HTTP request through libcurl's easy interface, on the calling thread: `http://` and
/// `https://` only, certificates and host names verified (libcurl's defaults, against the
/// system's CA certificates), redirects not followed (a 3xx is the answer), a body of at most
/// `maxBytes`, and the whole exchange abandoned after `timeout`.
///
/// libcurl's blocking transfer sleeps in `poll` until the server answers or the time is up.
/// Foundation's URLSession (libcurl's multi interface under Dispatch on Linux) spun instead: a
/// key server that did not answer cost the worker about 85% of a core for the whole 5 s wait.
package enum HTTPFetch {
    package struct Failure: Error, CustomStringConvertible { package let description: String }
    package struct Answer {
        package let status: Int
        package let body: [UInt8]
    }

    /// libcurl's global set-up, once, before the first transfer.
    private static let initialised = curl_global_init(CCURL_GLOBAL_DEFAULT) == CURLE_OK

    /// A GET, or a POST of `body`.
    package static func send(
        _ url: String, headers: [(String, String)] = [], body: [UInt8]? = nil, timeout: Double, maxBytes: Int
    ) throws(Failure) -> Answer {
        // What the handle points to outlives it: these are freed after its cleanup.
        var list: UnsafeMutablePointer<curl_slist>?
        defer { curl_slist_free_all(list) }
        for (name, value) in headers { list = curl_slist_append(list, "\(name): \(value)") }
        let message = UnsafeMutablePointer<CChar>.allocate(capacity: Int(CURL_ERROR_SIZE))
        message.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE))
        defer { message.deallocate() }
        let received = Received(limit: maxBytes)
        guard initialised, let handle = curl_easy_init() else { throw Failure(description: "libcurl failed to initialise") }
        defer { curl_easy_cleanup(handle) }

        /// libcurl's words for a failure: the error buffer's detail once it holds one, else the code's.
        func reason(_ code: CURLcode) -> String {
            message.pointee == 0 ? String(cString: curl_easy_strerror(code)) : String(cString: message)
        }
        func check(_ code: CURLcode) throws(Failure) {
            guard code == CURLE_OK else { throw Failure(description: reason(code)) }
        }
        // Threads: no signals for time-outs (the resolver has a thread of its own).
        try check(ccurl_setopt_long(handle, CURLOPT_NOSIGNAL, 1))
        try check(ccurl_setopt_long(handle, CURLOPT_TIMEOUT_MS, Int(timeout * 1000)))
        try check(ccurl_setopt_long(handle, CURLOPT_FOLLOWLOCATION, 0))
        // libcurl copies the strings; it keeps the header list, the error buffer and `received`.
        try check(url.withCString { ccurl_setopt_pointer(handle, CURLOPT_URL, $0) })
        try check("http,https".withCString { ccurl_setopt_pointer(handle, CURLOPT_PROTOCOLS_STR, $0) })
        try check(ccurl_setopt_pointer(handle, CURLOPT_HTTPHEADER, list))
        try check(ccurl_setopt_pointer(handle, CURLOPT_ERRORBUFFER, message))
        try check(ccurl_setopt_write(handle, Received.write, Unmanaged.passUnretained(received).toOpaque()))
        if let body {
            try check(ccurl_setopt_long(handle, CURLOPT_POSTFIELDSIZE, body.count))
            // Copied; the zero byte after the body (never sent) makes the pointer valid for an empty one.
            try check((body + [0]).withUnsafeBytes { ccurl_setopt_pointer(handle, CURLOPT_COPYPOSTFIELDS, $0.baseAddress) })
        }
        let code = withExtendedLifetime(received) { curl_easy_perform(handle) }
        switch code {
        case CURLE_OK: break
        case CURLE_OPERATION_TIMEDOUT: throw Failure(description: "no answer within \(Int(timeout)) s")
        case CURLE_WRITE_ERROR where received.tooLarge: throw Failure(description: "response larger than \(maxBytes) bytes")
        default: throw Failure(description: reason(code))
        }
        var status = 0
        guard ccurl_response_code(handle, &status) == CURLE_OK, status > 0 else { throw Failure(description: "no HTTP response") }
        return Answer(status: status, body: received.bytes)
    }

    /// The body as it arrives, refused past its limit.
    private final class Received {
        let limit: Int
        var bytes: [UInt8] = []
        var tooLarge = false

        init(limit: Int) { self.limit = limit }

        static let write: ccurl_write_callback = { data, size, count, context in
            let received = Unmanaged<Received>.fromOpaque(context!).takeUnretainedValue()
            let length = size * count
            guard received.bytes.count + length <= received.limit else {
                received.tooLarge = true
                return 0  // less than was given: libcurl stops with CURLE_WRITE_ERROR
            }
            if let data { received.bytes += UnsafeRawBufferPointer(start: data, count: length) }
            return length
        }
    }
}
