import ArgumentParser
import Foundation
import SlipwayCore
import SlipwayTestSupport
import Testing

@testable import SlipwayCLI

/// DevSpace's flags, each with its DevSpace effect or its one-line note, parsed and run
/// in-process as the binary parses and runs them (`SlipwayCommand.parseCommandLine`), plus
/// the help of every command; a few checks through the binary.
@Suite struct DevSpaceFlagsTests {
    /// A project whose pipelines write what ran into `ran.txt`, and whose config shows the
    /// kube context and the project's name where `print` shows them.
    static func project(_ dir: String) throws {
        try """
        version: v2beta1
        name: flags-test
        deployments:
          app:
            kubectl:
              manifests:
                - k8s/${DEVSPACE_NAME}.yaml
          where:
            kubectl:
              manifests:
                - k8s/${DEVSPACE_CONTEXT}/${DEVSPACE_NAMESPACE}.yaml
        pipelines:
          deploy: echo deploy >> ran.txt
          purge: echo purge >> ran.txt
          build: echo build >> ran.txt
          marker:
            run: echo "marker $1" >> ran.txt
            flags:
              - name: who
                short: w
                type: string
                default: world
                description: Who to greet
          show: create_deployments app --render
        """.write(toFile: dir + "/devspace.yaml", atomically: true, encoding: .utf8)
        try FileManager.default.createDirectory(atPath: dir + "/k8s", withIntermediateDirectories: true)
        for (name, value) in [("flags-test", "from-config"), ("other-name", "from-override")] {
            try "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: \(value)\n"
                .write(toFile: dir + "/k8s/\(name).yaml", atomically: true, encoding: .utf8)
        }
        for current in ["ctx-a", "ctx-b"] {
            try """
            apiVersion: v1
            kind: Config
            current-context: \(current)
            contexts:
            - name: ctx-a
              context: {cluster: c, namespace: ns-a}
            - name: ctx-b
              context: {cluster: c, namespace: ns-b}
            clusters:
            - name: c
              cluster: {server: "https://127.0.0.1:1"}
            """.write(toFile: dir + "/\(current).kubeconfig", atomically: true, encoding: .utf8)
        }
    }

    static func parse<T: ParsableCommand>(_ args: [String], as type: T.Type = T.self) throws -> T {
        let parsed = try SlipwayCommand.parseCommandLine(args)
        return try #require(parsed as? T, "\(args) parsed as \(Swift.type(of: parsed))")
    }

    /// The manifests of deployment `name` as the config loads (what `print` shows).
    static func manifests(_ loaded: LoadedConfig, _ name: String) -> [String] {
        loaded.tree["deployments"]?[name]?["kubectl"]?["manifests"]?.strings ?? []
    }

    static func ran(_ dir: String) -> String {
        (try? String(contentsOfFile: dir + "/ran.txt", encoding: .utf8)) ?? ""
    }

    // MARK: Help

    @Test func everyPipelineCommandShowsItsOwnHelpWithoutAConfig() async throws {
        try await withTemporaryDirectory { dir in
            for (args, usage) in [
                (["deploy", "--help"], "slipway deploy"), (["deploy", "-h"], "slipway deploy"),
                (["deploy", "-b", "--help"], "slipway deploy"), (["render", "--help"], "slipway render"),
                (["purge", "-h"], "slipway purge"), (["run-pipeline", "anything", "--help"], "slipway run-pipeline"),
                (["run-pipeline", "--help"], "slipway run-pipeline"), (["build", "--help"], "slipway build"),
            ] {
                let r = try SlipwayBinary.run(args, in: dir)
                #expect(r.status == 0, "\(args): \(r.stderr)")
                #expect(r.stdout.hasPrefix("OVERVIEW: ") && r.stdout.contains("USAGE: \(usage) "), "\(args)")
                #expect(!r.stdout.contains("pipeline_flags") && r.stderr.isEmpty, "\(args): \(r.stderr)")
            }
            // In-process: the command sees the request and renders its own help.
            let deploy: SlipwayCommand.Deploy = try Self.parse(["deploy", "-C", dir, "--help"])
            #expect(PipelineCommand.asksForHelp(deploy.pipelineFlags))
            let help = await PipelineCommand.help(SlipwayCommand.Deploy.self, pipeline: "deploy", global: deploy.global)
            #expect(help.contains("USAGE: slipway deploy [<options>]") && !help.contains("PIPELINE FLAGS"))
        }
    }

