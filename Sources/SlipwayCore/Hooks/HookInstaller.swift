internal import Foundation
internal import SlipwayHookScript

#if canImport(Glibc)
internal import Glibc
#elseif canImport(Darwin)
internal import Darwin
#endif

/// Where a repository's hooks live, as git resolves it.
public struct HooksLocation: Sendable, Equatable {
    /// The hooks directory, absolute (`git rev-parse --path-format=absolute --git-path hooks`).
    public var directory: String
    /// `core.hooksPath` as configured, when it is set (the directory then comes from it).
    public var hooksPath: String?
    /// The git common directory (shared by linked worktrees), absolute.
    public var commonDir: String
    /// `slipway.gate` is true: pre-push waits for the build and refuses a failed one.
    public var gate: Bool
}

/// What install or uninstall did to one hook.
public struct HookChange: Sendable, Equatable {
    public enum Action: Sendable, Equatable {
        /// slipway's hook written where there was none.
        case installed
        /// slipway's hook rewritten (a new script or binary path).
        case updated
        /// slipway's hook was already there, byte for byte.
        case unchanged
        /// The hook that was there moved to `chained` (run first by slipway's), slipway's written.
        case chained(String)
        /// pre-commit (the framework) runs slipway's hook as `<name>.legacy`; that one was rewritten.
        case updatedLegacy(String)
        /// slipway's hook removed and the earlier hook moved back from `<name>.slipway-chained`.
        case restored
        /// slipway's hook removed; there was nothing before it.
        case removed
        /// Not slipway's: left as it is.
        case leftAlone
        /// Neither slipway's nor any other hook is there.
        case absent
    }

    public var name: String
    public var path: String
    public var action: Action
}

/// One hook as `slipway hooks status` reports it.
public struct HookState: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        /// slipway's hook; `chained` is the earlier hook it runs first, if any.
        case slipway(chained: String?)
        /// Another program's hook. `slipwayAt` is where slipway's hook went, if another
        /// manager moved it aside (`<name>.legacy`: pre-commit runs it; `<name>.old`: lefthook does not).
        case foreign(slipwayAt: String?)
        case missing
    }

    public var name: String
    public var path: String
    public var kind: Kind
}

/// The state of all of slipway's hooks in one repository.
public struct HooksStatus: Sendable, Equatable {
    public var location: HooksLocation
    public var hooks: [HookState]
    /// The binary path baked into the installed hooks (the first one found), if any.
    public var bakedBinary: String?
    /// Whether `bakedBinary` exists and is executable.
    public var bakedBinaryExists: Bool
}

/// Installs, removes and inspects slipway's git hooks (`hooks/slipway-hook`, installed under
/// six names). Never prints; every failure is a ``HookError``.
public enum HookInstaller {
    /// The git hooks slipway installs, in the order they are reported.
    public static let names = [
        "post-commit", "pre-push", "reference-transaction", "post-checkout", "post-merge", "post-rewrite",
    ]
    /// The line that marks a hook as slipway's.
    public static let marker = "# slipway-hook v1"
    /// The suffix of a hook slipway moved aside and runs first.
    public static let chainedSuffix = ".slipway-chained"
    /// The placeholder line of the script that install replaces with the binary's path.
    public static let placeholderLine = "SLIPWAY_INSTALLED_BIN=@SLIPWAY_BIN@"

    /// The script as install writes it: the placeholder replaced by `binary`, shell-quoted.
    public static func script(binary: String) -> String {
        let quoted = "'" + binary.replacingOccurrences(of: "'", with: "'\\''") + "'"
        return HookScript.text.split(separator: "\n", omittingEmptySubsequences: false)
            .map { $0 == placeholderLine ? "SLIPWAY_INSTALLED_BIN=\(quoted)" : String($0) }
            .joined(separator: "\n")
    }

    // MARK: - Locating

