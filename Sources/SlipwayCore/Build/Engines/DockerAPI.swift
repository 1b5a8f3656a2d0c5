internal import Foundation

#if canImport(Glibc)
    internal import Glibc
#elseif canImport(Darwin)
    internal import Darwin
#endif

/// A failure talking to the Docker Engine API.
public enum DockerAPIError: Error, Sendable, Equatable, CustomStringConvertible {
    /// `DOCKER_HOST` names a transport this client does not speak (only `unix://` for now).
    case unsupportedHost(String)
    /// Nothing accepts connections on the socket: the daemon is not running, or the socket is
    /// not ours to open.
    case unreachable(socket: String, reason: String)
    /// The daemon accepted the connection but did not answer within the time limit.
    case timedOut(request: String, after: Duration)
    /// The connection broke in the middle of a request.
    case connectionLost(request: String, reason: String)
    /// The answer was not the HTTP (or JSON) the API promises.
    case malformedResponse(request: String, detail: String)
    /// The daemon answered with an error status; `message` is its JSON `message`.
    case status(request: String, code: Int, message: String)

    public var description: String {
        switch self {
        case .unsupportedHost(let host):
            return "DOCKER_HOST=\(host) is not supported: slipway talks to the Docker engine over a unix socket "
                + "(unix:///var/run/docker.sock), or through the docker CLI for tcp:// and ssh://; unset DOCKER_HOST or use one of those"
        case .unreachable(let socket, let reason):
            return "no Docker engine answers at unix://\(socket) (\(reason)); start one with "
                + "`./install.sh --deps-only` or `sudo dockerd --bridge=none --iptables=false`"
        case .timedOut(let request, let after):
            return "the Docker engine did not answer \(request) within \(after)"
        case .connectionLost(let request, let reason):
            return "the connection to the Docker engine broke during \(request): \(reason)"
        case .malformedResponse(let request, let detail):
            return "the Docker engine's answer to \(request) is not valid: \(detail)"
        case .status(let request, let code, let message):
            return "the Docker engine refused \(request) (HTTP \(code)): \(message)"
        }
    }
}

/// The daemon's version, from `GET /version`.
public struct DockerVersion: Sendable, Equatable {
    /// The engine release, e.g. `20.10.24`.
    public var version: String
    /// The highest API version the daemon speaks, e.g. `1.41`.
    public var apiVersion: String
    public var minimumAPIVersion: String?
    public var operatingSystem: String?
    public var architecture: String?
}

/// A small client for the Docker Engine API over its unix socket.
///
/// Plain POSIX sockets and HTTP/1.1 with `Connection: close`: one connection per call, no
/// connection pool, no dependencies. A presence check costs one round trip on the local
/// socket (about a millisecond) instead of spawning the `docker` CLI (tens of milliseconds).
///
/// Calls are synchronous and block the calling thread for at most ``timeout`` (the whole
/// call: connect, write, read). The daemon answers these metadata calls in well under that;
/// a hung daemon turns into ``DockerAPIError/timedOut(request:after:)``, never a hang.
public struct DockerAPI: Sendable {
    /// The path of the daemon's unix socket.
    public let socketPath: String
    /// The limit for one whole call.
    public let timeout: Duration

    public static let defaultSocketPath = "/var/run/docker.sock"

    public init(socketPath: String = DockerAPI.defaultSocketPath, timeout: Duration = .seconds(10)) {
        self.socketPath = socketPath
        self.timeout = timeout
    }

    /// The client for `DOCKER_HOST` (`unix:///path`) in `environment` (nil: this process's),
    /// or the default socket when it is unset or empty. Other transports (`tcp://`, `ssh://`) are refused with
    /// ``DockerAPIError/unsupportedHost(_:)``.
    public static func fromEnvironment(
        _ environment: [String: String]? = nil, timeout: Duration = .seconds(10)
    ) throws(DockerAPIError) -> DockerAPI {
        let environment = environment ?? ProcessInfo.processInfo.environment
        guard let host = environment["DOCKER_HOST"], !host.isEmpty else {
            return DockerAPI(timeout: timeout)
        }
        guard host.hasPrefix("unix://") else { throw .unsupportedHost(host) }
        let path = String(host.dropFirst("unix://".count))
        guard path.hasPrefix("/") else { throw .unsupportedHost(host) }
        return DockerAPI(socketPath: path, timeout: timeout)
    }

    // MARK: Calls

    /// `GET /_ping`: succeeds when the daemon answers.
    public func ping() throws(DockerAPIError) {
        let response = try send("GET", "/_ping")
        try response.requireSuccess()
    }

