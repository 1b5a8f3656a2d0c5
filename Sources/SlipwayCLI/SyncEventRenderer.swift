import Foundation
import SlipwayCore

/// Renders a running sync's events: one line per batch (files, bytes, latency) on stdout, the
/// decisions that need a look (conflicts, refusals, failures; every decision with `--debug`),
/// pauses, reconnects and notes on stderr; with `--json`, one JSON object per line on stdout.
struct SyncEventRenderer: Sendable {
    let names: [String]
    let json: Bool
    let silent: Bool
    let debug: Bool

    init(plan: SyncPlan, json: Bool, silent: Bool, debug: Bool = false) {
        names = plan.targets.map { "\($0.container.name):\($0.remoteRoot)" }
        self.json = json
        self.silent = silent
        self.debug = debug
    }

    func show(_ target: Int, _ event: SyncEvent) {
        let name = target < names.count ? names[target] : "sync"
        if json {
            if let line = Self.json(name, event) { Terminal.out(line + "\n") }
            return
        }
        switch event {
        case .batch(let report):
            guard !silent else { return }
            var line =
                "\(name): \(report.kind.rawValue) \(report.files) file\(report.files == 1 ? "" : "s"), "
                + "\(Self.bytes(report.bytes)), \(report.changes) change\(report.changes == 1 ? "" : "s") in "
                + Self.milliseconds(report.latency)
            if let git = report.waitedForGit { line += " (waited \(Self.milliseconds(git)) for git)" }
            if report.conflicts > 0 { line += ", \(report.conflicts) conflict\(report.conflicts == 1 ? "" : "s")" }
            if report.failures > 0 { line += ", \(report.failures) failed" }
            Terminal.out(line + "\n")
        case .decision(let decision):
            switch decision.action {
            case .conflict, .refused, .failed: Terminal.error("\(name): \(decision)")
            default: if debug { Terminal.error("\(name): \(decision)") }
            }
        case .initialSyncStarted(let strategy, let local, let remote):
            if !silent {
                Terminal.error(
                    "\(name): initial sync (\(strategy.rawValue)): \(local) local, \(remote) in the container"
                )
            }
        case .watching:
            if !silent { Terminal.error("\(name): watching both sides") }
        case .waitingForGit:
            if debug { Terminal.error("\(name): git holds its index lock; the batch waits") }
        case .gitLockStale(let path, let held):
            Terminal.error("\(name): \(path) held for \(Self.milliseconds(held)); sending the batch anyway")
        case .rescan(let reason): Terminal.error("\(name): rescan: \(reason)")
        case .watchLimitTooLow(let needed, let limit, let command):
            Terminal.error(
                "\(name): \(needed) directories to watch but fs.inotify.max_user_watches is \(limit); run: \(command)"
            )
        case .paused(let reason): Terminal.error("\(name): \(reason)")
        case .resumed: Terminal.error("\(name): resumed")
        case .disconnected(let reason): Terminal.error("\(name): disconnected (\(reason)); reconnecting")
        case .reconnected: Terminal.error("\(name): reconnected; comparing both sides again")
        case .note(let text): if !silent { Terminal.error("\(name): note: \(text)") }
        }
    }

    static func millisecondCount(_ d: Duration) -> Double {
        let (s, atto) = d.components
        return Double(s) * 1000 + Double(atto) / 1e15
    }

    static func milliseconds(_ d: Duration) -> String {
        let ms = millisecondCount(d)
        return ms < 10 ? String(format: "%.1f ms", ms) : String(format: "%.0f ms", ms)
    }

    static func bytes(_ n: UInt64) -> String {
        if n < 1024 { return "\(n) B" }
        if n < 1 << 20 { return String(format: "%.1f KiB", Double(n) / 1024) }
        return String(format: "%.1f MiB", Double(n) / 1_048_576)
    }

    /// One JSON object for machines, or nil for events they do not need.
    static func json(_ name: String, _ event: SyncEvent) -> String? {
        var object = JSONLine()
        object["sync"] = .string(name)
        switch event {
        case .batch(let r):
            object["event"] = .string("batch")
            object["kind"] = .string(r.kind.rawValue)
            object["files"] = .integer(Int64(r.files))
            object["bytes"] = .unsigned(r.bytes)
            object["changes"] = .integer(Int64(r.changes))
            object["conflicts"] = .integer(Int64(r.conflicts))
            object["failures"] = .integer(Int64(r.failures))
            object["latencyMs"] = .number(millisecondCount(r.latency))
            object["applyingMs"] = .number(millisecondCount(r.applying))
            if let git = r.waitedForGit { object["waitedForGitMs"] = .number(millisecondCount(git)) }
        case .decision(let d):
            object["event"] = .string("decision")
            object["path"] = .string(d.path)
            object["direction"] = .string(d.direction.rawValue)
            object["decision"] = .string(d.description)
        case .paused(let reason):
            object["event"] = .string("paused")
            object["reason"] = .string(reason.description)
        case .disconnected(let reason):
            object["event"] = .string("disconnected")
            object["reason"] = .string(reason)
        case .reconnected: object["event"] = .string("reconnected")
        case .rescan(let reason):
            object["event"] = .string("rescan")
            object["reason"] = .string(reason)
        case .watching: object["event"] = .string("watching")
        case .note(let text):
            object["event"] = .string("note")
            object["text"] = .string(text)
        default: return nil
        }
        return object.text
    }
}

/// One flat JSON object on one line, keys sorted, `/` left unescaped — what JSONSerialization
/// writes with `.sortedKeys` and `.withoutEscapingSlashes`, built directly: a batch of 1,000
/// files prints 1,000 decisions, and JSONSerialization (bridging, locale-aware key sorting)
/// took a fifth of the sync's CPU for them (bench/sync-scale).
struct JSONLine {
    enum Value {
        case string(String)
        case integer(Int64)
        case unsigned(UInt64)
        case number(Double)
    }

    private var fields: [String: Value] = [:]

    subscript(key: String) -> Value? {
        get { fields[key] }
        set { fields[key] = newValue }
    }

    var text: String {
        var out = "{"
        for (index, key) in fields.keys.sorted().enumerated() {
            if index > 0 { out += "," }
            Self.quote(key, into: &out)
            out += ":"
            switch fields[key] {
            case .string(let value): Self.quote(value, into: &out)
            case .integer(let value): out += String(value)
            case .unsigned(let value): out += String(value)
            case .number(let value): out += value.isFinite ? "\(value)" : "null"
            case nil: out += "null"
            }
        }
        return out + "}"
    }

    /// A JSON string: `"` and `\` escaped, control characters as `\n`, `\t`… or `\u00XX`.
    static func quote(_ value: String, into out: inout String) {
        out += "\""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
    }
}
