import ArgumentParser
import Foundation
import SlipwayCore

extension SlipwayCommand {
    /// `slipway hooks install|uninstall|status`.
    struct Hooks: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "hooks",
            abstract: "Install, remove or inspect slipway's git hooks (see docs/hooks.md).",
            discussion: """
                The hooks (post-commit, pre-push, reference-transaction, post-checkout, post-merge, \
                post-rewrite) hand each event to slipway's background agent and return at once. \
                A hook that was there before is kept as <name>.slipway-chained and run first. \
                SLIPWAY=0 turns them off for one command; CI=true turns them off unless SLIPWAY=1.
                """,
            subcommands: [Install.self, Uninstall.self, Status.self]
        )
    }
}

extension SlipwayCommand.Hooks {
    struct Install: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "install",
            abstract: "Install slipway's hooks into this repository (idempotent).",
            discussion: """
                Writes the hooks into the directory git runs hooks from (core.hooksPath when set, \
                else the common .git/hooks, shared by linked worktrees). The path of this slipway \
                binary (or --bin) is written into them. A core.hooksPath directory that git tracks \
                (or does not ignore), or one outside the repository, is refused without --force: \
                slipway's hooks would be committed, or run by other repositories.
                """
        )

        @OptionGroup var options: RepositoryOption

        @Option(name: .customLong("bin"), help: "The slipway binary the hooks run (default: this one).")
        var bin: String?

        @Flag(
            name: .customLong("force"),
            help: "Install into a core.hooksPath directory that git tracks or that is outside the repository."
        )
        var force = false

        func run() async throws {
            let directory = try options.directory()
            let binary =
                bin.map {
                    $0.hasPrefix("/")
                        ? $0 : (FileManager.default.currentDirectoryPath as NSString).appendingPathComponent($0)
                }
                ?? selfExecutable()
            let changes = try await hooksCall("install") { () async throws(HookError) in
                try await HookInstaller.install(from: directory, binary: binary, force: force)
            }
            let dir = changes.first.map { ($0.path as NSString).deletingLastPathComponent } ?? ""
            Terminal.out("slipway hooks installed in \(dir)\n")
            for change in changes {
                let what: String
                switch change.action {
                case .installed: what = "installed"
                case .updated: what = "updated"
                case .unchanged: what = "already installed"
                case .chained(let path): what = "installed; runs the earlier hook first (\(fileName(path)))"
                case .updatedLegacy(let path): what = "run by pre-commit's hook as \(fileName(path)) (updated)"
                default: what = "\(change.action)"
                }
                Terminal.out("  \(pad(change.name)) \(what)\n")
            }
        }
    }

    struct Uninstall: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "uninstall",
            abstract: "Remove slipway's hooks and put back the hooks they replaced (idempotent)."
        )

        @OptionGroup var options: RepositoryOption

        func run() async throws {
            let directory = try options.directory()
            let changes = try await hooksCall("uninstall") { () async throws(HookError) in
                try await HookInstaller.uninstall(from: directory)
            }
            for change in changes {
                let what: String
                switch change.action {
                case .restored: what = "removed; the earlier hook is back (\(fileName(change.path)))"
                case .removed: what = "removed"
                case .leftAlone: what = "not slipway's: left alone"
                case .absent: what = "not installed"
                default: what = "\(change.action)"
                }
                Terminal.out("  \(pad(change.name)) \(what)\n")
            }
        }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "status",
            abstract: "Show which of slipway's hooks are installed, and where."
        )

        @OptionGroup var options: RepositoryOption

        func run() async throws {
            let directory = try options.directory()
            let status = try await hooksCall("status") { () async throws(HookError) in
                try await HookInstaller.status(from: directory)
            }
            let location = status.location
            var out = "hooks directory: \(location.directory)"
            out +=
                location.hooksPath.map { " (from core.hooksPath = \($0))\n" }
                ?? " (git's default; core.hooksPath is not set)\n"
            if let baked = status.bakedBinary {
                out +=
                    "binary: \(baked)"
                    + (status.bakedBinaryExists ? "\n" : " (missing: run `slipway hooks install` again)\n")
            } else {
                out += "binary: none baked in (the hooks use $SLIPWAY_BIN, else slipway on PATH)\n"
            }
            out +=
                "gate mode: " + (location.gate ? "on (slipway.gate = true: pre-push waits for the build)\n" : "off\n")
            for hook in status.hooks {
                let what: String
                switch hook.kind {
                case .slipway(nil): what = "slipway"
                case .slipway(let chained?): what = "slipway, chaining \(fileName(chained))"
                case .foreign(nil): what = "foreign (not slipway's)"
                case .foreign(let aside?) where aside.hasSuffix(".legacy"):
                    what = "foreign (not slipway's); it runs slipway's as \(fileName(aside)) (pre-commit)"
                case .foreign(let aside?):
                    what =
                        "foreign (not slipway's); slipway's was moved to \(fileName(aside)) and does not run: "
                        + "run `slipway hooks install` again"
                case .missing: what = "missing"
                }
                out += "  \(pad(hook.name)) \(what)\n"
            }
            Terminal.out(out)
        }
    }
}

/// Runs a core call, printing its error and failing with exit 1.
private func hooksCall<T>(_ verb: String, _ body: () async throws(HookError) -> T) async throws -> T {
    do {
        return try await body()
    } catch {
        Terminal.error("slipway hooks \(verb): \(error)")
        throw ExitCode.failure
    }
}

private func fileName(_ path: String) -> String { (path as NSString).lastPathComponent }

private func pad(_ name: String) -> String {
    name.count >= 22 ? name : name + String(repeating: " ", count: 22 - name.count)
}
