import Auth
import HTTP
import JSON
import PG
import Stores
import Support

/// The articles resource, on one serving loop's connections.
struct ArticlesAPI {
    static let defaultLimit = 100
    static let maxLimit = 1000

    let db: any Database
    /// Where `POST` inserts: the loop's shared statement.
    let creator: ArticleCreator
    /// This loop's answers about articles, when this request may use them.
    let cache: ArticleCache?
    /// Whether an answer loaded now, in this snapshot, may be kept in the cache.
    let mayKeep: (Snapshot?) -> Bool
    /// Who may change another's article (`COGNITO_ADMIN_GROUP`, `COGNITO_RESOURCE_SERVER`),
    /// and the caller's groups' roles, for a change.
    let authorization: Authorization
    var roles: [Authorization.Group: Authorization.Role] = [:]

    /// `GET /articles/?limit=N&after=ID`: a page in id order, with a `Link` to the next one.
    func list(_ request: Request) async throws -> Response {
        var limit = Self.defaultLimit
        var after: Int64 = 0
        var seen: Set<String> = []
        for (name, value) in request.queryItems where name == "limit" || name == "after" {
            guard seen.insert(name).inserted else { throw HTTPError(status: .badRequest, detail: "\(name) may be given only once.") }
            let digits = !value.isEmpty && value.utf8.allSatisfy { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
            if name == "limit" {
                guard digits, let number = Int(value), (1...Self.maxLimit).contains(number) else {
                    throw HTTPError(status: .badRequest, detail: "limit must be a whole number from 1 to \(Self.maxLimit).")
                }
                limit = number
            } else {
                guard digits, let number = Int64(value) else {
                    throw HTTPError(status: .badRequest, detail: "after must be a non-negative whole number.")
                }
                after = number
            }
        }
        func load() async throws -> (ArticleCache.Page, keep: Bool) {
            // One row more than asked says whether there is a next page.
            let (rows, snapshot) = try await ArticleStore.page(after: after, limit: limit + 1, in: db)
            let shown = rows.prefix(limit)
            let peek = rows.count > limit ? rows[limit].article.id : nil
            let page = ArticleCache.Page(
                body: JSONWriter.bytes(of: shown.map(\.article)), nextAfter: peek == nil ? nil : shown.last?.article.id,
                lastID: shown.last?.article.id, peekID: peek, owners: Set(shown.map(\.ownerID)))
            return (page, cache != nil && mayKeep(snapshot))
        }
        let page = if let cache { try await cache.page(after: after, limit: limit, load: load) } else { try await load().0 }
        var response = Response(status: .ok, headers: [("Content-Type", "application/json")], body: page.body)
        if let nextAfter = page.nextAfter {
            // A relative reference (RFC 8288 resolves it against the request's URL): never the
            // Host header or nginx's scheme, which behind a TLS-terminating proxy would say http.
            response.headers.append(("Link", "</articles/?after=\(nextAfter)&limit=\(limit)>; rel=\"next\""))
        }
        return response
    }

    /// `POST /articles/`: 201 with the new article and its `Location` (relative, as `Link`). One
    /// statement checks the token's user and inserts; only when it inserts nothing is the caller
    /// looked up (`authenticate`: binding a first token, or the reason for a 401), as for every
    /// other route.
    func create(_ request: Request, claims: Claims, authenticate: () async throws -> Caller) async throws -> (Response, ownerID: Int64) {
        let name: String
        do {
            name = try ArticleName.validate(request.fields()["name"])
        } catch {
            _ = try await authenticate()  // a caller who may not write learns that first
            throw error
        }
        let created = try await Self.storingName {
            if let owned = try await creator.create(name: name, asUserOf: claims, using: db) { return owned }
            let caller = try await authenticate()
            return ArticleStore.Owned(article: try await ArticleStore.create(name: name, owner: caller.user, in: db), ownerID: caller.user.id)
        }
        var response = Self.representation(created.article, ownerID: created.ownerID).response(status: .created)
        response.headers.append(("Location", "/articles/\(created.article.id)/"))
        return (response, created.ownerID)
    }

    /// `GET /articles/{id}/`, with `ETag`; 304 when `If-None-Match` names it.
    func read(_ id: Int64, _ request: Request) async throws -> Response {
        func load() async throws -> (ArticleCache.Single, keep: Bool)? {
            try await ArticleStore.find(id, in: db).map { found in
                (Self.representation(found.article.article, ownerID: found.article.ownerID),
                 cache != nil && mayKeep(found.snapshot))
            }
        }
        let found = if let cache { try await cache.article(id, load: load) } else { try await load()?.0 }
        guard let article = found else { throw HTTPError.notFound }
        if let ifNoneMatch = request.header("if-none-match"), EntityTags(ifNoneMatch).matches(article.etag, weak: true) {
            return Response(status: .notModified, headers: [("ETag", article.etag)])
        }
        return article.response()
    }

    /// `PUT` (`partial: false`, name required) or `PATCH` (name optional) of `/articles/{id}/`.
    func update(_ id: Int64, _ request: Request, by caller: Caller, partial: Bool) async throws -> Response {
        let value = try request.fields()["name"]
        let name = partial && value == nil ? nil : try ArticleName.validate(value)
        let (article, ownerID) = try await Self.storingName {
            try await db.transaction { db in
                let current = try await checkedForChange(id, request, by: caller, in: db)
                guard let name else { return (current.article, current.ownerID) }
                return (try await ArticleStore.rename(id, to: name, in: db), current.ownerID)
            }
        }
        return Self.representation(article, ownerID: ownerID).response()
    }

    /// `DELETE /articles/{id}/`: 204.
    func delete(_ id: Int64, _ request: Request, by caller: Caller) async throws -> Response {
        try await db.transaction { db in
            _ = try await checkedForChange(id, request, by: caller, in: db)
            try await ArticleStore.delete(id, in: db)
        }
        return Response(status: .noContent)
    }

    /// Runs statements that store a name. The worker's check matches the table's; should they
    /// ever differ, the table wins, with the same answer.
    private static func storingName<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as PGError where error.constraint == "articles_name_length" {
            throw ArticleName.tooLong
        }
    }

    /// The article, locked, after checking that `caller` may change it and that `If-Match`
    /// (when sent) names its current version.
    private func checkedForChange(_ id: Int64, _ request: Request, by caller: Caller, in db: Connection) async throws -> ArticleStore.Owned {
        guard let current = try await ArticleStore.lock(id, in: db) else { throw HTTPError.notFound }
        let ownerID = current.ownerID
        if ownerID != caller.user.id { try authorization.requireChangingAnothers(caller.claims, roles: roles) }
        if let ifMatch = request.header("if-match") {
            guard EntityTags(ifMatch).matches(Self.representation(current.article, ownerID: ownerID).etag, weak: false) else {
                throw HTTPError(
                    status: .preconditionFailed, detail: "The article has changed since it was read (If-Match does not match its ETag).")
            }
        }
        return current
    }

    /// The article as JSON, with its ETag: a strong tag of the body, the first 16 bytes of its
    /// SHA-256 in hex.
    static func representation(_ article: Article, ownerID: Int64) -> ArticleCache.Single {
        let body = JSONWriter.bytes(of: article)
        let tag = "\"" + Hex.encode(sha256(body).prefix(16)) + "\""
        return ArticleCache.Single(body: body, etag: tag, ownerID: ownerID)
    }
}

extension ArticleCache.Single {
    func response(status: HTTPStatus = .ok) -> Response {
        Response(status: status, headers: [("Content-Type", "application/json"), ("ETag", etag)], body: body)
    }
}
