import Dispatch
import Foundation
import SlipwayCore

#if canImport(Glibc)
import Glibc
#endif

/// The local terminal for `slipway enter`: raw mode while a remote terminal runs (every key,
/// Ctrl-C included, goes to the container), its size, and the byte pumps between the
/// process's descriptors and the session.
enum RawTerminal {
    /// Puts `fd` in raw mode; the settings to restore, nil when `fd` is not a terminal.
    static func enable(_ fd: Int32) -> termios? {
        var saved = termios()
        guard isatty(fd) == 1, tcgetattr(fd, &saved) == 0 else { return nil }
        var raw = saved
        cfmakeraw(&raw)
        guard tcsetattr(fd, TCSANOW, &raw) == 0 else { return nil }
        return saved
    }

    static func restore(_ fd: Int32, _ settings: termios) {
        var settings = settings
        _ = tcsetattr(fd, TCSANOW, &settings)
    }

    /// The window size of the terminal on `fd`; nil when it is none.
    static func size(_ fd: Int32) -> TerminalSize? {
        var size = winsize()
        guard ioctl(fd, UInt(TIOCGWINSZ), &size) == 0, size.ws_row > 0, size.ws_col > 0 else { return nil }
        return TerminalSize(rows: Int(size.ws_row), columns: Int(size.ws_col))
    }

    /// Writes all of `bytes` to `fd`; false when it cannot be written (a closed pipe).
    static func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var rest = bytes[...]
        while !rest.isEmpty {
            let n = rest.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                return false
            }
            rest = rest.dropFirst(n)
        }
        return true
    }

    /// The next bytes of standard input; nil at its end (or an error).
    static func readInput() -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: 32 << 10)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(STDIN_FILENO, $0.baseAddress, $0.count) }
            if n > 0 { return Array(buffer[0..<n]) }
            if n < 0 && errno == EINTR { continue }
            return nil
        }
    }

    /// A session's output to this process's stdout and stderr.
    static func show(_ stream: DockerOutput.Stream, _ bytes: [UInt8]) -> Bool {
        switch stream {
        case .stdout, .stdin: return writeAll(STDOUT_FILENO, bytes)
        case .stderr, .system: return writeAll(STDERR_FILENO, bytes)
        }
    }
}

/// Signals handled on a dispatch queue while a session runs (whatever thread they hit): the
/// handler is told which came. Stopping puts the default dispositions back.
final class SignalWatch: @unchecked Sendable {
    // `@unchecked Sendable`: `sources` is set in `init` and read only by `stop()`, on the
    // thread that made the watch.
    private var sources: [DispatchSourceSignal] = []
    private let signals: [Int32]

    init(_ signals: [Int32], handler: @escaping @Sendable (Int32) -> Void) {
        self.signals = signals
        for number in signals {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { handler(number) }
            source.resume()
            sources.append(source)
        }
    }

    func stop() {
        for source in sources { source.cancel() }
        sources = []
        for number in signals { signal(number, SIG_DFL) }
    }
}

/// The first signal that ended a session (0: none), set from a dispatch queue.
final class SignalRecord: @unchecked Sendable {
    // `@unchecked Sendable`: `value` is guarded by `lock`.
    private let lock = NSLock()
    private var value: Int32 = 0

    func record(_ signal: Int32) { lock.withLock { if value == 0 { value = signal } } }
    var signal: Int32 { lock.withLock { value } }
}
