internal import Foundation

#if canImport(Glibc)
internal import Glibc
#elseif canImport(Darwin)
internal import Darwin
#endif

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

/// The client for the Docker Engine API over its unix socket: slipway's one transport to the
/// engine.
///
/// Plain POSIX sockets and HTTP/1.1 with `Connection: close`: one connection per call
/// (``DockerExchange``), no connection pool, no dependencies. A presence check costs one round
/// trip on the local socket (about a millisecond) instead of spawning the `docker` CLI (tens of
/// milliseconds).
///
/// Metadata calls (images, containers, exec inspect) are synchronous and block the calling
/// thread for at most ``timeout`` (the whole call: connect, write, read); a hung daemon turns
/// into ``DockerAPIError/timedOut(request:after:)``, never a hang. Calls that wait by nature
/// say how long: a stop or restart adds its own grace period, a push or an archive upload
/// limits each wait for progress, `waitContainer` and a followed log or events stream wait as
/// long as asked (their streams can be cancelled from another thread). Async callers run the
/// long ones on a thread of their own (`onOwnThread`, or the streams' async sequences).
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
        _ environment: [String: String]? = nil,
        timeout: Duration = .seconds(10)
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
            version: body.version,
            apiVersion: body.apiVersion,
            minimumAPIVersion: body.minAPIVersion,
            operatingSystem: body.os,
            architecture: body.arch
        )
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
        repository: String,
        tag: String,
        auth: String,
        stallTimeout: Duration,
        onMessage: (DockerStreamMessage) -> Void
    ) throws(DockerAPIError) {
        let path = "/images/\(Self.pathEscaped(repository))/push?tag=\(Self.queryEscaped(tag))"
        try stream("POST", path, headers: [("X-Registry-Auth", auth)], stallTimeout: stallTimeout) { line in
            guard let message = try? JSONDecoder().decode(DockerStreamMessage.self, from: Data(line)) else { return }
            onMessage(message)
        }
    }

    /// The `X-Registry-Auth` header for `credential`: base64url of the credential as JSON
    /// (`{}` for none). The daemon decodes it; it is never logged.
    public static func registryAuth(_ credential: RegistryCredential?) -> String {
        var object: [String: String] = [:]
        if let credential {
            object["serveraddress"] = credential.serverAddress
            if credential.isIdentityToken {
                object["identitytoken"] = credential.secret
            } else {
                object["username"] = credential.username
                object["password"] = credential.secret
            }
        }
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(
            of: "/",
            with: "_"
        )
    }

    /// Sends one request whose answer is a stream of JSON lines and hands each complete line to
    /// `onLine` as it arrives. The connect and the request share ``timeout``; after that, each
    /// wait for more of the answer may last `stallTimeout`.
    func stream(
        _ method: String,
        _ path: String,
        headers: [(String, String)],
        stallTimeout: Duration,
        onLine: ([UInt8]) -> Void
    ) throws(DockerAPIError) {
        let label = "\(method) \(path.split(separator: "?").first.map(String.init) ?? path)"
        let exchange = try DockerExchange(
            socketPath: socketPath,
            method: method,
            path: path,
            label: label,
            headers: headers,
            deadline: .after(timeout),
            stallTimeout: stallTimeout,
            headDeadline: .after(stallTimeout)
        )
        guard exchange.succeeded else {
            try exchange.response(deadline: .after(stallTimeout)).requireSuccess()
            return
        }
        var lines = JSONLineStream()
        while let body = try exchange.nextBody(deadline: .after(stallTimeout)) {
            try lines.appendBody(body, request: exchange.request, onLine)
        }
        lines.finish(onLine)
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

        /// The body as a JSON tree.
        func json() throws(DockerAPIError) -> JSONValue {
            do {
                return try JSONValue.parse(body)
            } catch {
                throw .malformedResponse(request: request, detail: "\(error)")
            }
        }
    }

    /// Sends one request on a new connection and reads the whole answer, all within
    /// ``timeout`` unless `limit` says otherwise (a stop that waits for a container).
    func send(
        _ method: String,
        _ path: String,
        body: DockerRequestBody = .none,
        limit: Duration? = nil
    ) throws(DockerAPIError) -> Response {
        // One deadline for the whole call: connect, request, answer.
        let deadline = Deadline.after(limit ?? timeout)
        let exchange = try DockerExchange(
            socketPath: socketPath,
            method: method,
            path: path,
            headers: [("Accept", "application/json")],
            body: body,
            deadline: deadline,
            stallTimeout: limit ?? timeout,
            headDeadline: deadline
        )
        return try exchange.response(deadline: deadline)
    }

    /// `send` with a JSON body whose answer must be a success.
    @discardableResult
    func call(
        _ method: String,
        _ path: String,
        json: JSONValue? = nil,
        limit: Duration? = nil
    ) throws(DockerAPIError) -> Response {
        let response = try send(method, path, body: json.map(DockerRequestBody.json) ?? .none, limit: limit)
        try response.requireSuccess()
        return response
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

    struct ErrorBody: Decodable {
        var message: String
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
