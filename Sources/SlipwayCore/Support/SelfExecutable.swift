internal import Foundation

/// The path of the running slipway binary, symbolic links resolved (`/proc/self/exe`), for
/// the processes it starts that call it back (pipeline functions, the agent, jobs) and the
/// hooks it installs; where /proc is missing, `argv[0]` made absolute or found on PATH.
public func selfExecutable() -> String {
    var buffer = [CChar](repeating: 0, count: 4096)
    let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
    if n > 0 { return String(decoding: buffer[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) }
    let argv0 = CommandLine.arguments.first ?? "slipway"
    if argv0.contains("/") {
        return argv0.hasPrefix("/")
            ? argv0 : (FileManager.default.currentDirectoryPath as NSString).appendingPathComponent(argv0)
    }
    return findExecutable(argv0, path: ProcessInfo.processInfo.environment["PATH"]) ?? argv0
}
