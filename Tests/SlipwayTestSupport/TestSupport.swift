public import Foundation
public import Testing

/// Runs `body` with a new, empty directory under /tmp (its real path, symbolic links
/// resolved), and removes the directory and everything in it afterwards.
public func withTemporaryDirectory<T>(_ body: (String) throws -> T) throws -> T {
    let directory = try makeTemporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: directory) }
    return try body(directory)
}

/// Runs `body` with a new, empty directory under /tmp (its real path, symbolic links
/// resolved), and removes the directory and everything in it afterwards.
public func withTemporaryDirectory<T>(
    isolation: isolated (any Actor)? = #isolation,
    _ body: (String) async throws -> T
) async throws -> T {
    let directory = try makeTemporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: directory) }
    return try await body(directory)
}

private func makeTemporaryDirectory() throws -> String {
    var template = Array("/tmp/slipway-test-XXXXXX".utf8CString)
    guard let created = template.withUnsafeMutableBufferPointer({ $0.baseAddress.flatMap { mkdtemp($0) } }) else {
        throw TestSupportError("mkdtemp failed: errno \(errno)")
    }
    let path = String(cString: created)
    // On macOS /tmp is a symbolic link; libraries that resolve paths must compare equal.
    guard let resolved = realpath(path, nil) else { return path }
    defer { free(resolved) }
    return String(cString: resolved)
}

public struct TestSupportError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Runs `args[0]` (looked up on PATH) with the other arguments in `cwd`, with the test's
/// environment plus `env`, and collects its exit status (128 + the signal number when killed
/// by one) and output. A non-zero exit is not an error: check `status`.
///
/// Spawns with posix_spawn rather than Foundation's `Process`, whose `run()` crashes on
/// Linux when tests start processes from several threads at once.
@discardableResult
public func sh(
    _ args: [String],
    cwd: String,
    env: [String: String] = [:],
    replacingEnvironment: Bool = false
) throws -> (status: Int32, stdout: String, stderr: String) {
    guard !args.isEmpty else { throw TestSupportError("sh: no command") }
    // /bin/sh changes directory and execs the command: posix_spawn_file_actions_addchdir_np
    // is not visible to Swift on Linux.
    let argv = ["/bin/sh", "-c", "cd \"$1\" || exit 127; shift; exec \"$@\"", "sh", cwd] + args
    // `replacingEnvironment` runs the command with exactly `env` (end-to-end tests pin it).
    let base = replacingEnvironment ? [:] : ProcessInfo.processInfo.environment
    let environment = base.merging(env) { $1 }.map { "\($0.key)=\($0.value)" }

    var output: [Int32] = [-1, -1]
    var errors: [Int32] = [-1, -1]
    var pid = pid_t()
    // Pipes are made close-on-exec under the lock, so that a child spawned by another test
    // at the same moment cannot inherit (and hold open) this child's pipes.
    let spawnError: Int32 = spawnLock.withLock {
        guard makePipe(&output), makePipe(&errors) else { return errno }
        #if canImport(Darwin)
        var actions: posix_spawn_file_actions_t?
        #else
        var actions = posix_spawn_file_actions_t()
        #endif
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, output[1], 1)
        posix_spawn_file_actions_adddup2(&actions, errors[1], 2)
        // The child starts with no blocked signals and default handlers: the test runner's
        // threads block some (SIGCHLD among them), and a shell that inherits that mask waits
        // for ever in a bare `wait`.
        #if canImport(Darwin)
        var attributes: posix_spawnattr_t?
        #else
        var attributes = posix_spawnattr_t()
        #endif
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        return withCStrings(argv) { argv in
            withCStrings(environment) { envp in posix_spawn(&pid, "/bin/sh", &actions, &attributes, argv, envp) }
        }
    }
    for fd in [output[1], errors[1]] where fd >= 0 { close(fd) }
    defer { for fd in [output[0], errors[0]] where fd >= 0 { close(fd) } }
    guard spawnError == 0 else {
        throw TestSupportError("sh: cannot run \(args[0]): \(String(cString: strerror(spawnError)))")
    }

    let (stdout, stderr) = readToEnd(output[0], errors[0])
    var status: Int32 = 0
    while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
    let signal = status & 0x7f
    let exitStatus = signal == 0 ? (status >> 8) & 0xff : 128 + signal
    return (exitStatus, String(decoding: stdout, as: UTF8.self), String(decoding: stderr, as: UTF8.self))
}

private let spawnLock = NSLock()

private func makePipe(_ fds: inout [Int32]) -> Bool {
    guard pipe(&fds) == 0 else { return false }
    return fcntl(fds[0], F_SETFD, FD_CLOEXEC) == 0 && fcntl(fds[1], F_SETFD, FD_CLOEXEC) == 0
}

/// Calls `body` with a NULL-terminated C array of copies of `strings`.
private func withCStrings<R>(_ strings: [String], _ body: ([UnsafeMutablePointer<CChar>?]) -> R) -> R {
    let pointers = strings.map { strdup($0) } + [nil]
    defer { for pointer in pointers { free(pointer) } }
    return body(pointers)
}

