internal import Foundation

// MARK: - Multiplexed frames

/// Splits the engine's multiplexed stream (a process without a terminal: exec, attach, logs)
/// into stdout and stderr. Each frame is an 8-byte header — the stream (0 stdin, 1 stdout,
/// 2 stderr, 3 the engine's error), three zero bytes, the payload's length as a big-endian
/// 32-bit number — and the payload. Frames span reads and reads span frames: pieces are handed
/// out as they arrive, without waiting for a frame's end.
struct FrameDecoder {
    private var header: [UInt8] = []
    /// Payload bytes of the current frame still to come.
    private var left = 0
    private var stream = DockerOutput.Stream.stdout

    mutating func decode(_ bytes: [UInt8], request: String) throws(DockerAPIError) -> [DockerOutput] {
        var out: [DockerOutput] = []
        var index = 0
        while index < bytes.count {
            if left == 0 {
                let take = min(8 - header.count, bytes.count - index)
                header += bytes[index..<(index + take)]
                index += take
                guard header.count == 8 else { break }
                guard let kind = DockerOutput.Stream(rawValue: header[0]) else {
                    throw .malformedResponse(request: request, detail: "a stream frame of unknown type \(header[0])")
                }
                stream = kind
                left = Int(header[4]) << 24 | Int(header[5]) << 16 | Int(header[6]) << 8 | Int(header[7])
                header.removeAll(keepingCapacity: true)
                continue
            }
            let take = min(left, bytes.count - index)
            let piece = bytes[index..<(index + take)]
            if let last = out.last, last.stream == stream {
                out[out.count - 1].bytes += piece
            } else {
                out.append(DockerOutput(stream: stream, bytes: Array(piece)))
            }
            index += take
            left -= take
        }
        return out
    }

    /// Whether the stream stopped between frames (not inside a header or a payload).
    var isAtFrameBoundary: Bool { header.isEmpty && left == 0 }
}

/// Reads a process's output off an exchange: demultiplexed frames, or raw bytes (a terminal).
final class OutputReader: @unchecked Sendable {
    let exchange: DockerExchange
    let multiplexed: Bool
    private var frames = FrameDecoder()
    private var queue: [DockerOutput] = []

    init(exchange: DockerExchange, multiplexed: Bool) {
        self.exchange = exchange
        self.multiplexed = multiplexed
    }

    func next(deadline: Deadline) throws(DockerAPIError) -> DockerOutput? {
        while queue.isEmpty {
            guard let body = try exchange.nextBody(deadline: deadline) else { return nil }
            queue =
                multiplexed
                ? try frames.decode(body, request: exchange.request) : [DockerOutput(stream: .stdout, bytes: body)]
        }
        return queue.removeFirst()
    }
}

// MARK: - Public streams

/// A container's output as it is written (``DockerAPI/logs(container:follow:stdout:stderr:since:tail:timestamps:tty:)``):
/// stdout and stderr apart, or as one raw stream for a container with a terminal.
///
/// One thread reads at a time; ``cancel()`` may be called from any thread and ends a read that
/// waits. `@unchecked Sendable` for that reason.
public final class DockerOutputStream: @unchecked Sendable {
    let reader: OutputReader

    init(reader: OutputReader) {
        self.reader = reader
    }

    /// `METHOD /path`, for messages.
    public var request: String { reader.exchange.request }
    /// Whether the output comes as one raw stream (a container with a terminal).
    public var isRaw: Bool { !reader.multiplexed }

    /// The next piece of output; nil at the end (the container stopped, or a log without
    /// follow was read to its end) or after ``cancel()``. Waits at most `timeout` (nil: as long
    /// as it takes) for something to arrive.
    public func next(timeout: Duration? = nil) throws(DockerAPIError) -> DockerOutput? {
        try reader.next(deadline: .after(optional: timeout))
    }

    /// Closes the connection: a waiting ``next(timeout:)`` returns nil.
    public func cancel() { reader.exchange.cancel() }

    /// The pieces as an async sequence, read on a thread of its own; ending the iteration
    /// cancels the stream.
    public func pieces() -> AsyncThrowingStream<DockerOutput, any Error> {
        threadedSequence(next: { () throws(DockerAPIError) in try self.next() }, cancel: { self.cancel() })
    }
}