    /// `GET /version`.
    public func version() throws(DockerAPIError) -> DockerVersion {
        let response = try send("GET", "/version")
        try response.requireSuccess()
        let body: VersionBody = try response.decode()
        return DockerVersion(
            version: body.version, apiVersion: body.apiVersion, minimumAPIVersion: body.minAPIVersion,
            operatingSystem: body.os, architecture: body.arch)
    }

    /// The image ID (`sha256:…`) that `reference` (a name, `name:tag`, `name@digest` or an ID)
    /// resolves to in the daemon's store, or nil when there is no such image.
    public func imageExists(_ reference: String) throws(DockerAPIError) -> String? {
        try inspectImage(reference)?.id
    }

    /// `GET /images/{reference}/json`: the image's ID and its names (`RepoTags`, in Docker's
    /// short form: `busybox:latest`, `localhost:5000/app:v1`), or nil when there is no such image.
    public func inspectImage(_ reference: String) throws(DockerAPIError) -> (id: String, names: [String])? {
        let response = try send("GET", "/images/\(Self.pathEscaped(reference))/json")
        if response.code == 404 { return nil }
        try response.requireSuccess()
        let body: ImageBody = try response.decode()
        return (body.id, body.repoTags ?? [])
    }

    /// `POST /images/{source}/tag?repo=&tag=`: gives the image `source` (a reference or an ID)
    /// the name `repository:tag`.
    public func tag(source: String, repository: String, tag: String) throws(DockerAPIError) {
        let query = "repo=\(Self.queryEscaped(repository))&tag=\(Self.queryEscaped(tag))"
        let response = try send("POST", "/images/\(Self.pathEscaped(source))/tag?\(query)")
        try response.requireSuccess()
    }

    /// `DELETE /images/{reference}`: removes one name (or, for an ID, the image). Returns
    /// false when there was nothing to remove.
    @discardableResult
    public func remove(image reference: String, force: Bool = false) throws(DockerAPIError) -> Bool {
        let response = try send("DELETE", "/images/\(Self.pathEscaped(reference))?force=\(force)&noprune=false")
        if response.code == 404 { return false }
        try response.requireSuccess()
        return true
    }

    /// `POST /images/{name}/push?tag=`: pushes `repository:tag` with `auth` as the
    /// `X-Registry-Auth` header (base64url of the JSON credentials; `{}` for none), passing every
    /// message of the daemon's progress stream to `onMessage` as it arrives. The daemon reports
    /// a failed push inside the stream (its `error` field), not with a status.
    ///
    /// Fails with ``DockerAPIError/timedOut(request:after:)`` when the daemon sends nothing for
    /// `stallTimeout`; the connection is then closed, which makes the daemon cancel the push.
    public func push(
        repository: String, tag: String, auth: String, stallTimeout: Duration,
        onMessage: (DockerStreamMessage) -> Void
    ) throws(DockerAPIError) {
        let path = "/images/\(Self.pathEscaped(repository))/push?tag=\(Self.queryEscaped(tag))"
        try stream("POST", path, headers: [("X-Registry-Auth", auth)], stallTimeout: stallTimeout) { line in
            guard let message = try? JSONDecoder().decode(DockerStreamMessage.self, from: Data(line)) else { return }
            onMessage(message)
        }
    }

    /// Sends one request whose answer is a stream of JSON lines and hands each complete line to
    /// `onLine` as it arrives. The connect and the request share ``timeout``; after that, each
    /// wait for more of the answer may last `stallTimeout`.
    func stream(
        _ method: String, _ path: String, headers: [(String, String)], stallTimeout: Duration,
        onLine: ([UInt8]) -> Void
    ) throws(DockerAPIError) {
        let request = "\(method) \(path.split(separator: "?").first.map(String.init) ?? path)"
        let deadline = ContinuousClock.now.advanced(by: timeout)
        let socket = try UnixSocket(connectingTo: socketPath, request: request, deadline: deadline, timeout: timeout)
        var head = "\(method) \(path) HTTP/1.1\r\nHost: docker\r\nUser-Agent: slipway\r\n"
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        head += (method == "GET" ? "" : "Content-Length: 0\r\n") + "Connection: close\r\n\r\n"
        try socket.write(Array(head.utf8), request: request, deadline: deadline, timeout: timeout)
        var parser = HTTPResponseParser()
        var lines = JSONLineStream()
        var status: (code: Int, chunked: Bool)?
        while true {
            let chunk = try socket.read(
                request: request, deadline: ContinuousClock.now.advanced(by: stallTimeout), timeout: stallTimeout)
            if chunk.isEmpty {
                guard let status else {
                    throw .connectionLost(request: request, reason: "the daemon closed the connection before answering")
                }
                if !(200..<300).contains(status.code) {
                    guard let response = try parser.finish(request: request) else { return }
                    try response.requireSuccess()
                }
                if !status.chunked { lines.finish(onLine) }
                return
            }
            if let status, (200..<300).contains(status.code) {
                if try lines.append(chunk, chunked: status.chunked, request: request, onLine) { return }
                continue
            }
            parser.append(chunk)
            if status == nil, let (code, headers, body) = try parser.head(request: request) {
                let chunked = headers["transfer-encoding"]?.lowercased().contains("chunked") == true
                status = (code, chunked)
                if (200..<300).contains(code) {
                    if try lines.append(body, chunked: chunked, request: request, onLine) { return }
                    continue
                }
            }
            if status != nil, let response = try parser.response(request: request) {
                try response.requireSuccess()
                return
            }
        }
    }

