internal import Foundation

/// DevSpace's vars cache: the `vars` map of `.devspace/cache.yaml` (`cache-<file>` for a config
/// not named `devspace.yaml`), where DevSpace remembers the answers to its questions
/// (`pkg/devspace/config/localcache`). slipway reads and writes the same key, so an answer
/// given to either tool is not asked again by the other.
///
/// - Every other key of the file (`images`, `lastContext`, `data`, …) is kept as it was.
///   Writes happen under an exclusive `flock` on `cache.yaml.lock` (the lock `BuildCache`
///   takes for the same file), re-read the file, and replace it atomically.
/// - An answer to a `password: true` question makes the file 0600; its mode is otherwise kept
///   (DevSpace, which rewrites the file in place, keeps it too).
/// - DevSpace's release binaries encrypt the values with a key compiled into them and set
///   `varsEncrypted: true`. slipway cannot read those: with `varsEncrypted: true`, a value that
///   decodes as base64 is taken as encrypted (DevSpace's own test) and treated as not
///   remembered; DevSpace reads slipway's plain values, which do not decode, as they are.
public struct VariablesCache: Sendable {
    /// DevSpace's cache file.
    public let path: String

    public struct Failure: Error, Sendable, Equatable, CustomStringConvertible {
        public var path: String
        public var message: String
        public var description: String { "\(path): \(message)" }
    }

    /// What the file remembers.
    public struct Contents: Sendable, Equatable {
        /// Answers slipway can read, by variable name.
        public var values: [String: String] = [:]
        /// Variables whose remembered answer DevSpace encrypted, so slipway cannot read it.
        public var encrypted: [String] = []
    }

    public init(configPath: String) {
        let dir = (configPath as NSString).deletingLastPathComponent
        let name = (configPath as NSString).lastPathComponent
        path = dir + "/.devspace/" + (name == "devspace.yaml" ? "cache.yaml" : "cache-\(name)")
    }

    /// The remembered answers; a missing file remembers nothing.
    public func read() throws(Failure) -> Contents {
        let root = try readTree()
        var out = Contents()
        let encrypted = root["varsEncrypted"]?.scalar == "true"
        for pair in root["vars"]?.pairs ?? [] {
            guard let name = pair.key.scalar, let value = pair.value.text else { continue }
            if encrypted && Self.looksEncrypted(value) {
                out.encrypted.append(name)
            } else {
                out.values[name] = value
            }
        }
        out.encrypted.sort()
        return out
    }

    /// Remembers `answers` (name → value), keeping every other key; `secret` makes the file
    /// 0600 (an answer to a password question is among them). Returns the names that could not
    /// be stored readably (a value that would look encrypted in a file DevSpace encrypted).
    @discardableResult
    public func record(_ answers: [(name: String, value: String)], secret: Bool) throws(Failure) -> [String] {
        guard !answers.isEmpty else { return [] }
        let lock = try lock()
        defer { Self.unlock(lock) }
        var root = try readTree()
        let encrypted = root["varsEncrypted"]?.scalar == "true"
        var vars = root["vars"]?.pairs ?? []
        var skipped: [String] = []
        for (name, value) in answers {
            if encrypted && Self.looksEncrypted(value) {
                skipped.append(name)
                continue
            }
            let node = Node(.scalar(value, .doubleQuoted))
            if let i = vars.firstIndex(where: { $0.key.scalar == name }) {
                vars[i].value = node
            } else {
                vars.append(Node.Pair(key: .string(name), value: node))
            }
        }
        root["vars"] = Node(.mapping(vars))
        try write(root, secret: secret)
        return skipped
    }

    /// Forgets every answer (`slipway reset vars`, as `devspace reset vars`): removes `vars`
    /// and `varsEncrypted`, keeps the rest. Returns how many answers there were.
    @discardableResult
    public func clear() throws(Failure) -> Int {
        guard access(path, F_OK) == 0 else { return 0 }
        let lock = try lock()
        defer { Self.unlock(lock) }
        var root = try readTree()
        let count = root["vars"]?.pairs?.count ?? 0
        guard root["vars"] != nil || root["varsEncrypted"] != nil else { return 0 }
        root["vars"] = nil
        root["varsEncrypted"] = nil
        try write(root, secret: false)
        return count
    }

    /// DevSpace's test for an encrypted value: it decodes as standard base64 (empty values
    /// are never encrypted).
    static func looksEncrypted(_ value: String) -> Bool {
        !value.isEmpty && Data(base64Encoded: value) != nil
    }

    private func readTree() throws(Failure) -> Node {
        guard let data = FileManager.default.contents(atPath: path) else {
            if access(path, F_OK) != 0 { return Node(.mapping([])) }
            throw Failure(path: path, message: "cannot read DevSpace's cache: \(String(cString: strerror(errno)))")
        }
        do {
            guard let node = try YAMLParser().parse(String(decoding: data, as: UTF8.self)), node.isMapping else {
                return Node(.mapping([]))
            }
            return node
        } catch {
            throw Failure(
                path: path,
                message:
                    "DevSpace's cache is not valid YAML (\(error)); delete it (DevSpace and slipway then rebuild every image once and ask their questions again)"
            )
        }
    }

    private func write(_ root: Node, secret: Bool) throws(Failure) {
        let text: String
        do { text = try YAMLEmitter().emit(root) } catch {
            throw Failure(path: path, message: "cannot write DevSpace's cache: \(error.message)")
        }
        let existing = AtomicFile.existingMode(of: path)
        let mode: UInt32 = secret ? 0o600 : existing ?? 0o644
        if case .failure(let failure) = AtomicFile.write(Array(text.utf8), to: path, mode: mode) {
            throw Failure(path: path, message: failure.message)
        }
    }

    /// An exclusive `flock` on `<file>.lock` (the `.devspace` directory made first).
    private func lock() throws(Failure) -> Int32 {
        switch AtomicFile.lock(path + ".lock") {
        case .success(let fd): return fd
        case .failure(let failure): throw Failure(path: path + ".lock", message: failure.message)
        }
    }

    private static func unlock(_ fd: Int32) { AtomicFile.unlock(fd) }
}
