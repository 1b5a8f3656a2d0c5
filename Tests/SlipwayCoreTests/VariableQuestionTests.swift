import Foundation
import SlipwayTestSupport
import Testing

@testable import SlipwayCore

/// Answers questions from a script and records what was asked (the loader's callback).
final class ScriptedAsker: @unchecked Sendable {
    // `@unchecked Sendable`: `answers` and `asked` are only touched under `lock`.
    private let lock = NSLock()
    private var answers: [String?]
    private(set) var asked: [VariableQuestion] = []

    init(_ answers: [String?]) { self.answers = answers }

    var questions: [VariableQuestion] { lock.withLock { asked } }

    var asker: VariableAsker {
        { [self] question in
            lock.withLock {
                asked.append(question)
                return answers.isEmpty ? nil : answers.removeFirst()
            }
        }
    }
}

/// Loads `text` as `devspace.yaml` in `dir` with `asker`.
func load(
    _ text: String,
    in dir: String,
    ask: VariableAsker? = nil,
    env: [String: String] = [:],
    vars: [(String, String)] = []
) async throws -> LoadedConfig {
    try text.write(toFile: dir + "/devspace.yaml", atomically: true, encoding: .utf8)
    var environment = ["PATH": "/usr/bin:/bin", "HOME": "/nonexistent-home"]
    for (k, v) in env { environment[k] = v }
    return try await ConfigLoader.load(
        LoadOptions(workingDirectory: dir, environment: environment, vars: vars, ask: ask)
    )
}

@Suite struct UndefinedVariableTests {
    /// DevSpace v6 (`variable/resolver.go`): a `${NAME}` that is not defined, not predefined,
    /// not a `--var` and not set in the environment is not a variable and stays as written.
    @Test func referencesThatAreNoVariablesStayAsWritten() async throws {
        let loaded = try await loadConfig(
            """
            version: v2beta1
            name: undefined
            vars:
              WITH_UNDEFINED:
                default: ${NOT_DEFINED_A}/suffix
            deployments:
              web:
                helm:
                  chart:
                    name: ./chart
                  values:
                    whole: ${SHELL_STYLE}
                    forced: $!{FORCED_UNDEFINED}
                    inside: "pre-${INSIDE}-post and ${FROM_ENV}"
                    predefined: ${DEVSPACE_NAME}
                    escaped: $${ESCAPED}
                    viaVar: ${WITH_UNDEFINED}
                    expression: $(echo "[${NOT_SET_IN_SHELL}]")
                    command: echo ${HOME_DIR} && exit 0
            """,
            env: ["FROM_ENV": "env-value"]
        )
        let values = try #require(loaded.tree["deployments"]?["web"]?["helm"]?["values"])
        #expect(values["whole"]?.text == "${SHELL_STYLE}")
        #expect(values["forced"]?.text == "${FORCED_UNDEFINED}", "DevSpace returns ${NAME} without the !")
        #expect(values["inside"]?.text == "pre-${INSIDE}-post and env-value")
        #expect(values["predefined"]?.text == "undefined")
        #expect(values["escaped"]?.text == "${ESCAPED}")
        #expect(values["viaVar"]?.text == "${NOT_DEFINED_A}/suffix")
        // In a `$(…)` the reference reaches the shell as written: an unset variable is empty.
        #expect(values["expression"]?.text == "[]")
        #expect(values["command"]?.text == "echo ${HOME_DIR} && exit 0")
        // Variables that are not variables are not exported to pipelines either.
        #expect(!loaded.variables.contains { $0.0 == "SHELL_STYLE" })
    }

    /// A value that fails a rule because of a reference left as written says so.
    @Test func aRuleFailureNamesTheReferenceLeftAsWritten() async throws {
        let diagnostics = try await loadErrors(
            """
            version: v2beta1
            name: undefined
            images:
              app:
                image: ${IMAGE_REPO}
            """
        )
        let first = try #require(diagnostics.first)
        #expect(first.path == "images.app.image" && first.mark == Mark(line: 5, column: 12), "\(first)")
        #expect(first.message.contains("${IMAGE_REPO} is not a variable"), "\(first.message)")
    }
}

