import Testing
@testable import SlipwayCore

@Suite struct YAMLParserTests {
    @Test func parsesMapping() throws {
        let node = try #require(try YAMLParser().parse("a: 1\nb: [x, y]\n"))
        #expect(node["a"]?.scalar == "1")
        #expect(node["b"]?.items?.count == 2)
    }
}
