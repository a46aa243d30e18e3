/// One serving loop's recent answers about articles, as the JSON it sent: list pages by
/// `after` and `limit`, and single articles with their ETags. So a page many clients read is
/// one dictionary lookup instead of a query.
///
/// Entries are dropped by what changed (`apply`): a new article drops the pages whose range it
/// falls in (the last ones, in practice), a changed or deleted one drops itself and the pages
/// that hold it, and a user's change drops the articles and pages that show that user's name;
/// the rest stays. Held to `capacityBytes` of JSON: when full, it starts again empty. Whether it
/// may be used for a request is the caller's decision (`ChangeFeed.isCurrent(for:waiting:)`).
package final class ArticleCache {
    package struct Page {
        package let body: [UInt8]
        /// The `after` of the next page, when there is one.
        package let nextAfter: Int64?
        /// The page's range: ids above `after`, up to its last row, and the first row after it
        /// (nil when there was none: then every id above `after` belongs to the page).
        package let lastID: Int64?
        package let peekID: Int64?
        /// Whose names the page shows.
        package let owners: Set<Int64>

        package init(body: [UInt8], nextAfter: Int64?, lastID: Int64?, peekID: Int64?, owners: Set<Int64>) {
            self.body = body
            self.nextAfter = nextAfter
            self.lastID = lastID
            self.peekID = peekID
            self.owners = owners
        }
    }

    package struct Single {
        package let body: [UInt8]
        package let etag: String
        package let ownerID: Int64

        package init(body: [UInt8], etag: String, ownerID: Int64) {
            self.body = body
            self.etag = etag
            self.ownerID = ownerID
        }
    }

    private struct PageKey: Hashable {
        let after: Int64
        let limit: Int
    }

    package let capacityBytes: Int
    private var pages: [PageKey: Page] = [:]
    private var singles: [Int64: Single] = [:]
    private var bytes = 0

    package init(capacityBytes: Int = 1 << 20) {
        self.capacityBytes = capacityBytes
    }

    /// The page, from the cache or from `load`, which also says whether it may be kept.
    package func page(after: Int64, limit: Int, load: () async throws -> (Page, keep: Bool)) async rethrows -> Page {
        let key = PageKey(after: after, limit: limit)
        if let page = pages[key] { return page }
        let (page, keep) = try await load()
        if keep && makeRoom(page.body.count) { pages[key] = page }
        return page
    }

    /// The article, from the cache or from `load` (nil, not kept, when there is none), which
    /// also says whether it may be kept.
    package func article(_ id: Int64, load: () async throws -> (Single, keep: Bool)?) async rethrows -> Single? {
        if let single = singles[id] { return single }
        guard let (single, keep) = try await load() else { return nil }
        if keep && makeRoom(single.body.count) { singles[id] = single }
        return single
    }

    /// Drops what `change` may have made wrong.
    package func apply(_ change: Change) {
        switch change {
        case .articleInserted(let id):
            // It joins a page whose range it falls in, or gives a page without a next one a next.
            removePages { page, after in id > after && (page.peekID.map { id < $0 } ?? true) }
        case .articleUpdated(let id):
            drop(single: id)
            removePages { page, after in id > after && page.lastID.map { id <= $0 } ?? false }
        case .articleDeleted(let id):
            drop(single: id)
            // Deleting the first row after a page may leave it without a next page.
            removePages { page, after in id > after && (page.peekID ?? page.lastID).map { id <= $0 } ?? false }
        case .userChanged(let id):
            for key in singles.compactMap({ $0.value.ownerID == id ? $0.key : nil }) { drop(single: key) }
            removePages { page, _ in page.owners.contains(id) }
        case .everything:
            removeAll()
        }
    }

    package func removeAll() {
        pages.removeAll(keepingCapacity: true)
        singles.removeAll(keepingCapacity: true)
        bytes = 0
    }

    private func removePages(where affected: (Page, Int64) -> Bool) {
        for key in pages.compactMap({ affected($0.value, $0.key.after) ? $0.key : nil }) {
            if let page = pages.removeValue(forKey: key) { bytes -= page.body.count }
        }
    }

    private func drop(single id: Int64) {
        if let single = singles.removeValue(forKey: id) { bytes -= single.body.count }
    }

    private func makeRoom(_ count: Int) -> Bool {
        guard count <= capacityBytes else { return false }
        if bytes + count > capacityBytes { removeAll() }
        bytes += count
        return true
    }
}