/// Reads two pipes at once until both reach end of file, so that a child filling one of
/// them cannot block.
private func readToEnd(_ first: Int32, _ second: Int32) -> ([UInt8], [UInt8]) {
    var buffers: [[UInt8]] = [[], []]
    var fds = [first, second].map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
    var chunk = [UInt8](repeating: 0, count: 1 << 16)
    while fds.contains(where: { $0.fd >= 0 }) {
        if poll(&fds, nfds_t(fds.count), -1) < 0 {
            if errno == EINTR { continue }
            break
        }
        for index in fds.indices where fds[index].fd >= 0 && fds[index].revents != 0 {
            let count = chunk.withUnsafeMutableBytes { read(fds[index].fd, $0.baseAddress, $0.count) }
            if count > 0 {
                buffers[index] += chunk[0..<count]
            } else if count == 0 || (errno != EINTR && errno != EAGAIN) {
                fds[index].fd = -1  // poll() skips negative descriptors.
            }
        }
    }
    return (buffers[0], buffers[1])
}

/// Whether the integration tests' real components are there. On a laptop a missing engine
/// skips those tests; in CI (`CI` set) they always run, so a missing engine fails them.
public enum EngineAvailability {
    /// CI sets `CI` (to `true`); an empty value, `false` or `0` counts as unset.
    public static var required: Bool {
        guard let value = ProcessInfo.processInfo.environment["CI"]?.lowercased() else { return false }
        return !["", "0", "false", "no"].contains(value)
    }

    /// Asked through the CLI, independently of the code under test.
    public static func dockerAnswers() -> Bool {
        (try? sh(["docker", "info", "--format", "{{.ServerVersion}}"], cwd: "/").status) == 0
    }

    public static func buildahWorks() -> Bool {
        (try? sh(["buildah", "version"], cwd: "/").status) == 0
    }
    /// `kubernetes-validate` (PyPI; `.ci/run` puts a virtual environment with it on PATH).
    public static func kubernetesValidateWorks() -> Bool {
        (try? sh(["kubernetes-validate", "--version"], cwd: "/").status) == 0
    }
}

extension Trait where Self == ConditionTrait {
    /// The Docker engine must answer (always in CI).
    public static var requiresDockerEngine: Self {
        .enabled("no Docker engine answers (CI=true makes this test require one)") {
            EngineAvailability.required || EngineAvailability.dockerAnswers()
        }
    }

    /// `kubernetes-validate` must be on PATH (always in CI).
    public static var requiresKubernetesValidate: Self {
        .enabled("kubernetes-validate is not on PATH (CI=true makes this test require it)") {
            EngineAvailability.required || EngineAvailability.kubernetesValidateWorks()
        }
    }

    /// buildah must be installed (always in CI).
    public static var requiresBuildah: Self {
        .enabled("buildah is not installed (CI=true makes this test require it)") {
            EngineAvailability.required || EngineAvailability.buildahWorks()
        }
    }
}

/// A repository name no other test (or engineer) uses.
public func uniqueTestRepository() -> String {
    "slipway-test/" + UUID().uuidString.lowercased()
}

/// Writes `text` to `path` with `mode` (an executable script, typically) through a file opened
/// with O_CLOEXEC, then renames it into place. Foundation's writers may leave the descriptor
/// inheritable, and a process another test starts at that moment then holds the file open for
/// writing, so that running it fails with ETXTBSY ("Text file busy").
public func writeExecutable(_ text: String, to path: String, mode: mode_t = 0o755) throws {
    let temporary = path + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
    guard fd >= 0 else { throw TestSupportError("cannot create \(temporary): errno \(errno)") }
    let bytes = Array(text.utf8)
    let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    close(fd)
    guard written == bytes.count, chmod(temporary, mode) == 0, rename(temporary, path) == 0 else {
        unlink(temporary)
        throw TestSupportError("cannot write \(path): errno \(errno)")
    }
}

/// Values that look like shell code: branch names a hostile pusher can give (git refuses
/// spaces and backslashes, hence `${IFS}`; the two names with them stand for values from the
/// environment or the command line, which have no such rule). `MARKER` is replaced by a path
/// that must never come to exist.
public let hostileValues = [
    "$(touch${IFS}MARKER)",
    "`touch${IFS}MARKER`",
    "x;touch${IFS}MARKER",
    "x&&touch${IFS}MARKER",
    "x|touch${IFS}MARKER",
    "$(touch MARKER)",
    "'$(touch${IFS}MARKER)'",
    "\"$(touch${IFS}MARKER)\"",
    "x'\";touch${IFS}MARKER;'",
    "$((0))$(touch${IFS}MARKER)",
    "${IFS}$(touch${IFS}MARKER)",
    "feature/$(touch${IFS}MARKER)",
    "a\\$(touch${IFS}MARKER)",
    "$HOME$(touch${IFS}MARKER)",
    ")$(touch${IFS}MARKER)(",
]

/// A program `swift build` made beside the test bundle (`slipway-helper`, `slipway-pause`).
public func builtProgram(_ name: String) throws -> String {
    let bundle = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    for candidate in [
        bundle.appendingPathComponent(name), bundle.deletingLastPathComponent().appendingPathComponent(name),
    ]
    where FileManager.default.isExecutableFile(atPath: candidate.path) {
        return candidate.path
    }
    throw TestSupportError("\(name) is not built beside \(bundle.path) (swift build builds it)")
}

/// Runs a blocking call (docker, git, a child process) on a thread of its own: a test must not
/// hold one of the few threads of Swift's cooperative pool, which every other test needs too.
public func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    let result: Result<T, any Error> = await withCheckedContinuation { continuation in
        let thread = Thread { continuation.resume(returning: Result { try body() }) }
        thread.stackSize = 1 << 20
        thread.start()
    }
    return try result.get()
}
