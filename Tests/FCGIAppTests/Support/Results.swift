import Foundation

/// Responses collected from several client threads.
final class Results: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [(status: Int, body: String)] = []
    func add(_ status: Int, _ body: String) { lock.withLock { items.append((status, body)) } }
    var all: [(status: Int, body: String)] { lock.withLock { items } }
}