    // MARK: HTTP

    struct Response {
        var request: String
        var code: Int
        var headers: [String: String]
        var body: [UInt8]

        func requireSuccess() throws(DockerAPIError) {
            guard (200..<300).contains(code) else {
                let message =
                    (try? JSONDecoder().decode(ErrorBody.self, from: Data(body)))?.message
                    ?? String(decoding: body.prefix(512), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
                throw .status(request: request, code: code, message: message)
            }
        }

        func decode<T: Decodable>() throws(DockerAPIError) -> T {
            do {
                return try JSONDecoder().decode(T.self, from: Data(body))
            } catch {
                throw .malformedResponse(request: request, detail: "\(error)")
            }
        }
    }

    /// Sends one request on a new connection and reads the whole answer.
    func send(_ method: String, _ path: String) throws(DockerAPIError) -> Response {
        let request = "\(method) \(path)"
        let deadline = ContinuousClock.now.advanced(by: timeout)
        let socket = try UnixSocket(connectingTo: socketPath, request: request, deadline: deadline, timeout: timeout)
        let head =
            "\(method) \(path) HTTP/1.1\r\nHost: docker\r\nUser-Agent: slipway\r\nAccept: application/json\r\n"
            + (method == "GET" ? "" : "Content-Length: 0\r\n") + "Connection: close\r\n\r\n"
        try socket.write(Array(head.utf8), request: request, deadline: deadline, timeout: timeout)
        var parser = HTTPResponseParser()
        while true {
            let chunk = try socket.read(request: request, deadline: deadline, timeout: timeout)
            if chunk.isEmpty {
                // The daemon closed the connection: whatever arrived is the answer.
                guard let response = try parser.finish(request: request) else {
                    throw .connectionLost(request: request, reason: "the daemon closed the connection before answering")
                }
                return response
            }
            parser.append(chunk)
            if let response = try parser.response(request: request) { return response }
        }
    }

    // MARK: Escaping

    /// Percent-encodes a reference for a path segment. `/` and `:` stay (the daemon's router
    /// takes `{name:.*}`), everything else outside RFC 3986's unreserved set is escaped.
    static func pathEscaped(_ text: String) -> String {
        escape(text, keeping: "/:")
    }

    static func queryEscaped(_ text: String) -> String {
        escape(text, keeping: "")
    }

