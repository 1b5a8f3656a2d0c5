internal import Foundation

/// What the last successful build of one image left behind.
public struct ImageCacheEntry: Sendable, Equatable, Codable {
    /// The repository built (DevSpace's `images.<key>.imageName`).
    public var imageName: String
    /// The first tag of the last successful build (DevSpace's `images.<key>.tag`).
    public var tag: String
    /// The digests the build was decided on; nil `buildDigest`: unknown (rebuild next time).
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
    /// Files that changed while the build ran (the image may hold either version of them);
    /// such a build has no ``buildDigest`` and the next run builds again.
    public var changedDuringBuild: [String]

    public init(
        imageName: String,
        tag: String,
        buildDigest: String? = nil,
        dockerfileDigest: String? = nil,
        contextDigest: String? = nil,
        optionsDigest: String? = nil,
        tags: [String] = [],
        imageID: String? = nil,
        engine: String? = nil,
        pushed: [String: String] = [:],
        changedDuringBuild: [String] = []
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
        self.changedDuringBuild = changedDuringBuild
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        imageName = try c.decode(String.self, forKey: .imageName)
        tag = try c.decode(String.self, forKey: .tag)
        buildDigest = try c.decodeIfPresent(String.self, forKey: .buildDigest)
        dockerfileDigest = try c.decodeIfPresent(String.self, forKey: .dockerfileDigest)
        contextDigest = try c.decodeIfPresent(String.self, forKey: .contextDigest)
        optionsDigest = try c.decodeIfPresent(String.self, forKey: .optionsDigest)
        tags = try c.decodeIfPresent([String].self, forKey: .tags) ?? []
        imageID = try c.decodeIfPresent(String.self, forKey: .imageID)
        engine = try c.decodeIfPresent(String.self, forKey: .engine)
        pushed = try c.decodeIfPresent([String: String].self, forKey: .pushed) ?? [:]
        changedDuringBuild = try c.decodeIfPresent([String].self, forKey: .changedDuringBuild) ?? []
    }
}

/// slipway's record of what it built, in a file of its own, and DevSpace's
/// `.devspace/cache.yaml` kept truthful beside it.
///
/// - **slipway's record** is `.devspace/slipway/builds.json` (`builds-<file>.json` for a
///   config not named `devspace.yaml`): DevSpace rewrites `cache.yaml` from its own struct
///   and drops keys it does not know, so a record kept there is lost whenever DevSpace runs
///   (and every turn would cost slipway a rebuild). Updates happen under an exclusive lock
///   with a re-read, and the file is replaced atomically (temp file + rename), so concurrent
///   builds never lose each other's results or leave a half-written file. A project that
///   slipway built before this file existed has its old records (`images.<key>.slipway` in
///   `cache.yaml`) read once.
/// - **DevSpace's fields**: when slipway records a build of an image it writes `imageName` and
///   `tag` (so `devspace deploy --skip-build` deploys slipway's image) and removes
///   `imageConfigHash`, `dockerfileHash`, `contextHash`, `entrypointHash` and
///   `customFilesHash`, which described the content DevSpace last built. They are removed
///   rather than recomputed: `imageConfigHash` is SHA-256 of Go's yaml.v3 encoding of the
///   image's config struct, which cannot be reproduced byte for byte, and a wrong value
///   would make DevSpace skip a build it needs. Without them DevSpace rebuilds once (its
///   hashes "changed") and then writes its own again — never a tag whose image holds other
///   content. Every other key of the file is kept as it was.
public struct BuildCache: Sendable {
    /// slipway's own record.
    public let path: String
    /// DevSpace's `cache.yaml` (`cache-<file>` for other config names).
    public let devspacePath: String

    /// DevSpace's keys that describe the content of the last build, removed when slipway
    /// records a build of that image.
    static let devspaceContentKeys = [
        "imageConfigHash", "dockerfileHash", "contextHash", "entrypointHash", "customFilesHash",
    ]

    public init(configPath: String) {
        let dir = (configPath as NSString).deletingLastPathComponent
        let name = (configPath as NSString).lastPathComponent
        devspacePath = dir + "/.devspace/" + (name == "devspace.yaml" ? "cache.yaml" : "cache-\(name)")
        path = dir + "/.devspace/slipway/" + (name == "devspace.yaml" ? "builds.json" : "builds-\(name).json")
    }

