import Testing

@testable import SlipwayCore

@Suite struct YAMLParserTests {
    func parse(_ s: String) throws -> Node {
        try #require(try YAMLParser().parse(s))
    }

    @Test func mappingSequenceScalarWithMarks() throws {
        let node = try parse("a: 1\nb:\n  - x\n  - 'y'\n")
        #expect(node["a"]?.scalar == "1")
        #expect(node["a"]?.resolved == .int)
        #expect(node["a"]?.mark == Mark(line: 1, column: 4))
        let items = try #require(node["b"]?.items)
        #expect(items.map(\.scalar) == ["x", "y"])
        #expect(items[1].mark == Mark(line: 4, column: 5))
        if case .scalar(_, let style) = items[1].kind { #expect(style == .singleQuoted) }
        #expect(items[1].resolved == .string)
        #expect(node.keyNode("b")?.mark == Mark(line: 2, column: 1))
    }

    @Test func tagsAreKept() throws {
        let node = try parse("a: !!str 123\nb: !custom x\n")
        #expect(node["a"]?.tag == "tag:yaml.org,2002:str")
        #expect(node["a"]?.resolved == .string)
        #expect(node["b"]?.tag == "!custom")
    }

    @Test func anchorsAndAliasesExpand() throws {
        let node = try parse("base: &b {x: 1}\nuse: *b\nlist: [&s v, *s]\n")
        #expect(node["use"]?["x"]?.scalar == "1")
        #expect(node["use"]?.mark == Mark(line: 2, column: 6))
        #expect(node["list"]?.items?.map(\.scalar) == ["v", "v"])
    }

    @Test func mergeKeysExplicitWins() throws {
        let node = try parse(
            """
            defaults: &d
              image: app
              tags: [a]
            other: &o
              image: other
              target: t
            one:
              <<: [*d, *o]
              tags: [b]
            """
        )
        let one = try #require(node["one"])
        #expect(one["image"]?.scalar == "app")
        #expect(one["tags"]?.items?.map(\.scalar) == ["b"])
        #expect(one["target"]?.scalar == "t")
        #expect(one["<<"] == nil)
    }

    @Test func duplicateKeysAreRejectedWithBothPositions() throws {
        let error = #expect(throws: YAMLError.self) { try YAMLParser().parse("a: 1\nb: 2\na: 3\n") }
        #expect(error?.mark == Mark(line: 3, column: 1))
        #expect(error?.message.contains("duplicate key \"a\"") == true)
        #expect(error?.message.contains("1:1") == true)
    }

    @Test func mergedKeyDoesNotCountAsDuplicate() throws {
        let node = try parse("d: &d {a: 1}\ne:\n  <<: *d\n  a: 2\n")
        #expect(node["e"]?["a"]?.scalar == "2")
    }

    @Test func multipleDocuments() throws {
        let docs = try YAMLParser().parseAll(Array("a: 1\n---\nb: 2\n".utf8))
        #expect(docs.count == 2)
        #expect(docs[1]["b"]?.scalar == "2")
        #expect(throws: YAMLError.self) { try YAMLParser().parse("a: 1\n---\nb: 2\n") }
    }

    @Test func emptyStreamIsNil() throws {
        #expect(try YAMLParser().parse("") == nil)
        #expect(try YAMLParser().parse("# only a comment\n") == nil)
    }

    @Test func syntaxErrorHasPosition() throws {
        // An unclosed bracket is reported where it opens, with the point the parser gave up at.
        let error = #expect(throws: YAMLError.self) { try YAMLParser().parse("a: [1, 2\nb: 3\n") }
        #expect(error?.mark == Mark(line: 1, column: 4))
        #expect(error?.message.contains("flow sequence") == true)
        let escape = #expect(throws: YAMLError.self) { try YAMLParser().parse("a: \"x\\qy\"\n") }
        #expect(escape?.mark == Mark(line: 1, column: 6))  // the backslash
    }

    @Test func tabIndentationIsExplained() throws {
        let error = #expect(throws: YAMLError.self) { try YAMLParser().parse("a:\n\tb: 1\n") }
        #expect(error?.mark == Mark(line: 2, column: 1))
        #expect(error?.message.contains("tab") == true)
    }

    @Test func invalidUTF8IsABinaryFileError() throws {
        let error = #expect(throws: YAMLError.self) { try YAMLParser().parseAll([0x61, 0x3A, 0x20, 0xFF, 0xFE, 0x0A]) }
        #expect(error?.message.contains("UTF-8") == true)
    }

    @Test(arguments: [1_001, 100_000])
    func deepNestingIsRejectedWithoutOverflow(depth: Int) throws {
        let text = String(repeating: "[", count: depth) + String(repeating: "]", count: depth)
        let error = #expect(throws: YAMLError.self) { try YAMLParser().parse(text) }
        #expect(error?.message.contains("nesting deeper than 1000") == true)
    }

    @Test func nestingAtTheLimitLoads() throws {
        let depth = 1_000
        let text = String(repeating: "[", count: depth) + "x" + String(repeating: "]", count: depth)
        var node = try parse(text)
        var levels = 0
        while let first = node.items?.first {
            node = first
            levels += 1
        }
        #expect(levels == depth)
        #expect(node.scalar == "x")
    }

    @Test func aliasBombIsBounded() throws {
        var lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
        for i in 1...9 {
            let refs = Array(repeating: "*a\(i - 1)", count: 9).joined(separator: ", ")
            lines.append("a\(i): &a\(i) [\(refs)]")
        }
        let error = #expect(throws: YAMLError.self) { try YAMLParser().parse(lines.joined(separator: "\n")) }
        #expect(error?.message.contains("aliases expand") == true)
    }

    @Test func unknownAlias() throws {
        let error = #expect(throws: YAMLError.self) { try YAMLParser().parse("a: *nope\n") }
        #expect(error?.message.contains("nope") == true)
    }
}

@Suite struct ScalarResolverTests {
    @Test(arguments: [
        ("", ScalarResolver.Kind.null), ("~", .null), ("null", .null), ("true", .bool), ("False", .bool),
        ("yes", .string), ("1", .int), ("-12", .int), ("0x1F", .int), ("0o17", .int), ("1.5", .float),
        ("1e3", .float), (".5", .float), ("-.inf", .float), ("1.2.3", .string), ("v1", .string), ("1_000", .int),
        ("+", .string), ("-", .string), (".", .string), ("12abc", .string),
    ])
    func resolves(text: String, kind: ScalarResolver.Kind) {
        #expect(ScalarResolver.resolve(text) == kind)
    }
}

@Suite struct YAMLEmitterTests {
    func roundTrip(_ s: String) throws -> String {
        try YAMLEmitter().emit(try #require(try YAMLParser().parse(s)))
    }

    @Test func emitsBlockStyleInOrder() throws {
        let out = try roundTrip("b: 1\na:\n  - x\n  - y: 2\nc: {}\nd: []\n")
        // `y` is quoted: YAML 1.1 readers (Helm, PyYAML) would take a bare `y` for `true`.
        #expect(out == "b: 1\na:\n- x\n- \"y\": 2\nc: {}\nd: []\n")
    }

    @Test func stringsThatLookLikeOtherTypesStayStrings() throws {
        let out = try roundTrip("a: \"true\"\nb: '123'\nc: \"\"\nd: 'null'\ne: plain\nf: \"quoted but plain\"\n")
        #expect(out == "a: \"true\"\nb: \"123\"\nc: \"\"\nd: \"null\"\ne: plain\nf: quoted but plain\n")
        let back = try #require(try YAMLParser().parse(out))
        #expect(back["a"]?.resolved == .string)
        #expect(back["b"]?.resolved == .string)
        #expect(back["c"]?.resolved == .string)
    }

    @Test func multilineUsesLiteralBlock() throws {
        let out = try roundTrip("run: |-\n  echo a\n  echo b\n")
        #expect(out == "run: |-\n  echo a\n  echo b\n")
    }

    @Test func specialCharactersRoundTrip() throws {
        let values = [
            "a: b", "# not a comment", "- dash", "x #y", "tab\there", "quote\"s", "'single'", "ünïcødé", "*star",
        ]
        let node = Node.mapping(values.enumerated().map { ("k\($0.offset)", Node.string($0.element)) })
        let text = try YAMLEmitter().emit(node)
        let back = try #require(try YAMLParser().parse(text))
        for (i, v) in values.enumerated() {
            #expect(back["k\(i)"]?.scalar == v)
            #expect(back["k\(i)"]?.resolved == .string)
        }
    }

    @Test func deepTreeEmitsIteratively() throws {
        var node = Node.string("leaf")
        for _ in 0..<1_000 { node = Node.sequence([node]) }
        let text = try YAMLEmitter().emit(node)
        #expect(text.contains("leaf"))
    }

    @Test func flowForm() throws {
        let node = try #require(try YAMLParser().parse("{a: 1, b: [x, \"true\"]}"))
        #expect(try YAMLEmitter().emitFlow(node) == "{a: 1, b: [x, \"true\"]}")
    }
}
