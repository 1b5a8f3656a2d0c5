internal import Foundation

#if canImport(Glibc)
internal import Glibc
#elseif canImport(Darwin)
internal import Darwin
#endif

// MARK: - Deadlines

/// How long one step of a call may wait: until an instant (the whole call's limit, or one
/// read's stall limit), or for ever (a followed log, the events stream: they end when the
/// caller cancels them).
struct Deadline: Sendable {
    /// nil: no limit.
    let instant: ContinuousClock.Instant?
    /// What the error says the limit was.
    let limit: Duration

    static func after(_ limit: Duration) -> Deadline {
        Deadline(instant: ContinuousClock.now.advanced(by: limit), limit: limit)
    }

    /// `limit` from now, or no limit when nil.
    static func after(optional limit: Duration?) -> Deadline {
        guard let limit else { return .never }
        return .after(limit)
    }

    static let never = Deadline(instant: nil, limit: .zero)

    /// Milliseconds for `poll`: -1 for no limit; nil when the deadline has passed.
    var pollMilliseconds: Int32? {
        guard let instant else { return -1 }
        let left = ContinuousClock.now.duration(to: instant)
        guard left > .zero else { return nil }
        let (seconds, attoseconds) = left.components
        return max(1, Int32(clamping: seconds * 1000 + attoseconds / 1_000_000_000_000_000))
    }
}

// MARK: - Socket

/// One connected, non-blocking `AF_UNIX` stream socket, closed in `deinit`.
///
/// Every wait goes through `poll` with the time left until the step's deadline, so no single
/// step can outlive the call's timeout.
///
/// Thread use (the reason for `@unchecked Sendable`): at most one thread reads and at most one
/// thread writes at a time (a hijacked exec stream reads on one and writes stdin on another);
/// ``cancel()`` may be called from any thread at any time — it only calls `shutdown(2)`, which
/// wakes a thread blocked in `poll` and makes its next `recv` return end of stream. The
/// descriptor is closed in `deinit` only, when no thread can be using it.
final class UnixSocket: @unchecked Sendable {
    let descriptor: Int32
    /// Set by ``cancel()``; guarded by `lock`.
    private var cancelled = false
    private let lock = NSLock()

    init(connectingTo path: String, request: String, deadline: Deadline) throws(DockerAPIError) {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let pathBytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard pathBytes.count < capacity else {
            throw .unreachable(socket: path, reason: "the socket path is longer than \(capacity - 1) bytes")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: pathBytes)
            raw[pathBytes.count] = 0
        }

        #if canImport(Glibc)
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        #else
        let fd = socket(AF_UNIX, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { throw .unreachable(socket: path, reason: "socket(): \(Self.errnoText())") }
        descriptor = fd
        let flags = fcntl(fd, F_GETFL, 0)
        _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
        #if canImport(Darwin)
        var on: Int32 = 1
        _ = setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &on, socklen_t(MemoryLayout<Int32>.size))
        #endif

