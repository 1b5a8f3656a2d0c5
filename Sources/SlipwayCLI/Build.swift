import ArgumentParser
import Foundation
import SlipwayCore

extension SlipwayCommand {
    struct Build: AsyncParsableCommand {
        // The name is spelled out: deriving it from the type costs a dynamic cast per run.
        static let configuration = CommandConfiguration(
            commandName: "build",
            abstract: "Build the images of devspace.yaml that changed (all, or the ones named).",
            usage: "slipway build [<options>] [<images> ...]",
            discussion: """
                An image is built when its build digest (Dockerfile content, context, build args, \
                target, network, entrypoint/cmd, appended instructions, engine options — not the \
                tags) differs from its last successful build, when the image is missing from the \
                engine, with rebuildStrategy: always, or with --force-build. New tags for unchanged \
                content re-tag the existing image. Unlike `devspace build`, nothing is rebuilt \
                unless something changed (-b=false, DevSpace's way to turn its forced rebuild off, \
                is what slipway does anyway).

                After the build every tag is pushed to its registry (credentials from the Docker \
                config: auths, credsStore, credHelpers), unless --skip-push, the image's skipPush, \
                or a local kube context (minikube, kind-*, docker-desktop, orbstack) says \
                otherwise; on a kind-* context the tags are loaded with `kind load docker-image`. \
                A push the build cache records for the same image is not repeated. A failed push \
                is tried 3 times (1 s, then 2 s apart); one with no progress for --push-timeout \
                seconds is stopped. An authentication failure is not retried.

                With --pipeline NAME, build runs that pipeline (as `slipway run-pipeline NAME`) \
                with the flags below as its functions' defaults, as DevSpace's build does.
                """
        )

        @OptionGroup var global: GlobalOptions

        @Argument(help: "Images to build (keys under images:); all when none are named.")
        var images: [String] = []

        @OptionGroup var flags: PipelineFlags

        @Option(name: .customLong("engine"), help: "docker (default) or buildah.")
        var engine: String?

        @Flag(name: .customLong("json"), help: "Print the summary as JSON on stdout (build logs go to stderr).")
        var json = false

        @Flag(
            name: .customLong("dry-run"),
            help: "Decide and print what would be built, re-tagged or skipped; build nothing."
        )
        var dryRun = false

        func validate() throws {
            if let engine, engine != "docker" && engine != "buildah" {
                throw ValidationError("--engine must be docker or buildah")
            }
            if let pipeline = flags.pipeline {
                if !images.isEmpty {
                    throw ValidationError(
                        "build --pipeline \(pipeline) runs that pipeline: name the images in it (build_images NAME), not after build"
                    )
                }
                if engine != nil || json || dryRun {
                    throw ValidationError(
                        "--engine, --json and --dry-run are for slipway's own build, not with --pipeline"
                    )
                }
            }
        }

        /// The boolean flags of build's own, for pflag's `--flag=false`.
        static let booleans: [CommandFlags.Boolean] = [.init("json"), .init("dry-run")]

        /// DevSpace's flags that `slipway build` (without --pipeline) accepts and ignores.
        var ignored: Set<CommandFlags.Ignored> {
            var ignored = flags.ignored
            if flags.render { ignored.insert(.render) }
            if flags.skipDeploy { ignored.insert(.skipDeploy) }
            if flags.forceDeploy { ignored.insert(.forceDeploy) }
            if flags.branchEnv { ignored.insert(.branchEnv) }
            if !flags.dependencies.isEmpty { ignored.insert(.dependency) }
            if !flags.skipDependencies.isEmpty { ignored.insert(.skipDependency) }
            return ignored
        }

