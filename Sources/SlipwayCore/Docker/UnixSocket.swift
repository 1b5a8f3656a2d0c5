internal import Foundation

#if canImport(Glibc)
    internal import Glibc
#elseif canImport(Darwin)
    internal import Darwin
#endif

// MARK: - Socket

/// One connected, non-blocking `AF_UNIX` stream socket, closed in `deinit`.
///
/// Every wait goes through `poll` with the time left until the call's deadline, so no single
/// step can outlive the call's timeout.
final class UnixSocket {
    let descriptor: Int32

    init(connectingTo path: String, request: String, deadline: ContinuousClock.Instant, timeout: Duration)
        throws(DockerAPIError)
    {
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
                guard ContinuousClock.now < deadline else { throw .timedOut(request: request, after: timeout) }
                usleep(1_000)
            case EINPROGRESS:
                try wait(for: Int16(POLLOUT), request: request, deadline: deadline, timeout: timeout)
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

    func write(_ bytes: [UInt8], request: String, deadline: ContinuousClock.Instant, timeout: Duration)
        throws(DockerAPIError)
    {
        var sent = 0
        while sent < bytes.count {
            // `bytes` is not empty inside the loop, so its base address is not nil.
            let n = bytes.withUnsafeBytes { raw in
                #if canImport(Glibc)
                    send(descriptor, raw.baseAddress! + sent, bytes.count - sent, Int32(MSG_NOSIGNAL))
                #else
                    send(descriptor, raw.baseAddress! + sent, bytes.count - sent, 0)
                #endif
            }
            if n > 0 {
                sent += n
            } else if errno == EINTR {
                continue
            } else if errno == EAGAIN || errno == EWOULDBLOCK {
                try wait(for: Int16(POLLOUT), request: request, deadline: deadline, timeout: timeout)
            } else {
                throw .connectionLost(request: request, reason: Self.errnoText())
            }
        }
    }

    /// The next bytes; empty at end of stream.
    func read(request: String, deadline: ContinuousClock.Instant, timeout: Duration) throws(DockerAPIError) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            if n >= 0 { return Array(buffer.prefix(n)) }
            if errno == EINTR { continue }
            guard errno == EAGAIN || errno == EWOULDBLOCK else {
                throw .connectionLost(request: request, reason: Self.errnoText())
            }
            try wait(for: Int16(POLLIN), request: request, deadline: deadline, timeout: timeout)
        }
    }

    private func wait(for events: Int16, request: String, deadline: ContinuousClock.Instant, timeout: Duration)
        throws(DockerAPIError)
    {
        while true {
            let left = ContinuousClock.now.duration(to: deadline)
            guard left > .zero else { throw .timedOut(request: request, after: timeout) }
            let (seconds, attoseconds) = left.components
            let milliseconds = max(1, Int32(clamping: seconds * 1000 + attoseconds / 1_000_000_000_000_000))
            var entry = pollfd(fd: descriptor, events: events, revents: 0)
            let ready = poll(&entry, 1, milliseconds)
            if ready > 0 { return }
            if ready < 0 && errno != EINTR { throw .connectionLost(request: request, reason: Self.errnoText()) }
        }
    }

    static func errnoText() -> String {
        String(cString: strerror(errno))
    }
}
