import Foundation
import Testing

// End-to-end tests of config loading through the real `slipway` binary, driven by the files in
// `Fixtures/valid` and `Fixtures/invalid`, plus pathological files generated at test time.

// MARK: - Fixture helpers

enum ConfigFixtures {
    static let validDirectory = SlipwayBinary.fixtures + "/valid"
    static let invalidDirectory = SlipwayBinary.fixtures + "/invalid"

    /// The case directories under `Fixtures/valid`, sorted.
    static let validCases: [String] = {
        let fm = FileManager.default
        let names = (try? fm.contentsOfDirectory(atPath: validDirectory)) ?? []
        return names.filter { name in
            var isDir: ObjCBool = false
            return fm.fileExists(atPath: validDirectory + "/" + name, isDirectory: &isDir) && isDir.boolValue
        }.sorted()
    }()

    /// The `.yaml` files under `Fixtures/invalid`, sorted.
    static let invalidFiles: [String] = {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: invalidDirectory)) ?? []
        return names.filter { $0.hasSuffix(".yaml") }.sorted()
    }()

    /// Lines of a text file, without the trailing empty line; a missing file has none.
    static func lines(of path: String) -> [String] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [] }
        var lines = text.components(separatedBy: "\n")
        while let last = lines.last, last.isEmpty { lines.removeLast() }
        return lines
    }

    /// `args`: one argument per line (an empty line in the middle is an empty argument).
    static func arguments(at path: String) -> [String] { lines(of: path) }

    /// `env`: KEY=VALUE lines; blank lines and `#` comments are ignored.
    static func environment(at path: String) -> [String: String] {
        var env: [String: String] = [:]
        for line in lines(of: path) where !line.isEmpty && !line.hasPrefix("#") {
            guard let eq = line.firstIndex(of: "=") else {
                Issue.record("\(path): not a KEY=VALUE line: \(line)")
                continue
            }
            env[String(line[..<eq])] = String(line[line.index(after: eq)...])
        }
        return env
    }

    /// The first line of a text (stderr), without its newline.
    static func firstLine(_ s: String) -> String {
        String(s.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false).first ?? "")
    }

    /// True when `line` is `FILE:LINE:COL: …` for `file`, with positive numbers.
    static func hasPositionPrefix(_ line: String, file: String) -> Bool {
        guard line.hasPrefix(file + ":") else { return false }
        let rest = line.dropFirst(file.count + 1)
        let parts = rest.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3, let l = Int(parts[0]), let c = Int(parts[1]), l >= 1, c >= 1 else { return false }
        return parts[2].hasPrefix(" ")
    }

    /// The LINE of a `FILE:LINE:COL: …` line.
    static func reportedLine(_ line: String, file: String) -> Int? {
        guard line.hasPrefix(file + ":") else { return nil }
        return line.dropFirst(file.count + 1).split(separator: ":").first.flatMap { Int($0) }
    }
}

// MARK: - Valid configs: `slipway print` output, byte for byte

@Suite struct PrintFixtureTests {
    static let cases = ConfigFixtures.validCases

    @Test func tenValidCasesExist() {
        #expect(Self.cases.count == 10, "valid cases: \(Self.cases)")
    }

    @Test(arguments: cases)
    func printMatchesExpected(_ name: String) throws {
        let dir = ConfigFixtures.validDirectory + "/" + name
        let args = ConfigFixtures.arguments(at: dir + "/args")
        let env = ConfigFixtures.environment(at: dir + "/env")
        let expected = try String(contentsOfFile: dir + "/expected.yaml", encoding: .utf8)

        let result = try SlipwayBinary.run(["print", "--skip-info"] + args, in: dir, env: env)
        #expect(!result.crashed)
        #expect(result.status == 0, "slipway print \(args) in \(name): \(result.stderr)")
        #expect(result.stderr.isEmpty, "stderr: \(result.stderr)")
        #expect(Array(result.stdout.utf8) == Array(expected.utf8), "print output of \(name) differs from expected.yaml")
        if result.stdout != expected {
            // Name the first differing line to make the failure readable.
            let got = result.stdout.components(separatedBy: "\n")
            let want = expected.components(separatedBy: "\n")
            let i = (0..<min(got.count, want.count)).first(where: { got[$0] != want[$0] }) ?? min(got.count, want.count)
            let g = i < got.count ? got[i] : "<end of output>"
            let w = i < want.count ? want[i] : "<end of expected.yaml>"
            Issue.record(
                "\(name): first difference on line \(i + 1): got \(g.debugDescription), expected \(w.debugDescription)"
            )
        }
    }

