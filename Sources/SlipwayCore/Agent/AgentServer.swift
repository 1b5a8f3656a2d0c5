internal import CLinux
internal import Foundation

/// The agent's socket, served by one thread: a `poll()` loop over the listening socket, an
/// eventfd that wakes it (a job changed, a log line for followers, a stop) and every client
/// connection, all non-blocking. A connection costs a descriptor and two small buffers, never a
/// thread.
///
/// - A new connection is read at once (clients write their request right after connecting),
///   and `status`, `submit` and `stop` are answered inline. A connection may send several
///   requests, one JSON object per line.
/// - **Idle timeout.** A connection that has not sent a complete request within
///   `Limits.requestTimeout` (5 s) of connecting, or of its last answer, gets an error line and
///   is closed.
/// - **Cap on idle connections.** At most `Limits.pending` (64) connections wait for a request.
///   One more makes room by closing the oldest of them (answered `busy`, which `AgentClient`
///   retries), so a flood of idle connections never keeps out a client that asks something.
/// - **Followers and waiters** (`follow`; `submit` with `wait`) are not idle: a follower is kept
///   until it hangs up, a waiter until its job is over (then it is an ordinary connection
///   again). At most `Limits.followers` (16) and `Limits.waiters` (16); one more is refused with
///   a `busy` error (and a refused `submit` accepts no job).
/// - Answers are buffered per connection and written as the client reads them; a follower that
///   reads too slowly to keep up with the log is closed with an error.
/// - The peer's uid is checked on accept (`SO_PEERCRED`): other users are refused.
///
/// `@unchecked Sendable`: the connections and their buffers belong to the loop's one thread;
/// other threads only write to the wake-up eventfd (and read the immutable limits).
final class AgentServer: @unchecked Sendable {
    struct Limits: Sendable {
        /// Connections waiting for a (next) request.
        var pending = 64
        /// `follow` connections.
        var followers = 16
        /// `submit` connections waiting for their job.
        var waiters = 16
        /// Seconds a connection may take to send a complete request.
        var requestTimeout = 5.0
        /// The longest request line.
        var requestBytes = 64 << 10
        /// How much unread output a follower may have before no more log lines are queued.
        var followerBacklog = 256 << 10
    }

    enum Role {
        case pending
        case follower(next: UInt64)
        case waiter(job: Int)
        /// Follows the dev sessions' items (`devFollow`).
        case devFollower(next: UInt64)
    }

    final class Connection {
        let fd: Int32
        /// Accepted as the `serial`-th connection (the oldest has the lowest).
        let serial: UInt64
        var input: [UInt8] = []
        var output: [UInt8] = []
        var role = Role.pending
        /// When it connected or was last answered (monotonic seconds).
        var since: Double
        /// Close once the output is written.
        var closing = false
        /// The client sent end of file: only its output is still written.
        var peerDone = false
        var closed = false

        init(fd: Int32, serial: UInt64, since: Double) {
            self.fd = fd
            self.serial = serial
            self.since = since
        }

        var isPending: Bool { if case .pending = role { true } else { false } }
        var isFollower: Bool {
            switch role {
            case .follower, .devFollower: true
            default: false
            }
        }
        var isWaiter: Bool { if case .waiter = role { true } else { false } }
    }

    unowned let daemon: AgentDaemon
    let limits: Limits
    let listenFD: Int32
    let wakeFD: Int32
    private var connections: [Int32: Connection] = [:]
    private var accepted: UInt64 = 0
    private var acceptPausedUntil = 0.0
    private var scratch = [UInt8](repeating: 0, count: 16 << 10)
    private var following = false
    private let done = DispatchSemaphore(value: 0)

    // Counted and logged at most every 10 s, so that a flood does not flood the log.
    private var evicted = 0
    private var timedOut = 0
    private var refusedBusy = 0
    private var refusedUsers = 0
    private var descriptorShortages = 0
    private var nextSummary = 0.0
    private var lastSummary = -Double.infinity
    private var lastUserRefusalLogged = -1.0

    /// Takes over `listenFD` (made non-blocking) and `wakeFD` (an eventfd).
    init(daemon: AgentDaemon, listenFD: Int32, wakeFD: Int32, limits: Limits = Limits()) {
        self.daemon = daemon
        self.listenFD = listenFD
        self.wakeFD = wakeFD
        self.limits = limits
        _ = fcntl(listenFD, F_SETFL, fcntl(listenFD, F_GETFL) | O_NONBLOCK)
        let wakeFD = wakeFD
        daemon.dev?.feed.onAppend = {
            var one: UInt64 = 1
            _ = write(wakeFD, &one, 8)
        }
    }