@Suite struct VariableQuestionTests {
    static let config = """
        version: v2beta1
        name: questions
        vars:
          MYSQL_VERSION:
            question: Which mysql version do you want to use?
            default: "5.7"
          TARGET:
            question: Where to?
            options: [dev, staging, production]
        images:
          db:
            image: mysql
            tags: ["${MYSQL_VERSION}"]
        deployments:
          web:
            namespace: shop-${TARGET}
            helm:
              chart:
                name: ./chart
              values:
                again: ${TARGET}-${MYSQL_VERSION}
        """

    /// Without a terminal (no asker) the default is used, as DevSpace does; nothing is written.
    @Test func withoutATerminalTheDefaultIsTaken() async throws {
        try await withTemporaryDirectory { dir in
            let loaded = try await load(Self.config, in: dir, vars: [("TARGET", "dev")])
            #expect(loaded.config.images.first?.tags == ["5.7"])
            #expect(!FileManager.default.fileExists(atPath: dir + "/.devspace/cache.yaml"))
        }
    }

    /// Without a terminal and without a default: the clear error at the value's place.
    @Test func withoutATerminalAndADefaultTheErrorNamesTheQuestion() async throws {
        try await withTemporaryDirectory { dir in
            do {
                _ = try await load(Self.config, in: dir)
                Issue.record("expected an error")
            } catch let error as ConfigError {
                let first = try #require(error.diagnostics.first)
                #expect(first.path == "deployments.web.namespace" && first.mark == Mark(line: 16, column: 16))
                #expect(first.message.contains("needs an answer to \"Where to?\""), "\(first.message)")
                #expect(first.message.contains("no terminal"), "\(first.message)")
            }
        }
    }

    /// On a terminal each question is asked once per load, with its default and options; the
    /// answers are remembered in DevSpace's vars cache, other keys of the file kept; the next
    /// load asks nothing.
    @Test func askedOnceAndRemembered() async throws {
        try await withTemporaryDirectory { dir in
            try FileManager.default.createDirectory(atPath: dir + "/.devspace", withIntermediateDirectories: true)
            let cacheFile = dir + "/.devspace/cache.yaml"
            try "images:\n  db:\n    imageName: mysql\n    tag: abc\nlastContext:\n  context: kind-dev\n".write(
                toFile: cacheFile,
                atomically: true,
                encoding: .utf8
            )
            let first = ScriptedAsker(["8.0", "qa", "staging"])
            let loaded = try await load(Self.config, in: dir, ask: first.asker)
            // "qa" is not an option: the question is asked again with the reason.
            let asked = first.questions
            #expect(asked.map(\.variable) == ["MYSQL_VERSION", "TARGET", "TARGET"])
            #expect(asked[0].defaultValue == "5.7" && asked[0].text == "Which mysql version do you want to use?")
            #expect(asked[1].options == ["dev", "staging", "production"])
            #expect(asked[1].defaultValue == "dev", "a choice without a default preselects the first option")
            #expect(asked[2].problem == "choose one of: dev, staging, production")
            #expect(loaded.config.images.first?.tags == ["8.0"])
            #expect(loaded.tree["deployments"]?["web"]?["namespace"]?.text == "shop-staging")
            #expect(loaded.tree["deployments"]?["web"]?["helm"]?["values"]?["again"]?.text == "staging-8.0")

            let cache = try #require(try YAMLParser().parse(String(contentsOfFile: cacheFile, encoding: .utf8)))
            #expect(cache["vars"]?["MYSQL_VERSION"]?.text == "8.0")
            #expect(cache["vars"]?["TARGET"]?.text == "staging")
            #expect(cache["images"]?["db"]?["tag"]?.text == "abc", "other keys are kept")
            #expect(cache["lastContext"]?["context"]?.text == "kind-dev")
            #expect(AtomicFile.existingMode(of: cacheFile) == 0o644, "no password: the mode is kept")

            let second = ScriptedAsker([])
            let again = try await load(Self.config, in: dir, ask: second.asker)
            #expect(second.questions.isEmpty, "remembered answers are not asked again")
            #expect(again.config.images.first?.tags == ["8.0"])
            // Without a terminal the remembered answer wins over the default too.
            let unattended = try await load(Self.config, in: dir)
            #expect(unattended.config.images.first?.tags == ["8.0"])
        }
    }

