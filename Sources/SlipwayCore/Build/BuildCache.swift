internal import Foundation

/// What the last successful build of one image left behind.
public struct ImageCacheEntry: Sendable, Equatable {
    /// DevSpace's `images.<key>.imageName`: the repository built.
    public var imageName: String
    /// DevSpace's `images.<key>.tag`: the first tag of the last successful build.
    public var tag: String
    /// slipway's own fields, under `images.<key>.slipway`.
    public var buildDigest: String?
    public var dockerfileDigest: String?
    public var contextDigest: String?
    public var optionsDigest: String?
    public var tags: [String]
    public var imageID: String?
    public var engine: String?
    /// Where this image (``imageID``) was delivered: `name:tag` for a registry push,
    /// `kind:CLUSTER name:tag` for a `kind load` → the image ID delivered. A delivery recorded
    /// for the same image ID is not repeated.
    public var pushed: [String: String]

    public init(
        imageName: String, tag: String, buildDigest: String? = nil, dockerfileDigest: String? = nil,
        contextDigest: String? = nil, optionsDigest: String? = nil, tags: [String] = [], imageID: String? = nil,
        engine: String? = nil, pushed: [String: String] = [:]
    ) {
        self.imageName = imageName
        self.tag = tag
        self.buildDigest = buildDigest
        self.dockerfileDigest = dockerfileDigest
        self.contextDigest = contextDigest
        self.optionsDigest = optionsDigest
        self.tags = tags
        self.imageID = imageID
        self.engine = engine
        self.pushed = pushed
    }
}

/// DevSpace's `.devspace/cache.yaml`, shared with DevSpace: slipway reads and writes
/// `images.<key>.imageName` and `tag` as DevSpace does (so both tools agree on the last built
/// tag), keeps every other key as it found it, and adds its own digests under
/// `images.<key>.slipway`. Updates happen under an exclusive lock with a re-read, and the file
/// is replaced atomically (temp file + rename), so concurrent builds never lose each other's
/// results or leave a half-written file.
public struct BuildCache: Sendable {
    public let path: String

    /// `<configDir>/.devspace/cache.yaml` for `devspace.yaml`, `cache-<file>` for other names.
    public init(configPath: String) {
        let dir = (configPath as NSString).deletingLastPathComponent
        let name = (configPath as NSString).lastPathComponent
        path = dir + "/.devspace/" + (name == "devspace.yaml" ? "cache.yaml" : "cache-\(name)")
    }

    public struct Failure: Error, Sendable, Equatable, CustomStringConvertible {
        public var path: String
        public var message: String
        public var description: String { "\(path): \(message)" }
    }

    /// The cached entries; a missing file is empty, an unreadable one is an error.
    public func read() throws(Failure) -> [String: ImageCacheEntry] {
        Self.entries(in: try readTree())
    }

    func readTree() throws(Failure) -> Node {
        guard let data = FileManager.default.contents(atPath: path) else {
            if access(path, F_OK) != 0 { return Node(.mapping([])) }
            throw Failure(path: path, message: "cannot read the build cache: \(String(cString: strerror(errno)))")
        }
        do {
            guard let node = try YAMLParser().parse(String(decoding: data, as: UTF8.self)), node.isMapping else {
                return Node(.mapping([]))
            }
            return node
        } catch {
            throw Failure(
                path: path,
                message: "the build cache is not valid YAML (\(error)); delete it to start over (slipway then rebuilds every image once)")
        }
    }

    static func entries(in root: Node) -> [String: ImageCacheEntry] {
        var out: [String: ImageCacheEntry] = [:]
        for pair in root["images"]?.pairs ?? [] {
            guard let key = pair.key.scalar else { continue }
            let n = pair.value
            let s = n["slipway"]
            out[key] = ImageCacheEntry(
                imageName: n["imageName"]?.text ?? "", tag: n["tag"]?.text ?? "",
                buildDigest: s?["buildDigest"]?.text, dockerfileDigest: s?["dockerfileDigest"]?.text,
                contextDigest: s?["contextDigest"]?.text, optionsDigest: s?["optionsDigest"]?.text,
                tags: s?["tags"]?.strings ?? [], imageID: s?["imageID"]?.text, engine: s?["engine"]?.text,
                pushed: Dictionary(
                    (s?["pushed"]?.pairs ?? []).compactMap { p in p.key.scalar.flatMap { k in p.value.text.map { (k, $0) } } },
                    uniquingKeysWith: { a, _ in a }))
        }
        return out
    }

