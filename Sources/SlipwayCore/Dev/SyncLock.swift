internal import Foundation

#if canImport(Glibc)
internal import Glibc
#endif

/// The locks that keep two syncs out of one container path: an exclusive `flock` per
/// (container ID, remote root), on a file under the repository's state directory
/// (`<git common dir>/slipway/sync/`, shared by linked worktrees). The kernel releases a lock
/// when its process ends, however it ends (`kill -9` too); the file stays and says who held it
/// last.
public final class SyncLock: Sendable {
    /// The lock files held, by descriptor.
    private let descriptors: [Int32]
    public let paths: [String]

    private init(descriptors: [Int32], paths: [String]) {
        self.descriptors = descriptors
        self.paths = paths
    }

    deinit {
        for fd in descriptors { close(fd) }
    }

    /// The directory of the locks for syncs started from `directory`: the repository's state
    /// directory, else (outside a repository) a private one of this user's under the temporary
    /// directory.
    public static func directory(for directory: String, environment: [String: String]) -> String {
        if let repository = try? GitRepository.discover(from: directory) {
            return URL(fileURLWithPath: repository.commonDir).standardizedFileURL.path + "/slipway/sync"
        }
        let tmp = environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
        return "\(tmp)/slipway-\(getuid())/sync"
    }

    /// The lock file of one container path.
    public static func path(in directory: String, container: String, remote: String) -> String {
        "\(directory)/\(sha256Hex(container + "\u{0}" + remote).prefix(24)).lock"
    }

    /// Takes the locks of every target of `plan`, all or none. A path another process (or an
    /// earlier target) holds is ``SyncPlanError/locked(container:remote:holder:)``.
    public static func acquire(_ plan: SyncPlan, directory: String) throws(SyncPlanError) -> SyncLock {
        try makeDirectory(directory)
        var held: [Int32] = []
        var paths: [String] = []
        func releaseAll() { for fd in held { close(fd) } }
        for target in plan.targets {
            let path = Self.path(in: directory, container: target.container.id, remote: target.remoteRoot)
            let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
            guard fd >= 0 else {
                let reason = String(cString: strerror(errno))
                releaseAll()
                throw .lockFailed(path: path, reason: reason)
            }
            var status: Int32
            repeat { status = flock(fd, LOCK_EX | LOCK_NB) } while status != 0 && errno == EINTR
            if status != 0 {
                let code = errno
                let holder = code == EWOULDBLOCK ? describeHolder(fd) : nil
                close(fd)
                releaseAll()
                guard code == EWOULDBLOCK else {
                    throw .lockFailed(path: path, reason: String(cString: strerror(code)))
                }
                throw .locked(
                    container: target.container.name,
                    remote: target.remoteRoot,
                    holder: holder ?? "lock \(path)"
                )
            }
            let record =
                "pid \(getpid()), from \(target.localRoot)\ncontainer \(target.container.id) \(target.container.name)\nremote \(target.remoteRoot)\n"
            _ = ftruncate(fd, 0)
            _ = Array(record.utf8).withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
            held.append(fd)
            paths.append(path)
        }
        return SyncLock(descriptors: held, paths: paths)
    }

    /// The holder's first line (`pid 123, from /work/app`), read from the lock file.
    static func describeHolder(_ fd: Int32) -> String? {
        var buffer = [UInt8](repeating: 0, count: 512)
        let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        guard n > 0 else { return nil }
        let text = String(decoding: buffer[0..<n], as: UTF8.self)
        return text.split(separator: "\n").first.map(String.init)
    }

    static func makeDirectory(_ directory: String) throws(SyncPlanError) {
        var path = ""
        for component in directory.split(separator: "/") {
            path += "/" + component
            if mkdir(path, 0o700) != 0 && errno != EEXIST {
                throw .lockFailed(path: path, reason: String(cString: strerror(errno)))
            }
        }
        // Someone else's directory (one made in a shared /tmp before us) is not used.
        for path in [directory, (directory as NSString).deletingLastPathComponent] {
            var st = stat()
            guard lstat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else {
                throw .lockFailed(path: path, reason: "not a directory")
            }
            guard st.st_uid == getuid() else {
                throw .lockFailed(path: path, reason: "it belongs to another user (uid \(st.st_uid))")
            }
        }
    }
}
