import Foundation
import SlipwayTestSupport
import Testing

/// The folders of `SlipwayCore` form layers: a folder may use what is declared in its own
/// folder and in the folders below it, never in a folder above. The order is the one
/// ARCHITECTURE.md writes down (its line `Allowed order: A → B → …`), so the document and the
/// check cannot disagree.
///
/// The check reads the sources: every top-level declaration (type, typealias, function,
/// constant) belongs to its folder; every identifier in a file of a lower folder that names a
/// declaration made only in higher folders is a backward reference. Comments and string
/// literals are left out. Extensions are not declarations: `extension X` in a higher folder
/// adds to X where X lives, and members are not tracked (a member named like a higher type
/// would be a false alarm, not a miss).
@Suite struct LayeringTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static let core = root.appendingPathComponent("Sources/SlipwayCore").path

    /// The allowed order, bottom first, from ARCHITECTURE.md.
    static func order() throws -> [String] {
        let text = try String(contentsOfFile: root.appendingPathComponent("ARCHITECTURE.md").path, encoding: .utf8)
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("Allowed order: ") }) else {
            throw LayeringError("ARCHITECTURE.md has no line starting with \"Allowed order: \"")
        }
        return line.dropFirst("Allowed order: ".count).split(separator: "→").map {
            $0.trimmingCharacters(in: .whitespaces.union(CharacterSet(charactersIn: "`.")))
        }
    }

    struct LayeringError: Error, CustomStringConvertible {
        var description: String
        init(_ d: String) { description = d }
    }

    /// Swift source files of `folder` (recursively), as (relative path, text).
    static func sources(in folder: String) -> [(String, String)] {
        guard let walker = FileManager.default.enumerator(atPath: folder) else { return [] }
        var out: [(String, String)] = []
        for case let path as String in walker where path.hasSuffix(".swift") {
            if let text = try? String(contentsOfFile: folder + "/" + path, encoding: .utf8) { out.append((path, text)) }
        }
        return out.sorted { $0.0 < $1.0 }
    }

    static func code(_ text: String) -> String { SwiftSource.code(text) }

    /// Top-level declarations of a file: names at column 0 after optional modifiers.
    static func declarations(_ code: String) -> Set<String> {
        var names: Set<String> = []
        let modifiers: Set<String> = [
            "public", "internal", "fileprivate", "private", "package", "final", "indirect", "nonisolated",
            "@usableFromInline",
        ]
        let kinds: Set<String> = ["struct", "class", "enum", "protocol", "actor", "typealias", "func", "let", "var"]
        for line in code.split(separator: "\n") {
            guard let first = line.first, first.isLetter || first == "@" else { continue }
            var words = line.split(whereSeparator: {
                $0 == " " || $0 == "(" || $0 == "<" || $0 == ":" || $0 == "=" || $0 == "{"
            })
            .map(String.init)[...]
            while let w = words.first, modifiers.contains(w) || w.hasPrefix("@") { words = words.dropFirst() }
            guard let kind = words.first, kinds.contains(kind), words.count > 1 else { continue }
            let name = words[words.index(after: words.startIndex)]
            if name.first?.isLetter == true || name.first == "_" { names.insert(name) }
        }
        return names
    }

    static func identifiers(_ line: Substring) -> [String] {
        var out: [String] = []
        var current = ""
        for c in line {
            if c.isLetter || c.isNumber || c == "_" {
                current.append(c)
            } else {
                if !current.isEmpty, current.first?.isNumber == false { out.append(current) }
                current = ""
            }
        }
        if !current.isEmpty, current.first?.isNumber == false { out.append(current) }
        return out
    }

    /// Every backward reference: `Lower/File.swift:LINE uses Name (declared in Higher/)`.
    static func violations(order: [String]) -> [String] {
        let rank = Dictionary(uniqueKeysWithValues: order.enumerated().map { ($1, $0) })
        var declaredIn: [String: Set<Int>] = [:]
        var files: [(folder: String, rank: Int, path: String, code: String)] = []
        for folder in order {
            for (path, text) in sources(in: core + "/" + folder) {
                let c = code(text)
                for name in declarations(c) { declaredIn[name, default: []].insert(rank[folder]!) }  // in `order`
                files.append((folder, rank[folder]!, path, c))
            }
        }
        var out: [String] = []
        for file in files {
            for (n, line) in file.code.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                var seen: Set<String> = []
                for id in identifiers(line) where !seen.contains(id) {
                    seen.insert(id)
                    guard let ranks = declaredIn[id], ranks.allSatisfy({ $0 > file.rank }) else { continue }
                    let higher = ranks.sorted().map { order[$0] }.joined(separator: ", ")
                    out.append("\(file.folder)/\(file.path):\(n + 1) uses \(id) (declared in \(higher)/)")
                }
            }
        }
        return out
    }

    @Test func everyFolderIsInTheOrder() throws {
        let order = try Self.order()
        let folders = try FileManager.default.contentsOfDirectory(atPath: Self.core).filter { name in
            var isDir: ObjCBool = false
            return FileManager.default.fileExists(atPath: Self.core + "/" + name, isDirectory: &isDir)
                && isDir.boolValue
        }
        for folder in folders {
            #expect(order.contains(folder), "Sources/SlipwayCore/\(folder) is not in ARCHITECTURE.md's allowed order")
        }
        #expect(Set(order).count == order.count, "a folder appears twice in the allowed order")
    }

    @Test func noFolderUsesAFolderAboveIt() throws {
        let found = Self.violations(order: try Self.order())
        let listed = found.prefix(80).joined(separator: "\n")
        #expect(found.isEmpty, "\(found.count) backward references:\n\(listed)")
    }

    /// The check itself: a reference planted in a lower folder's code is found.
    @Test func theCheckFindsABackwardReference() throws {
        let code = Self.code("let x = JobQueue() // PipelineRunner\nlet s = \"AgentDaemon\"\n")
        #expect(Self.identifiers(code.split(separator: "\n")[0]).contains("JobQueue"))
        #expect(!Self.identifiers(code.split(separator: "\n")[0]).contains("PipelineRunner"), "comments are left out")
        #expect(!Self.identifiers(code.split(separator: "\n")[1]).contains("AgentDaemon"), "strings are left out")
        #expect(
            Self.declarations("public struct A {\n}\nfinal class B {}\nfunc c() {}\n  struct Nested {}\n") == [
                "A", "B", "c",
            ]
        )
    }
}
