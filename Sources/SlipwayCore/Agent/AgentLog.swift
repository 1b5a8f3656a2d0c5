internal import Foundation

/// The agent's log: `agent.log` in the state directory, rotated at 1 MiB (`agent.log.1`,
/// `agent.log.2`), the newest lines kept in memory for `follow`, and every line sent to the
/// clients that follow it.
final class AgentLog: @unchecked Sendable {
    let path: String
    let echo: Bool
    private let lock = NSLock()
    private var fd: Int32 = -1
    private var size = 0
    private var recent: [String] = []
    private var followers: Set<Int32> = []
    static let limit = 1 << 20

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
            from: Date(), timeZone: TimeZone(identifier: "UTC")!, formatOptions: [.withInternetDateTime, .withFractionalSeconds])
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
        if recent.count > 1000 { recent.removeFirst(recent.count - 500) }
        guard !followers.isEmpty else { return }
        let encoder = JSONEncoder()
        for line in lines {
            guard var data = try? encoder.encode(AgentResponse(ok: true, event: "log", line: line)) else { continue }
            data.append(UInt8(ascii: "\n"))
            for follower in followers {
                let sent = data.withUnsafeBytes { send(follower, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
                if sent != data.count { followers.remove(follower) }
            }
        }
    }

    /// Registers `fd` as a follower after sending it the newest `count` lines.
    func follow(_ fd: Int32, last count: Int) {
        lock.lock()
        defer { lock.unlock() }
        let encoder = JSONEncoder()
        for line in recent.suffix(max(0, count)) {
            guard var data = try? encoder.encode(AgentResponse(ok: true, event: "log", line: line)) else { continue }
            data.append(UInt8(ascii: "\n"))
            _ = data.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        }
        followers.insert(fd)
    }

    func unfollow(_ fd: Int32) {
        lock.lock()
        followers.remove(fd)
        lock.unlock()
    }
}
