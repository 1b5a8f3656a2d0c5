internal import CLinux
internal import Foundation

#if canImport(Glibc)
internal import Glibc
#endif

/// One `dev.*.ports[]` entry for one container: where slipway listens and where it forwards.
public struct PortForward: Sendable, Equatable {
    /// `bindAddress` (default `127.0.0.1`, as `devspace dev`'s port-forwarding binds).
    public var bindAddress: String
    public var localPort: Int
    public var remotePort: Int
    /// The container, by name (found again on each connection: a rebuild makes it anew).
    public var container: String
}

/// What `ports` means for a local container (docs/dev.md, "Ports"):
/// - on the **host network** the container's ports are this machine's already: `PORT` (or
///   `LOCAL:REMOTE` with equal ports) needs nothing, and is said so; `LOCAL:REMOTE` forwards
///   `bindAddress:LOCAL` to `127.0.0.1:REMOTE`;
/// - on an **engine network** (a bridge, a user network) `bindAddress:LOCAL` is forwarded to the
///   container's address on it, `:REMOTE`, looked up on each connection;
/// - a container on `network: none` cannot be reached: said so, nothing listens;
/// - a member of a `--local` pod shares its infra container's network: as that one's.
public enum PortPlan {
    public enum Decision: Sendable, Equatable {
        case forward(PortForward)
        /// Nothing to do or nothing possible, and why.
        case note(String)
    }

    /// Parses `port` (`8080`, `9090:8080`).
    static func parse(_ port: String) -> (local: Int, remote: Int)? {
        let parts = port.split(separator: ":", omittingEmptySubsequences: false).map {
            Int($0.trimmingCharacters(in: .whitespaces))
        }
        switch parts.count {
        case 1: if let p = parts[0], (1...65535).contains(p) { return (p, p) }
        case 2:
            if let l = parts[0], let r = parts[1], (1...65535).contains(l), (1...65535).contains(r) { return (l, r) }
        default: break
        }
        return nil
    }

    /// The decisions for `pod`'s ports on `container` whose network mode is `networkMode`.
    public static func decide(_ pod: DevPodConfig, container: String, networkMode: String) -> [Decision] {
        pod.ports.map { mapping in
            let place = "dev.\(pod.name).ports (\(mapping.mark))"
            guard let (local, remote) = parse(mapping.port) else {
                return .note("\(place): \(mapping.port) is not PORT or LOCAL:REMOTE with ports 1-65535; ignored")
            }
            let bind = mapping.bindAddress ?? "127.0.0.1"
            if networkMode == "none" {
                return .note(
                    "\(place): \(mapping.port): \(container) has no network (network: none); nothing can reach its port"
                )
            }
            if networkMode == "host" && local == remote {
                return .note(
                    "\(place): \(mapping.port): \(container) is on the host network, so port \(remote) is this machine's already; nothing to forward"
                )
            }
            return .forward(PortForward(bindAddress: bind, localPort: local, remotePort: remote, container: container))
        }
    }
}

/// Listens on a forward's local address and hands each connection to the container's port.
/// One thread accepts (a `poll` with a wake-up pipe, so ``stop()`` ends it at once); each
/// connection gets a thread that copies both ways until either side closes.
final class PortForwarder: @unchecked Sendable {
    let forward: PortForward
    let target: @Sendable () -> (host: String, port: Int)?
    private let listener: Int32
    private let wake: (read: Int32, write: Int32)
    private let lock = NSLock()
    private var stopped = false

    /// Binds the local address (an error names it: the port is in use, the address is not
    /// this machine's).
    init(_ forward: PortForward, target: @escaping @Sendable () -> (host: String, port: Int)?) throws(DevError) {
        self.forward = forward
        self.target = target
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .engine("cannot open a socket for port \(forward.localPort)") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(forward.localPort).bigEndian)
        let host = forward.bindAddress == "localhost" ? "127.0.0.1" : forward.bindAddress
        guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else {
            close(fd)
            throw .invalid("ports: bindAddress \(forward.bindAddress) is not an IPv4 address")
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0, listen(fd, 64) == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw .engine(
                "cannot listen on \(forward.bindAddress):\(forward.localPort) for \(forward.container): \(reason)"
            )
        }
        // An eventfd wakes the accepting thread for stop().
        let event = CLinux.eventfd(0, Int32(O_CLOEXEC))
        guard event >= 0 else {
            close(fd)
            throw .engine("cannot make an eventfd for the port forward")
        }
        listener = fd
        wake = (event, event)
        Thread.detachNewThread { [self] in acceptLoop() }
    }

    /// Ends the listener (once; the eventfd is closed by the accepting thread only after the
    /// wake-up, which happens once).
    func stop() {
        lock.lock()
        defer { lock.unlock() }
        guard !stopped else { return }
        stopped = true
        var one: UInt64 = 1
        _ = write(wake.write, &one, 8)
    }

    private func acceptLoop() {
        defer {
            lock.lock()
            stopped = true
            close(listener)
            close(wake.read)
            lock.unlock()
        }
        while true {
            var fds = [
                pollfd(fd: listener, events: Int16(POLLIN), revents: 0),
                pollfd(fd: wake.read, events: Int16(POLLIN), revents: 0),
            ]
            let n = poll(&fds, 2, -1)
            if n < 0 && errno == EINTR { continue }
            if n < 0 || fds[1].revents != 0 { return }
            let client = CLinux.accept4(listener, nil, nil, Int32(SOCK_CLOEXEC.rawValue))
            if client < 0 { continue }
            let target = self.target
            Thread.detachNewThread {
                guard let (host, port) = target(), let upstream = Self.connect(host, port) else {
                    close(client)
                    return
                }
                Self.pump(client, upstream)
            }
        }
    }

    static func connect(_ host: String, _ port: Int) -> Int32? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else {
            close(fd)
            return nil
        }
        let done = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard done == 0 else {
            close(fd)
            return nil
        }
        return fd
    }

    /// Copies both ways until both sides have closed (a half-close is passed on).
    static func pump(_ a: Int32, _ b: Int32) {
        defer {
            close(a)
            close(b)
        }
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        var open = (aToB: true, bToA: true)
        while open.aToB || open.bToA {
            var fds = [
                pollfd(fd: a, events: open.aToB ? Int16(POLLIN) : 0, revents: 0),
                pollfd(fd: b, events: open.bToA ? Int16(POLLIN) : 0, revents: 0),
            ]
            let n = poll(&fds, 2, -1)
            if n < 0 && errno == EINTR { continue }
            if n < 0 { return }
            for (index, (from, to)) in [(a, b), (b, a)].enumerated() where fds[index].revents != 0 {
                let count = buffer.withUnsafeMutableBytes { read(from, $0.baseAddress, $0.count) }
                if count <= 0 {
                    shutdown(to, Int32(SHUT_WR))
                    if index == 0 { open.aToB = false } else { open.bToA = false }
                    if count < 0 { return }
                    continue
                }
                var sent = 0
                while sent < count {
                    let w = buffer.withUnsafeBytes { raw -> Int in
                        guard let base = raw.baseAddress else { return -1 }
                        return send(to, base + sent, count - sent, Int32(MSG_NOSIGNAL))
                    }
                    if w <= 0 { return }
                    sent += w
                }
            }
        }
    }
}