    @Test(arguments: cases)
    func validateAccepts(_ name: String) throws {
        let dir = ConfigFixtures.validDirectory + "/" + name
        let args = ConfigFixtures.arguments(at: dir + "/args")
        let env = ConfigFixtures.environment(at: dir + "/env")
        let result = try SlipwayBinary.run(["validate"] + args, in: dir, env: env)
        #expect(!result.crashed)
        #expect(result.status == 0, "slipway validate \(args) in \(name): \(result.stderr)")
        #expect(result.stdout.hasPrefix("devspace.yaml: valid"), "stdout: \(result.stdout)")
    }
}

// MARK: - Malformed configs: exit 1, a precise position, key path and message

@Suite struct MalformedConfigTests {
    /// What the first line of stderr must be, for one malformed file.
    struct Malformed: Sendable, CustomTestStringConvertible {
        enum Expected: Sendable {
            /// The exact first line.
            case firstLine(String)
            /// `FILE:LINE:COL: path.to.key: …message…` (no `path: ` when the path is empty).
            case at(line: Int, column: Int, path: String, contains: String)
        }

        let file: String
        let expected: Expected

        var testDescription: String { file }

        static func at(_ file: String, _ line: Int, _ column: Int, _ path: String, _ contains: String) -> Malformed {
            Malformed(file: file, expected: .at(line: line, column: column, path: path, contains: contains))
        }

        static func exactly(_ file: String, _ line: String) -> Malformed {
            Malformed(file: file, expected: .firstLine(line))
        }
    }

    /// A malformed invocation: slipway must refuse it as a usage error.
    struct UsageCase: Sendable, CustomTestStringConvertible {
        let file: String
        let status: Int32
        let stderrContains: String
        var testDescription: String { file }
    }

