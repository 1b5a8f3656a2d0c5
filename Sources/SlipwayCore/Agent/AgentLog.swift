internal import Foundation

/// The agent's log: `agent.log` in the state directory, rotated at 1 MiB (`agent.log.1`,
/// `agent.log.2`), and the newest lines kept in memory, numbered, for the clients that follow
/// it: the socket's loop (`AgentServer`) takes the lines after each follower's number and is
/// woken (`onWrite`) when lines are added.
///
/// `@unchecked Sendable`: `fd`, `size`, `recent`, `firstNumber` and `onWrite` are read and
/// written only with `lock` held; `path` and `echo` never change.
final class AgentLog: @unchecked Sendable {
    let path: String
    let echo: Bool
    private let lock = NSLock()
    private var fd: Int32 = -1
    private var size = 0
    private var recent: [String] = []
    /// The number of `recent[0]`; the next line written gets `firstNumber + recent.count`.
    private var firstNumber: UInt64 = 0
    private var onWrite: (@Sendable () -> Void)?
    static let limit = 1 << 20
    static let kept = 4_000

    init(path: String, echo: Bool) {
        self.path = path
        self.echo = echo
        reopen()
    }

    private func reopen() {
        if fd >= 0 { close(fd) }
        fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
        var st = stat()
        size = fd >= 0 && fstat(fd, &st) == 0 ? Int(st.st_size) : 0
    }

    func write(_ message: String) {
        let stamp = ISO8601DateFormatter.string(
            from: Date(),
            timeZone: TimeZone(identifier: "UTC")!,
            formatOptions: [.withInternetDateTime, .withFractionalSeconds]
        )
        var lines: [String] = []
        for part in message.split(separator: "\n", omittingEmptySubsequences: false) where !part.isEmpty {
            lines.append("\(stamp) \(part)")
        }
        guard !lines.isEmpty else { return }
        lock.lock()
        defer { lock.unlock() }
        if fd < 0 { reopen() }  // the state directory may not have existed at first
        let text = lines.joined(separator: "\n") + "\n"
        let bytes = Array(text.utf8)
        if size + bytes.count > Self.limit {
            rename(path + ".1", path + ".2")
            rename(path, path + ".1")
            reopen()
        }
        if fd >= 0 {
            bytes.withUnsafeBytes { _ = Foundation.write(fd, $0.baseAddress, $0.count) }
            size += bytes.count
        }
        if echo { bytes.withUnsafeBytes { _ = Foundation.write(2, $0.baseAddress, $0.count) } }
        recent += lines
        // Followers take their lines from here: a follower more than 4,000–8,000 lines behind
        // (a job's output is fast) has missed some (about 1 MB of lines at most).
        if recent.count > Self.kept * 2 {
            let drop = recent.count - Self.kept
            recent.removeFirst(drop)
            firstNumber += UInt64(drop)
        }
        onWrite?()
    }

    /// Calls `body` (which must not block or write to the log) after every write; nil: never.
    func setOnWrite(_ body: (@Sendable () -> Void)?) {
        lock.lock()
        onWrite = body
        lock.unlock()
    }

    /// The number of the line `count` lines before the end (where a new follower starts).
    func number(last count: Int) -> UInt64 {
        lock.lock()
        defer { lock.unlock() }
        let end = firstNumber + UInt64(recent.count)
        return end - UInt64(min(max(0, count), recent.count))
    }

    /// At most `limit` lines from number `from` on, and the number after them; `missed` lines
    /// were dropped from memory before they could be taken.
    func lines(from number: UInt64, limit: Int) -> (lines: [String], next: UInt64, missed: UInt64) {
        lock.lock()
        defer { lock.unlock() }
        let missed = number < firstNumber ? firstNumber - number : 0
        let start = Int(max(number, firstNumber) - firstNumber)
        guard start < recent.count else { return ([], max(number, firstNumber + UInt64(recent.count)), missed) }
        let taken = Array(recent[start..<min(recent.count, start + limit)])
        return (taken, firstNumber + UInt64(start + taken.count), missed)
    }
}