        func run() async throws {
            // DevSpace's build is its build pipeline; --pipeline runs another one instead.
            if let pipeline = flags.pipeline {
                try await PipelineCommand.run(
                    "build",
                    pipeline: pipeline,
                    command: Self.self,
                    global: global,
                    flags: flags,
                    extra: []
                )
                return
            }
            var global = global
            let choice = try PipelineCommand.chooseKubeContext(&global)
            let loaded = try await global.load()
            if !global.silent { for note in CommandFlags.notes(ignored) { Terminal.error(note) } }
            let renderer = BuildRenderer(
                json: json,
                silent: global.silent,
                colors: !global.noColors,
                debug: global.debug
            )
            if flags.skipBuild {
                // DevSpace's build pipeline with --skip-build: build_images does nothing.
                if !global.silent && !json { Terminal.error("note: --skip-build: no image is built or pushed") }
                if json { renderer.summary(BuildReport()) }
                return
            }
            var options = BuildOptions()
            options.images = images
            options.tags = CommandFlags.tags(flags.tags)
            options.forceRebuild = flags.forceBuild
            options.sequential = flags.sequential
            options.maxConcurrent = flags.maxConcurrent
            options.engine = engine
            options.dryRun = dryRun
            options.skipPush = flags.push.skipPush
            options.skipPushOnLocalCluster = flags.push.skipPushLocalKube
            options.kubeContext = global.kubeContext
            options.pushPolicy = flags.push.policy
            options.environment = try global.environment()
            // The agent's warm digests, asked right before the build (none: every context walks).
            if let lookup = AgentControl.warmLookup(environment: options.environment) {
                options.warm = await lookup(loaded.directory)
            }
            let report: BuildReport
            do {
                report = try await BuildRunner(loaded: loaded, options: options, emit: renderer.render).run()
            } catch {
                for line in error.lines { Terminal.error(line) }
                throw ExitCode.failure
            }
            renderer.summary(report)
            if report.failed { throw ExitCode.failure }
            // Where the project ran, as DevSpace records it (here once the build is done).
            if !dryRun { PipelineCommand.record(choice, loaded: loaded, global: global) }
        }
    }
}

/// Renders build events: `build:NAME` prefixed logs, a status line per image, a final table.
///
/// `@unchecked Sendable`: the only mutable state, `notesShown`, is guarded by `lock`; builds
/// run in parallel and render from their own tasks.
final class BuildRenderer: @unchecked Sendable {
    let json: Bool
    let silent: Bool
    let colors: Bool
    let tty: Bool
    /// Everything on stderr (a render's standard output is for manifests only).
    let toStandardError: Bool
    /// `--debug`: how each context's digest was had.
    let debug: Bool
    private let lock = NSLock()
    private var notesShown: Set<String> = []
    /// Images whose build output was shown: their failure is not followed by it again.
    private var logsShown: Set<String> = []

    private func showedLog(of image: String) {
        lock.lock()
        defer { lock.unlock() }
        logsShown.insert(image)
    }