    /// Positions are where a user would look (the offending token, the key that is wrong or
    /// lacks something), read from the files, not copied from slipway's output.
    static let table: [Malformed] = [
        // YAML syntax
        .at("01-unclosed-double-quote.yaml", 5, 12, "", "quoted scalar"),  // the opening quote
        .at("02-bad-indentation.yaml", 6, 4, "", "expected key"),
        .at("03-unclosed-flow-map.yaml", 4, 8, "", "flow mapping"),  // the opening brace
        .at("04-stray-closing-bracket.yaml", 6, 24, "", "]"),  // the message should name the stray ]
        .at("05-tab-indentation.yaml", 5, 1, "", "tab"),
        .at("06-tab-in-value-line.yaml", 7, 6, "", "tab"),
        .at("07-key-value-value.yaml", 5, 39, "", "mapping values are not allowed"),
        .at("08-invalid-escape-in-double-quotes.yaml", 6, 24, "", "escape"),
        .at("09-unknown-alias.yaml", 6, 11, "", "release_tags"),
        .at("10-alias-to-enclosing-anchor.yaml", 6, 13, "", "images"),
        .at("11-merge-key-not-a-map.yaml", 6, 9, "", "merge key"),
        .at("12-complex-mapping-key.yaml", 4, 5, "", "key"),
        // Duplicate keys: the second occurrence
        .at("13-duplicate-top-level-key.yaml", 11, 1, "", "duplicate key \"images\""),
        .at("14-duplicate-image-key.yaml", 8, 3, "", "duplicate key \"web\""),
        .at("15-duplicate-nested-key.yaml", 8, 5, "", "duplicate key \"dockerfile\""),
        .at("16-duplicate-helm-value-key.yaml", 13, 11, "", "duplicate key \"enabled\""),
        // Wrong types: the value
        .at("17-tags-as-string.yaml", 6, 11, "images.web.tags", "expected a list"),
        .at("18-skippush-quoted-string.yaml", 6, 15, "images.web.skipPush", "expected a boolean"),
        .at("19-buildargs-as-list.yaml", 7, 7, "images.web.buildArgs", "expected a map"),
        .at("20-images-as-list.yaml", 4, 3, "images", "expected a map"),
        .at("21-deployments-as-string.yaml", 6, 14, "deployments", "expected a map"),
        .at("22-pipelines-as-number.yaml", 3, 12, "pipelines", "expected a map"),
        .at("23-dev-sync-as-map.yaml", 7, 7, "dev.web.sync", "expected a list"),
        .at("24-entrypoint-as-string.yaml", 6, 17, "images.web.entrypoint", "expected a list of strings"),
        .at("25-kaniko-cache-as-string.yaml", 7, 14, "images.web.kaniko.cache", "expected a boolean"),
        .at("26-helm-values-as-list.yaml", 9, 9, "deployments.web.helm.values", "expected a map"),
        .at("27-dev-ports-as-map.yaml", 7, 7, "dev.web.ports", "expected a list"),
        .at("28-dev-env-as-map.yaml", 7, 7, "dev.web.env", "expected a list"),
        .at(
            "29-kubectl-manifests-as-string.yaml",
            6,
            18,
            "deployments.web.kubectl.manifests",
            "expected a list of strings"
        ),
        .at("30-localregistry-port-as-string.yaml", 5, 9, "localRegistry.port", "expected an integer"),
        .at("31-pullsecrets-as-list.yaml", 4, 3, "pullSecrets", "expected a map"),
        .at("32-pipeline-continueonerror-yes.yaml", 5, 22, "pipelines.e2e.continueOnError", "expected a boolean"),
        .at("33-helm-chart-as-string.yaml", 6, 14, "deployments.redis.helm.chart", "expected a map"),
        .at("34-deployments-v1-list-style.yaml", 4, 3, "deployments", "expected a map"),
        // Unknown keys: the key, with the right key suggested
        .at("35-unknown-key-dockerFile.yaml", 6, 5, "images.web.dockerFile", "did you mean \"dockerfile\""),
        .at("36-unknown-key-contxt.yaml", 6, 5, "images.web.contxt", "did you mean \"context\""),
        .at("37-unknown-key-imags.yaml", 3, 1, "imags", "did you mean \"images\""),
        .at("38-unknown-key-buildArg.yaml", 6, 5, "images.web.buildArg", "did you mean \"buildArgs\""),
        .at("39-unknown-key-helm-chart-nam.yaml", 7, 9, "deployments.redis.helm.chart.nam", "did you mean \"name\""),
        .at("40-unknown-key-dev-syncs.yaml", 6, 5, "dev.web.syncs", "did you mean \"sync\""),
        .at("41-unknown-key-excludePath.yaml", 8, 9, "dev.web.sync[0].excludePath", "did you mean \"excludePaths\""),
        .at("42-unknown-key-deployment-singular.yaml", 3, 1, "deployment", "did you mean \"deployments\""),
        .at(
            "43-unknown-key-snapShotMode.yaml",
            7,
            7,
            "images.web.kaniko.snapShotMode",
            "did you mean \"snapshotMode\""
        ),
        .at(
            "44-unknown-key-kubectl-manifest.yaml",
            6,
            7,
            "deployments.web.kubectl.manifest",
            "did you mean \"manifests\""
        ),
        .at("45-several-unknown-keys.yaml", 6, 5, "images.web.dockerFile", "did you mean \"dockerfile\""),
        // Bad enum values
        .at("46-rebuildstrategy-sometimes.yaml", 6, 22, "images.web.rebuildStrategy", "ignoreContextChanges"),
        .at("47-var-source-file.yaml", 5, 13, "vars.API_KEY.source", "\"file\""),
        .at("48-pipeline-flag-type-float.yaml", 8, 15, "pipelines.deploy.flags[0].type", "stringArray"),
        // DevSpace's rules (a missing key is reported at its parent's key)
        .at("49-missing-image.yaml", 4, 3, "images.web.image", "image is required"),
        .at("50-duplicate-image-value.yaml", 8, 12, "images.admin.image", "images.web"),
        .at("51-image-key-uppercase.yaml", 4, 3, "images.Web", "lowercase"),
        .at("52-image-key-underscore.yaml", 4, 3, "images.storefront_web", "lowercase"),
        .at("53-image-key-trailing-dash.yaml", 4, 3, "images.web-", "ending with a letter or digit"),
        .at("54-custom-without-command.yaml", 6, 5, "images.web.custom.command", "custom.command is required"),
        .at("55-empty-tag.yaml", 6, 12, "images.web.tags[0]", "must not be empty"),
        .at("56-deployment-helm-and-kubectl.yaml", 4, 3, "deployments.web", "helm and kubectl"),
        .at("57-deployment-without-kind.yaml", 4, 3, "deployments.web", "needs one of helm, kubectl or docker"),
        .at(
            "58-kubectl-without-manifests.yaml",
            5,
            5,
            "deployments.web.kubectl.manifests",
            "manifests or an inlineManifest"
        ),
        .at("59-dev-without-selector.yaml", 4, 3, "dev.web", "imageSelector or a labelSelector"),
        .at("60-dev-with-both-selectors.yaml", 4, 3, "dev.web", "not both"),
        .at(
            "61-docker-deployment-without-containers.yaml",
            5,
            5,
            "deployments.wiki.docker.containers",
            "at least one container"
        ),
        .at("62-docker-container-without-image.yaml", 7, 11, "deployments.wiki.docker.containers[0].image", "image"),
        .at("63-var-value-and-default.yaml", 4, 3, "vars.REGISTRY", "value and default"),
        .at("64-pipeline-flag-without-name.yaml", 7, 9, "pipelines.deploy.flags[0].name", "needs a name"),
        // Version and project name
        .at("65-missing-version.yaml", 1, 1, "version", "version is missing"),
        .at("66-version-v1beta11.yaml", 1, 10, "version", "devspace print --skip-info"),
        .at("67-version-v3.yaml", 1, 10, "version", "Unrecognized config version v3"),
        .at("68-invalid-project-name.yaml", 2, 7, "name", "not a valid project name"),
        // Profiles (selected through the .args file beside each)
        .at("69-unknown-profile.yaml", 6, 1, "profiles", "no profile named \"production\""),
        .at("70-profile-patch-missing-path.yaml", 17, 15, "profiles[production].patches[0].path", "does not exist"),
        .at("71-profile-patch-bad-op.yaml", 9, 13, "profiles[production].patches[0].op", "unknown op"),
        .at("72-profile-unknown-parent.yaml", 8, 13, "profiles[production].parent", "no profile named \"remote\""),
        .at("73-profile-parent-cycle.yaml", 7, 5, "profiles", "its own parent"),
        // Variables: reported where the value is used, or at the definition when that is wrong
        .at("74-undefined-variable.yaml", 7, 9, "images.web.tags[0]", "NOPE"),
        .at("75-var-question-unanswered.yaml", 9, 16, "deployments.web.namespace", "TARGET_ENV"),
        .at("76-env-var-unset-no-default.yaml", 9, 12, "images.web.tags[0]", "GITHUB_SHA"),
        .at("77-failing-var-command.yaml", 9, 12, "images.web.tags[0]", "status 3"),
        .at("78-self-referencing-var.yaml", 5, 14, "vars.VERSION.default", "itself"),
        // Imports
        .at("80-import-missing-file.yaml", 4, 11, "imports[0].path", "does not exist"),
        .at("81-import-from-git.yaml", 4, 10, "imports[0].git", "git"),
        // Whole-file problems
        .exactly(
            "82-empty-file.yaml",
            "82-empty-file.yaml:1:1: the file is empty; a devspace.yaml starts with `version: v2beta1`"
        ),
        .exactly(
            "83-only-comments.yaml",
            "83-only-comments.yaml:1:1: the file is empty; a devspace.yaml starts with `version: v2beta1`"
        ),
        .at("84-file-is-a-list.yaml", 1, 1, "", "map"),
        .at("85-file-is-a-plain-string.yaml", 1, 1, "", "map"),
        .at("86-two-documents.yaml", 6, 1, "", "second YAML document"),  // the `---`
    ]