        while true {
            let result = withUnsafePointer(to: &address) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
                }
            }
            if result == 0 { return }
            switch errno {
            case EINTR:
                continue
            case EAGAIN:
                // The daemon's listen backlog is full: a busy daemon, not a missing one.
                guard deadline.pollMilliseconds != nil else { throw .timedOut(request: request, after: deadline.limit) }
                usleep(1_000)
            case EINPROGRESS:
                _ = try wait(for: Int16(POLLOUT), request: request, deadline: deadline)
                var error: Int32 = 0
                var length = socklen_t(MemoryLayout<Int32>.size)
                _ = getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length)
                guard error == 0 else { throw .unreachable(socket: path, reason: String(cString: strerror(error))) }
                return
            default:
                throw .unreachable(socket: path, reason: Self.errnoText())
            }
        }
    }

    deinit {
        close(descriptor)
    }

    /// Whether ``cancel()`` was called.
    var isCancelled: Bool { lock.withLock { cancelled } }

    /// Ends the connection in both directions from any thread: a blocked read returns end of
    /// stream, a blocked write fails.
    func cancel() {
        lock.withLock { cancelled = true }
        _ = shutdown(descriptor, Int32(SHUT_RDWR))
    }

    /// Tells the peer that nothing more will be written (a hijacked stream's end of stdin).
    func shutdownWrite() {
        _ = shutdown(descriptor, Int32(SHUT_WR))
    }

    func write(_ bytes: [UInt8], request: String, deadline: Deadline) throws(DockerAPIError) {
        try bytes.withBytes { raw throws(DockerAPIError) in
            _ = try write(raw, request: request, deadline: deadline, stopOnAnswer: false)
        }
    }

    /// Writes all of `bytes`. With `stopOnAnswer`, a peer that stops reading and answers
    /// instead (the daemon refusing a request whose body is still being sent) ends the write
    /// early: the result is then false, and the answer is waiting to be read.
    func write(
        _ bytes: UnsafeRawBufferPointer,
        request: String,
        deadline: Deadline,
        stopOnAnswer: Bool
    )
        throws(DockerAPIError) -> Bool
    {
        guard let base = bytes.baseAddress else { return true }
        var sent = 0
        while sent < bytes.count {
            #if canImport(Glibc)
            let n = send(descriptor, base + sent, bytes.count - sent, Int32(MSG_NOSIGNAL))
            #else
            let n = send(descriptor, base + sent, bytes.count - sent, 0)
            #endif
            if n > 0 {
                sent += n
                continue
            }
            let code = errno
            if code == EINTR { continue }
            if code == EAGAIN || code == EWOULDBLOCK {
                let events = Int16(POLLOUT) | (stopOnAnswer ? Int16(POLLIN) : 0)
                let ready = try wait(for: events, request: request, deadline: deadline)
                if stopOnAnswer && ready & Int16(POLLOUT) == 0 && ready & Int16(POLLIN | POLLHUP) != 0 { return false }
                continue
            }
            if isCancelled { throw .connectionLost(request: request, reason: "cancelled") }
            if stopOnAnswer && (code == EPIPE || code == ECONNRESET) { return false }
            throw .connectionLost(request: request, reason: String(cString: strerror(code)))
        }
        return true
    }

    /// Reads into `buffer`; 0 at end of stream (or after ``cancel()``).
    func read(
        into buffer: UnsafeMutableRawBufferPointer,
        request: String,
        deadline: Deadline
    ) throws(DockerAPIError)
        -> Int
    {
        while true {
            let n = recv(descriptor, buffer.baseAddress, buffer.count, 0)
            if n >= 0 { return n }
            let code = errno
            if code == EINTR { continue }
            guard code == EAGAIN || code == EWOULDBLOCK else {
                if isCancelled { return 0 }
                throw .connectionLost(request: request, reason: String(cString: strerror(code)))
            }
            _ = try wait(for: Int16(POLLIN), request: request, deadline: deadline)
        }
    }

    /// Waits until one of `events` (or an error or hang-up) is ready; returns `revents`.
    private func wait(for events: Int16, request: String, deadline: Deadline) throws(DockerAPIError) -> Int16 {
        while true {
            guard let milliseconds = deadline.pollMilliseconds else {
                throw .timedOut(request: request, after: deadline.limit)
            }
            var entry = pollfd(fd: descriptor, events: events, revents: 0)
            let ready = poll(&entry, 1, milliseconds)
            if ready > 0 { return entry.revents }
            if ready < 0 && errno != EINTR { throw .connectionLost(request: request, reason: Self.errnoText()) }
        }
    }

    static func errnoText() -> String {
        String(cString: strerror(errno))
    }
}

// MARK: - Typed-throws buffer access

extension Array where Element == UInt8 {
    /// `withUnsafeBytes` for a body that throws ``DockerAPIError`` (the standard one rethrows
    /// untyped).
    func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws(DockerAPIError) -> R) throws(DockerAPIError) -> R {
        let result: Result<R, DockerAPIError> = withUnsafeBytes { raw in
            Result { () throws(DockerAPIError) in try body(raw) }
        }
        return try result.get()
    }

    mutating func withMutableBytes<R>(
        _ body: (UnsafeMutableRawBufferPointer) throws(DockerAPIError) -> R
    ) throws(DockerAPIError) -> R {
        let result: Result<R, DockerAPIError> = withUnsafeMutableBytes { raw in
            Result { () throws(DockerAPIError) in try body(raw) }
        }
        return try result.get()
    }
}