    private static func escape(_ text: String, keeping extra: String) -> String {
        let keep = Set(extra.utf8)
        var out = ""
        for byte in text.utf8 {
            let isUnreserved =
                (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                || byte == UInt8(ascii: "-") || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_")
                || byte == UInt8(ascii: "~")
            if isUnreserved || keep.contains(byte) {
                out.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                out += "%" + String(byte, radix: 16, uppercase: true).leftPadded(to: 2)
            }
        }
        return out
    }

    // MARK: JSON bodies

    private struct VersionBody: Decodable {
        var version: String
        var apiVersion: String
        var minAPIVersion: String?
        var os: String?
        var arch: String?

        enum CodingKeys: String, CodingKey {
            case version = "Version"
            case apiVersion = "ApiVersion"
            case minAPIVersion = "MinAPIVersion"
            case os = "Os"
            case arch = "Arch"
        }
    }

    private struct ImageBody: Decodable {
        var id: String
        var repoTags: [String]?

        enum CodingKeys: String, CodingKey {
            case id = "Id"
            case repoTags = "RepoTags"
        }
    }

    private struct ErrorBody: Decodable {
        var message: String
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}

// MARK: - Socket

/// One connected, non-blocking `AF_UNIX` stream socket, closed in `deinit`.
///
/// Every wait goes through `poll` with the time left until the call's deadline, so no single
/// step can outlive the call's timeout.
private final class UnixSocket {
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

// MARK: - HTTP/1.1 response parsing

/// Collects the bytes of one HTTP/1.1 response and says when it is complete: at the end of a
/// `Content-Length` body, at the last chunk of a chunked body, or (for neither) when the
/// server closes the connection.
struct HTTPResponseParser {
    private var bytes: [UInt8] = []
    /// Index of the first body byte once the head is parsed.
    private var bodyStart: Int?
    private var code = 0
    private var headers: [String: String] = [:]

    /// An answer larger than this is not a metadata answer: refuse it rather than grow.
    static let limit = 64 << 20

    mutating func append(_ chunk: [UInt8]) {
        bytes.append(contentsOf: chunk)
    }

    /// The response, when the bytes so far hold a complete one.
    mutating func response(request: String) throws(DockerAPIError) -> DockerAPI.Response? {
        guard bytes.count <= Self.limit else {
            throw .malformedResponse(request: request, detail: "the answer is larger than \(Self.limit >> 20) MiB")
        }
        if bodyStart == nil { try parseHead(request: request) }
        guard let start = bodyStart else { return nil }
        if code / 100 == 1 || code == 204 || code == 304 {
            return DockerAPI.Response(request: request, code: code, headers: headers, body: [])
        }
        if headers["transfer-encoding"]?.lowercased().contains("chunked") == true {
            guard let body = try Self.dechunk(bytes[start...], request: request) else { return nil }
            return DockerAPI.Response(request: request, code: code, headers: headers, body: body)
        }
        if let length = headers["content-length"] {
            guard let count = Int(length.trimmingCharacters(in: .whitespaces)), count >= 0 else {
                throw .malformedResponse(request: request, detail: "Content-Length: \(length)")
            }
            guard bytes.count - start >= count else { return nil }
            return DockerAPI.Response(
                request: request, code: code, headers: headers, body: Array(bytes[start..<(start + count)]))
        }
        return nil
    }

    /// The status, headers and the body bytes so far, once the head is complete.
    mutating func head(request: String) throws(DockerAPIError) -> (Int, [String: String], [UInt8])? {
        if bodyStart == nil { try parseHead(request: request) }
        guard let start = bodyStart else { return nil }
        return (code, headers, Array(bytes[start...]))
    }

    /// The response at end of stream, or nil when not even a head arrived.
    mutating func finish(request: String) throws(DockerAPIError) -> DockerAPI.Response? {
        if let complete = try response(request: request) { return complete }
        guard let start = bodyStart else {
            if bytes.isEmpty { return nil }
            throw .malformedResponse(request: request, detail: "the connection closed inside the response head")
        }
        if headers["transfer-encoding"] != nil || headers["content-length"] != nil {
            throw .connectionLost(request: request, reason: "the connection closed before the body was complete")
        }
        return DockerAPI.Response(request: request, code: code, headers: headers, body: Array(bytes[start...]))
    }

    private mutating func parseHead(request: String) throws(DockerAPIError) {
        guard let end = Self.find([13, 10, 13, 10], in: bytes[...]) else {
            if bytes.count > 64 * 1024 {
                throw .malformedResponse(request: request, detail: "no end of the response head in 64 KiB")
            }
            return
        }
        let head = String(decoding: bytes[..<end], as: UTF8.self)
        var lines = head.components(separatedBy: "\r\n")
        let statusLine = lines.removeFirst()
        let parts = statusLine.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), let status = Int(parts[1]) else {
            throw .malformedResponse(request: request, detail: "status line \"\(statusLine)\"")
        }
        code = status
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = line[..<colon].lowercased()
            headers[name] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        bodyStart = end + 4
    }

    /// The decoded body of a chunked transfer, or nil while the last chunk has not arrived.
    static func dechunk(_ data: ArraySlice<UInt8>, request: String) throws(DockerAPIError) -> [UInt8]? {
        var body: [UInt8] = []
        var index = data.startIndex
        while true {
            guard let lineEnd = find([13, 10], in: data[index...]) else { return nil }
            let sizeText = String(decoding: data[index..<lineEnd], as: UTF8.self)
            // Chunk extensions (`;name=value`) are allowed and ignored.
            let hex = sizeText.split(separator: ";", maxSplits: 1).first.map(String.init) ?? ""
            guard let size = Int(hex.trimmingCharacters(in: .whitespaces), radix: 16), size >= 0 else {
                throw .malformedResponse(request: request, detail: "chunk size \"\(sizeText)\"")
            }
            let chunkStart = lineEnd + 2
            if size == 0 {
                // The last chunk; then optional trailer lines and an empty line.
                let rest = data[chunkStart...]
                if rest.starts(with: [13, 10]) || find([13, 10, 13, 10], in: rest) != nil { return body }
                return nil
            }
            guard data.endIndex - chunkStart >= size + 2 else { return nil }
            body.append(contentsOf: data[chunkStart..<(chunkStart + size)])
            index = chunkStart + size + 2
        }
    }

    static func find(_ needle: [UInt8], in haystack: ArraySlice<UInt8>) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        var i = haystack.startIndex
        let last = haystack.endIndex - needle.count
        while i <= last {
            if haystack[i] == needle[0] {
                var match = true
                for j in 1..<needle.count where haystack[i + j] != needle[j] {
                    match = false
                    break
                }
                if match { return i }
            }
            i += 1
        }
        return nil
    }
}

// MARK: - Streamed JSON lines

/// Turns the body of a streamed answer (chunked or not) into complete lines, as they arrive.
struct JSONLineStream {
    private var raw: [UInt8] = []
    private var position = 0
    /// Bytes left in the current chunk; nil when a chunk-size line comes next.
    private var leftInChunk: Int?
    private var needsChunkEnd = false
    private var text: [UInt8] = []