    /// Invalid invocations kept beside their config: usage errors (exit 64), never a load.
    static let usageTable: [UsageCase] = [
        UsageCase(file: "79-var-without-equals.yaml", status: 64, stderrContains: "--var TAG")
    ]

    /// Arguments from the `.args` file beside `file`, if there is one.
    static func extraArguments(for file: String) -> [String] {
        let base = String(file.dropLast(".yaml".count))
        return ConfigFixtures.arguments(at: ConfigFixtures.invalidDirectory + "/" + base + ".args")
    }

    @Test(arguments: table)
    func reportsTheProblem(_ c: Malformed) throws {
        let args = ["print", "--config", c.file] + Self.extraArguments(for: c.file)
        let result = try SlipwayBinary.run(args, in: ConfigFixtures.invalidDirectory, timeout: 30)
        #expect(!result.crashed, "slipway crashed on \(c.file)")
        #expect(result.status == 1, "exit status for \(c.file); stderr: \(result.stderr)")
        #expect(result.stdout.isEmpty, "nothing is printed for a config that does not load")
        let first = ConfigFixtures.firstLine(result.stderr)
        switch c.expected {
        case .firstLine(let line):
            #expect(first == line)
        case .at(let line, let column, let path, let contains):
            let prefix = "\(c.file):\(line):\(column): " + (path.isEmpty ? "" : "\(path): ")
            #expect(first.hasPrefix(prefix), "expected \(prefix.debugDescription)…, got \(first.debugDescription)")
            #expect(first.contains(contains), "expected the message to contain \(contains.debugDescription): \(first)")
        }
    }