    /// As DevSpace's: the pipeline's own flags are listed when the config loads.
    @Test func runPipelineHelpListsThePipelinesOwnFlags() async throws {
        try await withTemporaryDirectory { dir in
            try Self.project(dir)
            let run: SlipwayCommand.RunPipeline = try Self.parse(["run-pipeline", "-C", dir, "marker", "--help"])
            let help = await PipelineCommand.help(
                SlipwayCommand.RunPipeline.self,
                pipeline: run.name,
                global: run.global
            )
            #expect(help.contains("PIPELINE FLAGS (pipelines.marker.flags of devspace.yaml):"), "\(help)")
            #expect(help.contains("  -w, --who <string>      Who to greet (default: world)"), "\(help)")
            let r = try SlipwayBinary.run(["run-pipeline", "marker", "--help"], in: dir)
            #expect(r.status == 0 && r.stdout.contains("-w, --who <string>"), "\(r.stderr)")
            // A config that does not load: the generic help, and why the flags are missing.
            try "version: v2beta1\nname: x\nimages: 3\n".write(
                toFile: dir + "/devspace.yaml",
                atomically: true,
                encoding: .utf8
            )
            let broken = try SlipwayBinary.run(["run-pipeline", "marker", "-h"], in: dir)
            #expect(broken.status == 0 && broken.stdout.contains("USAGE: slipway run-pipeline"))
            #expect(broken.stdout.contains("devspace.yaml did not load, so pipeline marker's own flags are not listed"))
        }
    }

    /// Every command's help wraps as swift-argument-parser wraps: no line over 80 columns, and
    /// no paragraph of the overview broken before the margin (the text is not pre-broken).
    @Test func helpTextsFillEightyColumns() throws {
        func commands(_ command: any ParsableCommand.Type) -> [any ParsableCommand.Type] {
            let c = command.configuration
            guard c.shouldDisplay else { return [] }
            return [command] + c.subcommands.flatMap(commands)
        }
        let all = commands(SlipwayCommand.self)
        #expect(all.count >= 20)
        for command in all {
            let help = SlipwayCommand.helpMessage(for: command, columns: 80)
            let name = command.configuration.commandName ?? "slipway"
            for line in help.split(separator: "\n") {
                #expect(line.count <= 80, "\(name): \(line.count) columns: \(line)")
            }
            let overview = help.components(separatedBy: "\nUSAGE:").first ?? ""
            for paragraph in overview.components(separatedBy: "\n\n") {
                let lines = paragraph.split(separator: "\n")
                for line in lines.dropLast() {
                    #expect(line.count >= 60, "\(name): a ragged line (\(line.count) columns): \(line)")
                }
            }
        }
        // In a pipe (no COLUMNS, no terminal): the same 80 columns.
        let r = try SlipwayBinary.run(["deploy", "--help"], in: "/")
        #expect(r.stdout.split(separator: "\n").allSatisfy { $0.count <= 80 }, "\(r.stdout)")
    }

    // MARK: pflag's booleans