    /// Wakes the loop (any thread; never blocks).
    func wake() {
        var one: UInt64 = 1
        _ = write(wakeFD, &one, 8)
    }

    /// Waits (at most `seconds`) until the loop has answered its waiters and closed every
    /// connection after a stop.
    func waitUntilDone(_ seconds: Double) {
        wake()
        _ = done.wait(timeout: .now() + seconds)
    }

    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    // MARK: The loop

    func run() {
        defer {
            finish()
            done.signal()
        }
        var fds: [pollfd] = []
        while !daemon.isStopping {
            let now = Self.now()
            fds.removeAll(keepingCapacity: true)
            fds.append(pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0))
            let listening = acceptPausedUntil <= now
            fds.append(pollfd(fd: listening ? listenFD : -1, events: Int16(POLLIN), revents: 0))
            var deadline = Double.infinity
            for c in connections.values {
                var events = c.peerDone ? Int16(0) : Int16(POLLIN)
                if !c.output.isEmpty { events |= Int16(POLLOUT) }
                fds.append(pollfd(fd: c.fd, events: events, revents: 0))
                if c.isPending { deadline = min(deadline, c.since + limits.requestTimeout) }
            }
            if !listening { deadline = min(deadline, acceptPausedUntil) }
            if hasSummary { deadline = min(deadline, nextSummary) }
            let timeout = deadline == .infinity ? -1 : Int32(max(0, min((deadline - now) * 1000 + 1, 60_000)))
            let ready = poll(&fds, nfds_t(fds.count), timeout)
            if ready < 0 {
                if errno != EINTR { usleep(10_000) }
                continue
            }
            if fds[0].revents != 0 {
                var count: UInt64 = 0
                _ = Glibc.read(wakeFD, &count, 8)
            }
            for p in fds.dropFirst(2) where p.revents != 0 {
                guard let c = connections[p.fd], !c.closed else { continue }
                if p.revents & Int16(POLLOUT) != 0 { flush(c) }
                if !c.closed, p.revents & Int16(POLLIN | POLLHUP | POLLERR) != 0 { readFrom(c) }
            }
            if listening && fds[1].revents != 0 { acceptConnections() }
            answerWaiters()
            feedFollowers()
            expire(Self.now())
            summarize(Self.now())
        }
    }

    /// After a stop: waiters learn that their job did not finish, everyone is closed.
    private func finish() {
        for c in connections.values where !c.closed {
            if case .waiter(let id) = c.role {
                respond(
                    c,
                    AgentResponse(
                        ok: false,
                        error: "the agent stopped before job \(id) finished; it runs when the agent starts again"
                    )
                )
            }
            if !c.closed { closeConnection(c) }
        }
        connections.removeAll()
        daemon.log.setOnWrite(nil)
        Glibc.close(listenFD)
        summarize(.infinity)
    }

    // MARK: Accepting

    private func acceptConnections() {
        for _ in 0..<256 {
            let fd = accept4(listenFD, nil, nil, Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue))
            if fd < 0 {
                switch errno {
                case EINTR, ECONNABORTED: continue
                case EAGAIN: return
                case EMFILE, ENFILE, ENOBUFS, ENOMEM:
                    // Out of descriptors: an idle connection makes room; without one, wait.
                    descriptorShortages += 1
                    if let oldest = oldestPending() {
                        evict(oldest)
                        continue
                    }
                    acceptPausedUntil = Self.now() + 0.1
                    return
                default:
                    acceptPausedUntil = Self.now() + 0.1
                    return
                }
            }
            // The peer's pid, uid and gid, as the kernel saw them when it connected.
            var credentials = slipway_ucred(pid: 0, uid: UInt32.max, gid: UInt32.max)
            var length = socklen_t(MemoryLayout<slipway_ucred>.size)
            guard getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length) == 0, credentials.uid == getuid()
            else {
                refuseUser(fd, uid: credentials.uid)
                continue
            }
            accepted += 1
            let c = Connection(fd: fd, serial: accepted, since: Self.now())
            connections[fd] = c
            readFrom(c)
            if !c.closed && c.isPending && pendingCount > limits.pending, let oldest = oldestPending() {
                evict(oldest)
            }
        }
    }

    private func refuseUser(_ fd: Int32, uid: UInt32) {
        let now = Self.now()
        if now - lastUserRefusalLogged >= 1 {
            daemon.log.write("refused a connection from uid \(uid): the agent serves only uid \(getuid())")
            lastUserRefusalLogged = now
        } else {
            refusedUsers += 1
        }
        var line = Self.encode(AgentResponse(ok: false, error: "refused: this agent serves only its own user"))
        _ = line.withUnsafeMutableBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
        Glibc.close(fd)
    }

    private var pendingCount: Int { connections.values.reduce(0) { $0 + ($1.isPending && !$1.closed ? 1 : 0) } }

    /// The pending connection to close first: the one that waits longest for a request (the
    /// earliest accepted among equals), preferring one with nothing unsent.
    private func oldestPending() -> Connection? {
        var best: Connection?
        for c in connections.values where c.isPending && !c.closed {
            guard let b = best else {
                best = c
                continue
            }
            // Nothing unsent first, then the oldest.
            if c.output.isEmpty != b.output.isEmpty ? c.output.isEmpty : (c.since, c.serial) < (b.since, b.serial) {
                best = c
            }
        }
        return best
    }

    private func evict(_ c: Connection) {
        evicted += 1
        guard c.output.isEmpty else {
            closeConnection(c)  // an answer it does not read: no line can follow half of it
            return
        }
        respond(
            c,
            AgentResponse(
                ok: false,
                error:
                    "busy: \(limits.pending) connections were waiting for a request, and this was the oldest; try again",
                busy: true
            )
        )
        if !c.closed { closeConnection(c) }
    }

    // MARK: Reading and answering

    private func readFrom(_ c: Connection) {
        var total = 0
        while !c.closed {
            let n = recv(c.fd, &scratch, scratch.count, Int32(MSG_DONTWAIT))
            if n > 0 {
                total += n
                // A follower's or waiter's input is kept for later only for waiters.
                if !c.isFollower { c.input += scratch[..<n] }
                if c.input.count > limits.requestBytes, !c.input.contains(UInt8(ascii: "\n")) {
                    c.input.removeAll()
                    c.closing = true
                    respond(
                        c,
                        AgentResponse(
                            ok: false,
                            error: "request too long (over \(limits.requestBytes) bytes without a newline)"
                        )
                    )
                    return
                }
                if total >= 1 << 20 { break }  // others get their turn; poll says there is more
                continue
            }
            if n == 0 {
                // The client hung up, or shut down its side: what it asked is still answered
                // (and the answer written as it reads), then the connection is closed.
                c.peerDone = true
                if c.isPending {
                    c.closing = true
                    process(c)
                }
                if c.output.isEmpty || !c.isPending { closeConnection(c) } else { flush(c) }
                return
            }
            if errno == EINTR { continue }
            if errno == EAGAIN || errno == EWOULDBLOCK { break }
            closeConnection(c)
            return
        }
        process(c)
    }

    /// Answers the complete requests in `c`'s input, while it is an ordinary connection.
    private func process(_ c: Connection) {
        while !c.closed, c.isPending, let nl = c.input.firstIndex(of: UInt8(ascii: "\n")) {
            let line = Array(c.input[..<nl])
            c.input.removeSubrange(...nl)
            c.since = Self.now()
            guard let request = try? JSONDecoder().decode(AgentRequest.self, from: Data(line)) else {
                respond(
                    c,
                    AgentResponse(ok: false, error: "not a request: expected one JSON object per line (docs/agent.md)")
                )
                continue
            }
            handle(request, c)
        }
    }

    private func handle(_ request: AgentRequest, _ c: Connection) {
        switch request.op {
        case "status":
            respond(c, AgentResponse(ok: true, status: daemon.status()))
        case "warm":
            // Answered on this thread: the watcher's drain takes well under a millisecond
            // (it waits at most its own timeout when the watcher thread is stuck).
            guard let directory = request.config else {
                respond(c, AgentResponse(ok: false, error: "warm: which config directory? (config)"))
                return
            }
            let answer = daemon.warmth.answer(directory: directory)
            respond(c, AgentResponse(ok: true, message: answer.reason, warm: answer.snapshot))
        case "stop":
            c.closing = true
            respond(c, AgentResponse(ok: true, message: "stopping"))
            daemon.requestStop("a stop request")
        case "follow":
            guard followerCount < limits.followers else {
                refuseBusy(
                    c,
                    "busy: \(limits.followers) clients already follow the log (the limit); end one (`slipway agent logs -f`) and try again"
                )
                return
            }
            c.input.removeAll()
            c.role = .follower(next: daemon.log.number(last: request.lines ?? 20))
            feed(c)
        case "submit":
            guard let submitted = request.job else {
                respond(c, AgentResponse(ok: false, error: "submit needs a job"))
                return
            }
            let wait = request.wait == true
            if wait && waiterCount >= limits.waiters {
                refuseBusy(
                    c,
                    "busy: \(limits.waiters) clients already wait for their jobs (the limit); nothing was submitted; try again, or submit without waiting"
                )
                return
            }
            let id: Int
            do {
                id = try daemon.submit(submitted)
            } catch {
                respond(c, AgentResponse(ok: false, error: error.message))
                return
            }
            respond(c, AgentResponse(ok: true, id: id))
            if wait && !c.closed {
                c.role = .waiter(job: id)
                answerWaiters()
            }
        case "devStart":
            guard let start = request.dev, let dev = daemon.dev else {
                respond(c, AgentResponse(ok: false, error: "devStart needs a dev session"))
                return
            }
            do {
                let (id, attached) = try dev.begin(start)
                respond(c, AgentResponse(ok: true, id: id, message: attached ? "attached" : "started"))
            } catch {
                respond(c, AgentResponse(ok: false, error: error.message))
            }
        case "devStatus":
            respond(
                c,
                AgentResponse(ok: true, dev: daemon.dev?.views(config: request.config, queue: daemon.openJobs()) ?? [])
            )
        case "devStop":
            let count = daemon.dev?.end(config: request.config) ?? 0
            guard count > 0 else {
                respond(
                    c,
                    AgentResponse(
                        ok: false,
                        error: "no dev session runs" + (request.config.map { " for \($0)" } ?? "")
                    )
                )
                return
            }
            respond(c, AgentResponse(ok: true, message: "stopping \(count) dev session\(count == 1 ? "" : "s")"))
        case "devFollow":
            guard followerCount < limits.followers, let dev = daemon.dev else {
                refuseBusy(
                    c,
                    "busy: \(limits.followers) clients already follow the agent (the limit); end one and try again"
                )
                return
            }
            c.input.removeAll()
            let next = dev.feed.number(last: request.lines ?? 0)
            respond(c, AgentResponse(ok: true, event: "dev-status", dev: dev.views(queue: daemon.openJobs())))
            c.role = .devFollower(next: next)
            feed(c)
        default:
            respond(
                c,
                AgentResponse(
                    ok: false,
                    error:
                        "unknown op \"\(request.op)\" (status, submit, follow, stop, devStart, devStatus, devStop, devFollow)"
                )
            )
        }
    }

    private func refuseBusy(_ c: Connection, _ message: String) {
        refusedBusy += 1
        c.closing = true
        c.input.removeAll()
        respond(c, AgentResponse(ok: false, error: message, busy: true))
    }

    private var followerCount: Int { connections.values.reduce(0) { $0 + ($1.isFollower && !$1.closed ? 1 : 0) } }
    private var waiterCount: Int { connections.values.reduce(0) { $0 + ($1.isWaiter && !$1.closed ? 1 : 0) } }

    /// Waiters whose job is over get its end and are ordinary connections again.
    private func answerWaiters() {
        for c in connections.values where !c.closed {
            guard case .waiter(let id) = c.role, let state = daemon.state(of: id), !state.isOpen else { continue }
            switch state {
            case .finished(let result):
                respond(c, AgentResponse(ok: true, id: id, event: "finished", result: result))
            case .superseded(let by):
                respond(c, AgentResponse(ok: true, id: id, event: "superseded", message: "superseded by job \(by)"))
            case .dropped(let reason):
                respond(c, AgentResponse(ok: true, id: id, event: "dropped", message: reason))
            default:
                break
            }
            c.role = .pending
            c.since = Self.now()
            process(c)
        }
    }

    /// Queues the log lines each follower has not had yet (while its backlog allows).
    private func feedFollowers() {
        var any = false
        for c in connections.values where !c.closed && c.isFollower {
            any = true
            feed(c)
        }
        if any != following {
            following = any
            if any {
                daemon.log.setOnWrite { [weak self] in self?.wake() }
            } else {
                daemon.log.setOnWrite(nil)
            }
        }
    }

    private func feed(_ c: Connection) {
        if case .devFollower(var next) = c.role, let dev = daemon.dev {
            if dev.feed.items(from: next, limit: 0).missed > 0 {
                c.role = .pending
                c.since = Self.now()
                c.closing = true
                respond(
                    c,
                    AgentResponse(ok: false, error: "you read the dev sessions' output too slowly; follow them again")
                )
                return
            }
            while c.output.count < limits.followerBacklog {
                let (items, after, _) = dev.feed.items(from: next, limit: 200)
                if items.isEmpty { break }
                for item in items { c.output += Self.encode(item) }
                next = after
            }
            c.role = .devFollower(next: next)
            flush(c)
            return
        }
        guard case .follower(var next) = c.role else { return }
        if !following {
            following = true
            daemon.log.setOnWrite { [weak self] in self?.wake() }
        }
        // Lines it has not had were dropped from memory: it reads too slowly (or not at all).
        let missed = daemon.log.lines(from: next, limit: 0).missed
        if missed > 0 {
            // Said after what it has not read yet; closed once that is read (or 5 s from now).
            c.role = .pending
            c.since = Self.now()
            c.closing = true
            respond(
                c,
                AgentResponse(
                    ok: false,
                    error:
                        "you read the log too slowly and missed \(missed) lines; follow it again (`slipway agent logs -f`)"
                )
            )
            return
        }
        while c.output.count < limits.followerBacklog {
            let (lines, after, _) = daemon.log.lines(from: next, limit: 200)
            if lines.isEmpty { break }
            for line in lines { c.output += Self.encode(AgentResponse(ok: true, event: "log", line: line)) }
            next = after
        }
        c.role = .follower(next: next)
        flush(c)
    }

    private func respond(_ c: Connection, _ response: AgentResponse) {
        guard !c.closed else { return }
        c.output += Self.encode(response)
        flush(c)
    }

    static func encode(_ response: AgentResponse) -> [UInt8] {
        var bytes = Array(
            (try? JSONEncoder().encode(response)) ?? Data(#"{"ok":false,"error":"cannot encode the answer"}"#.utf8)
        )
        bytes.append(UInt8(ascii: "\n"))
        return bytes
    }

    private func flush(_ c: Connection) {
        var sent = 0
        while !c.closed && sent < c.output.count {
            let n = c.output[sent...].withUnsafeBytes {
                send(c.fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT))
            }
            if n > 0 {
                sent += n
                continue
            }
            if n < 0 && errno == EINTR { continue }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { break }
            closeConnection(c)
            return
        }
        if sent > 0 { c.output.removeFirst(sent) }
        if c.output.isEmpty && c.closing { closeConnection(c) }
    }

    private func closeConnection(_ c: Connection) {
        guard !c.closed else { return }
        c.closed = true
        connections.removeValue(forKey: c.fd)
        Glibc.close(c.fd)
    }

    /// Closes the connections that sent no complete request in time.
    private func expire(_ now: Double) {
        for c in connections.values where !c.closed && c.isPending && now >= c.since + limits.requestTimeout {
            timedOut += 1
            c.closing = true
            c.output.removeAll()
            respond(
                c,
                AgentResponse(
                    ok: false,
                    error:
                        "closed: no complete request within \(Int(limits.requestTimeout)) s (send one JSON object per line; docs/agent.md)"
                )
            )
            if !c.closed { closeConnection(c) }
        }
    }

    private var hasSummary: Bool { evicted + timedOut + refusedBusy + refusedUsers + descriptorShortages > 0 }

    private func summarize(_ now: Double) {
        guard hasSummary else { return }
        // A second after the first of a burst (one line for all of it), at most every 10 s.
        if nextSummary == 0 { nextSummary = max(now + 1, lastSummary + 10) }
        guard now >= nextSummary else { return }
        var parts: [String] = []
        if timedOut > 0 { parts.append("\(timedOut) closed after \(Int(limits.requestTimeout)) s without a request") }
        if evicted > 0 {
            parts.append("\(evicted) idle closed to make room (at most \(limits.pending) wait for a request)")
        }
        if refusedBusy > 0 { parts.append("\(refusedBusy) refused (followers or waiters at their limit)") }
        if refusedUsers > 0 { parts.append("\(refusedUsers) more from other users refused") }
        if descriptorShortages > 0 { parts.append("\(descriptorShortages) times out of descriptors") }
        daemon.log.write("connections: " + parts.joined(separator: "; "))
        lastSummary = now
        evicted = 0
        timedOut = 0
        refusedBusy = 0
        refusedUsers = 0
        descriptorShortages = 0
        nextSummary = 0
    }
}
