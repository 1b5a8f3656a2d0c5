internal import Foundation

/// The `SLIPWAY_JOB_*` variables slipway's own pipelines (`commit`, `push`, `gate`) read: set
/// by the agent for its jobs, and filled in from HEAD when such a pipeline runs by hand.
public enum JobEnvironment {
    /// The variables of a job of `pipeline` at `commit` for `ref` in `worktree`.
    public static func variables(
        id: Int,
        pipeline: String,
        commit: String,
        ref: String,
        worktree: String,
        branch: String?,
        describe: String?
    ) -> [String: String] {
        var env = [
            "SLIPWAY_JOB_ID": String(id), "SLIPWAY_JOB_PIPELINE": pipeline, "SLIPWAY_JOB_COMMIT": commit,
            "SLIPWAY_JOB_REF": ref, "SLIPWAY_JOB_WORKTREE": worktree,
        ]
        if let branch {
            env["SLIPWAY_JOB_BRANCH"] = branch
            env["SLIPWAY_JOB_BRANCH_TAG"] = BranchTag.tag(for: branch)
        }
        if let describe { env["SLIPWAY_JOB_DESCRIBE"] = describe }
        return env
    }

    /// `environment` with `SLIPWAY_JOB_DESCRIBE`, `…_BRANCH` and `…_BRANCH_TAG` filled in from
    /// the HEAD of the repository holding `directory` where they are unset (only for slipway's
    /// own pipelines: `git describe` walks history).
    public static func completed(_ environment: [String: String], directory: String) -> [String: String] {
        var environment = environment
        guard environment["SLIPWAY_JOB_DESCRIBE"] == nil || environment["SLIPWAY_JOB_BRANCH_TAG"] == nil,
            let repository = try? GitRepository.discover(from: directory)
        else { return environment }
        if environment["SLIPWAY_JOB_DESCRIBE"] == nil, let describe = try? repository.describe(tags: false) {
            environment["SLIPWAY_JOB_DESCRIBE"] = BranchTag.tag(for: describe)
        }
        if environment["SLIPWAY_JOB_BRANCH"] == nil, let branch = try? repository.head().branchName {
            environment["SLIPWAY_JOB_BRANCH"] = branch
            environment["SLIPWAY_JOB_BRANCH_TAG"] = BranchTag.tag(for: branch)
        }
        return environment
    }
}

/// The environment an agent's job must see as the shell that submitted it saw it (issue 14):
/// the agent keeps the environment it was started with, so a job gets, on top of it, the
/// variables that matter for it as the hook (or `slipway agent submit`) saw them —
/// `KUBECONFIG`, `DOCKER_HOST`, `DOCKER_CONFIG`, every `DEVSPACE_*`, and the names the config's
/// variables read from the environment (``LoadedConfig/environmentNames``, which jobs record
/// for the agent). A name that was unset there is unset for the job.
///
/// Values travel in files of mode 0600 only (the hook's inbox entry, the agent's
/// `jobs/<id>.env`); the journal and the log hold names.
public struct CapturedEnvironment: Codable, Sendable, Equatable {
    /// The variables that were set, by name.
    public var values: [String: String]
    /// Names that were looked at and were not set.
    public var unset: [String]

    public init(values: [String: String] = [:], unset: [String] = []) {
        self.values = values
        self.unset = unset
    }

    /// The names of the variables that were set, sorted (what the journal keeps).
    public var names: [String] { values.keys.sorted() }

    /// `base` (the agent's environment) with this capture applied: every `DEVSPACE_*` of the
    /// base removed (the capture lists all that were set), unset names removed, values set.
    public func applied(to base: [String: String]) -> [String: String] {
        var environment = base.filter { !$0.key.hasPrefix(JobEnvironment.capturedPrefix) }
        for name in unset { environment[name] = nil }
        for (name, value) in values { environment[name] = value }
        return environment
    }
}

extension JobEnvironment {
    /// Always captured for a job (when set).
    public static let alwaysCaptured = ["KUBECONFIG", "DOCKER_HOST", "DOCKER_CONFIG"]
    /// Every variable with this prefix is captured.
    public static let capturedPrefix = "DEVSPACE_"
    /// The file a job's pipeline writes the config's environment names to (one per line).
    public static let namesFileKey = "SLIPWAY_JOB_ENV_NAMES"
    /// At most this many recorded names (the hook reads them on every commit).
    public static let maxNames = 256

    /// Whether `name` may be captured from a submitting shell: an environment name with an
    /// upper-case letter, and not one of the process's own (`PATH`, `HOME`, `PWD`…: a hook's
    /// `PATH` is git's), git's or slipway's.
    public static func isCapturable(_ name: String) -> Bool {
        guard let first = name.utf8.first, first == UInt8(ascii: "_") || (first | 0x20) >= 97 && (first | 0x20) <= 122
        else { return false }
        guard
            name.utf8.allSatisfy({
                $0 == UInt8(ascii: "_") || ($0 >= 48 && $0 <= 57) || (($0 | 0x20) >= 97 && ($0 | 0x20) <= 122)
            })
        else { return false }
        // The hook's own variables are lower-case: a name needs an upper-case letter.
        guard name.utf8.contains(where: { $0 >= 65 && $0 <= 90 }) else { return false }
        let excluded: Set<String> = [
            "PATH", "HOME", "PWD", "OLDPWD", "SHLVL", "_", "IFS", "USER", "LOGNAME", "SHELL", "TMPDIR", "CI",
            "NO_COLOR",
        ]
        return !excluded.contains(name) && !name.hasPrefix("GIT_") && !name.hasPrefix("SLIPWAY")
    }

    /// What a job submitted from `environment` carries: the always-captured names, every
    /// `DEVSPACE_*`, and `names` (the config's), as `environment` has them.
    public static func capture(from environment: [String: String], names: [String]) -> CapturedEnvironment {
        var captured = CapturedEnvironment()
        var looked = Set<String>()
        for name in alwaysCaptured + names where isCapturable(name) && looked.insert(name).inserted {
            if let value = environment[name] { captured.values[name] = value } else { captured.unset.append(name) }
        }
        for (name, value) in environment where name.hasPrefix(capturedPrefix) && isCapturable(name) {
            captured.values[name] = value
        }
        captured.unset.sort()
        return captured
    }

    /// Writes the names of the environment variables `loaded`'s variables read to the file
    /// `environment[namesFileKey]` names (an agent's job; nothing otherwise).
    public static func recordNames(of loaded: LoadedConfig, environment: [String: String]) {
        guard let path = environment[namesFileKey], !path.isEmpty else { return }
        let names = loaded.environmentNames.filter(isCapturable)
        _ = AtomicFile.write(Array(names.map { $0 + "\n" }.joined().utf8), to: path, mode: 0o600)
    }

    /// The names in a names file (one per line; others dropped), at most ``maxNames``.
    public static func readNames(_ path: String) -> [String] {
        guard let data = FileManager.default.contents(atPath: path) else { return [] }
        return Array(
            String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init).filter(isCapturable)
                .prefix(maxNames)
        )
    }
}
