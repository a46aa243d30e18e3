import FastCGI
import HTTP
import Logging
import Observability
import Support

/// Where the FastCGI transport meets HTTP, on one serving loop: a whole request's CGI
/// parameters and STDIN become a `Request` for the loop's `Responder` (or the error nginx's
/// input earns by itself), its answer the CGI response's bytes, and a line in the request log.
struct CGIGateway: FastCGIResponder {
    let responder: any Responder
    /// `LOG_REQUESTS`: the loop's request log lines, gathered per loop; nil when off.
    let log: LogSink.Gathered?
    /// The loop's number, in its log lines.
    let loop: Int

    /// The gateway of `loop`, with a request log when `logRequests` and `logger` logs at `info`.
    init(_ responder: any Responder, on loop: EventLoop, logRequests: Bool, logger: Logger) {
        self.responder = responder
        self.loop = loop.index
        log = logRequests && logger.logLevel <= .info ? LogSink.standardError.gathering() : nil
    }

    func respond(to fastCGI: FastCGIRequest) async -> [UInt8] {
        let started = monotonicNanoseconds()
        let parsed = fastCGI.parametersTooLarge ? nil : Self.request(fastCGI.parameters)
        var incoming = parsed ?? Request(method: "", path: "")
        let answer: Answer
        if fastCGI.parametersTooLarge {
            answer = Answer(response: HTTPError(
                status: .requestHeaderFieldsTooLarge,
                detail: "Request headers are larger than \(RecordReader.maxParameterBytes) bytes.").response)
        } else if parsed == nil {
            answer = Answer(response: HTTPError(status: .badRequest, detail: "Malformed FastCGI parameters.").response)
        } else {
            switch Self.body(of: fastCGI, contentLength: incoming.header("content-length")) {
            case .success(let body):
                incoming.body = body
                answer = await responder.respond(to: incoming)
            case .failure(let error):
                answer = Answer(response: error.response)
            }
        }
        if let log { log.add(LogfmtHandler.requestLine(incoming, answer, duration: elapsed(since: started), loop: loop)) }
        return answer.response.cgiBytes(includeBody: incoming.method != "HEAD")
    }

    /// The request a FastCGI PARAMS stream (name-value pairs) describes; nil when a length in it
    /// runs past its end.
    static func request(_ parameters: [UInt8]) -> Request? {
        var builder = Request.Builder()
        let complete = parameters.withUnsafeBytes { FastCGIParameters.forEach(in: $0) { builder.add(name: $0, value: $1) } }
        return complete ? builder.request : nil
    }

    /// The body: `CONTENT_LENGTH` bytes of the STDIN stream, refusing one over
    /// `Request.maxBodyBytes` (which the record reader keeps whole) or one that ended early. (A
    /// CGI program reads no more than `CONTENT_LENGTH`: STDIN past it is not part of the body.)
    private static func body(of request: FastCGIRequest, contentLength: String?) -> Result<[UInt8], HTTPError> {
        guard let contentLength, !contentLength.isEmpty else { return .success([]) }
        guard let length = Int(contentLength), length >= 0 else {
            return .failure(HTTPError(status: .badRequest, detail: "Invalid Content-Length."))
        }
        guard length <= min(Request.maxBodyBytes, RecordReader.maxBodyBytes) else {
            return .failure(HTTPError(
                status: .contentTooLarge,
                detail: "Request body is larger than \(Request.maxBodyBytes) bytes."))
        }
        guard request.stdin.count >= length else {
            return .failure(HTTPError(status: .badRequest, detail: "Request body ended before Content-Length bytes."))
        }
        return .success(request.stdin.count == length ? request.stdin : Array(request.stdin.prefix(length)))
    }
}

extension LogfmtHandler {
    /// The request's log line: method, path (without the query, and no header: either may
    /// carry a token), status, duration, the user, why it was refused, and the serving loop.
    static func requestLine(_ request: Request, _ answer: Answer, duration: Duration, loop: Int) -> [UInt8] {
        var line = LogfmtHandler.start(level: .info, message: "request")
        LogfmtHandler.append(field: "method", request.method, to: &line)
        LogfmtHandler.append(field: "path", request.path, to: &line)
        line += " status=".utf8
        LogfmtHandler.appendDigits(answer.response.status.code, 1, to: &line)
        let (seconds, attoseconds) = duration.components
        let micros = Int(seconds) * 1_000_000 + Int(attoseconds / 1_000_000_000_000)
        line += " duration_ms=".utf8
        LogfmtHandler.appendDigits(micros / 1000, 1, to: &line)
        line.append(UInt8(ascii: "."))
        LogfmtHandler.appendDigits(micros % 1000, 3, to: &line)
        if let user = answer.context.user {
            line += " user=".utf8
            LogfmtHandler.appendDigits(Int(user), 1, to: &line)
        }
        if let refusal = answer.context.refusal { LogfmtHandler.append(field: "reason", refusal, to: &line) }
        line += " loop=".utf8
        LogfmtHandler.appendDigits(loop, 1, to: &line)
        line.append(UInt8(ascii: "\n"))
        return line
    }
}
