import ArgumentParser
import Foundation
import SlipwayCore

/// DevSpace's global flags, where they apply to slipway.
struct GlobalOptions: ParsableArguments {
    @Option(
        name: .customLong("config"),
        help: "The devspace.yaml to use (default: $DEVSPACE_CONFIG, then ./devspace.yaml)."
    )
    var config: String?

    @Option(
        name: .customLong("var"),
        help: ArgumentHelp("Set a variable, overriding vars and the environment.", valueName: "KEY=VALUE")
    )
    var vars: [String] = []

    @Option(name: [.short, .customLong("profile")], help: "Apply a profile (repeatable; applied in order).")
    var profiles: [String] = []

    @Flag(name: .customLong("disable-profile-activation"), help: "Ignore profiles' activation rules.")
    var disableProfileActivation = false

    @Option(name: [.short, .customLong("namespace")], help: "The Kubernetes namespace (DEVSPACE_NAMESPACE).")
    var namespace: String?

    @Option(name: .customLong("kube-context"), help: "The kubeconfig context (DEVSPACE_CONTEXT).")
    var kubeContext: String?

    @Option(
        name: .customLong("kubeconfig"),
        help: ArgumentHelp("The kubeconfig to use instead of $KUBECONFIG (also for kubectl, helm).", valueName: "path")
    )
    var kubeconfig: String?

    @Option(
        name: .customLong("override-name"),
        help: ArgumentHelp("Use this project name instead of the config's name.", valueName: "name")
    )
    var overrideName: String?

    @Flag(
        name: [.customShort("s"), .customLong("switch-context")],
        help: "Pipeline commands: use the kube context and namespace this project last used."
    )
    var switchContext = false

    @Flag(
        name: .customLong("no-warn"),
        help: "Pipeline commands: do not warn when the kube context or namespace changed."
    )
    var noWarn = false

    @Option(
        name: .customLong("inactivity-timeout"),
        help: ArgumentHelp(
            "Accepted for DevSpace; ignored (DevSpace too uses it only on Windows and macOS).",
            valueName: "minutes"
        )
    )
    var inactivityTimeout = 0

    @Option(
        name: [.customShort("C"), .customLong("chdir")],
        help: ArgumentHelp("Run as if started in this directory (as git -C).", valueName: "dir")
    )
    var chdir: String?

    @Flag(name: .customLong("debug"), help: "Print debug output.")
    var debug = false

    @Flag(name: .customLong("silent"), help: "Print only errors.")
    var silent = false

    @Flag(name: .customLong("no-colors"), help: "Do not colour the output.")
    var noColors = false

    func validate() throws {
        for v in vars where !v.contains("=") || v.hasPrefix("=") {
            throw ValidationError("--var \(v): expected KEY=VALUE")
        }
        if debug && silent { throw ValidationError("--debug and --silent cannot be used together") }
        if inactivityTimeout < 0 { throw ValidationError("--inactivity-timeout must be 0 or more minutes") }
        if let kubeconfig, kubeconfig.isEmpty { throw ValidationError("--kubeconfig needs the path of a kubeconfig") }
    }

    /// The boolean flags, for pflag's `--flag=false` (`CommandFlags.normalizeBooleans`).
    static let booleans: [CommandFlags.Boolean] = [
        .init("disable-profile-activation"), .init("switch-context", short: "s"), .init("no-warn"),
        .init("debug"), .init("silent"), .init("no-colors"),
    ]

    /// The global flags among `args` (given after a pipeline's name, where DevSpace accepts
    /// them too: `slipway run-pipeline build --debug`), with their values, and the rest.
    static func extract(_ args: [String]) -> (globals: [String], rest: [String]) {
        let valued: Set<String> = [
            "--config", "--var", "-p", "--profile", "-n", "--namespace", "--kube-context", "--kubeconfig",
            "--override-name", "--inactivity-timeout", "-C", "--chdir",
        ]
        let flags: Set<String> = [
            "--disable-profile-activation", "-s", "--switch-context", "--no-warn", "--debug", "--silent", "--no-colors",
        ]
        var globals: [String] = []
        var rest: [String] = []
        var i = 0
        while i < args.count {
            let arg = args[i]
            let name = arg.hasPrefix("--") ? String(arg.prefix { $0 != "=" }) : arg
            if flags.contains(arg) {
                globals.append(arg)
            } else if valued.contains(name) {
                globals.append(arg)
                if !arg.contains("="), i + 1 < args.count {
                    globals.append(args[i + 1])
                    i += 1
                }
            } else if arg == "--" {
                rest += args[i...]
                break
            } else {
                rest.append(arg)
            }
            i += 1
        }
        return (globals, rest)
    }

