import Foundation
import SlipwayCore
import SlipwayTestSupport
import Testing

/// A raw connection to an agent's socket (what a client that misbehaves does).
final class RawConnection {
    let fd: Int32
    private var buffer: [UInt8] = []

    /// Connects; nil when the connection cannot be made.
    init?(_ path: String) {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            close(fd)
            return nil
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
        }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard connected == 0 else {
            close(fd)
            return nil
        }
        self.fd = fd
    }

    deinit { close(fd) }

    func send(_ text: String) {
        _ = Array(text.utf8).withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    /// Sends end of file (the connection stays open for reading).
    func shutdownWrite() { _ = shutdown(fd, Int32(SHUT_WR)) }

    /// The next line, waiting at most `seconds`; nil on end of file or timeout.
    func readLine(within seconds: Double) -> String? {
        let deadline = Date().addingTimeInterval(seconds)
        while true {
            if let nl = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: buffer[..<nl], as: UTF8.self)
                buffer.removeSubrange(...nl)
                return line
            }
            let left = deadline.timeIntervalSinceNow
            guard left > 0 else { return nil }
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, Int32(left * 1000) + 1) > 0 else { continue }
            var chunk = [UInt8](repeating: 0, count: 4096)
            let n = recv(fd, &chunk, chunk.count, 0)
            if n <= 0 { return nil }
            buffer += chunk[..<n]
        }
    }

    /// The next line as a response (waiting at most `seconds`); nil on end of file, timeout or a
    /// line that is not one.
    func response(within seconds: Double) -> AgentResponse? {
        readLine(within: seconds).flatMap { try? JSONDecoder().decode(AgentResponse.self, from: Data($0.utf8)) }
    }

    /// Whether the agent closes the connection within `seconds` (what it sends meanwhile is kept).
    func isClosedByPeer(within seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while true {
            let left = deadline.timeIntervalSinceNow
            guard left > 0 else { return false }
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, Int32(left * 1000) + 1) > 0 else { continue }
            var chunk = [UInt8](repeating: 0, count: 4096)
            let n = recv(fd, &chunk, chunk.count, Int32(MSG_DONTWAIT))
            if n == 0 { return true }
            if n < 0 { return errno != EAGAIN && errno != EINTR }
            buffer += chunk[..<n]
        }
    }
}

/// Opens `count` connections to `path` as fast as one thread can, each connected and never
/// sending a complete request (half of them send the start of one), and holds them.
final class HalfOpenFlood: @unchecked Sendable {
    let path: String
    let count: Int
    private let lock = NSLock()
    private var fds: [Int32] = []
    private var finished = false
    private(set) var failures = 0

    init(path: String, count: Int) {
        self.path = path
        self.count = count
    }

    func start() {
        let thread = Thread { [self] in
            var opened: [Int32] = []
            opened.reserveCapacity(count)
            var failed = 0
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &address.sun_path) { raw in
                for (i, b) in path.utf8.enumerated() { raw[i] = b }
            }
            let partial = Array(#"{"op":"sta"#.utf8)
            for n in 0..<count {
                let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
                guard fd >= 0 else {
                    failed += 1
                    continue
                }
                let connected = withUnsafePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
                    }
                }
                if connected != 0 { failed += 1 }
                if n % 2 == 1 {
                    _ = partial.withUnsafeBytes {
                        send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT))
                    }
                }
                opened.append(fd)
            }
            lock.withLock {
                fds = opened
                failures = failed
                finished = true
            }
        }
        thread.start()
    }

    var isDone: Bool { lock.withLock { finished } }

    func waitUntilDone(_ seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while !isDone && Date() < deadline { usleep(20_000) }
        return isDone
    }

    func close() {
        lock.withLock {
            for fd in fds { Glibc.close(fd) }
            fds = []
        }
    }
}

