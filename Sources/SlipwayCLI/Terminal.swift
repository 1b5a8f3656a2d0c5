import Foundation

/// Where the CLI writes: results to stdout, diagnostics to stderr.
enum Terminal {
    static func out(_ s: String) {
        FileHandle.standardOutput.write(Data(s.utf8))
    }

    static func error(_ s: String) {
        FileHandle.standardError.write(Data((s.hasSuffix("\n") ? s : s + "\n").utf8))
    }

    /// The width help is wrapped to, as swift-argument-parser finds it: `COLUMNS`, else the
    /// terminal's, else 80 (in a pipe).
    static var width: Int {
        if let text = ProcessInfo.processInfo.environment["COLUMNS"], let columns = Int(text), columns > 0 {
            return columns
        }
        var size = winsize()
        if ioctl(STDOUT_FILENO, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 { return Int(size.ws_col) }
        return 80
    }

    /// `text` wrapped at word boundaries to `width`, later lines indented by `indent`.
    static func wrap(_ text: String, width: Int = Terminal.width, indent: Int = 0) -> String {
        var lines: [String] = []
        var line = ""
        for word in text.split(separator: " ", omittingEmptySubsequences: true) {
            let candidate = line.isEmpty ? String(word) : line + " " + word
            if candidate.count > width, !line.isEmpty {
                lines.append(line)
                line = String(repeating: " ", count: indent) + word
            } else {
                line = candidate
            }
        }
        if !line.isEmpty { lines.append(line) }
        return lines.joined(separator: "\n")
    }

    /// Help rows as swift-argument-parser lays them out: the label indented by 2 in a 26-column
    /// column, the help after it (or on the next line for a long label), wrapped under itself.
    static func rows(_ rows: [(label: String, help: String)], width: Int = Terminal.width) -> String {
        let pad = String(repeating: " ", count: 26)
        var out = ""
        for row in rows {
            let label = "  " + row.label
            let lines = wrap(row.help, width: max(20, width - 26)).split(separator: "\n")
            out += label.count < 26 ? label.padding(toLength: 26, withPad: " ", startingAt: 0) : label + "\n" + pad
            out += (lines.first.map(String.init) ?? "") + "\n"
            for line in lines.dropFirst() { out += pad + line + "\n" }
        }
        return out
    }
}