    /// Adds body bytes; returns true when the last chunk has arrived.
    mutating func append(
        _ bytes: [UInt8], chunked: Bool, request: String, _ onLine: ([UInt8]) -> Void
    ) throws(DockerAPIError) -> Bool {
        guard chunked else {
            text.append(contentsOf: bytes)
            emitLines(onLine)
            return false
        }
        raw.append(contentsOf: bytes)
        while true {
            if needsChunkEnd {
                guard raw.count - position >= 2 else { break }
                position += 2
                needsChunkEnd = false
            }
            if let left = leftInChunk {
                let available = min(left, raw.count - position)
                guard available > 0 else { break }
                text.append(contentsOf: raw[position..<(position + available)])
                position += available
                if left == available {
                    leftInChunk = nil
                    needsChunkEnd = true
                } else {
                    leftInChunk = left - available
                }
                continue
            }
            guard let lineEnd = HTTPResponseParser.find([13, 10], in: raw[position...]) else {
                if raw.count - position > 1024 {
                    throw .malformedResponse(request: request, detail: "no end of a chunk size in 1 KiB")
                }
                break
            }
            let sizeText = String(decoding: raw[position..<lineEnd], as: UTF8.self)
            let hex = sizeText.split(separator: ";", maxSplits: 1).first.map(String.init) ?? ""
            guard let size = Int(hex.trimmingCharacters(in: .whitespaces), radix: 16), size >= 0 else {
                throw .malformedResponse(request: request, detail: "chunk size \"\(sizeText)\"")
            }
            position = lineEnd + 2
            if size == 0 {
                finish(onLine)
                return true
            }
            leftInChunk = size
        }
        if position > 64 * 1024 {
            raw.removeFirst(position)
            position = 0
        }
        emitLines(onLine)
        guard text.count <= HTTPResponseParser.limit else {
            throw .malformedResponse(request: request, detail: "a line longer than \(HTTPResponseParser.limit >> 20) MiB")
        }
        return false
    }

    /// Hands over what is left after the end of the stream.
    mutating func finish(_ onLine: ([UInt8]) -> Void) {
        emitLines(onLine)
        if !text.isEmpty { onLine(text) }
        text = []
    }

    private mutating func emitLines(_ onLine: ([UInt8]) -> Void) {
        var start = 0
        while let newline = text[start...].firstIndex(of: 10) {
            if newline > start { onLine(Array(text[start..<newline])) }
            start = newline + 1
        }
        if start > 0 { text.removeFirst(start) }
    }
}

/// One message of the daemon's progress stream (push, pull).
public struct DockerStreamMessage: Decodable, Sendable, Equatable {
    public var status: String?
    public var id: String?
    public var error: String?
    public var errorDetail: ErrorDetail?
    public var aux: Aux?

    public struct ErrorDetail: Decodable, Sendable, Equatable {
        public var message: String?
    }

    public struct Aux: Decodable, Sendable, Equatable {
        public var tag: String?
        public var digest: String?
        public var size: Int?

        enum CodingKeys: String, CodingKey {
            case tag = "Tag"
            case digest = "Digest"
            case size = "Size"
        }
    }

    /// The error the message reports, if any.
    public var errorMessage: String? {
        if let error, !error.isEmpty { return error }
        if let message = errorDetail?.message, !message.isEmpty { return message }
        return nil
    }
}
