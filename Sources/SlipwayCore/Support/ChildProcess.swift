internal import CLinux
internal import Foundation

/// Synchronous child processes for the agent's threads (the agent uses no async code):
/// posix_spawn, stdin from /dev/null, stdout and stderr into one pipe, default signal
/// dispositions and an empty signal mask (the agent blocks SIGTERM in its threads), and
/// optionally a process group of its own so that a job and everything it started can be
/// stopped together. No shell is involved: arguments are passed as they are.
public enum ChildProcess {
    public struct Started: Sendable {
        public var pid: Int32
        /// The read end of the child's stdout+stderr pipe (the caller closes it).
        public var output: Int32
    }

    private static let spawnLock = NSLock()

    /// Starts `executable` (an absolute path) with `arguments` and exactly `environment`.
    public static func start(
        _ executable: String,
        _ arguments: [String],
        environment: [String: String],
        ownProcessGroup: Bool = false
    ) throws(ToolFailure) -> Started {
        var fds: [Int32] = [-1, -1]
        var pid = pid_t()
        let argv = [executable] + arguments
        let envp = environment.map { "\($0.key)=\($0.value)" }
        let code: Int32 = spawnLock.withLock {
            guard pipe(&fds) == 0 else { return errno }
            _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
            _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
            var actions = posix_spawn_file_actions_t()
            posix_spawn_file_actions_init(&actions)
            defer { posix_spawn_file_actions_destroy(&actions) }
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
            posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
            posix_spawn_file_actions_adddup2(&actions, fds[1], 2)
            var attributes = posix_spawnattr_t()
            posix_spawnattr_init(&attributes)
            defer { posix_spawnattr_destroy(&attributes) }
            var empty = sigset_t()
            sigemptyset(&empty)
            posix_spawnattr_setsigmask(&attributes, &empty)
            var defaults = sigset_t()
            sigemptyset(&defaults)
            for signal in [SIGTERM, SIGINT, SIGPIPE, SIGHUP, SIGCHLD] { sigaddset(&defaults, signal) }
            posix_spawnattr_setsigdefault(&attributes, &defaults)
            var flags = Int32(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF)
            if ownProcessGroup {
                flags |= Int32(POSIX_SPAWN_SETPGROUP)
                posix_spawnattr_setpgroup(&attributes, 0)
            }
            posix_spawnattr_setflags(&attributes, Int16(flags))
            return withCStrings(argv) { a in
                withCStrings(envp) { e in posix_spawn(&pid, executable, &actions, &attributes, a, e) }
            }
        }
        if fds[1] >= 0 { close(fds[1]) }
        guard code == 0 else {
            if fds[0] >= 0 { close(fds[0]) }
            throw ToolFailure(
                tool: executable,
                arguments: arguments,
                status: 127,
                standardError: "cannot run \(executable): \(String(cString: strerror(code)))"
            )
        }
        return Started(pid: pid, output: fds[0])
    }

    /// Starts a daemon: a new session (no controlling terminal), stdin, stdout and stderr on
    /// /dev/null, so that nobody waiting on a pipe waits for it.
    public static func daemon(
        _ executable: String,
        _ arguments: [String],
        environment: [String: String]
    ) throws(ToolFailure) -> Int32 {
        var pid = pid_t()
        let argv = [executable] + arguments
        let envp = environment.map { "\($0.key)=\($0.value)" }
        let code: Int32 = spawnLock.withLock {
            var actions = posix_spawn_file_actions_t()
            posix_spawn_file_actions_init(&actions)
            defer { posix_spawn_file_actions_destroy(&actions) }
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
            posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
            posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
            var attributes = posix_spawnattr_t()
            posix_spawnattr_init(&attributes)
            defer { posix_spawnattr_destroy(&attributes) }
            var empty = sigset_t()
            sigemptyset(&empty)
            posix_spawnattr_setsigmask(&attributes, &empty)
            posix_spawnattr_setflags(&attributes, Int16(Int32(POSIX_SPAWN_SETSIGMASK) | SLIPWAY_POSIX_SPAWN_SETSID))
            return withCStrings(argv) { a in
                withCStrings(envp) { e in posix_spawn(&pid, executable, &actions, &attributes, a, e) }
            }
        }
        guard code == 0 else {
            throw ToolFailure(
                tool: executable,
                arguments: arguments,
                status: 127,
                standardError: "cannot start \(executable): \(String(cString: strerror(code)))"
            )
        }
        return pid
    }

