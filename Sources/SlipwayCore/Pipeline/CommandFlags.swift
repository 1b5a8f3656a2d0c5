internal import Foundation

/// The command line as DevSpace users type it (DevSpace's flags are spf13/pflag's), decided
/// here so that the CLI only parses, calls and renders:
/// - a boolean flag also takes a value, `--force-build=false`, `-b=false` (pflag's spellings
///   of true and false), and the last one given wins;
/// - `-t/--tag` values are image tags by docker's grammar;
/// - DevSpace's flags that slipway accepts but that change nothing here, each with the reason
///   the user reads once.
public enum CommandFlags {
    /// A boolean flag: its long name, its short name, and the spelling that turns it off when
    /// it is on by default (`--no-skip-push-local-kube`).
    public struct Boolean: Sendable, Hashable {
        public var long: String
        public var short: Character?
        public var off: String?

        public init(_ long: String, short: Character? = nil, off: String? = nil) {
            self.long = long
            self.short = short
            self.off = off
        }
    }

    /// pflag's (Go's `strconv.ParseBool`) spellings of true and false; nil for anything else.
    public static func booleanValue(_ text: String) -> Bool? {
        switch text {
        case "1", "t", "T", "true", "TRUE", "True": return true
        case "0", "f", "F", "false", "FALSE", "False": return false
        default: return nil
        }
    }

    /// Rewrites the booleans of `flags` that are given a value (`--name=VALUE`, `-n=VALUE`) into
    /// the spellings an argument parser without values for flags reads: the flag's last value
    /// wins, as in pflag, and stands where its last occurrence stood — `--name` when true, the
    /// `off` spelling (or nothing) when false; its other occurrences are dropped. Flags never
    /// given a value, and everything after `--`, are left as they are.
    /// Whether some argument before `--` looks like a flag given a value (`-x=…`, `--x=…`):
    /// only then can ``normalizeBooleans(_:_:)`` change anything.
    public static func mayHaveValuedFlag(_ args: [String]) -> Bool {
        for arg in args {
            if arg == "--" { return false }
            if arg.utf8.first == UInt8(ascii: "-") && arg.utf8.contains(UInt8(ascii: "=")) { return true }
        }
        return false
    }

    public static func normalizeBooleans(_ args: [String], _ flags: [Boolean]) throws(PipelineError) -> [String] {
        guard mayHaveValuedFlag(args) else { return args }
        let end = args.firstIndex(of: "--") ?? args.count
        var byLong: [String: Int] = [:]
        var byOff: [String: Int] = [:]
        var byShort: [Character: Int] = [:]
        for (i, flag) in flags.enumerated() {
            byLong[flag.long] = i
            if let off = flag.off { byOff[off] = i }
            if let short = flag.short { byShort[short] = i }
        }
        // Each occurrence: (argument index, flag index, value, whether it was given a value).
        var occurrences: [(at: Int, flag: Int, value: Bool, valued: Bool)] = []
        for i in 0..<end {
            let arg = args[i]
            if arg.hasPrefix("--") {
                let body = arg.dropFirst(2)
                let name = String(body.prefix { $0 != "=" })
                let valueText = body.contains("=") ? String(body.drop { $0 != "=" }.dropFirst()) : nil
                if let f = byLong[name] {
                    guard let valueText else {
                        occurrences.append((i, f, true, false))
                        continue
                    }
                    guard let value = booleanValue(valueText) else { throw badValue(arg, valueText) }
                    occurrences.append((i, f, value, true))
                } else if let f = byOff[name], valueText == nil {
                    occurrences.append((i, f, false, false))
                }
            } else if arg.hasPrefix("-"), arg.count >= 2, let c = arg.dropFirst().first, let f = byShort[c] {
                if arg.count == 2 {
                    occurrences.append((i, f, true, false))
                } else if arg.dropFirst(2).first == "=" {
                    let valueText = String(arg.dropFirst(3))
                    guard let value = booleanValue(valueText) else { throw badValue(arg, valueText) }
                    occurrences.append((i, f, value, true))
                }
            }
        }
        let rewritten = Set(occurrences.filter(\.valued).map(\.flag))
        guard !rewritten.isEmpty else { return args }
        var replacement: [Int: String?] = [:]
        for f in rewritten {
            let mine = occurrences.filter { $0.flag == f }
            guard let last = mine.last else { continue }
            for o in mine { replacement[o.at] = .some(nil) }
            let flag = flags[f]
            let spelling: String? = last.value ? "--" + flag.long : flag.off.map { "--" + $0 }
            replacement[last.at] = .some(spelling)
        }
        var out: [String] = []
        for (i, arg) in args.enumerated() {
            if let r = replacement[i] {
                if let r { out.append(r) }
            } else {
                out.append(arg)
            }
        }
        return out
    }

