internal import Crypto
internal import Foundation
internal import Synchronization

#if canImport(Glibc)
internal import Glibc
#elseif canImport(Darwin)
internal import Darwin
#endif

/// `slipway-helper`, the static program slipway copies into a container to sync a tree there
/// (Sources/SlipwayHelper, docs/sync-protocol.md): found beside the slipway binary (install.sh
/// puts it there) or on PATH, and installed into a container as `/.slipway/helper`.
public enum SyncHelperProgram {
    public static let programName = "slipway-helper"
    /// Where the helper lives in a container.
    public static let containerDirectory = "/.slipway"
    public static let containerPath = "/.slipway/helper"

    /// The helper: beside `executable` (the slipway binary, links resolved), else on PATH.
    public static func program(besides executable: String, environment: [String: String]) -> String? {
        let directory = (executable as NSString).deletingLastPathComponent
        let beside = directory + "/" + programName
        if access(beside, X_OK) == 0 { return beside }
        return findExecutable(programName, path: environment["PATH"])
    }

    /// The helper's bytes and their SHA-256 (what a running helper reports of itself in HELLO).
    struct Loaded: Sendable {
        let path: String
        let bytes: [UInt8]
        let digest: [UInt8]
    }

    static func load(_ path: String) throws(SyncRemoteError) -> Loaded {
        guard let data = FileManager.default.contents(atPath: path), !data.isEmpty else {
            throw .unusable(
                "cannot read \(path), slipway's sync helper; reinstall slipway (./install.sh installs \(programName) beside it)"
            )
        }
        let bytes = Array(data)
        return Loaded(path: path, bytes: bytes, digest: sha256Bytes(bytes))
    }

    /// The SHA-256 of the helper at `path`, read again only when its file changed (another
    /// inode, size, modification or change time): a dev container's digest includes it, and
    /// reading and hashing the 0.8 MB file took a few ms of every rebuild's `start_dev`.
    static func digest(_ path: String) throws(SyncRemoteError) -> [UInt8] {
        var info = stat()
        guard stat(path, &info) == 0 else { return try load(path).digest }
        let key = [
            UInt64(info.st_dev), UInt64(info.st_ino), UInt64(info.st_size), UInt64(info.st_mtim.tv_sec),
            UInt64(info.st_mtim.tv_nsec), UInt64(info.st_ctim.tv_sec), UInt64(info.st_ctim.tv_nsec),
        ]
        if let known = digests.withLock({ $0[path] }), known.key == key { return known.digest }
        let digest = try load(path).digest
        digests.withLock { $0[path] = (key, digest) }
        return digest
    }

    private static let digests = Mutex<[String: (key: [UInt64], digest: [UInt8])]>([:])

    /// Copies the helper into `container` — running, or created and not started yet — as
    /// `/.slipway/helper` (mode 0755, in a directory of mode 0755, so that any user can run it)
    /// with the engine's archive API. An existing helper is replaced.
    public static func install(api: DockerAPI, container: String, program: String) async throws(SyncRemoteError) {
        let loaded = try load(program)
        let result = await onOwnThread {
            Result { () throws(SyncRemoteError) in try install(api: api, container: container, loaded: loaded) }
        }
        try result.get()
    }

    static func install(api: DockerAPI, container: String, loaded: Loaded) throws(SyncRemoteError) {
        let info: DockerContainer?
        do {
            info = try api.inspectContainer(container)
        } catch {
            throw .unusable("cannot look up the container \(container): \(error)")
        }
        guard let info else { throw .unusable("there is no container \(container) (`docker ps --all` lists them)") }
        // A volume at /.slipway (what a read-only root needs) takes the file alone: the engine
        // refuses any archive whose target directory is on a read-only root.
        let intoMount = hasWritableMount(info, at: containerDirectory)
        do {
            try api.putArchive(container: container, path: intoMount ? containerDirectory : "/") { tar in
                if !intoMount { try tar.appendDirectory(".slipway", TarAttributes(mode: 0o755)) }
                try tar.appendFile(
                    intoMount ? "helper" : ".slipway/helper",
                    TarAttributes(mode: 0o755),
                    contents: loaded.bytes
                )
            }
        } catch {
            if case .status(_, let code, let message) = error {
                if message.contains("read-only") { throw .unusable(readOnlyMessage(container)) }
                if code == 404 { throw .unusable("there is no container \(container) (`docker ps --all` lists them)") }
            }
            throw .unusable("cannot copy slipway's sync helper into the container \(container): \(error)")
        }
    }

    /// Whether `info` has a writable mount (a volume, a bind) at `destination`.
    static func hasWritableMount(_ info: DockerContainer, at destination: String) -> Bool {
        guard let mounts = info.json["Mounts"]?.array else { return false }
        return mounts.contains { $0["Destination"]?.string == destination && $0["RW"]?.bool == true }
    }

    static func readOnlyMessage(_ container: String) -> String {
        "the container \(container) has a read-only root filesystem, so slipway cannot copy its sync helper to "
            + "\(containerPath); mount a writable volume at \(containerDirectory) (`docker run --read-only -v "
            + "\(containerDirectory) …`, or a volume with mountPath \(containerDirectory)) and sync again"
    }
}

/// SHA-256 of `bytes`.
func sha256Bytes(_ bytes: [UInt8]) -> [UInt8] {
    Array(SHA256.hash(data: bytes))
}
