internal import Foundation

/// The names of slipway's temporary files and directories, and the sweep that removes the ones
/// a dead process left behind (a crash, a `kill -9`, a pipeline the agent stopped).
///
/// Every name says which process made it — its pid and its start time (field 22 of
/// `/proc/PID/stat`, clock ticks since boot), so that a reused pid is not taken for the owner:
/// - a file written atomically: `<path>.tmp-<pid>.<start>-<random>`;
/// - a directory: `$TMPDIR/slipway-<kind>-<pid>.<start>-XXXXXX` (`mkdtemp`; kinds `watch`,
///   `pipeline`, `push`).
///
/// `sweep` removes a name only when it belongs to this user (`st_uid`) and its owner is gone: no
/// such process, a zombie, or a process with another start time. Files of the older format
/// (`<path>.tmp-<pid>-<random>`, no start time) count when their pid is gone (or is this
/// process, which writes the new format); directories of the older format (`slipway-watch-XXXXXX`)
/// name no owner and are left alone.
public enum TempFiles {
    /// Who made a temporary name.
    public struct Owner: Sendable, Equatable {
        public var pid: Int32
        /// nil for the older format (no start time).
        public var start: UInt64?
    }

    /// The directory kinds slipway makes in `$TMPDIR`.
    public static let directoryKinds = ["watch", "pipeline", "push", "dockerfile"]

    private static let own: (pid: Int32, start: UInt64) = (getpid(), ChildProcess.startTime(of: getpid()) ?? 0)

    /// `<pid>.<start>` of this process.
    public static var ownerTag: String {
        let pid = getpid()
        let start = pid == own.pid ? own.start : ChildProcess.startTime(of: pid) ?? 0
        return "\(pid).\(start)"
    }

    /// A temporary name next to `path`, for writing it atomically (create exclusively, write,
    /// rename over `path`).
    public static func temporaryPath(for path: String) -> String {
        "\(path).tmp-\(ownerTag)-\(UInt32.random(in: 0...UInt32.max))"
    }

    /// `$TMPDIR` (else `/tmp`) without a trailing slash.
    public static var temporaryDirectory: String {
        var dir = ProcessInfo.processInfo.environment["TMPDIR"].flatMap { $0.hasPrefix("/") ? $0 : nil } ?? "/tmp"
        while dir.count > 1 && dir.hasSuffix("/") { dir.removeLast() }
        return dir
    }

    /// Creates a private directory `$TMPDIR/slipway-<kind>-<pid>.<start>-XXXXXX` (mode 0700);
    /// the error is `errno`'s text.
    public static func makeDirectory(kind: String) -> Result<String, TempFileError> {
        var template = Array("\(temporaryDirectory)/slipway-\(kind)-\(ownerTag)-XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ $0.baseAddress.flatMap { mkdtemp($0) } }) else {
            return .failure(
                TempFileError(
                    message:
                        "cannot create a temporary directory in \(temporaryDirectory): \(String(cString: strerror(errno)))"
                )
            )
        }
        return .success(String(cString: made))
    }

    // MARK: Owners

    /// The owner a temporary file's name gives (`….tmp-<pid>.<start>-<random>`, or the older
    /// `….tmp-<pid>-<random>`); nil when `name` is not such a name.
    public static func owner(ofFile name: String) -> Owner? {
        guard let marker = name.range(of: ".tmp-", options: .backwards) else { return nil }
        return owner(name[marker.upperBound...], allowOldFormat: true)
    }

    /// The owner a temporary directory's name gives (`slipway-<kind>-<pid>.<start>-XXXXXX`);
    /// nil for other names and the older format.
    public static func owner(ofDirectory name: String) -> Owner? {
        for kind in directoryKinds where name.hasPrefix("slipway-\(kind)-") {
            return owner(name.dropFirst("slipway-\(kind)-".count), allowOldFormat: false)
        }
        return nil
    }

    /// Parses `<pid>.<start>-<rest>` (or, when allowed, `<pid>-<digits>`).
    private static func owner(_ text: Substring, allowOldFormat: Bool) -> Owner? {
        guard let dash = text.firstIndex(of: "-") else { return nil }
        let head = text[..<dash]
        let rest = text[text.index(after: dash)...]
        guard !rest.isEmpty else { return nil }
        let digits = { (s: Substring) in !s.isEmpty && s.count <= 20 && s.allSatisfy { $0.isASCII && $0.isNumber } }
        let parts = head.split(separator: ".", omittingEmptySubsequences: false)
        if parts.count == 2, digits(parts[0]), digits(parts[1]), let pid = Int32(parts[0]), pid > 0,
            let start = UInt64(parts[1])
        {
            return Owner(pid: pid, start: start == 0 ? nil : start)
        }
        if allowOldFormat, parts.count == 1, digits(parts[0]), digits(rest), let pid = Int32(parts[0]), pid > 0 {
            return Owner(pid: pid, start: nil)
        }
        return nil
    }

    /// Whether `owner` no longer runs: no such process, a zombie, another process under the
    /// same pid (another start time), or — for the older format — this process's own pid.
    public static func isGone(_ owner: Owner) -> Bool {
        if owner.start == nil && owner.pid == getpid() { return true }
        return !ChildProcess.isAlive(owner.pid, start: owner.start)
    }

    // MARK: Sweeping

    /// Removes the temporary files of dead owners in `directory` — and in its subdirectories
    /// when `recursive` (symbolic links are not followed; names in `skipping` are not entered)
    /// — and, with `directories`, the temporary directories of dead owners
    /// (`slipway-<kind>-<pid>.<start>-XXXXXX`, with everything in them). Only entries of this
    /// user go. Returns the paths removed.
    @discardableResult
    public static func sweep(
        _ directory: String,
        recursive: Bool = false,
        directories: Bool = false,
        skipping: Set<String> = []
    ) -> [String] {
        var removed: [String] = []
        sweep(directory, recursive: recursive, directories: directories, skipping: skipping, depth: 0, into: &removed)
        return removed
    }

    private static func sweep(
        _ directory: String,
        recursive: Bool,
        directories: Bool,
        skipping: Set<String>,
        depth: Int,
        into removed: inout [String]
    ) {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return }
        let uid = getuid()
        for name in names {
            let path = directory + "/" + name
            var st = stat()
            guard lstat(path, &st) == 0 else { continue }
            let kind = st.st_mode & S_IFMT
            if kind == S_IFREG, let owner = owner(ofFile: name), st.st_uid == uid, isGone(owner) {
                if unlink(path) == 0 { removed.append(path) }
            } else if kind == S_IFDIR {
                if directories, let owner = owner(ofDirectory: name), st.st_uid == uid, isGone(owner) {
                    if (try? FileManager.default.removeItem(atPath: path)) != nil { removed.append(path) }
                } else if recursive, depth < 8, !skipping.contains(name) {
                    sweep(
                        path,
                        recursive: true,
                        directories: false,
                        skipping: skipping,
                        depth: depth + 1,
                        into: &removed
                    )
                }
            }
        }
    }
}

/// A temporary file or directory that could not be made.
public struct TempFileError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}