    @Test(arguments: usageTable)
    func refusesTheInvocation(_ c: UsageCase) throws {
        let args = ["print", "--config", c.file] + Self.extraArguments(for: c.file)
        let result = try SlipwayBinary.run(args, in: ConfigFixtures.invalidDirectory, timeout: 30)
        #expect(!result.crashed)
        #expect(result.status == c.status, "stderr: \(result.stderr)")
        #expect(result.stderr.contains(c.stderrContains), "stderr: \(result.stderr)")
        #expect(result.stdout.isEmpty)
    }

    @Test func everyInvalidFileIsInATable() {
        let listed = Set(Self.table.map(\.file) + Self.usageTable.map(\.file))
        let onDisk = Set(ConfigFixtures.invalidFiles)
        #expect(onDisk.count >= 60, "at least 60 malformed configs")
        #expect(onDisk.subtracting(listed).sorted() == [], "invalid files missing from the table")
        #expect(listed.subtracting(onDisk).sorted() == [], "table entries without a file")
        #expect(Self.table.count + Self.usageTable.count == listed.count, "a file is listed twice")

        // Every .args file belongs to a config.
        let all = (try? FileManager.default.contentsOfDirectory(atPath: ConfigFixtures.invalidDirectory)) ?? []
        for args in all where args.hasSuffix(".args") {
            #expect(onDisk.contains(String(args.dropLast(".args".count)) + ".yaml"), "\(args) has no config")
        }
    }
}

// MARK: - Hostile files, generated at test time

@Suite struct HostileConfigTests {
    /// A small deterministic generator (SplitMix64), so that the "random" files are the same on
    /// every run and a failure can be reproduced.
    struct SplitMix64: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    /// Writes `bytes` to `name` in a fresh temporary directory and runs `slipway print --config name`
    /// there; the run must end within 30 s, without a crash, with exit 1 and a `FILE:LINE:COL: ` line.
    @discardableResult
    static func expectRefused(_ name: String, _ bytes: [UInt8]) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("slipway-hostile-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try Data(bytes).write(to: dir.appendingPathComponent(name))

        let start = Date()
        let result = try SlipwayBinary.run(["print", "--config", name], in: dir.path, timeout: 30)
        let elapsed = Date().timeIntervalSince(start)
        #expect(elapsed < 30, "\(name): took \(elapsed) s")
        #expect(!result.crashed, "\(name): slipway crashed (or was killed after the time limit)")
        #expect(result.status == 1, "\(name): exit status; stderr: \(result.stderr.prefix(500))")
        let first = ConfigFixtures.firstLine(result.stderr)
        #expect(ConfigFixtures.hasPositionPrefix(first, file: name), "\(name): stderr: \(first.prefix(300))")
        #expect(result.stdout.isEmpty)
        return first
    }