    /// Waits for `pid` and returns its exit status (128 + the signal for a signal).
    public static func wait(_ pid: Int32) -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 {
            if errno != EINTR { return -1 }
        }
        let signal = status & 0x7f
        return signal == 0 ? (status >> 8) & 0xff : 128 + signal
    }

    /// Runs a short command to the end and returns its status and output (at most 1 MiB);
    /// after `timeout` seconds the child is killed.
    public static func run(
        _ executable: String,
        _ arguments: [String],
        environment: [String: String],
        timeout: Double = 60
    ) throws(ToolFailure) -> (status: Int32, output: String) {
        let started = try start(executable, arguments, environment: environment, ownProcessGroup: true)
        defer { close(started.output) }
        var output: [UInt8] = []
        let deadline = Date().addingTimeInterval(timeout)
        var chunk = [UInt8](repeating: 0, count: 16_384)
        var killed = false
        while true {
            let left = deadline.timeIntervalSinceNow
            if left <= 0 {
                kill(-started.pid, SIGKILL)
                killed = true
                break
            }
            var p = pollfd(fd: started.output, events: Int16(POLLIN), revents: 0)
            let ready = poll(&p, 1, Int32(min(left, 1) * 1000) + 1)
            if ready < 0 && errno != EINTR { break }
            if ready <= 0 { continue }
            let n = read(started.output, &chunk, chunk.count)
            if n == 0 { break }
            if n < 0 {
                if errno == EINTR || errno == EAGAIN { continue }
                break
            }
            if output.count < 1 << 20 { output += chunk[..<n] }
        }
        let status = wait(started.pid)
        return (killed ? 124 : status, String(decoding: output, as: UTF8.self))
    }

    /// Field 22 of `/proc/PID/stat`: when the process started (clock ticks since boot); nil
    /// when there is no such process. With the pid, it names one process even after pid reuse.
    public static func startTime(of pid: Int32) -> UInt64? { procStat(pid)?.start }

    /// Whether process `pid`, started at `start` (when known), still runs (a zombie does not).
    public static func isAlive(_ pid: Int32, start: UInt64?) -> Bool {
        guard let stat = procStat(pid), stat.state != "Z" else { return false }
        return start == nil || start == stat.start
    }

    /// Whether a process of process group `pgid` still runs. Zombies do not count: `kill(-pgid,
    /// 0)` succeeds for them, and where nothing reaps orphans (a container's init that does
    /// not) the members of a killed job's group stay zombies for ever.
    public static func groupIsRunning(_ pgid: Int32) -> Bool {
        guard pgid > 0 else { return false }
        if kill(-pgid, 0) != 0 && errno == ESRCH { return false }
        guard let proc = opendir("/proc") else { return true }
        defer { closedir(proc) }
        while let entry = readdir(proc) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) {
                String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self)
            }
            guard let pid = Int32(name), let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                let close = text.lastIndex(of: ")")
            else { continue }
            // After "pid (comm) ": state, ppid, pgrp, …
            let fields = text[text.index(after: close)...].split(separator: " ", maxSplits: 4)
            if fields.count > 2, Int32(fields[2]) == pgid, fields[0] != "Z" { return true }
        }
        return false
    }

    /// The state (field 3) and start time (field 22) of `/proc/PID/stat`.
    private static func procStat(_ pid: Int32) -> (state: Substring, start: UInt64)? {
        guard pid > 0, let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = text.lastIndex(of: ")")
        else { return nil }
        // After "pid (comm) " come fields 3 onwards.
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 19, let start = UInt64(fields[19]) else { return nil }
        return (fields[0], start)
    }
}

private func withCStrings<R>(_ strings: [String], _ body: ([UnsafeMutablePointer<CChar>?]) -> R) -> R {
    let pointers = strings.map { strdup($0) } + [nil]
    defer { for pointer in pointers { free(pointer) } }
    return body(pointers)
}