    /// Resolves the hooks directory of the repository containing `directory` (a worktree,
    /// a linked worktree, or any subdirectory), with git's own environment variables
    /// (`GIT_DIR`, `GIT_INDEX_FILE`, … from a hook that runs slipway) cleared.
    public static func locate(from directory: String) async throws(HookError) -> HooksLocation {
        let environment = try await cleanEnvironment()
        let top = try await git(
            ["rev-parse", "--path-format=absolute", "--git-path", "hooks", "--git-common-dir"],
            in: directory,
            environment: environment
        )
        let lines = top.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard lines.count >= 2, lines[0].hasPrefix("/"), lines[1].hasPrefix("/") else {
            throw .gitFailed(
                arguments: ["rev-parse", "--git-path", "hooks"],
                status: 0,
                message: "unexpected output: \(top)"
            )
        }
        let hooksPath = try await gitConfig(["--get", "core.hooksPath"], in: directory, environment: environment)
        let gate = try await gitConfig(["--bool", "--get", "slipway.gate"], in: directory, environment: environment)
        return HooksLocation(
            directory: standardize(lines[0]),
            hooksPath: hooksPath,
            commonDir: standardize(lines[1]),
            gate: gate == "true"
        )
    }

    // MARK: - Install

    /// Installs slipway's hooks into the repository containing `directory`, baking `binary`
    /// (made absolute, symbolic links resolved) into them. Idempotent.
    ///
    /// A `core.hooksPath` that is not the repository's own private place is refused unless
    /// `force` (as lefthook and pre-commit refuse it): a directory of the work tree that git
    /// does not ignore (slipway's hooks would be committed, and a tracked hook replaced), or a
    /// directory outside the repository (other repositories run hooks from there too). One
    /// inside the git directory, or ignored in the work tree (husky's `.husky/_`), is used.
    public static func install(
        from directory: String,
        binary: String,
        force: Bool = false
    ) async throws(HookError) -> [HookChange] {
        guard let resolved = resolvePath(binary), access(resolved, X_OK) == 0 else {
            throw .binaryNotFound(path: binary)
        }
        let location = try await locate(from: directory)
        if !force { try await checkHooksPath(location, from: directory) }
        let dir = location.directory
        do {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        } catch {
            throw .io(path: dir, operation: "create the hooks directory", reason: reason(error))
        }
        let text = script(binary: resolved)
        // Check every hook before changing any, so that a conflict leaves the directory as it was.
        for name in names {
            let path = dir + "/" + name
            let chained = path + chainedSuffix
            if exists(path), !isSlipways(path), !isSlipways(path + ".legacy"), exists(chained) {
                throw .chainedExists(hook: path, chained: chained)
            }
        }
        var changes: [HookChange] = []
        for name in names {
            let path = dir + "/" + name
            let chained = path + chainedSuffix
            let legacy = path + ".legacy"
            if isSlipways(path) {
                let same = FileManager.default.contents(atPath: path) == Data(text.utf8) && mode(path) == 0o755
                if !same { try writeHook(text, to: path) }
                changes.append(HookChange(name: name, path: path, action: same ? .unchanged : .updated))
            } else if exists(path), isSlipways(legacy) {
                // pre-commit moved slipway's hook to <name>.legacy and runs it: keep that arrangement.
                if FileManager.default.contents(atPath: legacy) != Data(text.utf8) { try writeHook(text, to: legacy) }
                changes.append(HookChange(name: name, path: path, action: .updatedLegacy(legacy)))
            } else if exists(path) {
                try move(path, to: chained)
                try writeHook(text, to: path)
                changes.append(HookChange(name: name, path: path, action: .chained(chained)))
            } else {
                try writeHook(text, to: path)
                changes.append(HookChange(name: name, path: path, action: .installed))
            }
        }
        return changes
    }