    static let header = Array("version: v2beta1\nname: hostile\n".utf8)

    @Test func tenMegabytesOfComment() throws {
        var bytes = Self.header
        let line = Array("# \(String(repeating: "x", count: 97))\n".utf8)
        while bytes.count < 10 << 20 { bytes += line }
        try Self.expectRefused("huge-comment.yaml", bytes)
    }

    @Test func tenMegabyteScalar() throws {
        var bytes = Array("version: v2beta1\nname: hostile\nimages:\n  web:\n    image: ghcr.io/acme/".utf8)
        bytes += [UInt8](repeating: UInt8(ascii: "a"), count: 10 << 20)
        bytes += Array("\n".utf8)
        try Self.expectRefused("huge-scalar.yaml", bytes)
    }

    @Test func randomBinaryWithNULs() throws {
        var rng = SplitMix64(state: 0x5111_9A7E)
        var bytes = (0..<(64 << 10)).map { _ in UInt8.random(in: 0...255, using: &rng) }
        bytes[1000] = 0  // certainly one NUL
        try Self.expectRefused("garbage-with-nul.yaml", bytes)
    }

    @Test func randomBinaryWithoutNULs() throws {
        var rng = SplitMix64(state: 0xBADC_0FFE)
        let bytes = (0..<(64 << 10)).map { _ in UInt8.random(in: 1...255, using: &rng) }
        try Self.expectRefused("garbage.yaml", bytes)
    }

    @Test func hundredThousandOpenBrackets() throws {
        var bytes = Array("version: v2beta1\nname: hostile\nimages: ".utf8)
        bytes += [UInt8](repeating: UInt8(ascii: "["), count: 100_000)
        try Self.expectRefused("deep-flow.yaml", bytes)
    }

    @Test func hundredThousandBalancedBrackets() throws {
        var bytes = Array("version: v2beta1\nname: hostile\nimages: ".utf8)
        bytes += [UInt8](repeating: UInt8(ascii: "["), count: 100_000)
        bytes += [UInt8](repeating: UInt8(ascii: "]"), count: 100_000)
        bytes += Array("\n".utf8)
        try Self.expectRefused("deep-flow-balanced.yaml", bytes)
    }

    /// 5,000 levels of `a:` by two-space indentation: about 25 MB, so this also meets the size limit.
    @Test func fiveThousandLevelsByIndentation() throws {
        var text = "version: v2beta1\nname: hostile\nvars:\n"
        text.reserveCapacity(26 << 20)
        for depth in 1...5_000 { text += String(repeating: "  ", count: depth) + "a:\n" }
        try Self.expectRefused("deep-indent.yaml", Array(text.utf8))
    }

    /// Deeper than any real config yet small enough to be parsed: 1,500 levels by indentation.
    @Test func fifteenHundredLevelsByIndentation() throws {
        var text = "version: v2beta1\nname: hostile\nvars:\n"
        for depth in 1...1_500 { text += String(repeating: "  ", count: depth) + "a:\n" }
        try Self.expectRefused("deep-indent-small.yaml", Array(text.utf8))
    }

    /// 5,000 nested block sequences on one line (`- - - … x`).
    @Test func fiveThousandNestedBlockSequences() throws {
        let text = "version: v2beta1\nname: hostile\nvars:\n  A:\n    " + String(repeating: "- ", count: 5_000) + "x\n"
        try Self.expectRefused("deep-block-seq.yaml", Array(text.utf8))
    }

