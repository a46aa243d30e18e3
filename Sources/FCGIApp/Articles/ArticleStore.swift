import PG

/// An article as the API shows it.
struct Article: Codable, Equatable, Sendable {
    let id: Int64
    let name: String
}

/// The articles table, through prepared statements.
enum ArticleStore {
    static let list = PreparedStatement(name: "articles_list", sql: "SELECT id, name FROM articles ORDER BY id")
    static let create = PreparedStatement(
        name: "articles_create", sql: "INSERT INTO articles (name, owner_id) VALUES ($1, $2) RETURNING id, name")

    static func all(in db: Connection) throws(PGError) -> [Article] {
        var articles: [Article] = []
        for row in try db.query(list) { articles.append(try article(row)) }
        return articles
    }

    static func create(name: String, owner: User, in db: Connection) throws(PGError) -> Article {
        let rows = try db.query(create, name, owner.id)
        return try article(rows[0])
    }

    private static func article(_ row: Row) throws(PGError) -> Article {
        Article(id: try row.decode(Int64.self, "id"), name: try row.decode(String.self, "name"))
    }
}

/// The body of `POST /articles/`, checked as Django REST framework's `CharField(max_length=50)`
/// checks it: leading and trailing whitespace trimmed, not blank, at most 50 characters
/// counted as code points (as PostgreSQL's `char_length` counts them).
struct NewArticle: Equatable {
    static let maxNameLength = 50

    let name: String

    /// The validated article, or the field errors in Django REST framework's shape.
    static func validate(_ body: JSONValue) -> Result<NewArticle, HTTPError> {
        guard let fields = body.object else {
            return .failure(HTTPError(status: .badRequest, detail: "Invalid data. Expected a dictionary, but got \(body.typeName)."))
        }
        func invalid(_ message: String) -> Result<NewArticle, HTTPError> {
            .failure(.fields(["name": [message]]))
        }
        guard let value = fields["name"], value != .null else { return invalid("This field is required.") }
        guard case .string(let raw) = value else { return invalid("Not a valid string.") }
        if raw.unicodeScalars.contains("\u{0}") { return invalid("Null characters are not allowed.") }
        let name = String(String.UnicodeScalarView(
            raw.unicodeScalars.drop(while: \.properties.isWhitespace).reversed().drop(while: \.properties.isWhitespace).reversed()))
        if name.isEmpty { return invalid("This field may not be blank.") }
        if name.unicodeScalars.count > maxNameLength {
            return invalid("Ensure this field has no more than \(maxNameLength) characters.")
        }
        return .success(NewArticle(name: name))
    }
}

extension JSONValue {
    /// The Python type name Django REST framework reports for a value.
    var typeName: String {
        switch self {
        case .null: "NoneType"
        case .bool: "bool"
        case .number(let n): n == n.rounded() ? "int" : "float"
        case .string: "str"
        case .array: "list"
        case .object: "dict"
        }
    }
}
