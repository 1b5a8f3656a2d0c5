/// One line a hook wrote into the agent's inbox (`hooks/slipway-hook`; docs/hooks.md): TAB-
/// separated fields after the version `v1`.
public enum InboxEvent: Sendable, Equatable {
    /// post-commit: HEAD is `commit`, on `ref` (`refs/heads/…` or `HEAD`).
    case commit(commit: String, ref: String, worktree: String)
    /// pre-push, one per pushed branch: the push may still fail.
    case prePush(
        gitPID: Int32,
        remote: String,
        url: String,
        localRef: String,
        localOID: String,
        remoteRef: String,
        remoteOID: String,
        worktree: String
    )
    /// reference-transaction `committed` of a remote-tracking ref (after a push or a fetch).
    case tracking(old: String, new: String, ref: String, worktree: String)
    /// post-checkout.
    case checkout(commit: String, branchCheckout: Bool, worktree: String)
    /// post-merge or post-rewrite.
    case refresh(hook: String, worktree: String)
    /// With a commit or pre-push event: an environment variable of the hook (nil: not set),
    /// for the file's jobs (``CapturedEnvironment``). The value is escaped in the file
    /// (`\\`, `\t`, `\n`).
    case environment(name: String, value: String?)

    /// Parses one inbox file's text; lines that are not understood are returned as errors.
    public static func parse(_ text: String) -> (events: [InboxEvent], errors: [String]) {
        var events: [InboxEvent] = []
        var errors: [String] = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            let f = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            guard f.count >= 2, f[0] == "v1" else {
                // Never the line itself: it may hold an environment variable's value.
                errors.append("unknown line format (\(f[0].prefix(8)))")
                continue
            }
            let oid = { (s: String) in s.count >= 40 && s.allSatisfy(\.isHexDigit) }
            switch (f[1], f.count) {
            case ("commit", 5) where oid(f[2]) && !f[4].isEmpty:
                events.append(.commit(commit: f[2], ref: f[3], worktree: f[4]))
            case ("prepush", 10) where oid(f[6]):
                guard let pid = Int32(f[2]) else {
                    errors.append("prepush: bad pid \(f[2])")
                    continue
                }
                events.append(
                    .prePush(
                        gitPID: pid,
                        remote: f[3],
                        url: f[4],
                        localRef: f[5],
                        localOID: f[6],
                        remoteRef: f[7],
                        remoteOID: f[8],
                        worktree: f[9]
                    )
                )
            case ("tracking", 6) where oid(f[3]):
                events.append(.tracking(old: f[2], new: f[3], ref: f[4], worktree: f[5]))
            case ("checkout", 5):
                events.append(.checkout(commit: f[2], branchCheckout: f[3] == "1", worktree: f[4]))
            case ("refresh", 4):
                events.append(.refresh(hook: f[2], worktree: f[3]))
            case ("env", 3) where JobEnvironment.isCapturable(f[2]):
                events.append(.environment(name: f[2], value: nil))
            case ("env", 4) where JobEnvironment.isCapturable(f[2]):
                events.append(.environment(name: f[2], value: unescape(f[3])))
            default:
                errors.append("unknown or malformed \(f[1]) line (\(f.count) fields)")
            }
        }
        return (events, errors)
    }

    /// The hook's escaping undone: `\\` → `\`, `\t` → TAB, `\n` → newline.
    static func unescape(_ text: String) -> String {
        guard text.contains("\\") else { return text }
        var out = ""
        var escaped = false
        for c in text {
            if escaped {
                switch c {
                case "t": out.append("\t")
                case "n": out.append("\n")
                default: out.append(c)
                }
                escaped = false
            } else if c == "\\" {
                escaped = true
            } else {
                out.append(c)
            }
        }
        if escaped { out.append("\\") }
        return out
    }

    /// The environment the file's `env` lines carry, or nil when it has none (a hook from
    /// before they existed: the job gets the agent's environment).
    public static func capturedEnvironment(_ events: [InboxEvent]) -> CapturedEnvironment? {
        var captured: CapturedEnvironment?
        for case .environment(let name, let value) in events {
            var c = captured ?? CapturedEnvironment()
            if let value {
                c.values[name] = value
                c.unset.removeAll { $0 == name }
            } else if c.values[name] == nil, !c.unset.contains(name) {
                c.unset.append(name)
            }
            captured = c
        }
        captured?.unset.sort()
        return captured
    }
}
