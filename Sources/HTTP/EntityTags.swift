/// An `If-Match` or `If-None-Match` value: `*` or a list of entity tags (RFC 9110 §8.8.3).
package struct EntityTags {
    package let any: Bool
    package let tags: [(weak: Bool, opaque: Substring)]

    package init(_ value: String) {
        any = value.trimmingSpaces == "*"
        tags = value.split(separator: ",").map { item in
            let tag = Substring(item.trimmingSpaces)
            return tag.hasPrefix("W/") ? (true, tag.dropFirst(2)) : (false, tag)
        }
    }

    /// Whether `etag` (a strong tag) is listed: strong comparison for `If-Match`, weak for
    /// `If-None-Match`.
    package func matches(_ etag: String, weak: Bool) -> Bool {
        any || tags.contains { ($0.weak == false || weak) && $0.opaque == etag }
    }
}
