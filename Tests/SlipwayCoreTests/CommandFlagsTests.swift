import Foundation
import SlipwayTestSupport
import Testing

@testable import SlipwayCore

/// DevSpace's command-line conventions decided in the core: pflag's booleans, `-t` values,
/// `--pipeline`, the notes for ignored flags, the kube context check and `--override-name`.
struct CommandFlagsTests {
    static let flags: [CommandFlags.Boolean] = [
        .init("force-build", short: "b"), .init("skip-push-local-kube", off: "no-skip-push-local-kube"),
        .init("debug"),
    ]

    @Test(arguments: [
        // Untouched when no boolean is given a value.
        (["deploy", "-b", "--debug"], ["deploy", "-b", "--debug"]),
        (["deploy", "-b=false"], ["deploy"]),
        (["deploy", "--force-build=false"], ["deploy"]),
        (["deploy", "-b=true"], ["deploy", "--force-build"]),
        (["deploy", "-b=1", "x"], ["deploy", "--force-build", "x"]),
        // The last one wins, where it stands.
        (["deploy", "-b", "--force-build=false"], ["deploy"]),
        (["deploy", "--force-build=false", "x", "-b"], ["deploy", "x", "--force-build"]),
        (["deploy", "-b=F", "--debug=True"], ["deploy", "--debug"]),
        // A default-on flag turned off gets its off spelling.
        (["deploy", "--skip-push-local-kube=false"], ["deploy", "--no-skip-push-local-kube"]),
        (
            ["deploy", "--no-skip-push-local-kube", "--skip-push-local-kube=true"],
            ["deploy", "--skip-push-local-kube"]
        ),
        // Unknown flags, values of other options and everything after `--` stay.
        (["deploy", "--other=false", "--", "-b=false"], ["deploy", "--other=false", "--", "-b=false"]),
        (["deploy", "-bd"], ["deploy", "-bd"]),
    ])
    func pflagBooleans(_ args: [String], _ expected: [String]) throws {
        #expect(try CommandFlags.normalizeBooleans(args, Self.flags) == expected)
    }

    /// The quick test that lets nearly every command line through untouched (and the flag
    /// tables unbuilt) says yes whenever a flag before `--` is given a value.
    @Test func onlyAFlagGivenAValueCanBeRewritten() {
        #expect(!CommandFlags.mayHaveValuedFlag(["build", "--silent", "-b", "app"]))
        #expect(!CommandFlags.mayHaveValuedFlag(["run-pipeline", "x", "--", "--force-build=false"]))
        #expect(!CommandFlags.mayHaveValuedFlag(["deploy", "a=b"]))
        #expect(CommandFlags.mayHaveValuedFlag(["deploy", "-b=false"]))
        #expect(CommandFlags.mayHaveValuedFlag(["deploy", "--var", "A=1", "--debug=true"]))
        // (`--var=A=1` says yes too: a needless full pass, never a missed rewrite.)
        #expect(CommandFlags.mayHaveValuedFlag(["deploy", "--var=A=1"]))
    }

