import Foundation
public import Testing

/// A real Distribution registry (`docker-registry serve`, Debian's `docker-registry`) on
/// 127.0.0.1 and a free port, storing into a temporary directory; optionally with htpasswd
/// authentication. Stopped (and its storage removed) by ``stop()``.
public final class TestRegistry: @unchecked Sendable {
    public let port: Int
    public let directory: String
    public let pid: Int32
    /// `127.0.0.1:PORT`.
    public var host: String { "127.0.0.1:\(port)" }

    /// The htpasswd user and password of an authenticating registry. The bcrypt hash below was
    /// made once from this password (cost 5); nothing here is a real secret.
    public static let user = "slipway"
    public static let password = "push-secret-for-tests"
    static let htpasswd = "slipway:$2b$05$gBFx/DKiDx.1S5eblVPDfO5K37mL8CzTXmfXf618sjxTLJSMdznpa\n"

    /// Starts a registry and waits until it accepts connections (at most 20 s).
    public init(authenticated: Bool = false) throws {
        var template = Array("/tmp/slipway-registry-XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ $0.baseAddress.flatMap { mkdtemp($0) } }) else {
            throw TestSupportError("mkdtemp failed: errno \(errno)")
        }
        directory = String(cString: made)
        // `freePort` only says nothing listened a moment ago: another test's server may take
        // the port before the registry binds it. That shows in the log, and a new port is tried.
        var attempt = 0
        while true {
            attempt += 1
            let port = try freePort()
            switch try Self.launch(directory: directory, port: port, authenticated: authenticated) {
            case .success(let pid):
                self.port = port
                self.pid = pid
                return
            case .failure(let error):
                guard error.description.contains("address already in use"), attempt < 5 else {
                    try? FileManager.default.removeItem(atPath: directory)
                    throw error
                }
            }
        }
    }

    /// Starts `docker-registry` on `port` and waits until it accepts connections (at most
    /// 20 s); the failure, with the registry's log, when it does not.
    private static func launch(
        directory: String,
        port: Int,
        authenticated: Bool
    ) throws -> Result<Int32, TestSupportError> {
        var config = """
            version: 0.1
            log:
              level: error
            storage:
              filesystem:
                rootdirectory: \(directory)/data
            http:
              addr: 127.0.0.1:\(port)

            """
        if authenticated {
            try Self.htpasswd.write(toFile: directory + "/htpasswd", atomically: true, encoding: .utf8)
            config += """
                auth:
                  htpasswd:
                    realm: slipway-test
                    path: \(directory)/htpasswd

                """
        }
        try config.write(toFile: directory + "/config.yml", atomically: true, encoding: .utf8)
        // The registry runs in the background with its output in a log file, so that `sh`
        // returns at once; `$!` is its pid.
        let started = try sh(
            [
                "sh", "-c", "docker-registry serve \"$1/config.yml\" >\"$1/registry.log\" 2>&1 & echo $!", "sh",
                directory,
            ],
            cwd: directory
        )
        guard started.status == 0, let pid = Int32(started.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        else {
            throw TestSupportError("docker-registry did not start: \(started.stderr)")
        }
        let deadline = Date().addingTimeInterval(20)
        // Connecting is not enough: another process may hold the port. The registry must also
        // still run.
        while !(canConnect(port: port) && kill(pid, 0) == 0) {
            if Date() > deadline || kill(pid, 0) != 0 {
                let log = (try? String(contentsOfFile: directory + "/registry.log", encoding: .utf8)) ?? ""
                stop(pid: pid)
                return .failure(TestSupportError("docker-registry on port \(port) did not come up: \(log)"))
            }
            usleep(20_000)
        }
        return .success(pid)
    }

    public func stop() {
        Self.stop(pid: pid)
        try? FileManager.default.removeItem(atPath: directory)
    }

    private static func stop(pid: Int32) {
        kill(pid, SIGTERM)
        var status: Int32 = 0
        for _ in 0..<100 {
            if kill(pid, 0) != 0 { break }
            usleep(20_000)
            _ = waitpid(pid, &status, WNOHANG)
        }
        kill(pid, SIGKILL)
    }

    /// Whether `docker-registry` is installed (always required in CI).
    public static func available() -> Bool {
        (try? sh(["sh", "-c", "command -v docker-registry"], cwd: "/").status) == 0
    }
}

/// A TCP port on 127.0.0.1 that nothing listens on right now.
public func freePort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw TestSupportError("socket failed: errno \(errno)") }
    defer { close(fd) }
    var address = loopback(port: 0)
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard bound == 0 else { throw TestSupportError("bind failed: errno \(errno)") }
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    return Int(UInt16(bigEndian: address.sin_port))
}