    /// An empty answer takes the default; an answer takes the default's type; a pattern is
    /// checked and the question asked again with the validation message.
    @Test func defaultsTypesAndValidation() async throws {
        try await withTemporaryDirectory { dir in
            let config = """
                version: v2beta1
                name: questions
                vars:
                  REPLICAS:
                    question: How many replicas?
                    default: 2
                    validationPattern: ^[0-9]+$
                    validationMessage: a number, please
                  REGION:
                    default: eu-west-1
                deployments:
                  web:
                    helm:
                      chart:
                        name: ./chart
                      values:
                        replicas: ${REPLICAS}
                        region: ${REGION}
                """
            let asker = ScriptedAsker(["three", "3", ""])
            let loaded = try await load(config, in: dir, ask: asker.asker)
            let questions = asker.questions
            #expect(questions.map(\.variable) == ["REPLICAS", "REPLICAS", "REGION"])
            #expect(questions[1].problem == "a number, please")
            // DevSpace asks for a variable with only a default on a terminal, too.
            #expect(questions[2].text == "Please enter a value for REGION" && questions[2].defaultValue == "eu-west-1")
            let values = try #require(loaded.tree["deployments"]?["web"]?["helm"]?["values"])
            #expect(values["replicas"]?.text == "3" && values["replicas"]?.resolved == .int)
            #expect(values["region"]?.text == "eu-west-1")
        }
    }

    /// A password answer is masked in print, makes the cache file 0600, and a `noCache`
    /// answer is not remembered at all.
    @Test func passwordsAndNoCache() async throws {
        try await withTemporaryDirectory { dir in
            let config = """
                version: v2beta1
                name: questions
                vars:
                  TOKEN:
                    question: Registry token?
                    password: true
                  ONCE:
                    question: One-time code?
                    noCache: true
                deployments:
                  web:
                    helm:
                      chart:
                        name: ./chart
                      values:
                        auth: "bearer ${TOKEN}"
                        code: ${ONCE}
                """
            let asker = ScriptedAsker(["s3cr3t-t0ken", "424242"])
            let loaded = try await load(config, in: dir, ask: asker.asker)
            #expect(asker.questions.first?.isPassword == true)
            #expect(loaded.secretValues == ["s3cr3t-t0ken"])
            let cacheFile = dir + "/.devspace/cache.yaml"
            #expect(AtomicFile.existingMode(of: cacheFile) == 0o600)
            let cache = try String(contentsOfFile: cacheFile, encoding: .utf8)
            #expect(cache.contains("TOKEN: s3cr3t-t0ken") && !cache.contains("424242"), "\(cache)")
            let printed = try YAMLEmitter().emit(ConfigPrinter.devspaceForm(loaded))
            #expect(!printed.contains("s3cr3t-t0ken") && printed.contains("bearer ********"), "\(printed)")

            // The build cache's own updates of the file keep it 0600.
            try await BuildCache(configPath: dir + "/devspace.yaml").recordBuilds([
                "web": ImageCacheEntry(imageName: "acme/web", tag: "t1")
            ])
            #expect(AtomicFile.existingMode(of: cacheFile) == 0o600)
            #expect(try String(contentsOfFile: cacheFile, encoding: .utf8).contains("TOKEN: s3cr3t-t0ken"))

            // noCache: asked again on the next load.
            let next = ScriptedAsker(["777777"])
            _ = try await load(config, in: dir, ask: next.asker)
            #expect(next.questions.map(\.variable) == ["ONCE"])
        }
    }

    /// The end of input is an error that says how to give the value instead.
    @Test func noAnswerIsAClearError() async throws {
        try await withTemporaryDirectory { dir in
            do {
                _ = try await load(Self.config, in: dir, ask: ScriptedAsker([]).asker)
                Issue.record("expected an error")
            } catch let error as ConfigError {
                let first = try #require(error.diagnostics.first)
                #expect(first.path == "images.db.tags[0]", "\(first)")
                #expect(first.message.contains("got no answer") && first.message.contains("--var MYSQL_VERSION="))
            }
        }
    }

