/// One serving thread's recent answers about articles, as the JSON it sent: list pages by
/// `after` and `limit`, and single articles with their ETags. So a page many clients read is
/// one dictionary lookup instead of a round trip to PostgreSQL.
///
/// Everything is dropped once the `ChangeFeed` counts a change to articles: a change made
/// through this worker is counted before it is answered, so never missed; one made elsewhere
/// is seen as soon as its notification reaches the worker. Held to `capacityBytes` of JSON:
/// when full, it starts again empty.
final class ArticleCache {
    struct Page {
        let body: [UInt8]
        /// The `after` of the next page, when there is one.
        let nextAfter: Int64?
    }

    struct Single {
        let body: [UInt8]
        let etag: String
    }

    private struct PageKey: Hashable {
        let after: Int64
        let limit: Int
    }

    let capacityBytes: Int
    private var freshness: CacheFreshness
    private var pages: [PageKey: Page] = [:]
    private var singles: [Int64: Single] = [:]
    private var bytes = 0

    init(feed: ChangeFeed, capacityBytes: Int = 1 << 20) {
        freshness = CacheFreshness(feed: feed, table: .articles)
        self.capacityBytes = capacityBytes
    }

    /// Counts a change this thread made: every thread's cache drops what it holds.
    func changed() { freshness.feed.changed(.articles) }

    /// The page, from the cache or from `load`.
    func page(after: Int64, limit: Int, load: () throws -> Page) rethrows -> Page {
        guard isUsable() else { return try load() }
        let key = PageKey(after: after, limit: limit)
        if let page = pages[key] { return page }
        let page = try load()
        if makeRoom(page.body.count) { pages[key] = page }
        return page
    }

    /// The article, from the cache or from `load` (nil, not kept, when there is none).
    func article(_ id: Int64, load: () throws -> Single?) rethrows -> Single? {
        guard isUsable() else { return try load() }
        if let single = singles[id] { return single }
        guard let single = try load() else { return nil }
        if makeRoom(single.body.count) { singles[id] = single }
        return single
    }

    private func isUsable() -> Bool { freshness.isUsable(emptying: removeAll) }

    private func makeRoom(_ count: Int) -> Bool {
        guard count <= capacityBytes else { return false }
        if bytes + count > capacityBytes { removeAll() }
        bytes += count
        return true
    }

    private func removeAll() {
        pages.removeAll(keepingCapacity: true)
        singles.removeAll(keepingCapacity: true)
        bytes = 0
    }
}