    static func badValue(_ arg: String, _ value: String) -> PipelineError {
        .usage(
            "\(arg): \"\(value)\" is not a boolean; give true or false (also 1/0, t/f), or the flag alone for true"
        )
    }

    /// The tags of `-t a,b -t c`: split at commas, blanks trimmed, empty ones dropped.
    public static func tags(_ values: [String]) -> [String] {
        values.flatMap { $0.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) } }
            .filter { !$0.isEmpty }
    }

    /// Why `tag`, given on the command line as `flag` (`-t/--tag`), is not an image tag; nil
    /// when it is one. `#` is a placeholder filled with random characters, as in DevSpace.
    public static func tagProblem(_ tag: String, flag: String) -> String? {
        guard !DockerReference.isValidTag(String(tag.map { $0 == "#" ? "a" : $0 })) else { return nil }
        var problem =
            "\(flag) \(tag): not a valid image tag; a tag is 1 to 128 letters, digits, '_', '.' and '-', "
            + "not starting with '.' or '-' (docker's tag grammar)"
        if tag.contains("/") {
            let suggestion = tag.replacingOccurrences(of: "/", with: "-")
            problem +=
                "; for a git branch replace the '/', e.g. \(flag) \(suggestion)"
                + " or \(flag) \"$(git rev-parse --abbrev-ref HEAD | tr / -)\""
        } else if tag.count > 128 {
            problem += "; this one has \(tag.count) characters"
        }
        return problem
    }

    /// Why `--pipeline VALUE` cannot name a pipeline; nil when it can.
    public static func pipelineNameProblem(_ name: String) -> String? {
        if name.isEmpty { return "--pipeline needs the name of a pipeline (of pipelines: or DevSpace's defaults)" }
        if name.hasPrefix("-") {
            return
                "--pipeline \(name): a pipeline's name cannot start with '-'; give the name after --pipeline (e.g. --pipeline deploy)"
        }
        return nil
    }

    /// DevSpace's flags that slipway accepts and ignores, with the reason.
    public enum Ignored: String, Sendable, CaseIterable {
        case showUI = "--show-ui"
        case forcePurge = "--force-purge"
        case inactivityTimeout = "--inactivity-timeout"
        case sequentialDependencies = "--sequential-dependencies"
        // `slipway build` without --pipeline runs no dependencies and deploys nothing.
        case dependency = "--dependency"
        case skipDependency = "--skip-dependency"
        case render = "--render"
        case skipDeploy = "--skip-deploy"
        case forceDeploy = "--force-deploy"
        case branchEnv = "--branch-env"

        var reason: String {
            switch self {
            case .showUI: return "slipway has no UI server; its output is the terminal's"
            case .forcePurge:
                return "slipway runs no dependencies, so no deployment of this project is in use by another project"
            case .inactivityTimeout:
                return "it needs the desktop's idle time (DevSpace too supports it only on Windows and macOS)"
            case .sequentialDependencies, .dependency, .skipDependency: return "slipway does not run dependencies yet"
            case .render, .skipDeploy, .forceDeploy, .branchEnv:
                return "`slipway build` deploys nothing; give it to deploy, or add --pipeline NAME to run a pipeline"
            }
        }
    }

    /// One line per reason (flags with the same reason share a line), in `Ignored`'s order.
    public static func notes(_ ignored: Set<Ignored>) -> [String] {
        var lines: [String] = []
        var seen: Set<String> = []
        for flag in Ignored.allCases where ignored.contains(flag) && !seen.contains(flag.reason) {
            seen.insert(flag.reason)
            let same = Ignored.allCases.filter { ignored.contains($0) && $0.reason == flag.reason }.map(\.rawValue)
            let names = same.joined(separator: ", ")
            lines.append("note: \(names) \(same.count == 1 ? "is" : "are") ignored here because \(flag.reason)")
        }
        return lines
    }
}