    /// Refuses a `core.hooksPath` directory that is tracked (or at least not ignored) in the
    /// work tree, or outside the repository (see ``install(from:binary:force:)``).
    static func checkHooksPath(_ location: HooksLocation, from directory: String) async throws(HookError) {
        guard let hooksPath = location.hooksPath else { return }
        let dir = location.directory
        if dir == location.commonDir || dir.hasPrefix(location.commonDir + "/") { return }
        let environment = try await cleanEnvironment()
        // Where the setting comes from, for the message (`file:/home/u/.gitconfig`).
        let origin = try await gitConfig(
            ["--show-origin", "--get", "core.hooksPath"],
            in: directory,
            environment: environment
        )
        .flatMap { $0.split(separator: "\t", maxSplits: 1).first.map(String.init) }
        .map { $0.hasPrefix("file:") ? String($0.dropFirst(5)) : $0 }
        let top = try? await git(["rev-parse", "--show-toplevel"], in: directory, environment: environment)
        guard let top, top.hasPrefix("/"), dir == standardize(top) || dir.hasPrefix(standardize(top) + "/") else {
            throw .sharedHooksPath(hooksPath: hooksPath, directory: dir, setIn: origin)
        }
        // The files slipway would write there, as paths of the work tree; git names those it ignores.
        let relative = String(dir.dropFirst(standardize(top).count)).drop { $0 == "/" }
        let files = names.flatMap { [$0, $0 + chainedSuffix] }.map { relative.isEmpty ? $0 : "\(relative)/\($0)" }
        let result: ProcessOutput
        do {
            result = try await ProcessRunner.run(
                "git",
                ["check-ignore", "--"] + files,
                environment: environment,
                workingDirectory: top
            )
        } catch {
            throw .gitFailed(arguments: ["check-ignore"], status: error.status, message: error.standardError)
        }
        guard result.status == 0 || result.status == 1 else {
            throw .gitFailed(arguments: ["check-ignore"], status: result.status, message: result.standardError)
        }
        let ignored = Set(result.standardOutput.split(separator: "\n").map(String.init))
        guard files.allSatisfy(ignored.contains) else {
            let tracked = try await git(
                ["ls-files", "--", relative.isEmpty ? "." : String(relative)],
                in: top,
                environment: environment
            )
            .split(separator: "\n").map { ($0 as Substring).split(separator: "/").last.map(String.init) ?? "" }
            throw .trackedHooksPath(hooksPath: hooksPath, directory: dir, setIn: origin, tracked: tracked)
        }
    }

    // MARK: - Uninstall

    /// Removes slipway's hooks and moves back the hooks they chained, exactly as they were
    /// (the same file: bytes, mode, symbolic link). Other hooks are left alone. Idempotent.
    public static func uninstall(from directory: String) async throws(HookError) -> [HookChange] {
        let location = try await locate(from: directory)
        var changes: [HookChange] = []
        for name in names {
            let path = location.directory + "/" + name
            let chained = path + chainedSuffix
            let legacy = path + ".legacy"
            if isSlipways(path) {
                try remove(path)
                if exists(chained) {
                    try move(chained, to: path)
                    changes.append(HookChange(name: name, path: path, action: .restored))
                } else {
                    changes.append(HookChange(name: name, path: path, action: .removed))
                }
            } else if isSlipways(legacy) {
                // pre-commit's hook runs <name>.legacy: the earlier hook takes slipway's place there.
                try remove(legacy)
                if exists(chained) { try move(chained, to: legacy) }
                changes.append(HookChange(name: name, path: legacy, action: exists(legacy) ? .restored : .removed))
            } else if !exists(path), exists(chained) {
                try move(chained, to: path)
                changes.append(HookChange(name: name, path: path, action: .restored))
            } else {
                changes.append(HookChange(name: name, path: path, action: exists(path) ? .leftAlone : .absent))
            }
        }
        return changes
    }

    // MARK: - Status

    /// What is installed in the repository containing `directory`.
    public static func status(from directory: String) async throws(HookError) -> HooksStatus {
        let location = try await locate(from: directory)
        var hooks: [HookState] = []
        var baked: String?
        for name in names {
            let path = location.directory + "/" + name
            let chained = path + chainedSuffix
            let kind: HookState.Kind
            if isSlipways(path) {
                kind = .slipway(chained: exists(chained) ? chained : nil)
                if baked == nil { baked = bakedBinary(path) }
            } else if exists(path) {
                let aside = [path + ".legacy", path + ".old"].first(where: isSlipways)
                if let aside, baked == nil { baked = bakedBinary(aside) }
                kind = .foreign(slipwayAt: aside)
            } else {
                kind = .missing
            }
            hooks.append(HookState(name: name, path: path, kind: kind))
        }
        return HooksStatus(
            location: location,
            hooks: hooks,
            bakedBinary: baked,
            bakedBinaryExists: baked.map { access($0, X_OK) == 0 } ?? false
        )
    }

