import Foundation
import SlipwayTestSupport
import Testing

@testable import SlipwayCore

/// Values from outside the config — git, the environment, `--var`, a command's output, another
/// variable — are data: no `$(…)` in them ever runs, wherever they are used.
@Suite struct HostileValueTests {
    /// The config uses `V` (given from outside) and what derives from it in every position a
    /// value can reach: a whole value, part of a string, a key, inside a written `$(…)` (bare,
    /// double- and single-quoted), inside a variable's command, inside a custom build's script.
    static let config = """
        version: v2beta1
        name: hostile
        vars:
          FROM_COMMAND: $(printf '%s' "${V}")
          FROM_OTHER: ${V}
          FROM_OTHER_TEXT:
            value: pre-${V}-post
          VIA_COMMAND:
            command: echo ${V}
          VIA_ARGS:
            command: printf
            args: ["%s", "${V}"]
        images:
          app:
            image: acme/app
            custom:
              command: echo ${V} $(echo ${V}) > /dev/null
        deployments:
          web:
            helm:
              values:
                whole: ${V}
                part: a-${V}-b
                fromCommand: ${FROM_COMMAND}
                fromOther: ${FROM_OTHER}
                fromOtherText: ${FROM_OTHER_TEXT}
                viaCommand: ${VIA_COMMAND}
                viaArgs: ${VIA_ARGS}
                bare: $(printf '%s' ${V})
                doubleQuoted: $(printf '%s' "${V}")
                singleQuoted: $(printf '%s' '${V}')
                ${V}: key
        """

    enum Source: String, CaseIterable { case environment, cliVar, command, otherVariable }

    @Test(arguments: Source.allCases)
    func noValueEverRuns(source: Source) async throws {
        try await withTemporaryDirectory { dir in
            for (index, template) in hostileValues.enumerated() {
                let marker = "\(dir)/marker-\(index)"
                let value = template.replacingOccurrences(of: "MARKER", with: marker)
                var text = Self.config
                var env: [String: String] = [:]
                var vars: [(String, String)] = []
                switch source {
                case .environment: env["V"] = value
                case .cliVar: vars = [("V", value)]
                case .command:
                    // V is a command variable whose output is the hostile text.
                    env["HOSTILE"] = value
                    text = text.replacingOccurrences(of: "vars:\n", with: "vars:\n  V: $(printf '%s' \"$HOSTILE\")\n")
                case .otherVariable:
                    env["HOSTILE"] = value
                    text = text.replacingOccurrences(of: "vars:\n", with: "vars:\n  V: ${HOSTILE}\n")
                }
                let loaded = try await loadConfig(text, vars: vars, env: env)
                #expect(access(marker, F_OK) != 0, "\(source) \(value): a value ran as a command")
                let values = try #require(loaded.tree["deployments"]?["web"]?["helm"]?["values"])
                #expect(values["whole"]?.scalar == value, "\(source) \(value)")
                #expect(values["part"]?.scalar == "a-\(value)-b")
                #expect(values["fromCommand"]?.scalar == value)
                #expect(values["fromOther"]?.scalar == value)
                #expect(values["fromOtherText"]?.scalar == "pre-\(value)-post")
                #expect(values["viaArgs"]?.scalar == value)
                // Unquoted, the shell splits the value into words (as DevSpace's splice would);
                // `printf '%s'` joins them again.
                #expect(values["bare"]?.scalar == value.filter { $0 != " " })
                #expect(values["doubleQuoted"]?.scalar == value)
                #expect(values["singleQuoted"]?.scalar == value, "DevSpace's reading: the value inside the quotes")
                #expect(values[value]?.scalar == "key")
                // The custom script keeps the reference for the shell, which reads the value
                // from the environment at build time.
                let script = try #require(loaded.config.images.first?.custom?.command)
                #expect(script == "echo ${V} $(echo ${V}) > /dev/null")
                #expect(loaded.variables.contains { $0.0 == "V" && $0.1.environmentText == value })
            }
        }
    }

