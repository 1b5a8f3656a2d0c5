import Foundation
import SlipwayCore

#if canImport(Glibc)
import Glibc
#endif

/// Asks the config's questions (``VariableQuestion``) on the controlling terminal, as DevSpace
/// asks them: only when standard input is a terminal (DevSpace's `IsTerminal(stdin)`), never
/// with `--silent`. The prompt is written to and read from `/dev/tty`, so standard output can
/// still be piped (`slipway print | less`). A password is read with echo off (termios), and the
/// terminal is put back even when Ctrl-C interrupts the question.
enum QuestionPrompt {
    /// The asker for this run, nil when there is nobody to ask.
    static func asker(silent: Bool) -> VariableAsker? {
        guard !silent, isatty(STDIN_FILENO) == 1 else { return nil }
        return { question in ask(question) }
    }

    static func ask(_ question: VariableQuestion) -> String? {
        // The controlling terminal: writing to it (and reading from it) is what the CLI is for.
        let fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var text = ""
        if let problem = question.problem { text += "X Sorry, your reply was invalid: \(problem)\n" }
        if question.options.isEmpty {
            text += "? \(question.text) "
            if let d = question.defaultValue, !d.isEmpty, !question.isPassword { text += "(\(d)) " }
        } else {
            text += "? \(question.text)\n"
            for (i, option) in question.options.enumerated() { text += "  \(i + 1)) \(option)\n" }
            let preselected = question.defaultValue.flatMap { question.options.firstIndex(of: $0) } ?? 0
            text += "  Choose 1-\(question.options.count) or type an option [\(preselected + 1)]: "
        }
        write(fd, text)
        guard let line = question.isPassword ? readHidden(fd) : readLine(fd) else {
            write(fd, "\n")
            return nil
        }
        guard !question.options.isEmpty else { return line }
        let answer = line.trimmingCharacters(in: .whitespaces)
        if let n = Int(answer), n >= 1, n <= question.options.count { return question.options[n - 1] }
        return answer
    }

    private static func write(_ fd: Int32, _ text: String) {
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                return
            }
            bytes = bytes.dropFirst(n)
        }
    }

    /// One line, without its newline; nil at the end of input before anything was typed.
    private static func readLine(_ fd: Int32) -> String? {
        var bytes: [UInt8] = []
        var byte: UInt8 = 0
        while true {
            let n = read(fd, &byte, 1)
            if n < 0 {
                if errno == EINTR { continue }
                return nil
            }
            if n == 0 { return bytes.isEmpty ? nil : String(decoding: bytes, as: UTF8.self) }
            if byte == UInt8(ascii: "\n") { break }
            bytes.append(byte)
            if bytes.count > 1 << 16 { break }
        }
        if bytes.last == UInt8(ascii: "\r") { bytes.removeLast() }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// A line read with echo off; the terminal's settings are restored afterwards, and by the
    /// signal handlers if the process is interrupted meanwhile.
    private static func readHidden(_ fd: Int32) -> String? {
        var saved = termios()
        guard tcgetattr(fd, &saved) == 0 else { return readLine(fd) }
        var quiet = saved
        quiet.c_lflag &= ~tcflag_t(ECHO)
        quiet.c_lflag |= tcflag_t(ECHONL)
        EchoGuard.arm(fd: fd, settings: saved)
        _ = tcsetattr(fd, TCSAFLUSH, &quiet)
        let line = readLine(fd)
        _ = tcsetattr(fd, TCSAFLUSH, &saved)
        EchoGuard.disarm()
        return line
    }
}

/// Puts the terminal's echo back when a signal ends the process while a password is read.
///
/// `nonisolated(unsafe)`: written only by the asking thread before the handlers are installed
/// and after they are removed; the handlers only read it.
private enum EchoGuard {
    nonisolated(unsafe) static var fd: Int32 = -1
    nonisolated(unsafe) static var settings = termios()
    nonisolated(unsafe) static var previous: [Int32: sighandler_t?] = [:]
    static let signals: [Int32] = [SIGINT, SIGTERM, SIGHUP, SIGQUIT]

    static func arm(fd: Int32, settings: termios) {
        Self.fd = fd
        Self.settings = settings
        for s in signals {
            previous[s] = signal(s) { sig in
                var restored = EchoGuard.settings
                _ = tcsetattr(EchoGuard.fd, TCSANOW, &restored)
                signal(sig, SIG_DFL)
                raise(sig)
            }
        }
    }

    static func disarm() {
        for s in signals { signal(s, previous[s] ?? SIG_DFL) }
        previous = [:]
        fd = -1
    }
}