    @Test func billionLaughs() throws {
        var text = "version: v2beta1\nname: hostile\nvars:\n"
        text += "  L0: &l0 [\(Array(repeating: "\"lol\"", count: 9).joined(separator: ", "))]\n"
        for level in 1...8 {
            text +=
                "  L\(level): &l\(level) [\(Array(repeating: "*l\(level - 1)", count: 9).joined(separator: ", "))]\n"
        }
        text += "images:\n  web:\n    image: ghcr.io/acme/web\n    tags: *l8\n"
        try Self.expectRefused("billion-laughs.yaml", Array(text.utf8))
    }

    @Test func invalidUTF8() throws {
        let bytes = Array("version: v2beta1\nname: caf".utf8) + [0xE9] + Array("\n".utf8)
        try Self.expectRefused("latin1.yaml", bytes)
    }

    /// The position of an invalid byte is a line like any other: not 1:1 when it is on line 3.
    @Test func invalidUTF8IsReportedOnItsLine() throws {
        let bytes =
            Array("version: v2beta1\nname: storefront\nimages:\n  caf".utf8) + [0xE9, 0xFF]
            + Array(":\n    image: x\n".utf8)
        let first = try Self.expectRefused("latin1-key.yaml", bytes)
        #expect(ConfigFixtures.reportedLine(first, file: "latin1-key.yaml") == 4, "\(first)")
    }

    @Test func overlongUTF8AndSurrogates() throws {
        // An overlong encoding of "/" and a UTF-16 surrogate encoded as UTF-8: both invalid.
        let bytes = Array("version: v2beta1\nname: x".utf8) + [0xC0, 0xAF, 0xED, 0xA0, 0x80] + Array("\n".utf8)
        try Self.expectRefused("overlong.yaml", bytes)
    }
}

// MARK: - Usage errors

@Suite struct UsageErrorTests {
    static let directory = ConfigFixtures.validDirectory + "/storefront-helm"

    @Test func unknownFlag() throws {
        let result = try SlipwayBinary.run(["print", "--frobnicate"], in: Self.directory)
        #expect(!result.crashed)
        #expect(result.status == 64, "stderr: \(result.stderr)")
        #expect(result.stderr.contains("--frobnicate"), "stderr: \(result.stderr)")
        #expect(result.stdout.isEmpty)
    }

    @Test(arguments: [["--var", "TAG"], ["--var", "=1.0"], ["--var=TAG"]])
    func varWithoutKeyValue(_ args: [String]) throws {
        let result = try SlipwayBinary.run(["print"] + args, in: Self.directory)
        #expect(!result.crashed)
        #expect(result.status == 64, "stderr: \(result.stderr)")
        #expect(result.stderr.contains("--var"), "stderr: \(result.stderr)")
        #expect(result.stdout.isEmpty)
    }

    @Test func chdirToMissingDirectoryIsARuntimeError() throws {
        let result = try SlipwayBinary.run(["print", "--chdir", "/nonexistent"], in: Self.directory)
        #expect(!result.crashed)
        #expect(result.status == 1, "stderr: \(result.stderr)")
        #expect(result.stderr.contains("/nonexistent"), "stderr: \(result.stderr)")
        #expect(result.stdout.isEmpty)
    }

    @Test func unknownSubcommand() throws {
        let result = try SlipwayBinary.run(["frobnicate"], in: Self.directory)
        #expect(!result.crashed)
        #expect(result.status == 64, "stderr: \(result.stderr)")
        #expect(result.stderr.contains("frobnicate"), "stderr: \(result.stderr)")
        #expect(result.stdout.isEmpty)
    }

    @Test func debugAndSilentTogether() throws {
        let result = try SlipwayBinary.run(["validate", "--debug", "--silent"], in: Self.directory)
        #expect(!result.crashed)
        #expect(result.status == 64, "stderr: \(result.stderr)")
        #expect(result.stdout.isEmpty)
    }

    @Test func missingOptionValue() throws {
        let result = try SlipwayBinary.run(["print", "--config"], in: Self.directory)
        #expect(!result.crashed)
        #expect(result.status == 64, "stderr: \(result.stderr)")
    }
}