    private func logWasShown(_ image: String) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        return logsShown.contains(image)
    }

    /// True the first time `note` is seen: notes print once per run.
    private func firstTime(_ note: String) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        return notesShown.insert(note).inserted
    }

    init(json: Bool, silent: Bool, colors: Bool, toStandardError: Bool = false, debug: Bool = false) {
        self.debug = debug
        self.json = json
        self.silent = silent
        self.toStandardError = toStandardError
        self.tty = isatty(json || toStandardError ? 2 : 1) == 1
        self.colors = colors && tty
    }

    private func write(_ s: String) {
        if json || toStandardError { Terminal.error(s) } else { Terminal.out(s.hasSuffix("\n") ? s : s + "\n") }
    }

    private func paint(_ s: String, _ code: String) -> String { colors ? "\u{1B}[\(code)m\(s)\u{1B}[0m" : s }

    @Sendable func render(_ event: BuildEvent) {
        switch event {
        case .note(let text):
            if !silent && firstTime("note: " + text) { write("note: \(text)") }
        case .context(let path, let origin):
            // On stderr, as a debug line: standard output stays the build's.
            if debug { Terminal.error("debug: context \(path): \(origin)") }
        case .decided(let image, let action, let reason, let tags):
            guard !silent else { return }
            let verb = action == .build ? "build" : action == .retag ? "re-tag" : "skip"
            write("\(paint("build:\(image)", "36")) \(verb) → \(tags.joined(separator: ", ")): \(reason)")
        case .started(let image, let action):
            if !silent && tty {
                write("\(paint("build:\(image)", "36")) \(action == .build ? "building…" : "re-tagging…")")
            }
        case .log(let image, let line):
            guard !silent, !line.trimmingCharacters(in: .whitespaces).isEmpty else { return }
            if line.hasPrefix("note: ") {
                if firstTime(line) { write(line) }
                return
            }
            write("\(paint("build:\(image)", "36")) \(line)")
            showedLog(of: image)
        case .pushLog(let image, let line):
            guard !line.trimmingCharacters(in: .whitespaces).isEmpty else { return }
            if !silent { write("\(paint("push:\(image)", "35")) \(line)") }
        case .pushed(let image, let reference, let destination, let digest):
            guard !silent else { return }
            write(
                "\(paint("push:\(image)", "32")) pushed \(reference) to \(destination)"
                    + (digest.map { " (\($0))" } ?? "")
            )
        case .loaded(let image, let reference, let cluster):
            guard !silent else { return }
            write("\(paint("push:\(image)", "32")) loaded \(reference) into kind cluster \(cluster)")
        case .finished(let r):
            if r.outcome == .failed {
                // The engine's last lines close its error; when its output was shown above, the
                // error's first line is enough.
                var error = r.error ?? "unknown error"
                if logWasShown(r.key), let firstLine = error.split(separator: "\n").first, firstLine.count < error.count
                {
                    error =
                        String(firstLine.hasSuffix(":") ? firstLine.dropLast() : firstLine) + " (its output is above)"
                }
                Terminal.error("\(paint("build:\(r.key)", "31")) failed: \(error)")
            } else if !silent && tty && r.outcome != .skipped {
                write(
                    "\(paint("build:\(r.key)", "32")) \(r.outcome.rawValue) in \(String(format: "%.1f", r.seconds)) s"
                )
            }
        }
    }

    func summary(_ report: BuildReport) {
        for r in report.results {
            if let error = r.pushError { Terminal.error("\(paint("push:\(r.key)", "31")) failed: \(error)") }
        }
        if json {
            let items: [[String: Any]] = report.results.map { r in
                var d: [String: Any] = [
                    "image": r.key, "imageName": r.imageName, "tags": r.tags, "result": r.outcome.rawValue,
                    "reason": r.reason, "seconds": (r.seconds * 1000).rounded() / 1000, "engine": r.engine,
                    "dryRun": r.dryRun,
                ]
                if let id = r.imageID { d["imageID"] = id }
                if let e = r.error { d["error"] = e }
                if !r.pushed.isEmpty { d["pushed"] = r.pushed }
                if !r.loaded.isEmpty { d["loaded"] = r.loaded }
                if let e = r.pushError { d["pushError"] = e }
                return d
            }
            let object: [String: Any] = ["images": items, "failed": report.failed]
            if let data = try? JSONSerialization.data(
                withJSONObject: object,
                options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            ) {
                Terminal.out(String(decoding: data, as: UTF8.self) + "\n")
            }
            return
        }
        guard !silent || report.failed else { return }
        if report.results.isEmpty {
            write("no images to build")
            return
        }
        let rows =
            [["IMAGE", "TAGS", "RESULT", "WHY", "SECONDS"]]
            + report.results.map { r in
                var result = r.dryRun ? "would be \(r.outcome.rawValue)" : r.outcome.rawValue
                if r.pushError != nil {
                    result += ", push failed"
                } else if !r.pushed.isEmpty {
                    result += ", pushed"
                } else if !r.loaded.isEmpty {
                    result += ", loaded into kind"
                }
                return [r.key, r.tags.joined(separator: ","), result, r.reason, String(format: "%.2f", r.seconds)]
            }
        var widths = [Int](repeating: 0, count: 5)
        for row in rows { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
        for row in rows {
            let line = row.enumerated().map { i, cell in
                i == row.count - 1 ? cell : cell.padding(toLength: widths[i], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
            write(line)
        }
    }
}
