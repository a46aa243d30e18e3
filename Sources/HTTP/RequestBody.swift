import JSON

extension Request {
    /// The body as JSON, or 400 `{"detail": "JSON parse error - ..."}`.
    package func jsonBody() throws(HTTPError) -> JSONValue {
        do {
            return try StrictJSON.parse(body)
        } catch {
            throw HTTPError(status: .badRequest, detail: "JSON parse error - \(error.description)")
        }
    }

    /// The body's fields: `{}` for an empty body; 415 for a body that is not
    /// `application/json`; 400 for one that is not JSON or not an object.
    package func fields() throws(HTTPError) -> [String: JSONValue] {
        if body.isEmpty { return [:] }
        let contentType = header("content-type") ?? ""
        let mediaType = contentType.split(separator: ";", maxSplits: 1, omittingEmptySubsequences: false).first?
            .trimmingSpaces.lowercased()
        guard mediaType == "application/json" else {
            throw HTTPError(status: .unsupportedMediaType, detail: "Unsupported media type \"\(contentType)\" in request.")
        }
        let value = try jsonBody()
        guard let fields = value.object else {
            throw .fields(["non_field_errors": ["Invalid data. Expected a dictionary, but got \(value.typeName)."]])
        }
        return fields
    }
}
