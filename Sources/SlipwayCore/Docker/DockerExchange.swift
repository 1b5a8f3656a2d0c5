internal import Foundation

#if canImport(Glibc)
internal import Glibc
#elseif canImport(Darwin)
internal import Darwin
#endif

/// The body of a request to the engine.
public enum DockerRequestBody {
    case none
    /// A small body sent with the head (JSON, mostly).
    case bytes([UInt8], contentType: String)
    /// A body produced while it is sent: `produce` writes to the ``DockerBodyWriter`` it is
    /// given, which sends in pieces of at most 64 KiB as they come (chunked transfer encoding,
    /// or exactly `length` bytes when the length is known beforehand). Nothing is held whole in
    /// memory, so a tar of any size streams from disk to the engine.
    case stream(contentType: String, length: Int?, produce: (DockerBodyWriter) throws -> Void)

    /// `value` as a JSON body.
    public static func json(_ value: JSONValue) -> DockerRequestBody {
        .bytes(value.encoded(), contentType: "application/json")
    }
}

/// Sends a request body in pieces as a producer writes it (see ``DockerRequestBody/stream(contentType:length:produce:)``).
///
/// A ``TarSink``: a ``TarWriter`` writes straight into a request.
public final class DockerBodyWriter: TarSink {
    private let socket: UnixSocket
    let request: String
    /// The announced length; nil for chunked transfer encoding.
    let length: Int?
    let stallTimeout: Duration
    private var buffer: [UInt8] = []
    /// Bytes the producer wrote so far.
    public private(set) var written = 0
    /// Set when the engine stopped reading and answered before the body was complete.
    private(set) var engineAnswered = false

    static let pieceSize = 64 * 1024

    init(socket: UnixSocket, request: String, length: Int?, stallTimeout: Duration) {
        self.socket = socket
        self.request = request
        self.length = length
        self.stallTimeout = stallTimeout
        buffer.reserveCapacity(Self.pieceSize)
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws(DockerAPIError) {
        if let length, written + bytes.count > length {
            throw .requestBodyFailed(
                request: request,
                reason: "the producer wrote more than the \(length) bytes it announced"
            )
        }
        written += bytes.count
        if buffer.count + bytes.count < Self.pieceSize {
            buffer.append(contentsOf: bytes)
            return
        }
        try flush()
        if bytes.count >= Self.pieceSize {
            try sendPiece(bytes)
        } else {
            buffer.append(contentsOf: bytes)
        }
    }

    public func write(_ bytes: [UInt8]) throws(DockerAPIError) {
        try bytes.withBytes { raw throws(DockerAPIError) in try write(raw) }
    }

    /// Sends what is buffered.
    public func flush() throws(DockerAPIError) {
        guard !buffer.isEmpty else { return }
        try buffer.withBytes { raw throws(DockerAPIError) in try sendPiece(raw) }
        buffer.removeAll(keepingCapacity: true)
    }

    /// Sends the rest and the end of the body.
    func finish() throws(DockerAPIError) {
        try flush()
        if let length {
            guard written == length else {
                throw .requestBodyFailed(
                    request: request,
                    reason: "the producer wrote \(written) of the \(length) bytes it announced"
                )
            }
        } else {
            try sendRaw(Array("0\r\n\r\n".utf8))
        }
    }

    private func sendPiece(_ bytes: UnsafeRawBufferPointer) throws(DockerAPIError) {
        guard length == nil else {
            try sendRaw(bytes)
            return
        }
        try sendRaw(Array((String(bytes.count, radix: 16) + "\r\n").utf8))
        try sendRaw(bytes)
        try sendRaw([13, 10])
    }

    private func sendRaw(_ bytes: [UInt8]) throws(DockerAPIError) {
        try bytes.withBytes { raw throws(DockerAPIError) in try sendRaw(raw) }
    }

    private func sendRaw(_ bytes: UnsafeRawBufferPointer) throws(DockerAPIError) {
        let complete = try socket.write(bytes, request: request, deadline: .after(stallTimeout), stopOnAnswer: true)
        guard complete else {
            engineAnswered = true
            throw .connectionLost(
                request: request,
                reason: "the engine answered before the request's body was complete"
            )
        }
    }
}

/// One request and its answer on a connection of its own: the head and body are sent, the
/// answer's head is read, and the body is then read as it arrives (``nextBody(deadline:)``) or
/// whole (``response(deadline:)``). After a `101` (exec and attach hijack the connection) the
/// body is the raw stream, and ``write(_:deadline:)`` sends on it.
///
/// Thread use as ``UnixSocket``'s: one reader and one writer at a time, ``cancel()`` from any
/// thread.
final class DockerExchange: @unchecked Sendable {
    let socket: UnixSocket
    /// `METHOD /path` for messages.
    let request: String
    private(set) var code = 0
    private(set) var headers: [String: String] = [:]
    private var framing = BodyFraming.empty
    /// Received bytes not yet decoded (what came with the head).
    private var pending: [UInt8] = []
    private var ended = false
    private var buffer = [UInt8](repeating: 0, count: 64 * 1024)