    /// Adds global flags given later on the command line: lists grow, the rest replace.
    mutating func merge(_ other: GlobalOptions) {
        config = other.config ?? config
        vars += other.vars
        profiles += other.profiles
        disableProfileActivation = disableProfileActivation || other.disableProfileActivation
        namespace = other.namespace ?? namespace
        kubeContext = other.kubeContext ?? kubeContext
        kubeconfig = other.kubeconfig ?? kubeconfig
        overrideName = other.overrideName ?? overrideName
        switchContext = switchContext || other.switchContext
        noWarn = noWarn || other.noWarn
        if other.inactivityTimeout != 0 { inactivityTimeout = other.inactivityTimeout }
        chdir = other.chdir ?? chdir
        debug = debug || other.debug
        silent = silent || other.silent
        noColors = noColors || other.noColors
    }

    var parsedVars: [(String, String)] {
        vars.compactMap { v in
            guard let eq = v.firstIndex(of: "=") else { return nil }
            return (
                String(v[..<eq]).trimmingCharacters(in: .whitespaces),
                String(v[v.index(after: eq)...]).trimmingCharacters(in: .whitespaces)
            )
        }
    }

    /// The directory slipway works in, after `--chdir`; a missing directory is a clear error.
    func workingDirectory() throws -> String { try directory(afterChdir: chdir) }

    /// The environment slipway and the tools it starts see: the process's, with `--kubeconfig`
    /// as `KUBECONFIG` (made absolute, so a pipeline in the config's directory finds it), as
    /// DevSpace sets it. A kubeconfig that does not exist is a clear error (exit 1).
    func environment() throws -> [String: String] {
        var environment = ProcessInfo.processInfo.environment
        guard let kubeconfig else { return environment }
        let base = try workingDirectory()
        var paths: [String] = []
        for path in kubeconfig.split(separator: ":").map(String.init) where !path.isEmpty {
            let absolute = path.hasPrefix("/") ? path : (base as NSString).appendingPathComponent(path)
            guard FileManager.default.fileExists(atPath: absolute) else {
                Terminal.error("--kubeconfig \(path): no such file")
                throw ExitCode.failure
            }
            paths.append((absolute as NSString).standardizingPath)
        }
        environment["KUBECONFIG"] = paths.joined(separator: ":")
        return environment
    }

    func loadOptions() throws -> LoadOptions {
        LoadOptions(
            configPath: config,
            workingDirectory: try workingDirectory(),
            environment: try environment(),
            vars: parsedVars,
            profiles: profiles,
            disableProfileActivation: disableProfileActivation,
            namespace: namespace,
            kubeContext: kubeContext,
            ask: QuestionPrompt.asker(silent: silent),
            overrideName: overrideName
        )
    }

    /// The one-line notes for the global flags slipway accepts and ignores.
    var notes: [String] {
        inactivityTimeout > 0 ? CommandFlags.notes([.inactivityTimeout]) : []
    }

    /// Loads the config or prints every diagnostic and fails with exit 1.
    func load() async throws -> LoadedConfig {
        let options = try loadOptions()
        if !silent { for note in notes { Terminal.error(note) } }
        do {
            let loaded = try await ConfigLoader.load(options)
            if !silent { for note in loaded.notes { Terminal.error(note) } }
            return loaded
        } catch {
            printDiagnostics(error.diagnostics)
            throw ExitCode.failure
        }
    }
}

/// The directory a command works in after `--chdir` (relative to the current one); a missing
/// directory is a clear error (exit 1).
func directory(afterChdir chdir: String?) throws -> String {
    let cwd = FileManager.default.currentDirectoryPath
    guard let chdir else { return cwd }
    let dir = chdir.hasPrefix("/") ? chdir : (cwd as NSString).appendingPathComponent(chdir)
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDir), isDir.boolValue else {
        Terminal.error("--chdir \(chdir): no such directory")
        throw ExitCode.failure
    }
    return (dir as NSString).standardizingPath
}

/// Prints a config's problems on stderr: the first 100, then how many more there are.
func printDiagnostics(_ diagnostics: [ConfigDiagnostic]) {
    let shown = 100
    for d in diagnostics.prefix(shown) { Terminal.error(d.description) }
    if diagnostics.count > shown {
        let counted =
            diagnostics.count > SchemaValidator.maxDiagnostics
            ? "over \(SchemaValidator.maxDiagnostics - shown)" : "\(diagnostics.count - shown)"
        Terminal.error("slipway: \(counted) more problems not shown; fix these first")
    }
}
