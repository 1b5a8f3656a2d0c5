import Foundation
import SlipwayTestSupport
import Testing

/// Large and hostile configs inside the 4 MiB limit end quickly (the load is linear), and a
/// config that hits a limit gets a located error, not a hang or a flood. The figures against
/// size are bench/config-load's; here the cap is generous (10 s, a debug build).
@Suite struct LoadLimitTests {
    static func run(_ text: String, _ arguments: [String] = ["print"]) throws -> (SlipwayBinary.Result, Duration) {
        try withTemporaryDirectory { dir in
            try text.write(toFile: dir + "/devspace.yaml", atomically: true, encoding: .utf8)
            // `validate` checks what a build reads too.
            try "FROM scratch\n".write(toFile: dir + "/Dockerfile", atomically: true, encoding: .utf8)
            let started = ContinuousClock.now
            let result = try SlipwayBinary.run(arguments, in: dir, timeout: 30)
            return (result, ContinuousClock.now - started)
        }
    }

    @Test func oneHundredFiftyThousandKeys() throws {
        var text = "version: v2beta1\nname: keys\nvars:\n"
        for i in 0..<150_000 { text += "  VAR_\(i): value-\(i)\n" }
        #expect(text.utf8.count < 4 << 20)
        let (result, elapsed) = try Self.run(text, ["validate"])
        #expect(result.status == 0, "\(result.stderr.prefix(300))")
        #expect(elapsed < .seconds(10), "\(elapsed)")
    }

    @Test func eightyThousandItems() throws {
        var text = "version: v2beta1\nname: items\nimages:\n  app:\n    image: acme/app\n    tags:\n"
        for i in 0..<80_000 { text += "      - t\(i)\n" }
        let (result, elapsed) = try Self.run(text, ["validate"])
        #expect(result.status == 0, "\(result.stderr.prefix(300))")
        #expect(elapsed < .seconds(10), "\(elapsed)")
    }

    @Test func oneHundredThousandUnknownKeys() throws {
        var text = "version: v2beta1\nname: unknown\n"
        for i in 0..<100_000 { text += "unknown_\(i): x\n" }
        let (result, elapsed) = try Self.run(text)
        #expect(result.status == 1)
        #expect(elapsed < .seconds(10), "\(elapsed)")
        let lines = result.stderr.split(separator: "\n")
        #expect(lines.first?.hasPrefix("devspace.yaml:3:1: unknown_0: unknown key") == true, "\(lines.first ?? "")")
        // The first 100 problems, then one line that says how many more there are.
        #expect(lines.count == 101, "\(lines.count) lines")
        #expect(lines.last?.contains("more problems not shown") == true, "\(lines.last ?? "")")
    }

    @Test func expansionBomb() throws {
        var text = "version: v2beta1\nname: bomb\nvars:\n  L0: \"0123456789\"\n"
        for level in 1...9 {
            text += "  L\(level): \"" + String(repeating: "${L\(level - 1)}", count: 10) + "\"\n"
        }
        text += "images:\n  app:\n    image: acme/app\n    tags: [\"${L9}\"]\n"
        let (result, elapsed) = try Self.run(text)
        #expect(result.status == 1)
        #expect(!result.crashed)
        #expect(elapsed < .seconds(10), "\(elapsed)")
        let first = ConfigFixtures.firstLine(result.stderr)
        #expect(ConfigFixtures.hasPositionPrefix(first, file: "devspace.yaml"), "\(first)")
        #expect(first.contains(": vars.L") && first.contains("more than 4 MiB"), "\(first)")
    }
}
