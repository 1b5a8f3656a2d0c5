internal import Foundation

// MARK: - HTTP/1.1 response parsing

/// Collects the bytes of one HTTP/1.1 response and says when it is complete: at the end of a
/// `Content-Length` body, at the last chunk of a chunked body, or (for neither) when the
/// server closes the connection. ``DockerExchange`` uses it for the head (``head(request:)``)
/// and decodes bodies as they arrive with ``BodyFraming``; the whole-response reading here is
/// the reference the parser tests hold that decoding to.
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
                request: request,
                code: code,
                headers: headers,
                body: Array(bytes[start..<(start + count)])
            )
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

// MARK: - Chunked transfer decoding, incremental

/// Decodes a chunked body as its bytes arrive, in pieces of any size.
struct ChunkedDecoder {
    private var raw: [UInt8] = []
    private var position = 0
    /// Bytes left in the current chunk; nil when a chunk-size line comes next.
    private var leftInChunk: Int?
    private var needsChunkEnd = false
    /// Set once the last (zero-size) chunk has arrived; trailers after it are not read.
    private(set) var ended = false

    /// Adds received bytes and returns the body bytes they complete.
    mutating func decode(_ bytes: some Collection<UInt8>, request: String) throws(DockerAPIError) -> [UInt8] {
        guard !ended else { return [] }
        raw.append(contentsOf: bytes)
        var body: [UInt8] = []
        while true {
            if needsChunkEnd {
                guard raw.count - position >= 2 else { break }
                position += 2
                needsChunkEnd = false
            }
            if let left = leftInChunk {
                let available = min(left, raw.count - position)
                guard available > 0 else { break }
                body.append(contentsOf: raw[position..<(position + available)])
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
            // Chunk extensions (`;name=value`) are allowed and ignored.
            let hex = sizeText.split(separator: ";", maxSplits: 1).first.map(String.init) ?? ""
            guard let size = Int(hex.trimmingCharacters(in: .whitespaces), radix: 16), size >= 0 else {
                throw .malformedResponse(request: request, detail: "chunk size \"\(sizeText)\"")
            }
            position = lineEnd + 2
            if size == 0 {
                ended = true
                raw = []
                position = 0
                return body
            }
            leftInChunk = size
        }
        if position > 0 && (position == raw.count || position > 64 * 1024) {
            raw.removeFirst(position)
            position = 0
        }
        return body
    }
}

// MARK: - Streamed JSON lines

/// Turns the body of a streamed answer (chunked or not) into complete lines, as they arrive.
struct JSONLineStream {
    private var chunks = ChunkedDecoder()
    private var text: [UInt8] = []

    /// Adds body bytes; returns true when the last chunk has arrived.
    mutating func append(
        _ bytes: [UInt8],
        chunked: Bool,
        request: String,
        _ onLine: ([UInt8]) -> Void
    ) throws(DockerAPIError) -> Bool {
        guard chunked else {
            try appendBody(bytes, request: request, onLine)
            return false
        }
        let body = try chunks.decode(bytes, request: request)
        try appendBody(body, request: request, onLine)
        if chunks.ended {
            finish(onLine)
            return true
        }
        return false
    }

    /// Adds decoded body bytes and hands over the lines they complete.
    mutating func appendBody(_ bytes: [UInt8], request: String, _ onLine: ([UInt8]) -> Void) throws(DockerAPIError) {
        text.append(contentsOf: bytes)
        emitLines(onLine)
        guard text.count <= HTTPResponseParser.limit else {
            throw .malformedResponse(
                request: request,
                detail: "a line longer than \(HTTPResponseParser.limit >> 20) MiB"
            )
        }
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

// MARK: - Response bodies, read as they arrive

/// How the body of a response ends, and the state of decoding it.
enum BodyFraming {
    /// No body (1xx, 204, 304, a HEAD).
    case empty
    /// `Content-Length`: this many bytes are still to come.
    case length(Int)
    case chunked(ChunkedDecoder)
    /// Neither: the body ends when the server closes the connection — and a hijacked
    /// connection (exec, attach) is read this way after its `101`.
    case untilClose

    init(code: Int, headers: [String: String], request: String) throws(DockerAPIError) {
        if code == 101 {
            self = .untilClose
        } else if code / 100 == 1 || code == 204 || code == 304 {
            self = .empty
        } else if headers["transfer-encoding"]?.lowercased().contains("chunked") == true {
            self = .chunked(ChunkedDecoder())
        } else if let length = headers["content-length"] {
            guard let count = Int(length.trimmingCharacters(in: .whitespaces)), count >= 0 else {
                throw .malformedResponse(request: request, detail: "Content-Length: \(length)")
            }
            self = count == 0 ? .empty : .length(count)
        } else {
            self = .untilClose
        }
    }

    var isComplete: Bool {
        switch self {
        case .empty: return true
        case .length(let left): return left == 0
        case .chunked(let decoder): return decoder.ended
        case .untilClose: return false
        }
    }

    /// The body bytes in `received`, and whether the body is now complete. Bytes past the end
    /// of the body are dropped (the connection closes after one exchange).
    mutating func decode(_ received: [UInt8], request: String) throws(DockerAPIError) -> [UInt8] {
        switch self {
        case .empty:
            return []
        case .length(let left):
            let taken = min(left, received.count)
            self = .length(left - taken)
            return taken == received.count ? received : Array(received[..<taken])
        case .chunked(var decoder):
            let body = try decoder.decode(received, request: request)
            self = .chunked(decoder)
            return body
        case .untilClose:
            return received
        }
    }
}