    /// DevSpace's common idiom keeps working: the branch is data inside the expression.
    @Test func branchIdiomStillSanitises() async throws {
        try await withTemporaryDirectory { dir in
            let git = ["git", "-C", dir, "-c", "user.name=t", "-c", "user.email=t@localhost"]
            #expect(try sh(git + ["init", "-q", "-b", "feature/x"], cwd: dir).status == 0)
            #expect(try sh(git + ["commit", "-q", "--allow-empty", "-m", "one"], cwd: dir).status == 0)
            let text = """
                version: v2beta1
                name: idiom
                images:
                  app:
                    image: acme/app
                    tags: ["$(echo ${DEVSPACE_GIT_BRANCH} | tr / -)", "${SLIPWAY_BRANCH_TAG}"]
                """
            try text.write(toFile: dir + "/devspace.yaml", atomically: true, encoding: .utf8)
            let options = LoadOptions(workingDirectory: dir, environment: ["PATH": "/usr/bin:/bin"])
            var loaded = try await ConfigLoader.load(options)
            #expect(loaded.config.images[0].tags == ["feature-x", "feature-x"])

            // A hostile branch: the idiom gives its text, the marker is never made.
            for (index, template) in hostileValues.enumerated() {
                let marker = "\(dir)/marker-\(index)"
                let branch = template.replacingOccurrences(of: "MARKER", with: marker)
                let checkout = try sh(git + ["checkout", "-q", "-b", branch], cwd: dir)
                guard checkout.status == 0 else { continue }  // a name git refuses cannot arrive
                do {
                    loaded = try await ConfigLoader.load(options)
                    Issue.record("\(branch): a tag with the branch's characters must be refused, not built")
                } catch let error as ConfigError {
                    #expect(error.diagnostics.first?.path == "images.app.tags[0]", "\(branch): \(error)")
                    #expect(error.diagnostics.first?.message.contains("is not a valid image tag") == true)
                }
                #expect(access(marker, F_OK) != 0, "\(branch): the branch name ran as a command")
                _ = try sh(git + ["checkout", "-q", "feature/x"], cwd: dir)
            }
        }
    }

    /// DevSpace's rule for a failing `$(…)`: only exit 1 with no output at all is `false`.
    @Test(arguments: [
        ("$(true)", "true"),
        ("$(false)", "false"),
        ("$(exit 1)", "false"),
        ("$(echo 0.1.0)", "0.1.0"),
        ("$(printf '')", "true"),
    ])
    func expressionResults(expression: String, expected: String) async throws {
        let loaded = try await loadConfig(
            """
            version: v2beta1
            name: expressions
            deployments:
              web:
                helm:
                  values:
                    v: "\(expression)"
            """
        )
        #expect(loaded.tree["deployments"]?["web"]?["helm"]?["values"]?["v"]?.scalar == expected)
    }

    @Test(arguments: [
        ("$(exit 3)", "failed with exit status 3"),
        ("$(missing-command-of-slipway)", "exit status 127"),
        ("$(sh -c 'exit 3')", "failed with exit status 3"),
        ("$(echo err >&2; exit 1)", "failed with exit status 1: err"),
        ("$(echo out; exit 1)", "failed with exit status 1: out"),
    ])
    func failingExpressionsAreLocatedErrors(expression: String, message: String) async throws {
        let errors = try await loadErrors(
            """
            version: v2beta1
            name: expressions
            images:
              app:
                image: acme/app
                tags: ["ok", "\(expression)"]
            """
        )
        let first = try #require(errors.first)
        #expect(first.mark == Mark(line: 6, column: 18))
        #expect(first.path == "images.app.tags[1]")
        #expect(first.message.contains(expression), "\(first.message)")
        #expect(first.message.contains(message), "\(first.message)")
    }

