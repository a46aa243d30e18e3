import PG
import Testing

@Suite struct SQLStateTests {
    @Test(arguments: [
        ("08006", true), ("08001", true), ("57P01", true), ("57P02", true), ("57P03", true),
        ("57014", false), ("23505", false), ("42601", false),
    ])
    func connectionLossIsClass08AndShutdowns(code: String, lost: Bool) {
        #expect(SQLState(rawValue: code).meansConnectionLost == lost)
    }

    @Test func errorClassIsTheFirstTwoCharacters() {
        #expect(SQLState.uniqueViolation.errorClass == "23")
        #expect(SQLState.checkViolation.errorClass == "23")
        #expect(SQLState.queryCanceled.errorClass == "57")
    }
}