    /// The binary path baked into an installed hook, or nil when it is still the placeholder.
    static func bakedBinary(_ path: String) -> String? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        let prefix = "SLIPWAY_INSTALLED_BIN="
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n") where line.hasPrefix(prefix) {
            let value = line.dropFirst(prefix.count)
            guard value.hasPrefix("'"), value.hasSuffix("'"), value.count >= 2 else { return nil }
            return String(value.dropFirst().dropLast()).replacingOccurrences(of: "'\\''", with: "'")
        }
        return nil
    }

    // MARK: - Files

    /// Whether `path` is a regular file (not a symbolic link) with slipway's marker line.
    static func isSlipways(_ path: String) -> Bool {
        var st = stat()
        guard lstat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG,
            let handle = FileHandle(forReadingAtPath: path)
        else { return false }
        defer { try? handle.close() }
        let head = (try? handle.read(upToCount: 512)) ?? Data()
        return String(decoding: head, as: UTF8.self).split(separator: "\n").contains { $0 == marker }
    }

    /// Whether anything (a file, a symbolic link, even a dangling one) is at `path`.
    static func exists(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0
    }

    static func mode(_ path: String) -> mode_t {
        var st = stat()
        guard lstat(path, &st) == 0 else { return 0 }
        return st.st_mode & 0o7777
    }

    /// Writes `text` to a temporary file beside `path`, mode 0755, and renames it over `path`.
    static func writeHook(_ text: String, to path: String) throws(HookError) {
        let temp = (path as NSString).deletingLastPathComponent + "/.slipway-hook.\(getpid()).tmp"
        let fd = open(temp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o755)
        guard fd >= 0 else { throw .io(path: temp, operation: "write the hook", reason: errnoText()) }
        let bytes = Array(text.utf8)
        var written = 0
        while written < bytes.count {
            let n = bytes[written...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                let why = errnoText()
                close(fd)
                unlink(temp)
                throw .io(path: temp, operation: "write the hook", reason: why)
            }
            written += n
        }
        // The umask may have narrowed the mode given to open().
        fchmod(fd, 0o755)
        close(fd)
        if rename(temp, path) != 0 {
            let why = errnoText()
            unlink(temp)
            throw .io(path: path, operation: "replace the hook", reason: why)
        }
    }

    static func move(_ from: String, to: String) throws(HookError) {
        if rename(from, to) != 0 {
            throw .io(path: from, operation: "rename it to \(to)", reason: errnoText())
        }
    }

    static func remove(_ path: String) throws(HookError) {
        if unlink(path) != 0 && errno != ENOENT {
            throw .io(path: path, operation: "remove it", reason: errnoText())
        }
    }

    static func resolvePath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    private static func standardize(_ path: String) -> String {
        (path as NSString).standardizingPath
    }

    private static func errnoText() -> String { String(cString: strerror(errno)) }

    private static func reason(_ error: any Error) -> String {
        (error as NSError).localizedDescription
    }

    // MARK: - git

    /// The process environment without git's repository-local variables (the list is git's own:
    /// `git rev-parse --local-env-vars`), so that git finds the repository from the directory.
    static func cleanEnvironment() async throws(HookError) -> [String: String] {
        var environment = ProcessInfo.processInfo.environment
        let output = try await git(["rev-parse", "--local-env-vars"], in: "/", environment: environment)
        for name in output.split(separator: "\n") { environment[String(name)] = nil }
        return environment
    }

    private static func git(
        _ arguments: [String],
        in directory: String,
        environment: [String: String]
    )
        async throws(HookError) -> String
    {
        let result: ProcessOutput
        do {
            result = try await ProcessRunner.run(
                "git",
                arguments,
                environment: environment,
                workingDirectory: directory
            )
        } catch {
            throw .gitFailed(arguments: arguments, status: error.status, message: error.standardError)
        }
        guard result.status == 0 else {
            if result.standardError.contains("not a git repository") { throw .notARepository(path: directory) }
            throw .gitFailed(arguments: arguments, status: result.status, message: result.standardError)
        }
        var text = result.standardOutput
        while text.hasSuffix("\n") { text.removeLast() }
        return text
    }

    /// A config value, or nil when it is not set (`git config` exits 1).
    private static func gitConfig(
        _ arguments: [String],
        in directory: String,
        environment: [String: String]
    )
        async throws(HookError) -> String?
    {
        let result: ProcessOutput
        do {
            result = try await ProcessRunner.run(
                "git",
                ["config"] + arguments,
                environment: environment,
                workingDirectory: directory
            )
        } catch {
            throw .gitFailed(arguments: ["config"] + arguments, status: error.status, message: error.standardError)
        }
        if result.status == 1 { return nil }
        guard result.status == 0 else {
            throw .gitFailed(arguments: ["config"] + arguments, status: result.status, message: result.standardError)
        }
        var text = result.standardOutput
        while text.hasSuffix("\n") { text.removeLast() }
        return text
    }
}