    @Test func aBooleanWithAnotherValueIsAUsageError() {
        for arg in ["-b=maybe", "--force-build=", "--debug=yes"] {
            #expect {
                try CommandFlags.normalizeBooleans(["deploy", arg], Self.flags)
            } throws: { error in
                guard case .usage(let message) = error as? PipelineError else { return false }
                return message.hasPrefix(arg + ":") && message.contains("true or false")
            }
        }
    }

    @Test func commandLineTagsFollowDockersGrammar() throws {
        for tag in ["v1", "feature-login", "1.2.3_rc", "###", String(repeating: "a", count: 128)] {
            #expect(CommandFlags.tagProblem(tag, flag: "-t") == nil, "\(tag)")
        }
        let problem = try #require(CommandFlags.tagProblem("feature/login", flag: "-t"))
        #expect(problem.hasPrefix("-t feature/login: not a valid image tag"))
        #expect(problem.contains("docker's tag grammar"))
        #expect(problem.contains("-t feature-login"), "how to pass a branch")
        #expect(!problem.contains("SLIPWAY_BRANCH_TAG") && !problem.contains("images."), "no slipway-only advice")
        for tag in [".v1", "-v1", "a b", "ü", String(repeating: "a", count: 129)] {
            #expect(CommandFlags.tagProblem(tag, flag: "-t") != nil, "\(tag)")
        }
        #expect(CommandFlags.tags(["a, b", "c", ",,"]) == ["a", "b", "c"])
    }

    @Test func pipelineOption() throws {
        let (name, rest) = try PipelineFlagParser.extractPipelineOption(["--who", "me", "--pipeline", "x", "-b"])
        #expect(name == "x" && rest == ["--who", "me", "-b"])
        #expect(
            try PipelineFlagParser.extractPipelineOption(["--pipeline=y", "--", "--pipeline", "z"]).pipeline == "y"
        )
        for bad in [["--pipeline"], ["--pipeline="], ["--pipeline", "-b"]] {
            #expect {
                try PipelineFlagParser.extractPipelineOption(bad)
            } throws: { error in
                guard case .usage(let message) = error as? PipelineError else { return false }
                return message.hasPrefix("--pipeline") && !message.contains("Unknown option")
            }
        }
    }

    @Test func pipelineFlagsForHelp() {
        let rows = PipelineFlagParser.helpRows([
            .init(name: "who", short: "w", type: "string", defaultValue: .string("world"), description: "Who"),
            .init(name: "loud", short: nil, type: "bool", defaultValue: nil, description: nil),
        ])
        #expect(rows.map(\.label) == ["-w, --who <string>", "--loud"])
        #expect(rows.map(\.help) == ["Who (default: world)", "Flag loud"])
    }

    @Test func aPipelineBoolFlagTakesPflagsValues() throws {
        let declared: [PipelineConfig.Flag] = [
            .init(name: "loud", short: nil, type: "bool", defaultValue: nil, description: nil)
        ]
        #expect(try PipelineFlagParser.parse(["--loud=f"], declared: declared, pipeline: "p")["loud"] == "false")
        #expect(try PipelineFlagParser.parse(["--loud"], declared: declared, pipeline: "p")["loud"] == "true")
        #expect(throws: PipelineError.self) {
            try PipelineFlagParser.parse(["--loud=x"], declared: declared, pipeline: "p")
        }
    }

    @Test func ignoredFlagsAreSaidOnceWithTheirReason() {
        let notes = CommandFlags.notes([.showUI, .render, .skipDeploy, .forcePurge])
        #expect(notes.count == 3, "one line per reason: \(notes)")
        #expect(notes.allSatisfy { $0.hasPrefix("note: ") && $0.contains(" ignored here because ") })
        #expect(notes.contains { $0.hasPrefix("note: --render, --skip-deploy are ignored here because") })
        #expect(CommandFlags.notes([]).isEmpty)
    }

    // MARK: The kube context check (-s, --no-warn) and DevSpace's lastContext

    static let kubeconfig = """
        apiVersion: v1
        kind: Config
        current-context: CURRENT
        contexts:
        - name: ctx-a
          context: {cluster: c, namespace: ns-a}
        - name: ctx-b
          context: {cluster: c, namespace: ns-b}
        clusters:
        - name: c
          cluster: {server: "https://127.0.0.1:1"}
        """

    static func environment(_ dir: String, current: String) throws -> [String: String] {
        let path = dir + "/kubeconfig-\(current)"
        try kubeconfig.replacingOccurrences(of: "CURRENT", with: current)
            .write(toFile: path, atomically: true, encoding: .utf8)
        return ["KUBECONFIG": path, "HOME": dir]
    }

    @Test func switchContextAndNoWarn() throws {
        try withTemporaryDirectory { dir in
            let env = try Self.environment(dir, current: "ctx-b")
            let last = LastKubeContext(context: "ctx-a", namespace: "ns-x")
            func choose(
                _ s: Bool,
                _ noWarn: Bool,
                context: String? = nil,
                namespace: String? = nil
            ) -> KubeContextChoice {
                KubeContextChoice.choose(
                    context: context,
                    namespace: namespace,
                    last: last,
                    switchContext: s,
                    noWarn: noWarn,
                    environment: env
                )
            }
            let warned = choose(false, false)
            #expect(warned.context == nil && warned.target?.context == "ctx-b")
            #expect(
                warned.warning?.contains("kube context ctx-b is not the one this project last used (ctx-a)") == true
            )
            #expect(choose(false, true).warning == nil, "--no-warn")
            let switched = choose(true, false)
            #expect(switched.context == "ctx-a" && switched.namespace == "ns-x" && switched.warning == nil)
            #expect(switched.target == KubeTarget(context: "ctx-a", namespace: "ns-x", minikube: false, isLocal: false))
            // What the command line names is neither switched nor warned about.
            let explicit = choose(true, false, context: "ctx-b")
            #expect(explicit.context == "ctx-b" && explicit.warning == nil)
            // Same context, other namespace.
            let sameContext = KubeContextChoice.choose(
                context: nil,
                namespace: nil,
                last: LastKubeContext(context: "ctx-b", namespace: "ns-old"),
                switchContext: false,
                noWarn: false,
                environment: env
            )
            #expect(
                sameContext.warning?.contains("namespace ns-b is not the one this project last used (ns-old)") == true
            )
            // No cluster: nothing to check.
            let none = KubeContextChoice.choose(
                context: nil,
                namespace: nil,
                last: last,
                switchContext: true,
                noWarn: false,
                environment: ["HOME": dir]
            )
            #expect(none == KubeContextChoice(context: nil, namespace: nil, target: nil))
        }
    }

    @Test func lastContextIsDevSpacesKeyAndKeepsTheOthers() throws {
        try withTemporaryDirectory { dir in
            let config = dir + "/devspace.yaml"
            #expect(LastKubeContext.read(configPath: config) == nil)
            try FileManager.default.createDirectory(atPath: dir + "/.devspace", withIntermediateDirectories: true)
            try "vars:\n  A: b\nimages:\n  app:\n    tag: x\nlastContext:\n  context: old\n"
                .write(toFile: dir + "/.devspace/cache.yaml", atomically: true, encoding: .utf8)
            #expect(LastKubeContext.read(configPath: config) == LastKubeContext(context: "old", namespace: ""))
            #expect(LastKubeContext(context: "ctx-a", namespace: "ns-a").record(configPath: config) == nil)
            #expect(LastKubeContext.read(configPath: config) == LastKubeContext(context: "ctx-a", namespace: "ns-a"))
            let text = try String(contentsOfFile: dir + "/.devspace/cache.yaml", encoding: .utf8)
            #expect(text.contains("A: b") && text.contains("tag: x"), "\(text)")
        }
    }

    @Test func overrideNameReplacesTheProjectName() async throws {
        try await withTemporaryDirectory { dir in
            try
                "version: v2beta1\nname: demo\nvars:\n  N: ${DEVSPACE_NAME}\ndeployments:\n  app:\n    kubectl:\n      manifests: [\"k8s/${N}.yaml\"]\n"
                .write(toFile: dir + "/devspace.yaml", atomically: true, encoding: .utf8)
            var options = LoadOptions(workingDirectory: dir, environment: ["HOME": dir])
            options.overrideName = "other-name"
            let loaded = try await ConfigLoader.load(options)
            #expect(loaded.tree["name"]?.text == "other-name" && loaded.config.name == "other-name")
            #expect(loaded.tree["deployments"]?["app"]?["kubectl"]?["manifests"]?.strings == ["k8s/other-name.yaml"])
            options.overrideName = "__"
            await #expect {
                try await ConfigLoader.load(options)
            } throws: { error in
                (error as? ConfigError)?.diagnostics.first?.description.contains("name: --override-name __:") == true
            }
        }
    }

    struct NoOutput: PipelineOutput {
        func line(_ text: String) {}
        func note(_ text: String) {}
        func build(_ event: BuildEvent) {}
        func buildReport(_ report: BuildReport) {}
    }

    /// `--dependency` / `--skip-dependency` (the command line's defaults) select what
    /// run_dependencies runs, with its own --except/--only/names; slipway runs none yet, so a
    /// selected dependency is the error and an empty selection goes on.
    @Test func dependencySelectionOfRunDependencies() async throws {
        try await withTemporaryDirectory { dir in
            try "version: v2beta1\nname: deps\ndependencies:\n  a:\n    path: ./a\n  b:\n    path: ./b\n"
                .write(toFile: dir + "/devspace.yaml", atomically: true, encoding: .utf8)
            func status(_ args: [String], only: [String] = [], skip: [String] = []) async throws -> String {
                var defaults = PipelineState.FunctionDefaults()
                defaults.dependencies = only
                defaults.skipDependencies = skip
                let state = PipelineState(
                    configPath: dir + "/devspace.yaml",
                    workingDirectory: dir,
                    profiles: [],
                    disableProfileActivation: false,
                    namespace: nil,
                    kubeContext: nil,
                    vars: [],
                    defaults: defaults,
                    flags: [:],
                    stack: ["deploy"]
                )
                let functions = PipelineFunctions(
                    state: state,
                    directory: dir,
                    environment: ["HOME": dir],
                    executable: "/bin/false",
                    output: NoOutput()
                )
                do {
                    _ = try await functions.call("run_dependencies", args)
                    return "ran"
                } catch {
                    guard case .notSupported(let message) = error else { return "\(error)" }
                    return String(message.split(separator: "(").last ?? "")
                }
            }
            #expect(try await status(["--all"]) == "a, b; --skip-dependency NAME leaves one out)")
            #expect(try await status(["--all"], skip: ["a"]) == "b; --skip-dependency NAME leaves one out)")
            #expect(try await status(["--all"], skip: ["a", "b"]) == "ran")
            #expect(try await status(["--all"], only: ["b"]) == "b; --skip-dependency NAME leaves one out)")
            #expect(try await status(["--all"], only: ["c"]) == "ran")
            #expect(try await status(["--all", "--except", "a", "--exclude", "b"]) == "ran")
            #expect(try await status(["a"], skip: ["a"]) == "ran")
        }
    }
}