    /// Records `updates` (only images whose build or re-tag succeeded) under the lock.
    public func update(_ updates: [String: ImageCacheEntry]) throws(Failure) {
        guard !updates.isEmpty else { return }
        let dir = (path as NSString).deletingLastPathComponent
        do {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        } catch {
            throw Failure(path: path, message: "cannot create \(dir): \(error.localizedDescription)")
        }
        let lockFD = open(path + ".lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard lockFD >= 0 else {
            throw Failure(path: path, message: "cannot open the lock file: \(String(cString: strerror(errno)))")
        }
        defer { close(lockFD) }
        while flock(lockFD, LOCK_EX) != 0 {
            guard errno == EINTR else {
                throw Failure(path: path, message: "cannot lock the build cache: \(String(cString: strerror(errno)))")
            }
        }
        defer { flock(lockFD, LOCK_UN) }

        var root = try readTree()
        var images = root["images"]?.pairs ?? []
        for (key, entry) in updates.sorted(by: { $0.key < $1.key }) {
            var node = images.first(where: { $0.key.scalar == key })?.value ?? Node(.mapping([]))
            if !node.isMapping { node = Node(.mapping([])) }
            node["imageName"] = .string(entry.imageName)
            node["tag"] = .string(entry.tag)
            var s = Node(.mapping([]))
            if let v = entry.buildDigest { s["buildDigest"] = .string(v) }
            if let v = entry.dockerfileDigest { s["dockerfileDigest"] = .string(v) }
            if let v = entry.contextDigest { s["contextDigest"] = .string(v) }
            if let v = entry.optionsDigest { s["optionsDigest"] = .string(v) }
            s["tags"] = .sequence(entry.tags.map { .string($0) })
            if let v = entry.imageID { s["imageID"] = .string(v) }
            if let v = entry.engine { s["engine"] = .string(v) }
            if !entry.pushed.isEmpty {
                s["pushed"] = Node(
                    .mapping(entry.pushed.sorted { $0.key < $1.key }.map { Node.Pair(key: .string($0.key), value: .string($0.value)) }))
            }
            node["slipway"] = s
            if let i = images.firstIndex(where: { $0.key.scalar == key }) {
                images[i].value = node
            } else {
                images.append(Node.Pair(key: .string(key), value: node))
            }
        }
        root["images"] = Node(.mapping(images))
        let text: String
        do { text = try YAMLEmitter().emit(root) } catch {
            throw Failure(path: path, message: "cannot write the build cache: \(error.message)")
        }
        try AtomicFile.write(Array(text.utf8), to: path).mapFailure(path)
    }
}

extension Result where Failure == AtomicFile.Failure {
    fileprivate func mapFailure(_ path: String) throws(BuildCache.Failure) {
        if case .failure(let e) = self { throw BuildCache.Failure(path: path, message: e.message) }
    }
}

/// Writes a file so that readers see the old or the new content, never a mix: a temp file in
/// the same directory, `fsync`, then `rename`.
public enum AtomicFile {
    public struct Failure: Error, Sendable, Equatable {
        public var message: String
    }

    public static func write(_ bytes: [UInt8], to path: String, mode: UInt32 = 0o644) -> Result<Void, Failure> {
        let tmp = TempFiles.temporaryPath(for: path)
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode_t(mode))
        guard fd >= 0 else { return .failure(Failure(message: "cannot create \(tmp): \(String(cString: strerror(errno)))")) }
        var ok = true
        bytes.withUnsafeBytes { buf in
            guard let base = buf.baseAddress else { return }
            var offset = 0
            while offset < buf.count {
                let n = Foundation.write(fd, base + offset, buf.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    ok = false
                    return
                }
                offset += n
            }
        }
        let message = String(cString: strerror(errno))
        if !ok || fsync(fd) != 0 {
            close(fd)
            unlink(tmp)
            return .failure(Failure(message: "cannot write \(tmp): \(message)"))
        }
        close(fd)
        guard rename(tmp, path) == 0 else {
            let m = String(cString: strerror(errno))
            unlink(tmp)
            return .failure(Failure(message: "cannot replace \(path): \(m)"))
        }
        return .success(())
    }
}