    @Test func booleansTakePflagsValues() throws {
        let off: SlipwayCommand.Deploy = try Self.parse(["deploy", "-b=false"])
        #expect(!off.flags.forceBuild && !off.flags.defaults.forceRebuild, "-b=false does not force a build")
        let last: SlipwayCommand.Deploy = try Self.parse(["deploy", "-b", "--force-build=false"])
        #expect(!last.flags.forceBuild, "the last one wins")
        let on: SlipwayCommand.Deploy = try Self.parse(["deploy", "--force-build=false", "-b=true"])
        #expect(on.flags.defaults.forceRebuild)
        let build: SlipwayCommand.Build = try Self.parse(["build", "-b=false", "--json=true"])
        #expect(!build.flags.forceBuild && build.json)
        let local: SlipwayCommand.Render = try Self.parse(["render", "--skip-push-local-kube=false"])
        #expect(!local.flags.defaults.skipPushLocalKube)
        let run: SlipwayCommand.RunPipeline = try Self.parse(["run-pipeline", "x", "--render=true", "-d=0"])
        #expect(run.pipelineFlags == ["--render"], "after the name too")
        // Every boolean of the pipeline commands and the global ones takes both values.
        for flag in GlobalOptions.booleans + PipelineFlags.booleans {
            for value in ["true", "false"] {
                #expect(throws: Never.self, "--\(flag.long)=\(value)") {
                    _ = try SlipwayCommand.parseCommandLine(["deploy", "--\(flag.long)=\(value)"])
                }
            }
        }
        for args in [["deploy", "-b=maybe"], ["build", "--json=2"]] {
            #expect(throws: (any Error).self, "\(args)") { try SlipwayCommand.parseCommandLine(args) }
            do { _ = try SlipwayCommand.parseCommandLine(args) } catch {
                #expect(SlipwayCommand.exitCode(for: error).rawValue == 64, "\(args)")
                #expect(SlipwayCommand.message(for: error).contains("is not a boolean"), "\(args)")
            }
        }
    }

    // MARK: Global flags

    @Test func kubeconfigChangesDevSpaceContext() async throws {
        try await withTemporaryDirectory { dir in
            try Self.project(dir)
            for path in [dir + "/ctx-b.kubeconfig", "ctx-b.kubeconfig"] {
                let print: SlipwayCommand.Print = try Self.parse(["print", "-C", dir, "--kubeconfig", path])
                #expect(try print.global.environment()["KUBECONFIG"] == dir + "/ctx-b.kubeconfig")
                let loaded = try await print.global.load()
                #expect(Self.manifests(loaded, "where") == ["k8s/ctx-b/ns-b.yaml"], "\(path)")
            }
            let r = try SlipwayBinary.run(
                ["print", "--kubeconfig", "ctx-b.kubeconfig"],
                in: dir,
                env: ["KUBECONFIG": dir + "/ctx-a.kubeconfig"]
            )
            #expect(r.status == 0 && r.stdout.contains("k8s/ctx-b/ns-b.yaml"), "\(r.stderr)")
            let missing = try SlipwayBinary.run(["print", "--kubeconfig", "nope"], in: dir)
            #expect(missing.status == 1 && missing.stderr == "--kubeconfig nope: no such file\n")
        }
    }

    @Test func overrideNameChangesName() async throws {
        try await withTemporaryDirectory { dir in
            try Self.project(dir)
            let print: SlipwayCommand.Print = try Self.parse(["print", "-C", dir, "--override-name", "other-name"])
            let loaded = try await print.global.load()
            #expect(loaded.tree["name"]?.text == "other-name")
            #expect(Self.manifests(loaded, "app") == ["k8s/other-name.yaml"])
            // The pipeline's functions load the config with it too.
            let r = try SlipwayBinary.run(["run-pipeline", "show", "--override-name", "other-name"], in: dir)
            #expect(r.status == 0 && r.stdout.contains("name: from-override"), "\(r.stdout)\(r.stderr)")
            let bad = try SlipwayBinary.run(["print", "--override-name", "__"], in: dir)
            #expect(bad.status == 1 && bad.stderr.contains("name: --override-name __: not a valid project name"))
        }
    }

    /// DevSpace's check against `lastContext` in `.devspace/cache.yaml`.
    @Test func switchContextNoWarnAndTheRecord() async throws {
        try await withTemporaryDirectory { dir in
            try Self.project(dir)
            try FileManager.default.createDirectory(atPath: dir + "/.devspace", withIntermediateDirectories: true)
            #expect(
                LastKubeContext(context: "ctx-a", namespace: "ns-a").record(configPath: dir + "/devspace.yaml") == nil
            )
            let b = dir + "/ctx-b.kubeconfig"

            let switched: SlipwayCommand.Deploy = try Self.parse(["deploy", "-C", dir, "--kubeconfig", b, "-s"])
            var global = switched.global
            let choice = try PipelineCommand.chooseKubeContext(&global)
            #expect(choice.warning == nil && global.kubeContext == "ctx-a" && global.namespace == "ns-a")
            #expect(Self.manifests(try await global.load(), "where") == ["k8s/ctx-a/ns-a.yaml"])

            let warned: SlipwayCommand.Deploy = try Self.parse(["deploy", "-C", dir, "--kubeconfig", b])
            global = warned.global
            let warning = try PipelineCommand.chooseKubeContext(&global).warning
            #expect(warning?.contains("kube context ctx-b is not the one this project last used (ctx-a)") == true)
            #expect(global.kubeContext == nil)

            let quiet: SlipwayCommand.Purge = try Self.parse(["purge", "-C", dir, "--kubeconfig", b, "--no-warn"])
            global = quiet.global
            #expect(try PipelineCommand.chooseKubeContext(&global).warning == nil)

            // A render records nothing; a run records where it ran.
            let render: SlipwayCommand.Render = try Self.parse(["render", "-C", dir, "--kubeconfig", b])
            try await render.run()
            #expect(LastKubeContext.read(configPath: dir + "/devspace.yaml")?.context == "ctx-a")
            let run: SlipwayCommand.RunPipeline = try Self.parse([
                "run-pipeline", "-C", dir, "--kubeconfig", b, "marker",
            ])
            try await run.run()
            #expect(
                LastKubeContext.read(configPath: dir + "/devspace.yaml") == .init(context: "ctx-b", namespace: "ns-b")
            )
        }
    }

    @Test func inactivityTimeoutSaysWhyItDoesNothing() throws {
        let print: SlipwayCommand.Print = try Self.parse(["print", "--inactivity-timeout", "5"])
        #expect(print.global.notes.count == 1)
        #expect(print.global.notes.first?.hasPrefix("note: --inactivity-timeout is ignored here because ") == true)
        let none: SlipwayCommand.Print = try Self.parse(["print", "--inactivity-timeout=0"])
        #expect(none.global.notes.isEmpty)
    }

    /// `-C/--chdir` (git's) on every command that reads the config or the repository.
    @Test func chdirOnEveryCommand() async throws {
        try await withTemporaryDirectory { dir in
            try Self.project(dir)
            let configCommands: [[String]] = [
                ["build"], ["deploy"], ["render"], ["purge"], ["run-pipeline"], ["print"], ["validate"],
                ["pull-secrets"],
            ]
            for args in configCommands {
                for flag in ["-C", "--chdir"] {
                    let parsed = try SlipwayCommand.parseCommandLine(
                        args + [flag, dir] + (args == ["run-pipeline"] ? ["x"] : [])
                    )
                    let global = try #require(
                        Mirror(reflecting: parsed).descendant("_global") as? OptionGroup<GlobalOptions>
                    )
                    #expect(try global.wrappedValue.workingDirectory() == dir, "\(args) \(flag)")
                }
            }
            // After a pipeline's name too, as DevSpace takes global flags there.
            #expect(GlobalOptions.extract(["x", "-C", dir, "--who", "me"]) == (["-C", dir], ["x", "--who", "me"]))
            for args in [["agent", "status"], ["hooks", "status"], ["status"], ["cleanup", "images"]] {
                let parsed = try SlipwayCommand.parseCommandLine(args + ["-C", dir])
                let options = Mirror(reflecting: parsed).children.compactMap {
                    $0.value as? OptionGroup<RepositoryOption>
                }
                #expect(try options.first?.wrappedValue.directory() == dir, "\(args)")
            }
            let r = try SlipwayBinary.run(["validate", "-C", dir], in: "/")
            #expect(r.status == 0 && r.stdout.hasPrefix("devspace.yaml: valid"), "\(r.stdout)\(r.stderr)")
        }
    }

    // MARK: Pipeline flags

    /// `--pipeline X` runs pipeline X for deploy, render, purge, build and run-pipeline, as in
    /// DevSpace; the command's own pipeline otherwise.
    @Test func pipelineRunsThatPipeline() async throws {
        try await withTemporaryDirectory { dir in
            try Self.project(dir)
            let cases: [([String], String)] = [
                (["deploy"], "deploy"), (["deploy", "--pipeline", "marker"], "marker"),
                (["render", "--pipeline=marker"], "marker"), (["purge"], "purge"),
                (["purge", "--pipeline", "marker"], "marker"), (["build", "--pipeline", "marker"], "marker"),
                (["run-pipeline", "--pipeline", "marker"], "marker"), (["deploy", "--pipeline", "build"], "build"),
                (["deploy", "--pipeline", "marker", "-w", "you"], "marker"),
            ]
            for (args, expected) in cases {
                try? FileManager.default.removeItem(atPath: dir + "/ran.txt")
                let parsed = try SlipwayCommand.parseCommandLine(args + ["-C", dir])
                var command = try #require(parsed as? any AsyncParsableCommand)
                try await command.run()
                #expect(Self.ran(dir).hasPrefix(expected), "\(args): \(Self.ran(dir))")
            }
            // Bad values say what is wrong with them.
            try? FileManager.default.removeItem(atPath: dir + "/.devspace")
            let missing = try SlipwayBinary.run(
                ["deploy", "--pipeline", "nosuch", "--kubeconfig", "ctx-a.kubeconfig"],
                in: dir
            )
            #expect(missing.status == 1)
            #expect(
                missing.stderr.hasPrefix(
                    #"slipway deploy --pipeline nosuch: devspace.yaml: no pipeline named "nosuch" (pipelines: build, "#
                ),
                "\(missing.stderr)"
            )
            #expect(!FileManager.default.fileExists(atPath: dir + "/.devspace/cache.yaml"), "nothing recorded")
            let twice = try SlipwayBinary.run(["run-pipeline", "marker", "--pipeline", "deploy"], in: dir)
            #expect(twice.status == 64 && twice.stderr.contains("the pipeline is named twice"), "\(twice.stderr)")
            let empty = try SlipwayBinary.run(["deploy", "--pipeline="], in: dir)
            #expect(empty.status == 64 && empty.stderr.contains("--pipeline"), "\(empty.stderr)")
            let unknown = try SlipwayBinary.run(["deploy", "--nope"], in: dir)
            #expect(unknown.status == 64)
            #expect(
                unknown.stderr
                    == "slipway deploy: Unknown option '--nope'; pipeline deploy declares no flags of its own, and slipway's are listed by `slipway deploy --help`\n"
            )
        }
    }

    /// `--dependency` / `--skip-dependency` select what run_dependencies runs; slipway runs
    /// none yet, so a selected one is the clear error and a skipped one lets the pipeline go on.
    @Test func dependencySelection() throws {
        let deploy: SlipwayCommand.Deploy = try Self.parse(["deploy", "--skip-dependency", "a,b", "--dependency", "c"])
        #expect(deploy.flags.defaults.skipDependencies == ["a", "b"] && deploy.flags.defaults.dependencies == ["c"])
        try withTemporaryDirectory { dir in
            try "version: v2beta1\nname: deps\ndependencies:\n  dep:\n    path: ./dep\n"
                .write(toFile: dir + "/devspace.yaml", atomically: true, encoding: .utf8)
            let env = ["HOME": dir]
            let all = try SlipwayBinary.run(["deploy"], in: dir, env: env)
            #expect(all.status == 1 && all.stderr.contains("dependencies are not supported yet"), "\(all.stderr)")
            let skipped = try SlipwayBinary.run(["deploy", "--skip-dependency", "dep"], in: dir, env: env)
            let other = try SlipwayBinary.run(["deploy", "--dependency", "other"], in: dir, env: env)
            let selected = try SlipwayBinary.run(["purge", "--dependency=dep"], in: dir, env: env)
            #expect(skipped.status == 0 && other.status == 0, "\(skipped.stderr)\(other.stderr)")
            #expect(selected.status == 1, "\(selected.stderr)")
        }
    }

    @Test func flagsThatDoNothingHereSaySoOnce() async throws {
        let deploy: SlipwayCommand.Deploy = try Self.parse([
            "deploy", "--show-ui", "--force-purge", "--sequential-dependencies",
        ])
        let notes = CommandFlags.notes(deploy.flags.ignored)
        #expect(notes.count == 3 && notes.allSatisfy { $0.contains(" is ignored here because ") }, "\(notes)")
        let build: SlipwayCommand.Build = try Self.parse([
            "build", "--render", "--skip-deploy", "-d", "--branch-env", "--dependency", "x",
        ])
        let buildNotes = CommandFlags.notes(build.ignored)
        #expect(buildNotes.count == 2, "\(buildNotes)")
        #expect(
            buildNotes.contains {
                $0.hasPrefix(
                    "note: --render, --skip-deploy, --force-deploy, --branch-env are ignored here because `slipway build` deploys nothing"
                )
            },
            "\(buildNotes)"
        )
        #expect(buildNotes.contains("note: --dependency is ignored here because slipway does not run dependencies yet"))
        #expect(
            CommandFlags.notes(try Self.parse(["deploy", "--render"], as: SlipwayCommand.Deploy.self).flags.ignored)
                .isEmpty
        )
        // `build --skip-build` builds nothing: not even an image whose Dockerfile is missing.
        try await withTemporaryDirectory { dir in
            try "version: v2beta1\nname: skip\nimages:\n  app:\n    image: slipway-test/skip\n    dockerfile: ./nope\n"
                .write(toFile: dir + "/devspace.yaml", atomically: true, encoding: .utf8)
            let skip: SlipwayCommand.Build = try Self.parse(["build", "-C", dir, "--skip-build", "--silent"])
            try await skip.run()
            let r = try SlipwayBinary.run(["deploy", "--show-ui", "--pipeline", "build", "--skip-build"], in: dir)
            #expect(
                r.stderr.components(separatedBy: "\n").filter { $0.hasPrefix("note: --show-ui") }.count == 1,
                "\(r.stderr)"
            )
        }
    }

    // MARK: Exit codes

    @Test func usageErrorsExit64AndConfigErrorsExit1() throws {
        for args in [
            ["deploy", "-t", "feature/login"], ["build", "--tag", "a,b/c"], ["deploy", "-b=x"],
            ["render", "--pipeline", ""], ["print", "--inactivity-timeout", "-1"], ["print", "--kubeconfig="],
            ["run-pipeline", "x", "--nope=1", "--bad"],
        ] {
            do {
                _ = try SlipwayCommand.parseCommandLine(args)
                // run-pipeline's own flags are checked when it runs (exit 64 there, below).
                #expect(args.first == "run-pipeline", "\(args) parsed")
            } catch {
                #expect(SlipwayCommand.exitCode(for: error).rawValue == 64, "\(args)")
            }
        }
        let tag = SlipwayCommand.message(for: ValidationErrorCatcher.error(["deploy", "-t", "feature/login"]))
        #expect(tag.contains("-t feature/login: not a valid image tag") && tag.contains("-t feature-login"))
        try withTemporaryDirectory { dir in
            let noConfig = try SlipwayBinary.run(["print"], in: dir)
            let unknown = try SlipwayBinary.run(["deploy", "--max-concurrent-builds", "x"], in: dir)
            let badBoolean = try SlipwayBinary.run(["deploy", "-b=maybe"], in: dir)
            #expect(noConfig.status == 1 && unknown.status == 64 && badBoolean.status == 64)
        }
    }
}

/// The error parsing `args` throws.
enum ValidationErrorCatcher {
    static func error(_ args: [String]) -> any Error {
        do {
            _ = try SlipwayCommand.parseCommandLine(args)
            return ValidationError("parsed")
        } catch {
            return error
        }
    }
}