/// A connection the engine hijacked for a process (exec start, attach): its output as it is
/// written and, when the process reads stdin, a way to write to it.
///
/// One thread reads and one writes at a time; ``cancel()`` may be called from any thread.
public final class DockerHijackedStream: @unchecked Sendable {
    let reader: OutputReader

    init(reader: OutputReader) {
        self.reader = reader
    }

    public var request: String { reader.exchange.request }
    /// Whether the output comes as one raw stream (the process has a terminal).
    public var isRaw: Bool { !reader.multiplexed }

    /// The next piece of output; nil once the process ended (or after ``cancel()``).
    public func next(timeout: Duration? = nil) throws(DockerAPIError) -> DockerOutput? {
        try reader.next(deadline: .after(optional: timeout))
    }

    /// Writes to the process's stdin (an exec created with `stdin`, an attach with stdin).
    public func write(_ bytes: [UInt8], timeout: Duration = .seconds(30)) throws(DockerAPIError) {
        try reader.exchange.write(bytes, deadline: .after(timeout))
    }

    /// Ends the process's stdin; its output can still be read.
    public func closeInput() { reader.exchange.closeWrite() }

    /// Closes the connection in both directions.
    public func cancel() { reader.exchange.cancel() }

    /// The output as an async sequence, read on a thread of its own; ending the iteration
    /// cancels the stream.
    public func pieces() -> AsyncThrowingStream<DockerOutput, any Error> {
        threadedSequence(next: { () throws(DockerAPIError) in try self.next() }, cancel: { self.cancel() })
    }
}

/// The engine's events as they happen (``DockerAPI/events(filters:since:until:)``).
///
/// One thread reads at a time; ``cancel()`` may be called from any thread.
public final class DockerEventStream: @unchecked Sendable {
    let exchange: DockerExchange
    private var lines = JSONLineStream()
    private var queue: [DockerEvent] = []
    private var ended = false

    init(exchange: DockerExchange) {
        self.exchange = exchange
    }

    /// The next event; nil when the stream ends (`until` passed) or after ``cancel()``. Waits
    /// at most `timeout` (nil: as long as it takes).
    public func next(timeout: Duration? = nil) throws(DockerAPIError) -> DockerEvent? {
        let deadline = Deadline.after(optional: timeout)
        while queue.isEmpty && !ended {
            var failure: DockerAPIError?
            let collect: ([UInt8]) -> Void = { line in
                do {
                    self.queue.append(try JSONDecoder().decode(DockerEvent.self, from: Data(line)))
                } catch {
                    failure = .malformedResponse(request: self.exchange.request, detail: "an event \(error)")
                }
            }
            if let body = try exchange.nextBody(deadline: deadline) {
                try lines.appendBody(body, request: exchange.request, collect)
            } else {
                ended = true
                lines.finish(collect)
            }
            if let failure { throw failure }
        }
        return queue.isEmpty ? nil : queue.removeFirst()
    }

    public func cancel() { exchange.cancel() }

    /// The events as an async sequence, read on a thread of its own; ending the iteration
    /// cancels the stream.
    public func events() -> AsyncThrowingStream<DockerEvent, any Error> {
        threadedSequence(next: { () throws(DockerAPIError) in try self.next() }, cancel: { self.cancel() })
    }
}

/// An async sequence fed by a blocking `next` on a thread of its own (so that a stream that
/// waits for hours never holds a thread of Swift's cooperative pool). Ending the iteration
/// calls `cancel`, which makes a waiting `next` return nil. The buffer is unbounded: the
/// consumer is expected to keep up with a container's output or the engine's events.
func threadedSequence<T: Sendable>(
    next: @escaping @Sendable () throws(DockerAPIError) -> T?,
    cancel: @escaping @Sendable () -> Void
) -> AsyncThrowingStream<T, any Error> {
    let (stream, continuation) = AsyncThrowingStream<T, any Error>.makeStream()
    continuation.onTermination = { _ in cancel() }
    let thread = Thread {
        do {
            while let value = try next() {
                if case .terminated = continuation.yield(value) { break }
            }
            continuation.finish()
        } catch {
            continuation.finish(throwing: error)
        }
    }
    thread.stackSize = 1 << 20
    thread.start()
    return stream
}