    public struct Failure: Error, Sendable, Equatable, CustomStringConvertible {
        public var path: String
        public var message: String
        public var description: String { "\(path): \(message)" }
    }

    struct File: Codable {
        var version = 1
        var images: [String: ImageCacheEntry] = [:]
    }

    /// The recorded entries; a missing file is empty (or the old records in `cache.yaml`), an
    /// unreadable one is an error.
    public func read() throws(Failure) -> [String: ImageCacheEntry] {
        guard let file = try readFile() else { return try legacyEntries() }
        return file.images
    }

    /// The record as it is now, with the old records in `cache.yaml` when there is no file yet.
    private func currentFile() throws(Failure) -> File {
        if let file = try readFile() { return file }
        return File(images: try legacyEntries())
    }

    func readFile() throws(Failure) -> File? {
        guard let data = FileManager.default.contents(atPath: path) else {
            if access(path, F_OK) != 0 { return nil }
            throw Failure(
                path: path,
                message: "cannot read slipway's build record: \(String(cString: strerror(errno)))"
            )
        }
        do {
            return try JSONDecoder().decode(File.self, from: data)
        } catch {
            throw Failure(
                path: path,
                message:
                    "slipway's build record is damaged (\(error)); delete it to start over (slipway then rebuilds every image once)"
            )
        }
    }

    /// Records that slipway kept in `cache.yaml` before it had a file of its own.
    func legacyEntries() throws(Failure) -> [String: ImageCacheEntry] {
        var out: [String: ImageCacheEntry] = [:]
        for pair in try readDevSpaceTree()["images"]?.pairs ?? [] {
            guard let key = pair.key.scalar, let s = pair.value["slipway"] else { continue }
            let n = pair.value
            out[key] = ImageCacheEntry(
                imageName: n["imageName"]?.text ?? "",
                tag: n["tag"]?.text ?? "",
                buildDigest: s["buildDigest"]?.text,
                dockerfileDigest: s["dockerfileDigest"]?.text,
                contextDigest: s["contextDigest"]?.text,
                optionsDigest: s["optionsDigest"]?.text,
                tags: s["tags"]?.strings ?? [],
                imageID: s["imageID"]?.text,
                engine: s["engine"]?.text,
                pushed: Dictionary(
                    (s["pushed"]?.pairs ?? []).compactMap { p in
                        p.key.scalar.flatMap { k in p.value.text.map { (k, $0) } }
                    },
                    uniquingKeysWith: { a, _ in a }
                )
            )
        }
        return out
    }

    func readDevSpaceTree() throws(Failure) -> Node {
        guard let data = FileManager.default.contents(atPath: devspacePath) else {
            if access(devspacePath, F_OK) != 0 { return Node(.mapping([])) }
            throw Failure(
                path: devspacePath,
                message: "cannot read DevSpace's cache: \(String(cString: strerror(errno)))"
            )
        }
        do {
            guard let node = try YAMLParser().parse(String(decoding: data, as: UTF8.self)), node.isMapping else {
                return Node(.mapping([]))
            }
            return node
        } catch {
            throw Failure(
                path: devspacePath,
                message:
                    "DevSpace's cache is not valid YAML (\(error)); delete it (DevSpace and slipway then rebuild every image once)"
            )
        }
    }

    /// Records builds and re-tags (successes only). Under the lock, `keep` is asked about each
    /// entry against the record as it is now (another process may have recorded a newer build
    /// of the same image meanwhile); entries it refuses are not written. Returns the keys
    /// written. DevSpace's fields of those images are updated after.
    @discardableResult
    public func recordBuilds(
        _ updates: [String: ImageCacheEntry],
        keep: (String, ImageCacheEntry, ImageCacheEntry?) async -> Bool = { _, _, _ in true }
    ) async throws(Failure) -> [String] {
        guard !updates.isEmpty else { return [] }
        let lock = try lock(path + ".lock")
        defer { Self.unlock(lock) }
        var file = try currentFile()
        var written: [String: ImageCacheEntry] = [:]
        for (key, entry) in updates.sorted(by: { $0.key < $1.key }) {
            guard await keep(key, entry, file.images[key]) else { continue }
            file.images[key] = entry
            written[key] = entry
        }
        guard !written.isEmpty else { return [] }
        try write(file)
        try updateDevSpaceCache(written)
        return written.keys.sorted()
    }