func loopback(port: Int) -> sockaddr_in {
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = UInt16(port).bigEndian
    address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
    return address
}

func canConnect(port: Int) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    var address = loopback(port: port)
    return withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    } == 0
}

/// A server on 127.0.0.1 that accepts TCP connections (the kernel completes the handshake
/// from the listen backlog) and never answers: the "registry that hangs" case.
public final class SilentServer: @unchecked Sendable {
    public let port: Int
    private let descriptor: Int32

    public init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestSupportError("socket failed: errno \(errno)") }
        var address = loopback(port: 0)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0, listen(fd, 128) == 0 else {
            close(fd)
            throw TestSupportError("bind/listen failed: errno \(errno)")
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        port = Int(UInt16(bigEndian: address.sin_port))
        descriptor = fd
    }

    public func stop() { close(descriptor) }
}

extension Trait where Self == ConditionTrait {
    /// `docker-registry` must be installed (always in CI).
    public static var requiresRegistry: Self {
        .enabled("docker-registry is not installed (CI=true makes this test require it)") {
            EngineAvailability.required || TestRegistry.available()
        }
    }
}

/// The Docker engine's unix socket forwarded to plain TCP on 127.0.0.1 (a small Python
/// forwarder), so that `DOCKER_HOST=tcp://…` reaches the real engine: the transport a remote
/// engine or minikube's `docker-env` gives. Counts the connections it forwarded.
public final class DockerTCPProxy: @unchecked Sendable {
    public let port: Int
    public let directory: String
    public let pid: Int32
    public var host: String { "tcp://127.0.0.1:\(port)" }

    static let script = """
        import os, socket, sys, threading
        state = sys.argv[1]
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen(64)
        with open(state + "/port.tmp", "w") as f:
            f.write(str(server.getsockname()[1]))
        os.rename(state + "/port.tmp", state + "/port")
        def pipe(a, b):
            try:
                while True:
                    data = a.recv(65536)
                    if not data:
                        break
                    b.sendall(data)
            except OSError:
                pass
            finally:
                try:
                    b.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
        count = 0
        while True:
            client, _ = server.accept()
            count += 1
            with open(state + "/count", "w") as f:
                f.write(str(count))
            engine = socket.socket(socket.AF_UNIX)
            engine.connect(sys.argv[2])
            threading.Thread(target=pipe, args=(client, engine), daemon=True).start()
            threading.Thread(target=pipe, args=(engine, client), daemon=True).start()
        """

    public init(socket: String = "/var/run/docker.sock") throws {
        var template = Array("/tmp/slipway-proxy-XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ $0.baseAddress.flatMap { mkdtemp($0) } }) else {
            throw TestSupportError("mkdtemp failed: errno \(errno)")
        }
        directory = String(cString: made)
        try Self.script.write(toFile: directory + "/proxy.py", atomically: true, encoding: .utf8)
        let started = try sh(
            ["sh", "-c", "python3 \"$1/proxy.py\" \"$1\" \"$2\" >\"$1/log\" 2>&1 & echo $!", "sh", directory, socket],
            cwd: directory
        )
        guard let pid = Int32(started.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw TestSupportError("the TCP proxy did not start: \(started.stderr)")
        }
        self.pid = pid
        let deadline = Date().addingTimeInterval(10)
        var found: Int?
        while found == nil {
            found = (try? String(contentsOfFile: directory + "/port", encoding: .utf8)).flatMap { Int($0) }
            if found == nil {
                guard Date() < deadline else {
                    kill(pid, SIGKILL)
                    throw TestSupportError("the TCP proxy did not come up")
                }
                usleep(20_000)
            }
        }
        port = found!
    }

    /// How many connections were forwarded so far.
    public var connections: Int {
        (try? String(contentsOfFile: directory + "/count", encoding: .utf8)).flatMap { Int($0) } ?? 0
    }

    public func stop() {
        kill(pid, SIGKILL)
        try? FileManager.default.removeItem(atPath: directory)
    }
}
