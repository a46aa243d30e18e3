import Foundation
@testable import PG
import Testing

/// The psql scripts in sql/admin, run as an administrator runs them.
@Suite(.lane()) struct AdminScriptTests {
    let database: TestDatabase
    let db: Connection
    init() throws {
        database = try TestDatabase.migrated()
        db = try database.connect()
    }

    private func psql(_ script: String, _ variables: [String: String] = [:]) throws -> (status: Int32, output: String) {
        try database.admin(script, variables)
    }

    private func users() throws -> [String] {
        try db.query("SELECT username || ' ' || email || ' ' || is_active FROM users ORDER BY id").map {
            try $0.decode(String.self, at: 0)
        }
    }

    @Test func createUserTwiceWithTheSameEmailCreatesOnceThenPrintsOneErrorLine() throws {
        let first = try psql("create_user.sql", ["username": "alice", "email": "alice@example.com"])
        #expect(first.status == 0)
        #expect(first.output == "created user alice (id 1, email alice@example.com)\n")
        let second = try psql("create_user.sql", ["username": "alice2", "email": "ALICE@example.com"])
        #expect(second.status != 0)
        let lines = second.output.split(separator: "\n")
        #expect(lines.count == 1, "\(second.output)")
        #expect(lines.first?.contains("ERROR:  a user with email \"ALICE@example.com\" already exists; nothing was changed") == true)
        let sameName = try psql("create_user.sql", ["username": "alice", "email": "other@example.com"])
        #expect(sameName.status != 0)
        #expect(sameName.output.split(separator: "\n").count == 1)
        #expect(sameName.output.contains("ERROR:  a user named \"alice\" already exists; nothing was changed"))
        #expect(try users() == ["alice alice@example.com true"])
    }

    @Test func createUserQuotesItsVariables() throws {
        let tricky = "o'brien\"; DROP TABLE users; --"
        let result = try psql("create_user.sql", ["username": tricky, "email": "ob@example.com"])
        #expect(result.status == 0, "\(result.output)")
        #expect(try db.query("SELECT username FROM users").first?["username"] == tricky)
    }

    @Test func createUserNeedsItsVariables() throws {
        let missing = try psql("create_user.sql", ["email": "x@example.com"])
        #expect(missing.status != 0)
        #expect(missing.output.contains("ERROR:  a username is required: -v username=NAME"))
        let badEmail = try psql("create_user.sql", ["username": "x", "email": "not-an-email"])
        #expect(badEmail.status != 0)
        #expect(badEmail.output.contains("ERROR:  a valid email is required"))
        #expect(try users().isEmpty)
    }

    @Test func deactivateAndReactivate() throws {
        _ = try psql("create_user.sql", ["username": "bob", "email": "bob@example.com"])
        let off = try psql("deactivate_user.sql", ["username": "bob"])
        #expect(off.status == 0)
        #expect(off.output == "deactivated user bob (id 1)\n")
        #expect(try users() == ["bob bob@example.com false"])
        let on = try psql("reactivate_user.sql", ["username": "bob"])
        #expect(on.status == 0)
        #expect(on.output == "reactivated user bob (id 1)\n")
        #expect(try users() == ["bob bob@example.com true"])
        let nobody = try psql("deactivate_user.sql", ["username": "nobody"])
        #expect(nobody.status != 0)
        #expect(nobody.output.split(separator: "\n").count == 1)
        #expect(nobody.output.contains("ERROR:  no user named \"nobody\""))
    }

    @Test func deleteUserRefusesToOrphanArticlesAndReassignsThem() throws {
        _ = try psql("create_user.sql", ["username": "carol", "email": "carol@example.com"])
        _ = try psql("create_user.sql", ["username": "dave", "email": "dave@example.com"])
        try db.query("INSERT INTO articles (name, owner_id) SELECT 'c' || g, 1 FROM generate_series(1, 3) g")
        let refused = try psql("delete_user.sql", ["username": "carol"])
        #expect(refused.status != 0)
        #expect(refused.output.contains(
            "ERROR:  user \"carol\" owns 3 article(s); pass -v reassign_to=USERNAME to give them to another user; nothing was changed"))
        #expect(try users().count == 2)
        let noHeir = try psql("delete_user.sql", ["username": "carol", "reassign_to": "zed"])
        #expect(noHeir.status != 0)
        #expect(noHeir.output.contains("ERROR:  no user named \"zed\" to reassign the articles to; nothing was changed"))
        let moved = try psql("delete_user.sql", ["username": "carol", "reassign_to": "dave"])
        #expect(moved.status == 0, "\(moved.output)")
        #expect(moved.output == "deleted user carol (id 1); 3 article(s) reassigned to dave\n")
        #expect(try users() == ["dave dave@example.com true"])
        #expect(try db.query("SELECT DISTINCT owner_id FROM articles").map { try $0.decode(Int.self, at: 0) } == [2])
        let plain = try psql("delete_user.sql", ["username": "dave", "reassign_to": ""])
        #expect(plain.status != 0, "dave owns the articles now")
        try db.query("DELETE FROM articles")
        let gone = try psql("delete_user.sql", ["username": "dave"])
        #expect(gone.status == 0)
        #expect(gone.output == "deleted user dave (id 2)\n")
        #expect(try users().isEmpty)
    }

    @Test func groupRolesAreGrantedChangedAndRevoked() throws {
        func roles() throws -> [String] {
            try db.query("SELECT group_name || ' ' || role FROM group_roles ORDER BY 1").map { try $0.decode(String.self, at: 0) }
        }
        let granted = try psql("grant_group_role.sql", ["group": "staff", "role": "reader"])
        #expect(granted.status == 0 && granted.output == "group staff has the role reader\n", "\(granted.output)")
        let changed = try psql("grant_group_role.sql", ["group": "staff", "role": "admin"])
        #expect(changed.output == "group staff has the role admin\n")
        #expect(try roles() == ["staff admin"])
        let badRole = try psql("grant_group_role.sql", ["group": "x'; DROP TABLE group_roles; --", "role": "owner"])
        #expect(badRole.status != 0 && badRole.output.split(separator: "\n").count == 1)
        #expect(badRole.output.contains(#"ERROR:  a role is required: -v role=reader, writer or admin (got "owner")"#), "\(badRole.output)")
        let noGroup = try psql("grant_group_role.sql", ["role": "reader"])
        #expect(noGroup.status != 0 && noGroup.output.contains("ERROR:  a group is required"))
        let revoked = try psql("revoke_group_role.sql", ["group": "staff"])
        #expect(revoked.status == 0 && revoked.output == "group staff has no role now\n", "\(revoked.output)")
        let again = try psql("revoke_group_role.sql", ["group": "staff"])
        #expect(again.status != 0 && again.output.contains(#"ERROR:  group "staff" has no role; nothing was changed"#))
        #expect(try roles().isEmpty)
    }

    @Test func machineClientsAreRegisteredOnceAndListed() throws {
        _ = try psql("create_user.sql", ["username": "erin", "email": "erin@example.com"])
        let created = try psql("create_client.sql", ["client_id": "1example23456789", "name": "reporting"])
        #expect(created.status == 0 && created.output == "created client reporting (id 2, client id 1example23456789)\n", "\(created.output)")
        let sameID = try psql("create_client.sql", ["client_id": "1example23456789", "name": "other"])
        #expect(sameID.status != 0 && sameID.output.contains(#"ERROR:  client id "1example23456789" is registered already"#))
        let sameName = try psql("create_client.sql", ["client_id": "2example", "name": "erin"])
        #expect(sameName.status != 0 && sameName.output.contains(#"ERROR:  a user or client named "erin" already exists"#))
        let missing = try psql("create_client.sql", ["name": "x"])
        #expect(missing.status != 0 && missing.output.contains("ERROR:  a client id is required"))
        let listed = try psql("list_users.sql")
        #expect(listed.output.contains("| articles |  kind"), "\(listed.output)")
        #expect(listed.output.contains("|        0 | client") && listed.output.contains("|        0 | user"), "\(listed.output)")
        // Managed by name like a user.
        #expect(try psql("deactivate_user.sql", ["username": "reporting"]).output == "deactivated user reporting (id 2)\n")
    }

    @Test func listsShowUsersAndArticles() throws {
        _ = try psql("create_user.sql", ["username": "erin", "email": "erin@example.com"])
        try db.query("INSERT INTO articles (name, owner_id) VALUES ('Hello', 1)")
        let users = try psql("list_users.sql")
        #expect(users.status == 0)
        #expect(users.output.contains(" id | username |      email       | cognito_sub | is_active |"))
        #expect(users.output.contains("erin"))
        #expect(users.output.contains("(1 row)"))
        let articles = try psql("list_articles.sql")
        #expect(articles.status == 0)
        #expect(articles.output.contains(" id | name  | owner |"))
        #expect(articles.output.contains("  1 | Hello | erin  |"))
    }
}
