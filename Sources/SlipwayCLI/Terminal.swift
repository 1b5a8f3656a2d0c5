import Foundation

/// Where the CLI writes: results to stdout, diagnostics to stderr.
enum Terminal {
    static func out(_ s: String) {
        FileHandle.standardOutput.write(Data(s.utf8))
    }

    static func error(_ s: String) {
        FileHandle.standardError.write(Data((s.hasSuffix("\n") ? s : s + "\n").utf8))
    }
}
