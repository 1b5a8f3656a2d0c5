internal import Foundation

/// The journal of accepted jobs: `journal.jsonl`, one `JournalRecord` per line, appended and
/// synced before the agent acts on it. A torn last line (a crash mid-write) is ignored on
/// reading. `rewrite` replaces the whole file atomically (temp file + rename) with a compacted
/// history.
public struct Journal: Sendable {
    public let path: String

    public init(path: String) { self.path = path }

    /// Every readable record, in order.
    public func read() -> [JournalRecord] {
        guard let data = FileManager.default.contents(atPath: path) else { return [] }
        let decoder = JSONDecoder()
        var records: [JournalRecord] = []
        for line in data.split(separator: UInt8(ascii: "\n")) where !line.isEmpty {
            if let record = try? decoder.decode(JournalRecord.self, from: Data(line)) { records.append(record) }
        }
        return records
    }

    /// Appends `records` and syncs them to disk.
    public func append(_ records: [JournalRecord]) throws(AgentError) {
        guard !records.isEmpty else { return }
        var bytes = Self.lines(records)
        let fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw AgentError.stateFile(path: path, action: "open", reason: "\(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        // A torn line from a crash must not swallow this one: start on a fresh line.
        var end = stat()
        if fstat(fd, &end) == 0, end.st_size > 0 {
            var last: UInt8 = 0
            if pread(fd, &last, 1, off_t(end.st_size - 1)) == 1, last != UInt8(ascii: "\n") {
                bytes.insert(UInt8(ascii: "\n"), at: 0)
            }
        }
        let ok = bytes.withUnsafeBytes { buf -> Bool in
            var offset = 0
            while offset < buf.count {
                let n = write(fd, buf.baseAddress! + offset, buf.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    return false
                }
                offset += n
            }
            return true
        }
        guard ok, fdatasync(fd) == 0 else {
            throw AgentError.stateFile(path: path, action: "write", reason: "\(String(cString: strerror(errno)))")
        }
    }

    /// Replaces the journal with `records` (temp file + rename).
    public func rewrite(_ records: [JournalRecord]) throws(AgentError) {
        let bytes = Self.lines(records)
        if case .failure(let failure) = AtomicFile.write(bytes, to: path, mode: 0o600) {
            throw AgentError.stateFile(path: path, action: "rewrite", reason: "\(failure.message)")
        }
    }

    /// `records` as JSON lines.
    static func lines(_ records: [JournalRecord]) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var bytes: [UInt8] = []
        for record in records {
            guard let data = try? encoder.encode(record) else { continue }
            bytes += data
            bytes.append(UInt8(ascii: "\n"))
        }
        return bytes
    }

    /// The journal's size in bytes (0 when missing).
    public var size: Int {
        var st = stat()
        return stat(path, &st) == 0 ? Int(st.st_size) : 0
    }
}