    /// `git describe` outside a repository and before the first commit is an error, never the
    /// tag `false`.
    @Test func gitExpressionsWithoutHistoryAreErrors() async throws {
        try await withTemporaryDirectory { dir in
            let text = """
                version: v2beta1
                name: nogit
                images:
                  app:
                    image: acme/app
                    tags: ["$(git describe --always)", "$(git rev-parse --short HEAD)", "$(git describe --always --dirty)"]
                """
            try text.write(toFile: dir + "/devspace.yaml", atomically: true, encoding: .utf8)
            let options = LoadOptions(workingDirectory: dir, environment: ["PATH": "/usr/bin:/bin"])
            for state in ["no repository", "no commit"] {
                if state == "no commit" { #expect(try sh(["git", "init", "-q"], cwd: dir).status == 0) }
                do {
                    let loaded = try await ConfigLoader.load(options)
                    Issue.record("\(state): loaded with tags \(loaded.config.images[0].tags)")
                } catch let error as ConfigError {
                    #expect(error.diagnostics.count == 3, "\(state): \(error)")
                    let first = try #require(error.diagnostics.first)
                    #expect(first.mark == Mark(line: 6, column: 12))
                    #expect(first.path == "images.app.tags[0]")
                    let expected = state == "no commit" ? "no commit yet" : "not in a git repository"
                    #expect(first.message.contains(expected), "\(first.message)")
                }
            }
        }
    }

    /// `L1: ${L0}×10 … L9`: 10^9 copies of L0. Bounded at 4 MiB of expanded text, reported at
    /// the definition where the bound was crossed.
    @Test func expansionBombEndsWithALocatedError() async throws {
        var lines = ["version: v2beta1", "name: bomb", "vars:", "  L0: \"0123456789\""]
        for level in 1...9 {
            lines.append("  L\(level): \"" + String(repeating: "${L\(level - 1)}", count: 10) + "\"")
        }
        lines += ["images:", "  app:", "    image: acme/app", "    tags: [\"${L9}\"]"]
        let started = ContinuousClock.now
        let errors = try await loadErrors(lines.joined(separator: "\n"))
        #expect(ContinuousClock.now - started < .seconds(10))
        let first = try #require(errors.first)
        #expect(first.message.contains("more than 4 MiB"), "\(first.message)")
        #expect(first.path.hasPrefix("vars.L"), "\(first.path)")
        #expect(first.mark.line >= 5 && first.mark.line <= 13)
    }

    /// A tag or image name that `build` would refuse is refused by loading (so by `validate`
    /// and `print` too), at its place; rules see values after variables.
    @Test func rulesSeeVariablesValues() async throws {
        let text = """
            version: v2beta1
            name: ${NAME}
            images:
              app:
                image: ${IMAGE}
                tags: ["${TAG}"]
            """
        var errors = try await loadErrors(text, vars: [("NAME", "Abc"), ("IMAGE", "acme/app"), ("TAG", "ok")])
        #expect(errors.map(\.path) == ["name"])
        #expect(errors.first?.mark == Mark(line: 2, column: 7))
        errors = try await loadErrors(text, vars: [("NAME", "abc"), ("IMAGE", "Acme/App"), ("TAG", "feature/x")])
        #expect(errors.map(\.path) == ["images.app.image", "images.app.tags[0]"])
        #expect(errors.first?.message.contains("lowercase") == true)
        #expect(errors.last?.message.contains("${SLIPWAY_BRANCH_TAG}") == true)
        errors = try await loadErrors(text, vars: [("NAME", "abc"), ("IMAGE", "acme/app:"), ("TAG", "ok")])
        #expect(errors.map(\.path) == ["images.app.image"] || errors.map(\.path) == ["images.app.tags[0]"])
        let loaded = try await loadConfig(
            text,
            vars: [("NAME", "abc"), ("IMAGE", "127.0.0.1:5000/acme/my_app.v2"), ("TAG", "v1.0-3-gabc")]
        )
        #expect(loaded.config.images[0].image == "127.0.0.1:5000/acme/my_app.v2")
    }

    @Test func invalidActivationPatternIsALocatedError() async throws {
        let errors = try await loadErrors(
            """
            version: v2beta1
            name: activation
            profiles:
              - name: one
                activation:
                  - env:
                      MODE: "(["
                merge:
                  images: {}
            """
        )
        #expect(errors.map(\.path) == ["profiles[0].activation[0].env.MODE"])
        #expect(errors.first?.mark == Mark(line: 7, column: 17))
        #expect(errors.first?.message.contains("not a valid regular expression") == true)
    }

    @Test(arguments: [
        "nginx", "acme/app", "ghcr.io/acme/app", "localhost:5000/app", "127.0.0.1:5000/a/b", "a__b", "a--b/c.d",
        "Registry.Example.com/app",
    ])
    func validRepositories(name: String) {
        #expect(DockerReference.isValidRepository(name))
    }

    @Test(arguments: ["App", "acme/App", "a/", "/a", "a//b", "-a", "a-", "a_", "a b", "a:5000", "host:port/a", "a...b"])
    func invalidRepositories(name: String) {
        #expect(!DockerReference.isValidRepository(name))
    }
}
