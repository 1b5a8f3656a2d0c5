internal import Foundation

/// Writes a file so that readers see the old or the new content, never a mix: a temp file in
/// the same directory, `fsync`, then `rename`.
public enum AtomicFile {
    public struct Failure: Error, Sendable, Equatable {
        public var message: String
    }

    public static func write(_ bytes: [UInt8], to path: String, mode: UInt32 = 0o644) -> Result<Void, Failure> {
        let tmp = TempFiles.temporaryPath(for: path)
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode_t(mode))
        guard fd >= 0 else {
            return .failure(Failure(message: "cannot create \(tmp): \(String(cString: strerror(errno)))"))
        }
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

    /// The permission bits of the file at `path` (following a symlink), nil when there is none:
    /// a file rewritten with ``write(_:to:mode:)`` keeps them when they are passed back.
    public static func existingMode(of path: String) -> UInt32? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return UInt32(st.st_mode) & 0o777
    }
}

extension AtomicFile {
    /// An exclusive `flock` on `lockPath` (its directory made first), for the read-modify-write
    /// of a state file; give the descriptor to ``unlock(_:)``.
    public static func lock(_ lockPath: String) -> Result<Int32, Failure> {
        let dir = (lockPath as NSString).deletingLastPathComponent
        do {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        } catch {
            return .failure(Failure(message: "cannot create \(dir): \(error.localizedDescription)"))
        }
        let fd = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            return .failure(Failure(message: "cannot open the lock file: \(String(cString: strerror(errno)))"))
        }
        while flock(fd, LOCK_EX) != 0 {
            guard errno == EINTR else {
                let message = String(cString: strerror(errno))
                close(fd)
                return .failure(Failure(message: "cannot lock: \(message)"))
            }
        }
        return .success(fd)
    }

    public static func unlock(_ fd: Int32) {
        flock(fd, LOCK_UN)
        close(fd)
    }
}