    /// Connects, sends the request and reads the answer's head. `deadline` bounds the connect
    /// and the sending of the head (and of a small body); a streamed body waits at most
    /// `stallTimeout` for each piece to go out; the answer's head must arrive by `headDeadline`
    /// (for a streamed body: within `headDeadline`'s limit after the body was sent).
    init(
        socketPath: String,
        method: String,
        path: String,
        label: String? = nil,
        headers extra: [(String, String)] = [],
        body: DockerRequestBody = .none,
        upgrade: Bool = false,
        deadline: Deadline,
        stallTimeout: Duration,
        headDeadline: Deadline
    ) throws(DockerAPIError) {
        request = label ?? "\(method) \(path)"
        socket = try UnixSocket(connectingTo: socketPath, request: request, deadline: deadline)
        var head = "\(method) \(path) HTTP/1.1\r\nHost: docker\r\nUser-Agent: slipway\r\n"
        for (name, value) in extra { head += "\(name): \(value)\r\n" }
        var small: [UInt8] = []
        switch body {
        case .none:
            if method != "GET" && method != "HEAD" { head += "Content-Length: 0\r\n" }
        case .bytes(let bytes, let contentType):
            head += "Content-Type: \(contentType)\r\nContent-Length: \(bytes.count)\r\n"
            small = bytes
        case .stream(let contentType, let length, _):
            head += "Content-Type: \(contentType)\r\n"
            head += length.map { "Content-Length: \($0)\r\n" } ?? "Transfer-Encoding: chunked\r\n"
        }
        head += upgrade ? "Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n" : "Connection: close\r\n\r\n"
        try socket.write(Array(head.utf8) + small, request: request, deadline: deadline)

        var headDeadline = headDeadline
        if case .stream(_, let length, let produce) = body {
            let writer = DockerBodyWriter(socket: socket, request: request, length: length, stallTimeout: stallTimeout)
            do {
                try produce(writer)
                try writer.finish()
            } catch {
                // An engine that refuses the request stops reading the body and answers: its
                // answer says why, better than a broken pipe does.
                if writer.engineAnswered,
                    (try? readHead(deadline: .after(.seconds(2)))) != nil, !(200..<300).contains(code)
                {
                    try response(deadline: .after(.seconds(2))).requireSuccess()
                }
                if let error = error as? DockerAPIError { throw error }
                throw .requestBodyFailed(request: request, reason: "\(error)")
            }
            if headDeadline.instant != nil { headDeadline = .after(headDeadline.limit) }
        }
        try readHead(deadline: headDeadline)
    }

    private func readHead(deadline: Deadline) throws(DockerAPIError) {
        var parser = HTTPResponseParser()
        while true {
            let n = try buffer.withMutableBytes { raw throws(DockerAPIError) in
                try socket.read(into: raw, request: request, deadline: deadline)
            }
            guard n > 0 else {
                throw .connectionLost(request: request, reason: "the engine closed the connection before answering")
            }
            parser.append(Array(buffer[..<n]))
            if let (code, headers, body) = try parser.head(request: request) {
                self.code = code
                self.headers = headers
                framing = try BodyFraming(code: code, headers: headers, request: request)
                pending = body
                return
            }
        }
    }

    var succeeded: Bool { (200..<300).contains(code) || code == 101 }

    /// The next body bytes as they arrive; nil at the end of the body (or after ``cancel()``).
    func nextBody(deadline: Deadline) throws(DockerAPIError) -> [UInt8]? {
        while !ended {
            if !pending.isEmpty {
                let received = pending
                pending = []
                let body = try framing.decode(received, request: request)
                if !body.isEmpty { return body }
                continue
            }
            if framing.isComplete {
                ended = true
                break
            }
            let n = try buffer.withMutableBytes { raw throws(DockerAPIError) in
                try socket.read(into: raw, request: request, deadline: deadline)
            }
            if n > 0 {
                pending = Array(buffer[..<n])
                continue
            }
            ended = true
            if case .untilClose = framing { break }
            if socket.isCancelled { break }
            throw .connectionLost(
                request: request,
                reason: "the engine closed the connection before the answer was complete"
            )
        }
        return nil
    }

    /// The whole answer (at most ``HTTPResponseParser/limit`` bytes of body).
    func response(deadline: Deadline) throws(DockerAPIError) -> DockerAPI.Response {
        var body: [UInt8] = []
        while let bytes = try nextBody(deadline: deadline) {
            body += bytes
            guard body.count <= HTTPResponseParser.limit else {
                throw .malformedResponse(
                    request: request,
                    detail: "the answer is larger than \(HTTPResponseParser.limit >> 20) MiB"
                )
            }
        }
        return DockerAPI.Response(request: request, code: code, headers: headers, body: body)
    }

    /// Writes on a hijacked connection (a process's stdin).
    func write(_ bytes: [UInt8], deadline: Deadline) throws(DockerAPIError) {
        try socket.write(bytes, request: request, deadline: deadline)
    }

    func closeWrite() { socket.shutdownWrite() }

    func cancel() { socket.cancel() }
}