    /// Records deliveries of `imageID` for `key` (push or kind load), when the record still
    /// describes that image.
    public func recordDeliveries(_ deliveries: [String: (imageID: String, keys: [String])]) throws(Failure) {
        guard !deliveries.isEmpty else { return }
        let lock = try lock(path + ".lock")
        defer { Self.unlock(lock) }
        var file = try currentFile()
        var changed = false
        for (key, delivery) in deliveries {
            guard var entry = file.images[key], entry.imageID == delivery.imageID else { continue }
            for k in delivery.keys { entry.pushed[k] = delivery.imageID }
            file.images[key] = entry
            changed = true
        }
        if changed { try write(file) }
    }

    private func write(_ file: File) throws(Failure) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        let data: Data
        do { data = try encoder.encode(file) } catch {
            throw Failure(path: path, message: "cannot encode slipway's build record: \(error)")
        }
        try AtomicFile.write(Array(data) + [10], to: path).mapFailure(path)
    }

    /// DevSpace's `imageName` and `tag` for the images slipway just built, its content hashes
    /// of them removed, slipway's old records dropped; every other key kept.
    private func updateDevSpaceCache(_ written: [String: ImageCacheEntry]) throws(Failure) {
        let lock = try lock(devspacePath + ".lock")
        defer { Self.unlock(lock) }
        var root = try readDevSpaceTree()
        var images = root["images"]?.pairs ?? []
        for i in images.indices where images[i].value["slipway"] != nil {
            images[i].value["slipway"] = nil
        }
        for (key, entry) in written.sorted(by: { $0.key < $1.key }) {
            var node = images.first(where: { $0.key.scalar == key })?.value ?? Node(.mapping([]))
            if !node.isMapping { node = Node(.mapping([])) }
            for k in Self.devspaceContentKeys { node[k] = nil }
            node["imageName"] = .string(entry.imageName)
            node["tag"] = .string(entry.tag)
            if let i = images.firstIndex(where: { $0.key.scalar == key }) {
                images[i].value = node
            } else {
                images.append(Node.Pair(key: .string(key), value: node))
            }
        }
        root["images"] = Node(.mapping(images))
        let text: String
        do { text = try YAMLEmitter().emit(root) } catch {
            throw Failure(path: devspacePath, message: "cannot write DevSpace's cache: \(error.message)")
        }
        // Its mode is kept: the file holds DevSpace's vars cache too, 0600 once it remembers a
        // password answer (`VariablesCache`).
        let mode = AtomicFile.existingMode(of: devspacePath) ?? 0o644
        try AtomicFile.write(Array(text.utf8), to: devspacePath, mode: mode).mapFailure(devspacePath)
    }

    /// Changes DevSpace's `cache.yaml` (a map) under its lock, every key `body` leaves alone
    /// kept as it was; for keys other than the images' (`lastContext`).
    func updateDevSpaceTree(_ body: (inout Node) -> Void) throws(Failure) {
        let lock = try lock(devspacePath + ".lock")
        defer { Self.unlock(lock) }
        var root = try readDevSpaceTree()
        body(&root)
        let text: String
        do { text = try YAMLEmitter().emit(root) } catch {
            throw Failure(path: devspacePath, message: "cannot write DevSpace's cache: \(error.message)")
        }
        try AtomicFile.write(Array(text.utf8), to: devspacePath).mapFailure(devspacePath)
    }

    /// An exclusive `flock` on `lockPath` (its directory made first).
    private func lock(_ lockPath: String) throws(Failure) -> Int32 {
        switch AtomicFile.lock(lockPath) {
        case .success(let fd): return fd
        case .failure(let failure): throw Failure(path: lockPath, message: failure.message)
        }
    }

    private static func unlock(_ fd: Int32) { AtomicFile.unlock(fd) }
}

extension Result where Failure == AtomicFile.Failure {
    fileprivate func mapFailure(_ path: String) throws(BuildCache.Failure) {
        if case .failure(let e) = self { throw BuildCache.Failure(path: path, message: e.message) }
    }
}