    /// DevSpace's release builds encrypt remembered answers (`varsEncrypted: true`); slipway
    /// cannot read those, asks again and says why; answers it can read are used.
    @Test func encryptedAnswersAreAskedAgain() async throws {
        try await withTemporaryDirectory { dir in
            try FileManager.default.createDirectory(atPath: dir + "/.devspace", withIntermediateDirectories: true)
            try "vars:\n  MYSQL_VERSION: q83vEjRWeJASNFZ4kBI0Vnh5gA==\n  TARGET: prod-eu\nvarsEncrypted: true\n".write(
                toFile: dir + "/.devspace/cache.yaml",
                atomically: true,
                encoding: .utf8
            )
            let asker = ScriptedAsker(["8.0"])
            let loaded = try await load(Self.config, in: dir, ask: asker.asker)
            #expect(asker.questions.map(\.variable) == ["MYSQL_VERSION"])
            #expect(loaded.tree["deployments"]?["web"]?["namespace"]?.text == "shop-prod-eu")
            #expect(
                loaded.notes.contains { $0.contains("encrypted") && $0.contains("MYSQL_VERSION") },
                "\(loaded.notes)"
            )
        }
    }

    /// `VariablesCache.clear` (`slipway reset vars`) removes the answers and keeps the rest.
    @Test func resetForgetsTheAnswersOnly() async throws {
        try await withTemporaryDirectory { dir in
            try FileManager.default.createDirectory(atPath: dir + "/.devspace", withIntermediateDirectories: true)
            let file = dir + "/.devspace/cache.yaml"
            try "vars:\n  A: one\n  B: two\nimages:\n  app:\n    tag: t1\n".write(
                toFile: file,
                atomically: true,
                encoding: .utf8
            )
            let cache = VariablesCache(configPath: dir + "/devspace.yaml")
            #expect(try cache.read().values == ["A": "one", "B": "two"])
            #expect(try cache.clear() == 2)
            #expect(try cache.read().values.isEmpty)
            #expect(try String(contentsOfFile: file, encoding: .utf8).contains("tag: t1"))
            #expect(try cache.clear() == 0)
        }
    }
}

@Suite struct ConfigVersionTests {
    /// An old config gets the version message, not the type errors of its v1 keys.
    @Test func anOldVersionIsReportedBeforeItsKeys() async throws {
        let diagnostics = try await loadErrors(
            """
            version: v1beta11
            name: old
            images:
              web:
                image: acme/web
                build:
                  docker:
                    skipPush: true
            deployments:
              - name: web
                helm:
                  componentChart: true
            """
        )
        #expect(diagnostics.count == 1, "\(diagnostics)")
        let first = try #require(diagnostics.first)
        #expect(first.path == "version" && first.mark == Mark(line: 1, column: 10))
        #expect(
            first.message.contains("DevSpace 5's config format") && first.message.contains("devspace print --skip-info")
        )
    }

    @Test func anUnknownVersionGetsDevSpacesMessage() async throws {
        let first = try #require(try await loadErrors("version: v3\nname: new\n").first)
        #expect(
            first.message.hasPrefix("Unrecognized config version v3. Please upgrade devspace with `devspace upgrade`")
        )
    }
}

@Suite struct ImageNameCaseTests {
    /// Docker (distribution v2.8, which DevSpace 6 uses) reads a first part without `.`/`:` as a
    /// Docker Hub namespace, so `Acme/app` has capitals in its repository path.
    @Test(arguments: ["Acme/app", "ghcr.io/Acme/app", "APP"])
    func upperCaseRepositoriesAreRefused(_ name: String) async throws {
        let first = try #require(
            try await loadErrors("version: v2beta1\nname: upper\nimages:\n  app:\n    image: \(name)\n").first
        )
        #expect(first.path == "images.app.image" && first.mark == Mark(line: 5, column: 12), "\(first)")
        #expect(first.message.contains("repository name must be lowercase"), "\(first.message)")
    }

    @Test func anUpperCaseRegistryHostIsAccepted() async throws {
        let loaded = try await loadConfig(
            "version: v2beta1\nname: upper\nimages:\n  app:\n    image: Ghcr.io/acme/app\n"
        )
        #expect(loaded.config.images.first?.image == "Ghcr.io/acme/app")
    }
}