/// `Threads:` and `VmRSS:` (kB) of `/proc/PID/status`.
func processFigures(_ pid: Int32) -> (threads: Int, rss: Int)? {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
    var threads: Int?
    var rss: Int?
    for line in text.split(separator: "\n") {
        let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
        if fields.first == "Threads:", fields.count > 1 { threads = Int(fields[1]) }
        if fields.first == "VmRSS:", fields.count > 1 { rss = Int(fields[1]) }
    }
    guard let threads, let rss else { return nil }
    return (threads, rss)
}

/// The reliability of the agent: connection floods, idle clients, full disks, lost and late
/// events, crashes at random moments. The built binary, real repositories, the real engine.
@Suite(.serialized, .requiresDockerEngine, .timeLimit(.minutes(15)))
struct AgentRobustnessTests {
    static func elapsed(since start: Date) -> Double { Date().timeIntervalSince(start) }

    /// Raises this process's descriptor limit to its hard limit; whether `needed` fit.
    static func raiseDescriptorLimit(to needed: Int) -> Bool {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return false }
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max
            _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        }
        return limit.rlim_max >= rlim_t(needed)
    }

    @Test func tenThousandHalfOpenConnectionsCostNoThreadsAndTheAgentStillAnswersAndBuildsInOrder() throws {
        let connections = 10_000
        try #require(
            Self.raiseDescriptorLimit(to: connections + 500),
            "the test needs a descriptor limit above \(connections + 500) (ulimit -Hn) to hold \(connections) connections"
        )
        try withTemporaryDirectory { dir in
            let p = try AgentProject(dir: dir)
            defer { p.cleanUp() }
            #expect(try p.slipway(["hooks", "install"]).status == 0)
            #expect(try p.slipway(["agent", "submit", "commit", "--wait"]).status == 0)
            _ = try p.waitIdle()
            let pid = try #require(p.agentPID())
            usleep(500_000)
            let idle = try #require(processFigures(pid))

            let started = Date()
            let flood = HalfOpenFlood(path: p.state + "/agent.sock", count: connections)
            flood.start()
            var peak = idle
            var asked: [Double] = []
            repeat {
                let t = Date()
                let r = try p.slipway(["status", "--json"], timeout: 30)
                asked.append(Self.elapsed(since: t))
                #expect(r.status == 0, "slipway status during the flood: \(r.stderr)")
                if let now = processFigures(pid) { peak = (max(peak.threads, now.threads), max(peak.rss, now.rss)) }
            } while !flood.isDone && Self.elapsed(since: started) < 60
            #expect(flood.waitUntilDone(60), "the \(connections) connections were not opened within 60 s")
            #expect(flood.failures == 0, "\(flood.failures) connections failed")
            for _ in 0..<10 {
                if let now = processFigures(pid) { peak = (max(peak.threads, now.threads), max(peak.rss, now.rss)) }
                usleep(50_000)
            }
            let t = Date()
            let held = try p.slipway(["status"], timeout: 30)
            asked.append(Self.elapsed(since: t))
            #expect(held.status == 0 && held.stdout.contains("agent: running (pid \(pid))"), "\(held.stderr)")
            #expect(
                peak.threads <= 32,
                "threads: \(idle.threads) idle, \(peak.threads) with \(connections) connections"
            )
            #expect(
                peak.rss - idle.rss <= 20 << 10,
                "RSS: \(idle.rss) kB idle, \(peak.rss) kB with \(connections) connections"
            )
            #expect(asked.allSatisfy { $0 < 10 }, "slipway status took \(asked) s")

            // Two commits through the hooks while the connections are held: accepted in order,
            // the newer one built, nothing built after it.
            let first = try p.commit("during the flood 1")
            let second = try p.commit("during the flood 2")
            let describe = try p.describe()
            #expect(try AgentHookIntegrationTests.eventually(120) { try p.imageExists(describe) }, "log:\n\(p.log())")
            _ = try p.waitIdle()
            flood.close()
            let records = p.journal()
            let accepted = records.filter { $0.kind == .accepted }.compactMap(\.job)
            #expect(Array(accepted.map(\.commit).suffix(2)) == [first, second])
            let queue = JobQueue(replaying: records)
            let newest = try #require(accepted.last)
            guard case .finished(let result)? = queue.entries[newest.id]?.state else {
                Issue.record("the newest commit's job ended as \(String(describing: queue.entries[newest.id]?.state))")
                return
            }
            #expect(result.ok)
            let startedAfter = records.filter {
                $0.kind == .started && ($0.id ?? 0) != newest.id && $0.at > result.startedAt
            }
            #expect(startedAfter.isEmpty, "a job started after the newest commit's")
            #expect(
                AgentHookIntegrationTests.eventually(15) { p.log().contains("connections: ") },
                "the flood is summed up in the log"
            )
            print(
                "flood: \(connections) connections; threads \(idle.threads) -> \(peak.threads); RSS \(idle.rss / 1024) -> \(peak.rss / 1024) MB; status \(asked.map { String(format: "%.2f", $0) }) s"
            )
        }
    }

    @Test func anIdleConnectionIsClosedAfterFiveSecondsButFollowersAndWaitersAreNot() throws {
        try withTemporaryDirectory { dir in
            let p = try AgentProject(dir: dir, sleep: 7)
            defer { p.cleanUp() }
            #expect(try p.slipway(["agent", "start"]).status == 0)
            let socket = p.state + "/agent.sock"
            let silent = try #require(RawConnection(socket))
            let partial = try #require(RawConnection(socket))
            partial.send(#"{"op":"status""#)
            let follower = try #require(try AgentClient(paths: AgentPaths(commonDir: dir + "/.git")))
            follower.setTimeout(60)
            try follower.send(AgentRequest(op: "follow", lines: 0))
            let start = Date()
            for connection in [silent, partial] {
                let answer = connection.response(within: 10)
                #expect(answer?.ok == false, "\(String(describing: answer))")
                #expect(
                    answer?.error?.contains("no complete request within 5 s") == true,
                    "\(String(describing: answer))"
                )
                #expect(connection.isClosedByPeer(within: 2))
            }
            let waited = Self.elapsed(since: start)
            #expect(waited >= 4.5 && waited < 10, "closed after \(waited) s")
            // Idle for more than 5 s, the follower still follows, and a client waiting for a
            // job that takes longer than 5 s gets its end.
            _ = try p.commit("slow")
            let submitted = try p.slipway(["agent", "submit", "commit", "--wait"])
            #expect(submitted.status == 0, "\(submitted.stderr)")
            #expect(submitted.stderr.contains("job 1 finished"), "\(submitted.stderr)")
            var seen: [String] = []
            while let response = try follower.receive() {
                #expect(response.ok, "\(String(describing: response.error))")
                guard let line = response.line else { break }
                seen.append(line)
                if line.contains("job 1 finished") { break }
            }
            #expect(seen.contains { $0.contains("job 1 accepted") }, "\(seen)")
            #expect(seen.last?.contains("job 1 finished") == true, "\(seen)")
        }
    }

    @Test func followersAndWaitersAreCappedAndARefusedSubmitAcceptsNothing() throws {
        try withTemporaryDirectory { dir in
            let p = try AgentProject(dir: dir, sleep: 30)
            defer { p.cleanUp() }
            #expect(try p.slipway(["agent", "start"]).status == 0)
            let socket = p.state + "/agent.sock"
            // 16 followers; the 17th is refused as busy.
            var followers: [RawConnection] = []
            for _ in 0..<16 {
                let c = try #require(RawConnection(socket))
                c.send(#"{"op":"follow","lines":1}"# + "\n")
                #expect(c.response(within: 10)?.event == "log")
                followers.append(c)
            }
            let seventeenth = try #require(RawConnection(socket))
            seventeenth.send(#"{"op":"follow","lines":1}"# + "\n")
            let refused = seventeenth.response(within: 10)
            #expect(
                refused?.busy == true && refused?.error?.contains("16 clients already follow the log") == true,
                "\(String(describing: refused))"
            )
            // 16 gate jobs waited for (the first runs for 30 s); the 17th is refused and not accepted.
            let head = try p.git(["rev-parse", "HEAD"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            let submit =
                #"{"op":"submit","job":{"pipeline":"gate","ref":"refs/heads/main","commit":"\#(head)","worktree":"\#(dir)"},"wait":true}"#
                + "\n"
            var waiters: [RawConnection] = []
            for _ in 0..<16 {
                let c = try #require(RawConnection(socket))
                c.send(submit)
                let accepted = c.response(within: 10)
                #expect(accepted?.ok == true && accepted?.id != nil, "\(String(describing: accepted))")
                waiters.append(c)
            }
            let one = try #require(RawConnection(socket))
            one.send(submit)
            let busy = one.response(within: 10)
            #expect(
                busy?.busy == true && busy?.error?.contains("nothing was submitted") == true,
                "\(String(describing: busy))"
            )
            #expect(p.journal().filter { $0.kind == .accepted }.count == 16)
            // 100 idle connections: at most 64 wait, the oldest make room; status still answers.
            var idle: [RawConnection] = []
            for _ in 0..<100 { idle.append(try #require(RawConnection(socket))) }
            let status = try p.slipway(["status", "--json"], timeout: 30)
            #expect(status.status == 0, "\(status.stderr)")
            // A client that sends its request and end of file still gets the whole answer.
            let halfClosed = try #require(RawConnection(socket))
            halfClosed.send(#"{"op":"status"}"# + "\n")
            halfClosed.shutdownWrite()
            let answer = halfClosed.response(within: 10)
            #expect(answer?.ok == true && answer?.status?.queued.count == 15, "\(String(describing: answer))")
            #expect(halfClosed.isClosedByPeer(within: 5))
            let turnedAway = idle.filter { $0.response(within: 0.05)?.busy == true }.count
            #expect(turnedAway >= 36, "\(turnedAway) of 100 idle connections were closed to make room")
            #expect(followers.allSatisfy { !$0.isClosedByPeer(within: 0.1) }, "followers are kept")
            // A stop tells every waiter that its job did not finish.
            #expect(try p.slipway(["agent", "stop"]).status == 0)
            for c in waiters {
                let end = c.response(within: 10)
                #expect(
                    end?.ok == false && end?.error?.contains("the agent stopped before job") == true,
                    "\(String(describing: end))"
                )
            }
        }
    }

    @Test func aFollowerThatDoesNotReadIsClosedWithAnErrorAndTheOthersKeepFollowing() throws {
        try withTemporaryDirectory { dir in
            let p = try AgentProject(dir: dir, extraConfig: "pipelines:\n  commit:\n    run: seq 1 20000\n")
            defer { p.cleanUp() }
            #expect(try p.slipway(["agent", "start"]).status == 0)
            let stuck = try #require(RawConnection(p.state + "/agent.sock"))
            stuck.send(#"{"op":"follow","lines":0}"# + "\n")
            let reader = try #require(RawConnection(p.state + "/agent.sock"))
            reader.send(#"{"op":"follow","lines":0}"# + "\n")
            // 20,000 lines of output, read as they come by one follower and not at all by the other.
            #expect(try p.slipway(["agent", "submit", "commit"]).status == 0)
            var count = 0
            while let response = reader.response(within: 30) {
                #expect(response.ok && response.event == "log", "\(response)")
                guard let line = response.line else { break }
                if line.contains("job 1: ") { count += 1 }
                if line.contains("job 1 finished") { break }
            }
            #expect(count >= 20_000, "the reading follower got \(count) of the job's lines")
            var last: AgentResponse?
            while let response = stuck.response(within: 10) { last = response }
            #expect(
                last?.ok == false && last?.error?.contains("you read the log too slowly and missed") == true,
                "\(String(describing: last))"
            )
            #expect(try p.slipway(["status"]).status == 0)
        }
    }

    @Test func anInboxFileThatCannotBeOpenedIsReadAgainOnceDescriptorsAreBack() throws {
        try withTemporaryDirectory { dir in
            let p = try AgentProject(dir: dir)
            defer { p.cleanUp() }
            #expect(try p.slipway(["hooks", "install"]).status == 0)
            #expect(try p.slipway(["agent", "start"]).status == 0)
            #expect(
                AgentHookIntegrationTests.eventually(60) { p.log().contains("warm digests: watching") },
                "\(p.log())"
            )
            _ = try p.waitIdle()
            usleep(500_000)
            let pid = try #require(p.agentPID())
            // The agent's lowest free descriptor becomes its limit: every open() fails (EMFILE).
            let open = Set(try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").compactMap(Int.init))
            var lowest = 0
            while open.contains(lowest) { lowest += 1 }
            let limits = try String(contentsOfFile: "/proc/\(pid)/limits", encoding: .utf8)
            let soft = try #require(
                limits.split(separator: "\n").first { $0.hasPrefix("Max open files") }?
                    .split(separator: " ", omittingEmptySubsequences: true).dropFirst(3).first.map(String.init)
            )
            let lowered = try sh(["prlimit", "--pid", String(pid), "--nofile=\(lowest):"], cwd: "/")
            try #require(lowered.status == 0, "prlimit: \(lowered.stderr)")
            var restored = false
            defer { if !restored { _ = try? sh(["prlimit", "--pid", String(pid), "--nofile=\(soft):"], cwd: "/") } }

            let commit = try p.commit("out of descriptors")
            #expect(
                AgentHookIntegrationTests.eventually(10) {
                    p.log().contains("Too many open files; trying again shortly")
                },
                "log:\n\(p.log())"
            )
            usleep(1_000_000)
            #expect(!p.journal().contains { $0.job?.commit == commit }, "accepted while it could not be read?")
            #expect(try sh(["prlimit", "--pid", String(pid), "--nofile=\(soft):"], cwd: "/").status == 0)
            restored = true
            // Read again without a restart, and built.
            #expect(
                AgentHookIntegrationTests.eventually(10) { p.journal().contains { $0.job?.commit == commit } },
                "log:\n\(p.log())"
            )
            let describe = try p.describe()
            #expect(try AgentHookIntegrationTests.eventually(120) { try p.imageExists(describe) }, "log:\n\(p.log())")
            #expect(p.agentPID() == pid, "the same agent")
        }
    }

    @Test func aLateCommitEventNeverOvertakesANewerCommit() throws {
        try withTemporaryDirectory { dir in
            let p = try AgentProject(dir: dir)
            defer { p.cleanUp() }
            let first = try p.git(["rev-parse", "HEAD"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            let older = try p.commit("older")
            let olderDescribe = try p.describe()
            let newer = try p.commit("newer")
            let inbox = p.state + "/inbox"
            try FileManager.default.createDirectory(atPath: inbox, withIntermediateDirectories: true)
            func event(_ name: String, _ commit: String) throws {
                try "v1\tcommit\t\(commit)\trefs/heads/main\t\(dir)\n".write(
                    toFile: inbox + "/" + name,
                    atomically: true,
                    encoding: .utf8
                )
            }
            // The newer commit's event, built.
            try event("commit.200.\(newer)", newer)
            #expect(try p.slipway(["agent", "start"]).status == 0)
            _ = try p.waitIdle()
            #expect(try p.imageExists(try p.describe()))
            // The older commit's event comes late (it could not be read at first): not built.
            try event("commit.100.\(older)", older)
            #expect(
                AgentHookIntegrationTests.eventually(10) {
                    p.journal().contains { $0.kind == .superseded && $0.id == 2 }
                },
                "\(p.log())"
            )
            var s = try #require(try p.waitIdle())
            #expect(s.last.first?.id == 1, "the newer commit's job stays the last built")
            let records = p.journal()
            #expect(records.first { $0.kind == .accepted && $0.id == 2 }?.job?.commit == older)
            let late = try #require(records.first { $0.kind == .superseded && $0.id == 2 })
            #expect(late.by == 1)
            #expect(
                late.reason?.contains("a late event: \(older.prefix(7)) is an ancestor of \(newer.prefix(7))") == true,
                "\(String(describing: late.reason))"
            )
            #expect(!records.contains { $0.kind == .started && $0.id == 2 })
            #expect(try !p.imageExists(olderDescribe))
            #expect(p.log().contains("job 2 superseded by job 1: a late event"))
            // Found when the agent starts (a file left from before a restart): the same.
            #expect(try p.slipway(["agent", "stop"]).status == 0)
            try event("commit.50.\(first)", first)
            #expect(try p.slipway(["agent", "start"]).status == 0)
            s = try #require(try p.waitIdle())
            #expect(p.journal().contains { $0.kind == .superseded && $0.id == 3 && $0.by == 1 })
            #expect(s.last.first?.id == 1)
        }
    }

    @Test func aFullStateDirectoryLosesTheCommitWithOneLineAndTheNextCommitBuildsOnceThereIsSpace() throws {
        try withTemporaryDirectory { dir in
            let p = try AgentProject(dir: dir)
            defer { p.cleanUp() }
            #expect(try p.slipway(["hooks", "install"]).status == 0)
            try FileManager.default.createDirectory(atPath: p.state, withIntermediateDirectories: true)
            let mounted = try sh(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", p.state], cwd: "/")
            guard mounted.status == 0 else {
                if EngineAvailability.required {
                    Issue.record("cannot mount a tmpfs (this test needs root): \(mounted.stderr)")
                }
                return
            }
            defer {
                _ = try? p.slipway(["agent", "stop"], timeout: 30)
                if (try? sh(["umount", p.state], cwd: "/").status) != 0 {
                    _ = try? sh(["umount", "-l", p.state], cwd: "/")
                }
            }
            #expect(try p.slipway(["agent", "start"]).status == 0)
            _ = try sh(["dd", "if=/dev/zero", "of=\(p.state)/filler", "bs=4k"], cwd: "/")  // until the disk is full
            let before = p.journal().count
            try "full\n".write(toFile: dir + "/app/hello.txt", atomically: true, encoding: .utf8)
            let full = try p.git(["commit", "-qam", "while full"])
            let oid = try p.git(["rev-parse", "HEAD"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(full.status == 0, "the commit stands")
            #expect(
                full.stderr
                    == "slipway: cannot write to \(p.state)/inbox (disk full?): commit \(oid.prefix(7)) will not be built; "
                    + "free space there, then run `slipway agent submit commit`\n",
                "\(full.stderr)"
            )
            #expect(
                try FileManager.default.contentsOfDirectory(atPath: p.state + "/inbox").isEmpty,
                "a file left behind"
            )
            usleep(500_000)
            #expect(p.journal().count == before)
            // Space again: the next commit is built.
            try FileManager.default.removeItem(atPath: p.state + "/filler")
            let next = try p.commit("space again")
            let describe = try p.describe()
            #expect(try AgentHookIntegrationTests.eventually(120) { try p.imageExists(describe) }, "log:\n\(p.log())")
            #expect(p.journal().contains { $0.job?.commit == next })
            #expect(try FileManager.default.contentsOfDirectory(atPath: p.state + "/inbox").isEmpty)
        }
    }

    /// Every temporary name of slipway's under `root` (files, and directories named for an owner).
    static func temporaryNames(under root: String, skipping: Set<String> = []) -> [String] {
        var found: [String] = []
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: root) else { return [] }
        for name in names where !skipping.contains(name) {
            let path = root + "/" + name
            var st = stat()
            guard lstat(path, &st) == 0 else { continue }
            if TempFiles.owner(ofFile: name) != nil || TempFiles.owner(ofDirectory: name) != nil { found.append(path) }
            if (st.st_mode & S_IFMT) == S_IFDIR { found += temporaryNames(under: path, skipping: skipping) }
        }
        return found
    }

    /// The temporary directories in /tmp whose owner is gone.
    static func deadOwnersDirectories() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/tmp")) ?? []).compactMap { name in
            TempFiles.owner(ofDirectory: name).flatMap { TempFiles.isGone($0) ? "/tmp/" + name : nil }
        }
    }

    @Test func twentyKillNinesLeaveNoTemporaryFileOnceTheAgentStartsAgain() throws {
        try withTemporaryDirectory { dir in
            let p = try AgentProject(dir: dir, sleep: 2)
            defer { p.cleanUp() }
            let inbox = p.state + "/inbox"
            try FileManager.default.createDirectory(atPath: inbox, withIntermediateDirectories: true)
            let environment = p.env.merging([
                "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin",
                "HOME": ProcessInfo.processInfo.environment["HOME"] ?? "/root",
            ]) { $1 }
            // Each start compacts a journal over 256 KiB (temp file + rename): pad it.
            let padding = String(repeating: #"{"at":0,"kind":"agentStarted","pid":1}"# + "\n", count: 7_500)
            var kills: [String] = []
            var duringJournalWrites = 0
            for round in 0..<20 {
                // Rounds 2, 6, …, 18 during a job; 0, 3, …, and the last during the journal's
                // rewrite at start (after the job the agent before left was stopped, before the
                // sweep: what both left is there for the final start).
                let duringAJob = round % 4 == 2
                let padded = (round % 3 == 0 || round == 19) && !duringAJob
                if padded {
                    let fd = open(p.state + "/journal.jsonl", O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
                    _ = Array(padding.utf8).withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
                    close(fd)
                }
                var commit = ""
                if duringAJob {
                    commit = try p.commit("round \(round)")
                    try "v1\tcommit\t\(commit)\trefs/heads/main\t\(dir)\n".write(
                        toFile: inbox + "/commit.\(round).\(commit)",
                        atomically: true,
                        encoding: .utf8
                    )
                }
                let pid = try ChildProcess.daemon(
                    SlipwayBinary.path,
                    ["agent", "run", "--background", "--chdir", dir],
                    environment: environment
                )
                var delay = Double.random(in: 0...0.3)
                if padded {
                    // Killed while it rewrites the journal, when that can be seen in time.
                    let start = Date()
                    while Self.elapsed(since: start) < 5 {
                        let names = (try? FileManager.default.contentsOfDirectory(atPath: p.state)) ?? []
                        if names.contains(where: { $0.hasPrefix("journal.jsonl.tmp-") }) {
                            duringJournalWrites += 1
                            break
                        }
                    }
                    delay = 0
                } else if duringAJob {
                    // Until the job runs, then a moment into it.
                    let running = AgentHookIntegrationTests.eventually(30) {
                        JobQueue(replaying: p.journal()).running.contains { $0.job.commit == commit }
                    }
                    #expect(running, "round \(round): the job did not start; log:\n\(p.log())")
                    delay = Double.random(in: 0.1...1.5)
                }
                usleep(useconds_t(delay * 1_000_000))
                kill(pid, SIGKILL)
                _ = ChildProcess.wait(pid)
                kills.append(padded ? "journal" : String(format: "%@%.2f s", duringAJob ? "job+" : "", delay))
            }
            // What the dead agents (and the jobs the next agent stops) left.
            let leftInState = Self.temporaryNames(under: p.state, skipping: ["checkouts"])
            let leftInTmp = Self.deadOwnersDirectories()
            #expect(!(leftInState + leftInTmp).isEmpty, "the kills left nothing to clean: the test proves nothing")
            #expect(try p.slipway(["agent", "start"]).status == 0)
            _ = try p.waitIdle(240)
            let stillInState = Self.temporaryNames(under: p.state, skipping: ["checkouts"])
            let stillInWorktree = Self.temporaryNames(under: dir + "/.devspace")
            #expect(stillInState.isEmpty, "\(stillInState)")
            #expect(stillInWorktree.isEmpty, "\(stillInWorktree)")
            let stillInTmp = leftInTmp.filter { FileManager.default.fileExists(atPath: $0) }
            #expect(stillInTmp.isEmpty, "\(stillInTmp)")
            let jobs = (try? FileManager.default.contentsOfDirectory(atPath: p.state + "/jobs")) ?? []
            #expect(jobs.isEmpty, "per-job files of finished jobs: \(jobs)")
            #expect(p.log().contains("temporary files left by processes that died"), "\(p.log())")
            // And the journal is whole: no job finished twice.
            let finished = p.journal().filter { $0.kind == .finished }.compactMap(\.id)
            #expect(Set(finished).count == finished.count, "\(finished)")
            print(
                "kills: \(kills.joined(separator: ", ")); \(duringJournalWrites) while the journal was rewritten; "
                    + "left \(leftInState.count) in the state directory, \(leftInTmp.count) in /tmp"
            )
        }
    }

    @Test func aLiveProcesssTemporaryFilesAreKept() throws {
        try withTemporaryDirectory { dir in
            let p = try AgentProject(dir: dir, extraConfig: "pipelines:\n  hold:\n    run: sleep 60\n")
            defer { p.cleanUp() }
            let environment = p.env.merging([
                "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin",
                "HOME": ProcessInfo.processInfo.environment["HOME"] ?? "/root",
            ]) { $1 }
            // A running `slipway run-pipeline` and the state directory it made.
            let pipeline = try ChildProcess.start(
                SlipwayBinary.path,
                ["run-pipeline", "--chdir", dir, "hold"],
                environment: environment,
                ownProcessGroup: true
            )
            var reaped = false
            defer {
                // Never after it was reaped: its pid may name another test's process by now.
                if !reaped {
                    kill(-pipeline.pid, SIGKILL)
                    _ = ChildProcess.wait(pipeline.pid)
                }
                close(pipeline.output)
            }
            let start = try #require(ChildProcess.startTime(of: pipeline.pid))
            let prefix = "slipway-pipeline-\(pipeline.pid).\(start)-"
            var made: String?
            _ = AgentHookIntegrationTests.eventually(20) {
                made = ((try? FileManager.default.contentsOfDirectory(atPath: "/tmp")) ?? []).first {
                    $0.hasPrefix(prefix)
                }
                return made != nil
            }
            let stateDirectory = "/tmp/" + (try #require(made, "run-pipeline made no /tmp/\(prefix)*"))
            // Files named for the same live process, for its pid with another start time (a
            // reused pid), and for a process that is gone.
            try FileManager.default.createDirectory(atPath: p.state, withIntermediateDirectories: true)
            let gone = try ChildProcess.start("/bin/true", [], environment: [:])
            close(gone.output)
            _ = ChildProcess.wait(gone.pid)
            let live = p.state + "/journal.jsonl.tmp-\(pipeline.pid).\(start)-1"
            let reused = p.state + "/journal.jsonl.tmp-\(pipeline.pid).\(start + 1)-2"
            let dead = p.state + "/agent.pid.tmp-\(gone.pid)-3"
            let deadDirectory = "/tmp/slipway-watch-\(gone.pid).\(start)-test01"
            for file in [live, reused, dead] { #expect(FileManager.default.createFile(atPath: file, contents: nil)) }
            try FileManager.default.createDirectory(atPath: deadDirectory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: deadDirectory) }

            #expect(try p.slipway(["agent", "start"]).status == 0)
            #expect(
                FileManager.default.fileExists(atPath: stateDirectory),
                "a running pipeline's directory was removed"
            )
            #expect(FileManager.default.fileExists(atPath: live))
            #expect(!FileManager.default.fileExists(atPath: reused))
            #expect(!FileManager.default.fileExists(atPath: dead))
            #expect(!FileManager.default.fileExists(atPath: deadDirectory))
            // Once the pipeline is killed, the next agent removes its directory.
            kill(-pipeline.pid, SIGKILL)
            _ = ChildProcess.wait(pipeline.pid)
            reaped = true
            #expect(try p.slipway(["agent", "stop"]).status == 0)
            #expect(FileManager.default.fileExists(atPath: stateDirectory))
            #expect(try p.slipway(["agent", "start"]).status == 0)
            #expect(!FileManager.default.fileExists(atPath: stateDirectory))
            #expect(!FileManager.default.fileExists(atPath: live))
        }
    }
}
