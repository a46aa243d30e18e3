/// Lays out statement parameters as the NUL-terminated C strings `PQexecParams` takes, in one
/// buffer, and calls `body` with a pointer for each (`nil` for SQL NULL).
///
/// A parameter that contains a NUL byte is refused: libpq would silently cut it short there.
func withCParameters<R>(
    _ parameters: [(any PGEncodable)?],
    _ body: (_ count: Int32, _ values: UnsafePointer<UnsafePointer<CChar>?>?) -> R
) throws(PGError) -> R {
    if parameters.isEmpty { return body(0, nil) }
    let texts = parameters.map { $0?.pgText }
    var buffer: [CChar] = []
    buffer.reserveCapacity(texts.reduce(0) { $0 + ($1?.utf8.count ?? 0) + 1 })
    var offsets: [Int?] = []
    offsets.reserveCapacity(texts.count)
    for (position, text) in texts.enumerated() {
        guard let text else { offsets.append(nil); continue }
        if text.utf8.contains(0) {
            throw PGError(
                kind: .client,
                message: "parameter $\(position + 1) contains a NUL byte, which PostgreSQL text cannot hold")
        }
        offsets.append(buffer.count)
        buffer.append(contentsOf: text.utf8.lazy.map { CChar(bitPattern: $0) })
        buffer.append(0)
    }
    return buffer.withUnsafeBufferPointer { chars in
        let pointers = offsets.map { offset in offset.map { UnsafePointer(chars.baseAddress! + $0) } }
        return pointers.withUnsafeBufferPointer { body(Int32(pointers.count), $0.baseAddress) }
    }
}
