import Foundation
import SlipwayTestSupport
import Testing

@testable import SlipwayCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - Which tools the tests need

/// Whether the machine has the engines the integration tests build with.
///
/// A test that needs one is skipped on a laptop without it; in CI (`CI` set) it always runs
/// and fails when the engine does not answer, so a broken CI set-up cannot pass as a row of
/// skips.
/// Lines a build logged; the engine calls `append` from its streaming task.
final class EngineLogLines: @unchecked Sendable {
    // Invariant: `lines` is only touched with `lock` held.
    private let lock = NSLock()
    private var lines: [String] = []

    func append(_ line: String) { lock.withLock { lines.append(line) } }
    var all: [String] { lock.withLock { lines } }
}

private let baseImage = "slipway/busybox:latest"

/// Removes every `reference` from the Docker engine (ignoring ones already gone).
private func removeFromDocker(_ references: [String]) {
    for reference in references { _ = try? DockerAPI().remove(image: reference, force: true) }
}

/// Removes the stopped containers whose command contains `marker` (a failed build's step).
private func removeContainers(runningCommandContaining marker: String) {
    guard let listing = try? sh(["docker", "ps", "--all", "--no-trunc", "--format", "{{.ID}} {{.Command}}"], cwd: "/")
    else { return }
    for line in listing.stdout.split(separator: "\n") where line.contains(marker) {
        if let id = line.split(separator: " ").first { _ = try? sh(["docker", "rm", "--force", String(id)], cwd: "/") }
    }
}

// MARK: - Docker Engine API

@Suite(.serialized, .timeLimit(.minutes(5)))
struct EngineIntegrationTests {
    @Test(.requiresDockerEngine)
    func apiPingsAndReportsTheVersionTheCLISees() throws {
        let api = try DockerAPI.fromEnvironment()
        try api.ping()
        let version = try api.version()
        let cli = try sh(["docker", "version", "--format", "{{.Server.APIVersion}} {{.Server.Version}}"], cwd: "/")
        #expect(cli.status == 0, "\(cli.stderr)")
        #expect(
            cli.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "\(version.apiVersion) \(version.version)"
        )
    }

    @Test(.requiresDockerEngine)
    func apiFindsPresentAndMissingImages() throws {
        let api = DockerAPI()
        let inspected = try sh(["docker", "image", "inspect", "--format", "{{.Id}}", baseImage], cwd: "/")
        try #require(inspected.status == 0, "the offline base image is missing; run ./install.sh --deps-only")
        let id = try #require(try api.imageExists(baseImage))
        #expect(id == inspected.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(try api.imageExists("slipway/busybox") == id, "no tag means latest")
        #expect(try api.imageExists(id) == id, "an ID names itself")
        #expect(try api.imageExists(uniqueTestRepository() + ":absent") == nil)
    }

    @Test(.requiresDockerEngine)
    func apiTagsAndRemoves() throws {
        let api = DockerAPI()
        let repository = uniqueTestRepository()
        defer { removeFromDocker(["\(repository):one", "\(repository):two"]) }
        let id = try #require(try api.imageExists(baseImage))
        try api.tag(source: baseImage, repository: repository, tag: "one")
        try api.tag(source: id, repository: repository, tag: "two")
        #expect(try api.imageExists("\(repository):one") == id)
        let cli = try sh(["docker", "image", "inspect", "--format", "{{.Id}}", "\(repository):two"], cwd: "/")
        #expect(cli.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == id)
        // One inspect answers for every name the image has (the no-op build's single question).
        let inspected = try #require(try api.inspectImage(id))
        #expect(inspected.id == id)
        #expect(Set(["\(repository):one", "\(repository):two"]).isSubset(of: inspected.names))
        #expect(try api.inspectImage(uniqueTestRepository() + ":absent") == nil)

        #expect(try api.remove(image: "\(repository):one"))
        #expect(try api.imageExists("\(repository):one") == nil)
        #expect(try api.remove(image: "\(repository):one") == false)
        #expect(try api.imageExists(baseImage) == id, "removing a name keeps the image")

        let error = #expect(throws: DockerAPIError.self) {
            try api.tag(source: uniqueTestRepository() + ":missing", repository: repository, tag: "x")
        }
        guard case .status(_, 404, let message)? = error else {
            Issue.record("expected a 404, got \(String(describing: error))")
            return
        }
        #expect(message.lowercased().contains("no such image"))
    }

    /// The reason for the API client: a presence check must not cost a process spawn.
    @Test(.requiresDockerEngine)
    func apiLookupIsFarCheaperThanTheCLI() async throws {
        let api = DockerAPI()
        _ = try api.imageExists(baseImage)
        var apiTimes: [Duration] = []
        for _ in 0..<100 {
            let start = ContinuousClock.now
            _ = try api.imageExists(baseImage)
            apiTimes.append(start.duration(to: .now))
        }
        var cliTimes: [Duration] = []
        for _ in 0..<15 {
            let start = ContinuousClock.now
            let output = try await ProcessRunner.run("docker", ["image", "inspect", "--format", "{{.Id}}", baseImage])
            cliTimes.append(start.duration(to: .now))
            #expect(output.status == 0)
        }
        let apiMedian = apiTimes.sorted()[apiTimes.count / 2]
        let cliMedian = cliTimes.sorted()[cliTimes.count / 2]
        print(
            "imageExists via DockerAPI: median \(apiMedian), min \(apiTimes.min()!); "
                + "`docker image inspect` spawn: median \(cliMedian), min \(cliTimes.min()!)"
        )
        #expect(apiMedian * 5 < cliMedian, "API \(apiMedian) vs CLI \(cliMedian)")
    }

    @Test func apiReportsAMissingDaemonWithWhatToRun() throws {
        try withTemporaryDirectory { directory in
            let api = DockerAPI(socketPath: directory + "/docker.sock")
            let error = #expect(throws: DockerAPIError.self) { try api.ping() }
            guard case .unreachable(let socket, _)? = error else {
                Issue.record("expected .unreachable, got \(String(describing: error))")
                return
            }
            #expect(socket == directory + "/docker.sock")
            #expect(error?.description.contains("./install.sh --deps-only") == true)
            #expect(error?.description.contains("sudo dockerd --bridge=none --iptables=false") == true)
        }
    }

    @Test func apiRefusesTCPHostsAndReadsUnixOnes() throws {
        let error = #expect(throws: DockerAPIError.self) {
            try DockerAPI.fromEnvironment(["DOCKER_HOST": "tcp://127.0.0.1:2375"])
        }
        #expect(error == .unsupportedHost("tcp://127.0.0.1:2375"))
        #expect(
            try DockerAPI.fromEnvironment(["DOCKER_HOST": "unix:///run/x/docker.sock"]).socketPath
                == "/run/x/docker.sock"
        )
        #expect(try DockerAPI.fromEnvironment([:]).socketPath == "/var/run/docker.sock")
        #expect(try DockerAPI.fromEnvironment(["DOCKER_HOST": ""]).socketPath == "/var/run/docker.sock")
    }

    /// A daemon that accepts the connection and never answers must cost the timeout, not a hang.
    @Test(.timeLimit(.minutes(2)))
    func apiTimesOutOnASilentDaemon() throws {
        try withTemporaryDirectory { directory in
            let path = directory + "/silent.sock"
            let listener = try listeningSocket(at: path)
            defer { close(listener) }
            let api = DockerAPI(socketPath: path, timeout: .milliseconds(300))
            let start = ContinuousClock.now
            let error = #expect(throws: DockerAPIError.self) { try api.ping() }
            let elapsed = start.duration(to: .now)
            #expect(error == .timedOut(request: "GET /_ping", after: .milliseconds(300)))
            #expect(elapsed >= .milliseconds(250) && elapsed < .seconds(3), "took \(elapsed)")
        }
    }

    @Test func httpParserHandlesChunkedSplitAndLengthDelimitedBodies() throws {
        let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        let chunked = Array((head + "5\r\nhello\r\n6;x=y\r\n world\r\n0\r\n\r\n").utf8)
        var parser = HTTPResponseParser()
        var response: DockerAPI.Response?
        for start in stride(from: 0, to: chunked.count, by: 3) {
            #expect(response == nil, "complete before the last chunk arrived")
            parser.append(Array(chunked[start..<min(start + 3, chunked.count)]))
            response = try parser.response(request: "GET /x")
        }
        #expect(response?.code == 200)
        #expect(response.map { String(decoding: $0.body, as: UTF8.self) } == "hello world")

        var sized = HTTPResponseParser()
        sized.append(Array("HTTP/1.1 404 Not Found\r\nContent-Length: 27\r\n\r\n{\"message\":\"No such".utf8))
        #expect(try sized.response(request: "GET /y") == nil)
        sized.append(Array(" image\"}".utf8))
        let notFound = try #require(try sized.response(request: "GET /y"))
        #expect(notFound.code == 404)
        #expect(throws: DockerAPIError.status(request: "GET /y", code: 404, message: "No such image")) {
            try notFound.requireSuccess()
        }

        var trailers = HTTPResponseParser()
        trailers.append(
            Array("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-Trailer: 1\r\n".utf8)
        )
        #expect(try trailers.response(request: "GET /w") == nil, "the trailer section has not ended")
        trailers.append([13, 10])
        #expect(try trailers.response(request: "GET /w").map { String(decoding: $0.body, as: UTF8.self) } == "ok")

        var closed = HTTPResponseParser()
        closed.append(Array("HTTP/1.0 200 OK\r\n\r\nOK".utf8))
        #expect(try closed.response(request: "GET /z") == nil)
        #expect(try closed.finish(request: "GET /z").map { String(decoding: $0.body, as: UTF8.self) } == "OK")

        var truncated = HTTPResponseParser()
        truncated.append(Array("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc".utf8))
        #expect(throws: DockerAPIError.self) { try truncated.finish(request: "GET /t") }
    }

    @Test func referencesAreEscapedForPathsAndQueries() {
        #expect(DockerAPI.pathEscaped("ghcr.io/acme/app:v1.2_3-x") == "ghcr.io/acme/app:v1.2_3-x")
        #expect(DockerAPI.pathEscaped("app@sha256:abc") == "app%40sha256:abc")
        #expect(DockerAPI.pathEscaped("a b?c#d") == "a%20b%3Fc%23d")
        #expect(DockerAPI.queryEscaped("localhost:5000/app") == "localhost%3A5000%2Fapp")
    }
}

/// A unix socket that listens and never accepts: the kernel completes connections into its
/// backlog, and nobody answers.
private func listeningSocket(at path: String) throws -> Int32 {
    #if canImport(Glibc)
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    #else
    let fd = socket(AF_UNIX, SOCK_STREAM, 0)
    #endif
    guard fd >= 0 else { throw TestSupportError("socket: errno \(errno)") }
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &address.sun_path) { raw in
        let bytes = Array(path.utf8)
        raw.copyBytes(from: bytes)
        raw[bytes.count] = 0
    }
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
    guard bound == 0, listen(fd, 4) == 0 else {
        close(fd)
        throw TestSupportError("bind/listen \(path): errno \(errno)")
    }
    return fd
}

// MARK: - Docker engine builds

extension EngineIntegrationTests {
    static let multiStageDockerfile = """
        FROM slipway/busybox AS base
        ARG GREETING=hello
        RUN echo "$GREETING" > /greeting
        LABEL org.example.stage=base

        FROM base AS runtime
        LABEL org.example.role=runtime
        CMD ["cat", "/greeting"]

        FROM base AS after-target
        RUN echo "stages after the target must not be built" && exit 7

        """

    @Test func dockerCommandLineHasDevSpacesOrder() {
        let request = BuildRequest(
            imageKey: "app",
            imageName: "ghcr.io/acme/app",
            tags: ["v1", "latest"],
            contextDirectory: "/src/app",
            dockerfilePath: "/src/app/Dockerfile",
            buildArgs: [("GREETING", "hi there"), ("EMPTY", "")],
            target: "runtime",
            network: "none",
            extraArgs: ["--no-cache", "--label", "a=b"]
        )
        #expect(
            DockerEngine.arguments(for: request, dockerfile: "/src/app/Dockerfile", buildx: false) == [
                "build", "--build-arg", "GREETING=hi there", "--build-arg", "EMPTY=", "--network", "none",
                "--tag", "ghcr.io/acme/app:v1", "--tag", "ghcr.io/acme/app:latest", "--force-rm",
                "--file", "/src/app/Dockerfile", "--target", "runtime", "--no-cache", "--label", "a=b", "/src/app",
            ]
        )
        #expect(
            DockerEngine.arguments(for: request, dockerfile: "/tmp/rewritten/Dockerfile", buildx: true) == [
                "buildx", "build", "--build-arg", "GREETING=hi there", "--build-arg", "EMPTY=", "--network", "none",
                "--tag", "ghcr.io/acme/app:v1", "--tag", "ghcr.io/acme/app:latest", "--load",
                "--file", "/tmp/rewritten/Dockerfile", "--target", "runtime", "--no-cache", "--label", "a=b",
                "/src/app",
            ]
        )
        let bare = BuildRequest(
            imageKey: "x",
            imageName: "x",
            tags: [],
            contextDirectory: "/c",
            dockerfilePath: "/c/Dockerfile"
        )
        #expect(
            DockerEngine.arguments(for: bare, dockerfile: "/c/Dockerfile", buildx: false) == [
                "build", "--tag", "x", "--force-rm", "--file", "/c/Dockerfile", "/c",
            ]
        )
        #expect(
            DockerEngine.isBannerLine(
                "DEPRECATED: The legacy builder is deprecated and will be removed in a future release."
            )
        )
        #expect(DockerEngine.isBannerLine("            environment-variable."))
        #expect(!DockerEngine.isBannerLine("Step 1/3 : FROM slipway/busybox"))
    }

    @Test(.requiresDockerEngine)
    func dockerBuildsAMultiStageTargetWithBuildArgs() async throws {
        let repository = uniqueTestRepository()
        let references = ["\(repository):one", "\(repository):two"]
        defer { removeFromDocker(references) }
        try await withTemporaryDirectory { directory in
            try Self.multiStageDockerfile.write(toFile: directory + "/Dockerfile", atomically: true, encoding: .utf8)
            let request = BuildRequest(
                imageKey: "app",
                imageName: repository,
                tags: ["one", "two"],
                contextDirectory: directory,
                dockerfilePath: directory + "/Dockerfile",
                buildArgs: [("GREETING", "hi from slipway")],
                target: "runtime",
                network: "none"
            )
            let engine = try DockerEngine.fromEnvironment()
            #expect(await engine.isAvailable())
            let log = EngineLogLines()
            let built = try await engine.build(request) { log.append($0) }

            #expect(built.references == references)
            let id = try #require(built.id)
            #expect(id.hasPrefix("sha256:"))
            #expect(try await engine.imageID(references[1]) == id)

            let lines = log.all
            #expect(lines.contains { $0.contains("RUN echo \"$GREETING\" > /greeting") }, "streamed: \(lines)")
            #expect(!lines.contains { $0.contains("DEPRECATED") }, "the CLI's banner reached the log: \(lines)")
            #expect(!lines.contains { $0.contains("must not be built") })
            let buildxWorks = (try? sh(["docker", "buildx", "version"], cwd: "/").status) == 0
            let notes = lines.filter { $0 == DockerEngine.classicBuilderNote }
            #expect(notes.count == (buildxWorks ? 0 : 1), "\(lines)")

            let inspect = try sh(
                ["docker", "image", "inspect", "--format", "{{.Id}} {{json .Config.Labels}} {{json .Config.Cmd}}"]
                    + references,
                cwd: "/"
            )
            #expect(inspect.status == 0, "\(inspect.stderr)")
            let rows = inspect.stdout.split(separator: "\n").map(String.init)
            #expect(rows.count == 2)
            for row in rows {
                #expect(row.hasPrefix(id + " "))
                #expect(row.contains("\"org.example.role\":\"runtime\""))
                #expect(row.contains("\"org.example.stage\":\"base\""))
                #expect(row.hasSuffix("[\"cat\",\"/greeting\"]"))
            }

            let run = try sh(
                ["docker", "run", "--rm", "--network", "none", references[0], "cat", "/greeting"],
                cwd: "/"
            )
            #expect(run.status == 0, "\(run.stderr)")
            #expect(run.stdout == "hi from slipway\n")
        }
    }

    @Test(.requiresDockerEngine)
    func dockerBuildsFromTheRewrittenDockerfile() async throws {
        let repository = uniqueTestRepository()
        defer { removeFromDocker(["\(repository):rewritten"]) }
        try await withTemporaryDirectory { directory in
            // The Dockerfile lives outside the default place; the rewritten copy outside the context.
            try FileManager.default.createDirectory(atPath: directory + "/docker", withIntermediateDirectories: true)
            let original = "FROM slipway/busybox\nCOPY message.txt /message.txt\n"
            try original.write(toFile: directory + "/docker/app.Dockerfile", atomically: true, encoding: .utf8)
            try "from the context\n".write(toFile: directory + "/message.txt", atomically: true, encoding: .utf8)
            let rewritten =
                original + "LABEL appended=yes\nENTRYPOINT [\"/bin/sh\",\"-c\"]\nCMD [\"cat /message.txt\"]\n"
            let request = BuildRequest(
                imageKey: "app",
                imageName: repository,
                tags: ["rewritten"],
                contextDirectory: directory,
                dockerfilePath: directory + "/docker/app.Dockerfile",
                dockerfileContents: rewritten,
                network: "none"
            )
            let built = try await DockerEngine().build(request) { _ in }
            #expect(built.id != nil)

            let inspect = try sh(
                [
                    "docker", "image", "inspect", "--format",
                    "{{json .Config.Entrypoint}} {{json .Config.Cmd}} {{index .Config.Labels \"appended\"}}",
                    "\(repository):rewritten",
                ],
                cwd: "/"
            )
            #expect(
                inspect.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
                    == "[\"/bin/sh\",\"-c\"] [\"cat /message.txt\"] yes"
            )
            let run = try sh(["docker", "run", "--rm", "--network", "none", "\(repository):rewritten"], cwd: "/")
            #expect(run.stdout == "from the context\n", "\(run.stderr)")
            let untouched = try String(contentsOfFile: directory + "/docker/app.Dockerfile", encoding: .utf8)
            #expect(untouched == original)
            #expect(
                try FileManager.default.contentsOfDirectory(atPath: directory).sorted() == ["docker", "message.txt"]
            )
        }
    }

    @Test(.requiresDockerEngine)
    func dockerBuildFailureCarriesTheLastLines() async throws {
        let repository = uniqueTestRepository()
        // `--force-rm`: the failed step's container must not be left behind (checked below by
        // the marker in its command; removed anyway should the check fail).
        let marker = "slipway-test-" + UUID().uuidString.lowercased()
        defer {
            removeFromDocker(["\(repository):broken"])
            removeContainers(runningCommandContaining: marker)
        }
        try await withTemporaryDirectory { directory in
            let dockerfile = """
                FROM slipway/busybox
                RUN echo \(marker) >/dev/null; i=0; while [ $i -lt 30 ]; do i=$((i+1)); echo line-$i; done; exit 3

                """
            try dockerfile.write(toFile: directory + "/Dockerfile", atomically: true, encoding: .utf8)
            let request = BuildRequest(
                imageKey: "broken",
                imageName: repository,
                tags: ["broken"],
                contextDirectory: directory,
                dockerfilePath: directory + "/Dockerfile",
                network: "none"
            )
            let log = EngineLogLines()
            let error = await #expect(throws: EngineError.self) {
                try await DockerEngine().build(request) { log.append($0) }
            }
            guard case .buildFailed(let engine, let image, let status, let lastLines)? = error else {
                Issue.record("expected .buildFailed, got \(String(describing: error))")
                return
            }
            #expect(engine == "docker" && image == "broken")
            #expect(status != 0)
            #expect(lastLines.count <= 20 && !lastLines.isEmpty)
            #expect(lastLines.contains("line-30"))
            #expect(!lastLines.contains("line-1"), "only the last lines are kept")
            #expect(lastLines.last?.contains("returned a non-zero code: 3") == true, "\(lastLines)")
            #expect(log.all.contains("line-1"), "every line was streamed")
            #expect(error?.description.contains("building broken failed") == true)
            #expect(try DockerAPI().imageExists("\(repository):broken") == nil)
            let left = try sh(["docker", "ps", "--all", "--no-trunc", "--format", "{{.Command}}"], cwd: "/").stdout
            #expect(!left.contains(marker), "the failed build left its container behind")
        }
    }

    @Test(.requiresDockerEngine)
    func dockerRetagsAnExistingImageThroughTheAPI() async throws {
        let repository = uniqueTestRepository()
        let references = ["\(repository):v1", "\(repository):v2", "\(repository)"]
        defer { removeFromDocker(references + ["\(repository):latest"]) }
        let engine = DockerEngine()
        let id = try #require(try await engine.imageID(baseImage))
        try await engine.tag(existing: id, as: references)
        for reference in references { #expect(try await engine.imageID(reference) == id) }
        #expect(try await engine.imageID("\(repository):latest") == id, "no tag means latest")

        let error = await #expect(throws: EngineError.self) {
            try await engine.tag(existing: id, as: ["\(repository)@sha256:0123"])
        }
        #expect(error.map { if case .invalidRequest = $0 { true } else { false } } == true)
    }

    @Test func dockerEngineReportsAMissingDaemon() async throws {
        try await withTemporaryDirectory { directory in
            let engine = DockerEngine(api: DockerAPI(socketPath: directory + "/none.sock"))
            #expect(await engine.isAvailable() == false)
            let request = BuildRequest(
                imageKey: "app",
                imageName: "app",
                tags: ["1"],
                contextDirectory: directory,
                dockerfilePath: directory + "/Dockerfile"
            )
            let error = await #expect(throws: EngineError.self) { try await engine.build(request) { _ in } }
            guard case .unreachable(let name, let detail)? = error else {
                Issue.record("expected .unreachable, got \(String(describing: error))")
                return
            }
            #expect(name == "docker")
            #expect(detail.contains("./install.sh --deps-only"))
            #expect(detail.contains("sudo dockerd --bridge=none --iptables=false"))
        }
    }
}

// MARK: - buildah

extension EngineIntegrationTests {
    @Test func buildahCommandLine() {
        let request = BuildRequest(
            imageKey: "app",
            imageName: "ghcr.io/acme/app",
            tags: ["v1", "v2"],
            contextDirectory: "/src",
            dockerfilePath: "/src/Dockerfile",
            buildArgs: [("A", "1")],
            target: "runtime",
            network: "none",
            extraArgs: ["--pull=never"]
        )
        #expect(
            BuildahEngine.arguments(for: request, dockerfile: "/src/Dockerfile") == [
                "build", "--layers", "--build-arg", "A=1", "--network", "none", "--tag", "ghcr.io/acme/app:v1",
                "--tag", "ghcr.io/acme/app:v2", "--file", "/src/Dockerfile", "--target", "runtime", "--pull=never",
                "/src",
            ]
        )
        #expect(
            BuildahEngine.arguments(for: request, dockerfile: "/d/Dockerfile", isolation: "chroot").prefix(4) == [
                "build", "--layers", "--isolation", "chroot",
            ]
        )
    }

    @Test(.requiresBuildah, .requiresDockerEngine)
    func buildahBuildsIntoItsOwnStore() async throws {
        let repository = uniqueTestRepository()
        let engine = BuildahEngine()
        defer {
            _ = try? sh(["buildah", "rmi", "-f", "\(repository):a", "\(repository):b", "\(repository):c"], cwd: "/")
        }
        try await withTemporaryDirectory { directory in
            try "payload\n".write(toFile: directory + "/payload.txt", atomically: true, encoding: .utf8)
            try "FROM scratch\nCOPY payload.txt /payload.txt\nLABEL built.by=slipway\n".write(
                toFile: directory + "/Dockerfile",
                atomically: true,
                encoding: .utf8
            )
            let request = BuildRequest(
                imageKey: "scratchy",
                imageName: repository,
                tags: ["a", "b"],
                contextDirectory: directory,
                dockerfilePath: directory + "/Dockerfile"
            )
            #expect(await engine.isAvailable())
            let log = EngineLogLines()
            let built = try await engine.build(request) { log.append($0) }
            let id = try #require(built.id)
            #expect(id.hasPrefix("sha256:") && id.count == 71)
            #expect(log.all.contains { $0.contains("COPY payload.txt /payload.txt") }, "\(log.all)")
            #expect(try await engine.imageID("\(repository):a") == id)
            #expect(try await engine.imageID("\(repository):b") == id)
            #expect(try await engine.imageID("\(repository):absent") == nil)
            #expect(try DockerAPI().imageExists("\(repository):a") == nil, "buildah's store is not docker's")

            try await engine.tag(existing: "\(repository):a", as: ["\(repository):c"])
            #expect(try await engine.imageID("\(repository):c") == id)
            let label = try sh(
                [
                    "buildah", "inspect", "--type", "image", "--format", "{{index .OCIv1.Config.Labels \"built.by\"}}",
                    "\(repository):c",
                ],
                cwd: "/"
            )
            #expect(label.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "slipway")
        }
    }

    /// `RUN` under buildah, from the offline base image in the Docker engine's store.
    @Test(.requiresBuildah, .requiresDockerEngine)
    func buildahRunsStepsFromTheDockerDaemonsBaseImage() async throws {
        let repository = uniqueTestRepository()
        let baseInBuildah = "docker.io/slipway/busybox:latest"
        let hadBase = (try? sh(["buildah", "inspect", "--type", "image", baseInBuildah], cwd: "/").status) == 0
        defer {
            _ = try? sh(["buildah", "rmi", "-f", "\(repository):run"], cwd: "/")
            if !hadBase { _ = try? sh(["buildah", "rmi", baseInBuildah], cwd: "/") }
        }
        try await withTemporaryDirectory { directory in
            try "FROM docker-daemon:slipway/busybox:latest\nARG WORD\nRUN echo \"$WORD\" > /word\n".write(
                toFile: directory + "/Dockerfile",
                atomically: true,
                encoding: .utf8
            )
            let request = BuildRequest(
                imageKey: "runner",
                imageName: repository,
                tags: ["run"],
                contextDirectory: directory,
                dockerfilePath: directory + "/Dockerfile",
                buildArgs: [("WORD", "buildah-ran-this")],
                network: "none"
            )
            let built = try await BuildahEngine().build(request) { _ in }
            #expect(built.id != nil)
            let container = try sh(["buildah", "from", "\(repository):run"], cwd: "/")
            try #require(container.status == 0, "\(container.stderr)")
            let name = container.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            defer { _ = try? sh(["buildah", "rm", name], cwd: "/") }
            let mount = try sh(["buildah", "mount", name], cwd: "/")
            let root = mount.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(try String(contentsOfFile: root + "/word", encoding: .utf8) == "buildah-ran-this\n")
            _ = try? sh(["buildah", "umount", name], cwd: "/")
        }
    }
}

// MARK: - Custom builder

extension EngineIntegrationTests {
    struct CustomCase: Sendable, CustomTestStringConvertible {
        var label: String
        var command: String
        var args: [String] = []
        var appendArgs: [String] = []
        var imageFlag: String? = nil
        var imageTagOnly = false
        var skipImageArg: Bool? = nil
        var tags = ["v1", "v2"]
        /// The expected argv; a script case lists only `["/bin/sh", "-c", <script without prelude>]`.
        var argv: [String]

        var testDescription: String { label }

        var custom: ImageConfig.Custom {
            ImageConfig.Custom(
                command: command,
                args: args,
                appendArgs: appendArgs,
                imageFlag: imageFlag,
                imageTagOnly: imageTagOnly,
                skipImageArg: skipImageArg,
                onChange: []
            )
        }
    }

    static let customCases: [CustomCase] = [
        CustomCase(
            label: "no args: a script with runtime variables replaced",
            command: "docker build -t ${runtime.images.app.image}:${runtime.images.app.tag} . -f custom/Dockerfile",
            argv: ["/bin/sh", "-c", "docker build -t ghcr.io/acme/app:v1 . -f custom/Dockerfile"]
        ),
        CustomCase(
            label: "${runtime.images.NAME} is image:tag, other images resolve too",
            command: "echo ${runtime.images.app} ${runtime.images.db} ${runtime.images.db.tag}",
            argv: ["/bin/sh", "-c", "echo ghcr.io/acme/app:v1 ghcr.io/acme/db:5 5"]
        ),
        CustomCase(
            label: "args: exec'd directly, no image argument by default",
            command: "docker",
            args: ["build", "."],
            imageFlag: "-t",
            argv: ["docker", "build", "."]
        ),
        CustomCase(
            label: "skipImageArg false: image:tag per tag after args",
            command: "docker",
            args: ["build"],
            skipImageArg: false,
            argv: ["docker", "build", "ghcr.io/acme/app:v1", "ghcr.io/acme/app:v2"]
        ),
        CustomCase(
            label: "skipImageArg false with imageFlag, then appendArgs",
            command: "docker",
            args: ["build"],
            appendArgs: ["."],
            imageFlag: "-t",
            skipImageArg: false,
            argv: ["docker", "build", "-t", "ghcr.io/acme/app:v1", "-t", "ghcr.io/acme/app:v2", "."]
        ),
        CustomCase(
            label: "imageTagOnly passes the tag alone",
            command: "make",
            args: ["image"],
            imageFlag: "--tag",
            imageTagOnly: true,
            skipImageArg: false,
            argv: ["make", "image", "--tag", "v1", "--tag", "v2"]
        ),
        CustomCase(
            label: "skipImageArg true: no image arguments even with a flag",
            command: "make",
            args: ["image"],
            imageFlag: "--tag",
            skipImageArg: true,
            argv: ["make", "image"]
        ),
        CustomCase(
            label: "only image arguments: exec mode although args is empty",
            command: "builder",
            skipImageArg: false,
            argv: ["builder", "ghcr.io/acme/app:v1", "ghcr.io/acme/app:v2"]
        ),
        CustomCase(
            label: "runtime variables in args and appendArgs",
            command: "kaniko-local",
            args: ["--destination=${runtime.images.app}", "--tag=${runtime.images.app.tag}"],
            appendArgs: ["--cache-from=${runtime.images.db.image}"],
            argv: ["kaniko-local", "--destination=ghcr.io/acme/app:v1", "--tag=v1", "--cache-from=ghcr.io/acme/db"]
        ),
        CustomCase(
            label: "a relative command path runs from the config directory",
            command: "./scripts/build.sh",
            args: ["--push"],
            argv: ["/project/scripts/build.sh", "--push"]
        ),
        CustomCase(
            label: "no tags: latest",
            command: "echo ${runtime.images.app.tag}",
            tags: [],
            argv: ["/bin/sh", "-c", "echo latest"]
        ),
        CustomCase(
            label: "appendArgs only",
            command: "build",
            appendArgs: ["--quiet"],
            argv: ["build", "--quiet"]
        ),
    ]

    @Test(arguments: customCases)
    func customBuilderArguments(_ testCase: CustomCase) throws {
        let invocation = try CustomEngine.invocation(
            testCase.custom,
            imageKey: "app",
            imageName: "ghcr.io/acme/app",
            tags: testCase.tags,
            configDirectory: "/project",
            otherImages: ["db": .init(image: "ghcr.io/acme/db", tag: "5")]
        )
        if testCase.argv.first == "/bin/sh" {
            #expect(invocation.script == testCase.argv[2])
            #expect(invocation.argv == ["/bin/sh", "-c", Shell.prelude + testCase.argv[2]])
        } else {
            #expect(invocation.script == nil)
            #expect(invocation.argv == testCase.argv)
        }
        #expect(invocation.workingDirectory == "/project")
        #expect(invocation.environment["SLIPWAY_IMAGE"] == "ghcr.io/acme/app")
        #expect(invocation.environment["SLIPWAY_TAG"] == (testCase.tags.first ?? "latest"))
        #expect(
            invocation.environment["SLIPWAY_TAGS"]
                == (testCase.tags.isEmpty ? "latest" : testCase.tags.joined(separator: " "))
        )
    }

    @Test func customBuilderRefusesWhatItCannotResolveOrSafelySplice() throws {
        func invocation(
            _ command: String,
            args: [String] = [],
            tags: [String] = ["v1"]
        ) throws(EngineError)
            -> CustomEngine.Invocation
        {
            try CustomEngine.invocation(
                ImageConfig.Custom(
                    command: command,
                    args: args,
                    appendArgs: [],
                    imageFlag: nil,
                    imageTagOnly: false,
                    skipImageArg: nil,
                    onChange: []
                ),
                imageKey: "app",
                imageName: "acme/app",
                tags: tags,
                configDirectory: "/p"
            )
        }
        for command in [
            "echo ${runtime.images.nope.tag}", "echo ${runtime.dependencies.lib.images.app}",
            "echo ${runtime.images.app.digest}", "echo ${runtime.images.app.tag",
        ] {
            #expect(throws: EngineError.self, "\(command)") { try invocation(command) }
        }
        // A hostile tag never reaches the shell as syntax…
        let error = #expect(throws: EngineError.self) {
            try invocation("echo ${runtime.images.app.tag}", tags: ["x;rm -rf /"])
        }
        #expect(error?.description.contains("not a valid image name or tag") == true)
        // …but as one argv element it is harmless, as in DevSpace.
        #expect(try invocation("echo", args: ["${runtime.images.app.tag}"], tags: ["x;y"]).argv == ["echo", "x;y"])
        #expect(throws: EngineError.self) { try invocation("") }
    }

    /// DevSpace's own example (`examples/custom-builder`): the script builds with docker using
    /// the runtime variables.
    @Test(.requiresDockerEngine)
    func customScriptBuildsWithDocker() async throws {
        let repository = uniqueTestRepository()
        defer { removeFromDocker(["\(repository):custom1", "\(repository):custom2"]) }
        try await withTemporaryDirectory { directory in
            try FileManager.default.createDirectory(atPath: directory + "/custom", withIntermediateDirectories: true)
            try "FROM slipway/busybox\nLABEL made.by=custom\n".write(
                toFile: directory + "/custom/Dockerfile",
                atomically: true,
                encoding: .utf8
            )
            let custom = ImageConfig.Custom(
                command: """
                    docker build -t ${runtime.images.my-image.image}:${runtime.images.my-image.tag} . \\
                        -f custom/Dockerfile &&
                    docker tag "$SLIPWAY_IMAGE:$SLIPWAY_TAG" "$SLIPWAY_IMAGE:custom2" &&
                    echo "tags=$SLIPWAY_TAGS from $(pwd) $MY_VAR"
                    """,
                args: [],
                appendArgs: [],
                imageFlag: nil,
                imageTagOnly: false,
                skipImageArg: nil,
                onChange: []
            )
            let engine = CustomEngine(custom: custom, configDirectory: directory, environment: ["MY_VAR": "var-value"])
            let request = BuildRequest(
                imageKey: "my-image",
                imageName: repository,
                tags: ["custom1"],
                contextDirectory: directory,
                dockerfilePath: directory + "/custom/Dockerfile"
            )
            let log = EngineLogLines()
            let built = try await engine.build(request) { log.append($0) }
            #expect(built == BuiltImage(references: ["\(repository):custom1"], id: nil))
            #expect(log.all.contains("tags=custom1 from \(directory) var-value"), "\(log.all)")
            let id = try DockerAPI().imageExists("\(repository):custom1")
            #expect(id != nil)
            #expect(try DockerAPI().imageExists("\(repository):custom2") == id)
            #expect(try await engine.imageID("\(repository):custom1") == nil, "custom builds are not looked up")
        }
    }

    @Test func customCommandRunsDirectlyWithArgumentsAndReportsFailure() async throws {
        try await withTemporaryDirectory { directory in
            let echo = CustomEngine(
                custom: ImageConfig.Custom(
                    command: "echo",
                    args: ["built"],
                    appendArgs: ["done"],
                    imageFlag: "--image",
                    imageTagOnly: false,
                    skipImageArg: false,
                    onChange: []
                ),
                configDirectory: directory
            )
            let request = BuildRequest(
                imageKey: "app",
                imageName: "acme/app",
                tags: ["t1"],
                contextDirectory: directory,
                dockerfilePath: directory + "/Dockerfile"
            )
            let log = EngineLogLines()
            _ = try await echo.build(request) { log.append($0) }
            #expect(log.all == ["built --image acme/app:t1 done"])

            let failing = CustomEngine(
                custom: ImageConfig.Custom(
                    command: "echo before; echo \"$SLIPWAY_IMAGE_KEY\" >&2; exit 4",
                    args: [],
                    appendArgs: [],
                    imageFlag: nil,
                    imageTagOnly: false,
                    skipImageArg: nil,
                    onChange: []
                ),
                configDirectory: directory
            )
            let error = await #expect(throws: EngineError.self) { try await failing.build(request) { _ in } }
            #expect(error == .buildFailed(engine: "custom", image: "app", status: 4, lastLines: ["before", "app"]))

            let missing = CustomEngine(
                custom: ImageConfig.Custom(
                    command: "slipway-no-such-builder",
                    args: ["x"],
                    appendArgs: [],
                    imageFlag: nil,
                    imageTagOnly: false,
                    skipImageArg: nil,
                    onChange: []
                ),
                configDirectory: directory
            )
            let missingError = await #expect(throws: EngineError.self) { try await missing.build(request) { _ in } }
            #expect(missingError == .toolMissing(engine: "custom", tool: "slipway-no-such-builder"))
            await #expect(throws: EngineError.self) { try await echo.tag(existing: "a", as: ["b"]) }
        }
    }
}

// MARK: - Kaniko and BuildKit rendering

extension EngineIntegrationTests {
    static let renderRequest = BuildRequest(
        imageKey: "app",
        imageName: "ghcr.io/acme/app",
        tags: ["v1", "latest"],
        contextDirectory: "/src/app",
        dockerfilePath: "/src/app/docker/app.Dockerfile",
        buildArgs: [("VERSION", "1.2.3"), ("MODE", "prod")],
        target: "runtime",
        network: "host"
    )

    static let kanikoOptions = """
        cache: true
        snapshotMode: redo
        image: registry.local/kaniko:v1
        initImage: busybox:1.36
        args: ["--verbosity=debug"]
        command: ["/kaniko/executor"]
        namespace: builds
        insecure: true
        pullSecret: my-pull-secret
        nodeSelector: {pool: builders, disk: ssd}
        tolerations:
        - key: dedicated
          operator: Equal
          value: builds
          effect: NoSchedule
        serviceAccount: kaniko-sa
        generateName: build-app-
        annotations: {team: platform}
        labels: {app: demo}
        initEnv: {INIT_MODE: fast}
        env: {RETRIES: "3", DOCKER_CONFIG: /kaniko/.docker}
        envFrom:
          TOKEN:
            secretKeyRef: {name: build-token, key: token}
        additionalMounts:
        - mountPath: /certs
          readOnly: true
          secret:
            name: ca-certs
            defaultMode: 420
            items:
            - key: ca.crt
              path: ca.crt
              mode: 256
        - mountPath: /config/settings.json
          subPath: settings.json
          configMap:
            name: build-settings
        - mountPath: /neither-secret-nor-config-map
        resources:
          requests: {memory: 1Gi, cpu: 500m}
          limits: {cpu: "2", memory: 4Gi}
        """

    static let expectedKanikoPod = """
        apiVersion: v1
        kind: Pod
        metadata:
          generateName: build-app-
          namespace: builds
          labels:
            app: demo
            devspace-build: "true"
            devspace-build-id: abcdefghijkl
            devspace-pid: run-1234
          annotations:
            team: platform
        spec:
          volumes:
          - name: context
            emptyDir: {}
          - name: my-pull-secret
            secret:
              secretName: my-pull-secret
              items:
              - key: .dockerconfigjson
                path: config.json
          - name: additional-volume-0
            secret:
              secretName: ca-certs
              items:
              - key: ca.crt
                path: ca.crt
                mode: 256
              defaultMode: 420
          - name: additional-volume-1
            configMap:
              name: build-settings
          initContainers:
          - name: context
            image: busybox:1.36
            command: [sh]
            args: ["-c", "while [ ! -f /tmp/done ]; do sleep 2; done"]
            env:
            - name: INIT_MODE
              value: fast
            resources:
              limits: {cpu: "2", memory: 4Gi}
              requests: {cpu: 500m, memory: 1Gi}
            volumeMounts:
            - name: context
              mountPath: /context
            imagePullPolicy: IfNotPresent
          containers:
          - name: kaniko
            image: registry.local/kaniko:v1
            command: [/kaniko/executor]
            args:
            - --dockerfile=/context/app.Dockerfile
            - --context=dir:///context
            - --destination=ghcr.io/acme/app:v1
            - --destination=ghcr.io/acme/app:latest
            - --target=runtime
            - --snapshotMode=redo
            - --insecure
            - --skip-tls-verify
            - --build-arg
            - VERSION=1.2.3
            - --build-arg
            - MODE=prod
            - --cache=true
            - --cache-repo=ghcr.io/acme/app
            - --verbosity=debug
            env:
            - name: DOCKER_CONFIG
              value: /kaniko/.docker
            - name: RETRIES
              value: "3"
            - name: TOKEN
              valueFrom:
                secretKeyRef: {name: build-token, key: token}
            resources:
              limits: {cpu: "2", memory: 4Gi}
              requests: {cpu: 500m, memory: 1Gi}
            volumeMounts:
            - name: context
              mountPath: /context
            - name: my-pull-secret
              mountPath: /kaniko/.docker
            - name: additional-volume-0
              readOnly: true
              mountPath: /certs
            - name: additional-volume-1
              mountPath: /config/settings.json
              subPath: settings.json
            imagePullPolicy: IfNotPresent
          restartPolicy: Never
          nodeSelector:
            disk: ssd
            pool: builders
          serviceAccountName: kaniko-sa
          tolerations:
          - key: dedicated
            operator: Equal
            value: builds
            effect: NoSchedule
        """

    @Test func kanikoPodMatchesDevSpacesForMostOptions() throws {
        let options = try #require(try YAMLParser().parse(Self.kanikoOptions))
        let pod = KanikoRenderer.pod(
            for: Self.renderRequest,
            options: options,
            buildID: "abcdefghijkl",
            runID: "run-1234"
        )
        let expected = try #require(try YAMLParser().parse(Self.expectedKanikoPod))
        #expect(ComparableYAML(pod) == ComparableYAML(expected))
        // What a user sees (`--render`) reads back as the same manifest, types included.
        let emitted = try YAMLEmitter().emit(pod)
        let reparsed = try #require(try YAMLParser().parse(emitted))
        #expect(ComparableYAML(reparsed) == ComparableYAML(expected), "\(emitted)")
    }

    @Test func kanikoPodDefaults() throws {
        var request = Self.renderRequest
        request.target = nil
        request.buildArgs = []
        request.dockerfileContents = "FROM scratch\n"
        let pod = KanikoRenderer.pod(for: request, options: nil, buildID: "b", runID: "r", namespace: "dev")
        let expected = try #require(
            try YAMLParser().parse(
                """
                apiVersion: v1
                kind: Pod
                metadata:
                  generateName: devspace-build-kaniko-
                  namespace: dev
                  labels: {devspace-build: "true", devspace-build-id: b, devspace-pid: r}
                spec:
                  volumes:
                  - {name: context, emptyDir: {}}
                  - name: devspace-pull-secrets
                    secret:
                      secretName: devspace-pull-secrets
                      items: [{key: .dockerconfigjson, path: config.json}]
                  initContainers:
                  - name: context
                    image: alpine
                    command: [sh]
                    args: ["-c", "while [ ! -f /tmp/done ]; do sleep 2; done"]
                    volumeMounts: [{name: context, mountPath: /context}]
                    imagePullPolicy: IfNotPresent
                  containers:
                  - name: kaniko
                    image: gcr.io/kaniko-project/executor:v1.20.1
                    args: ["--dockerfile=/context/Dockerfile", "--context=dir:///context",
                           "--destination=ghcr.io/acme/app:v1", "--destination=ghcr.io/acme/app:latest",
                           "--snapshotMode=time"]
                    volumeMounts:
                    - {name: context, mountPath: /context}
                    - {name: devspace-pull-secrets, mountPath: /kaniko/.docker}
                    imagePullPolicy: IfNotPresent
                  restartPolicy: Never
                """
            )
        )
        #expect(ComparableYAML(pod) == ComparableYAML(expected))

        let skipSecret = try #require(try YAMLParser().parse("skipPullSecretMount: true"))
        let bare = KanikoRenderer.pod(for: request, options: skipSecret, buildID: "b", runID: "r")
        #expect(bare["spec"]?["volumes"]?.items?.count == 1)
        #expect(bare["metadata"]?["namespace"] == nil)
    }

    @Test(arguments: [
        ("app", "docker.io/library/app"), ("acme/app", "docker.io/acme/app"),
        ("ghcr.io/acme/app", "ghcr.io/acme/app"), ("localhost:5000/app", "localhost:5000/app"),
        ("localhost/app", "localhost/app"), ("index.docker.io/acme/app", "docker.io/acme/app"),
        ("docker.io/app", "docker.io/library/app"), ("app:v1", "docker.io/library/app"),
    ])
    func kanikoCacheRepositoryIsNormalised(_ image: String, _ expected: String) {
        #expect(KanikoRenderer.normalizedRepository(image) == expected)
    }

    @Test func buildKitCommandLines() throws {
        let request = Self.renderRequest
        let local = BuildKitRenderer.Options(try YAMLParser().parse("args: [--platform, linux/amd64]"))
        #expect(
            BuildKitRenderer.buildCommand(for: request, options: local, skipPush: false) == [
                "docker", "buildx", "build", "--build-arg", "VERSION=1.2.3", "--build-arg", "MODE=prod", "--network",
                "host",
                "--tag", "ghcr.io/acme/app:v1", "--tag", "ghcr.io/acme/app:latest", "--push",
                "--file", "/src/app/docker/app.Dockerfile", "--target", "runtime", "--platform", "linux/amd64",
                "/src/app",
            ]
        )
        // skip-push on a local builder: neither --push nor --load (buildx's docker driver loads).
        #expect(
            !BuildKitRenderer.buildCommand(for: request, options: local, skipPush: true).contains {
                $0 == "--push" || $0 == "--load"
            }
        )
        #expect(BuildKitRenderer.createBuilderCommand(local) == nil)

        let cluster = BuildKitRenderer.Options(
            try YAMLParser().parse(
                """
                command: [/usr/local/bin/docker, buildx]
                args: [--progress=plain]
                inCluster:
                  name: builder-x
                  namespace: ci
                  rootless: true
                  image: moby/buildkit:v0.12.0-rootless
                  nodeSelector: pool=builders
                  createArgs: [--append]
                """
            )
        )
        #expect(
            BuildKitRenderer.buildCommand(
                for: request,
                options: cluster,
                skipPush: true,
                dockerfile: "/tmp/rw/Dockerfile"
            ) == [
                "/usr/local/bin/docker", "buildx", "build", "--build-arg", "VERSION=1.2.3", "--build-arg",
                "MODE=prod",
                "--network", "host", "--tag", "ghcr.io/acme/app:v1", "--tag", "ghcr.io/acme/app:latest", "--load",
                "--file", "/tmp/rw/Dockerfile", "--target", "runtime", "--builder", "builder-x", "--progress=plain",
                "/src/app",
            ]
        )
        #expect(
            BuildKitRenderer.createBuilderCommand(cluster) == [
                "/usr/local/bin/docker", "buildx", "create", "--driver", "kubernetes", "--driver-opt", "namespace=ci",
                "--name", "builder-x", "--driver-opt", "rootless=true", "--driver-opt",
                "image=moby/buildkit:v0.12.0-rootless", "--driver-opt", "nodeselector=pool=builders", "--append",
            ]
        )

        let defaults = BuildKitRenderer.Options(try YAMLParser().parse("inCluster: {noLoad: true}"))
        let command = BuildKitRenderer.buildCommand(
            for: request,
            options: defaults,
            skipPush: true,
            currentNamespace: "dev"
        )
        #expect(!command.contains("--load"), "noLoad")
        #expect(command.suffix(3) == ["--builder", "devspace-dev", "/src/app"])
        #expect(
            BuildKitRenderer.createBuilderCommand(defaults, currentNamespace: "dev") == [
                "docker", "buildx", "create", "--driver", "kubernetes", "--driver-opt", "namespace=dev", "--name",
                "devspace-dev",
            ]
        )
        let noCreate = BuildKitRenderer.Options(try YAMLParser().parse("inCluster: {noCreate: true}"))
        #expect(BuildKitRenderer.createBuilderCommand(noCreate) == nil)
    }

    @Test func clusterEnginesRenderButDoNotRunHere() async throws {
        let kaniko = KanikoEngine(options: nil)
        #expect(await kaniko.isAvailable() == false)
        let error = await #expect(throws: EngineError.self) { try await kaniko.build(Self.renderRequest) { _ in } }
        #expect(error == .inClusterBuild(engine: "kaniko", image: "app"))
        #expect(error?.description.contains("builds inside a Kubernetes cluster") == true)
        #expect(error?.description.contains("which slipway does not do yet (with a cluster or without") == true)
        #expect(error?.description.contains("none configured") == false)

        let inCluster = BuildKitEngine(options: try YAMLParser().parse("inCluster: {}"), skipPush: true)
        #expect(await inCluster.isAvailable() == false)
        let clusterError = await #expect(throws: EngineError.self) {
            try await inCluster.build(Self.renderRequest) { _ in }
        }
        #expect(clusterError == .inClusterBuild(engine: "buildkit", image: "app"))

        // A local BuildKit build needs `docker buildx`, which this machine may lack.
        if (try? sh(["docker", "buildx", "version"], cwd: "/").status) != 0 {
            let local = BuildKitEngine(options: nil, skipPush: true)
            #expect(await local.isAvailable() == false)
            let localError = await #expect(throws: EngineError.self) {
                try await local.build(Self.renderRequest) { _ in }
            }
            #expect(localError == .toolMissing(engine: "buildkit", tool: "docker buildx"))
        }
    }

    @Test func buildRequestFromImageConfig() throws {
        let node = try #require(
            try YAMLParser().parse(
                """
                image: ghcr.io/acme/app
                dockerfile: ./docker/../docker/app.Dockerfile
                context: ../src
                buildArgs: {A: "1", B: null, C: two}
                target: runtime
                network: host
                docker: {args: [--no-cache]}
                """
            )
        )
        let image = ImageConfig(key: "app", node: node)
        let request = BuildRequest(image: image, tags: ["v1"], configDirectory: "/work/project")
        #expect(
            request
                == BuildRequest(
                    imageKey: "app",
                    imageName: "ghcr.io/acme/app",
                    tags: ["v1"],
                    contextDirectory: "/work/src",
                    dockerfilePath: "/work/project/docker/app.Dockerfile",
                    buildArgs: [("A", "1"), ("C", "two")],
                    target: "runtime",
                    network: "host",
                    extraArgs: ["--no-cache"]
                )
        )
        #expect(request.references == ["ghcr.io/acme/app:v1"])
    }
}

/// A YAML tree without positions or quoting styles, with each scalar's resolved type: what a
/// consumer (kubectl) sees.
enum ComparableYAML: Equatable, CustomStringConvertible {
    case scalar(String, ScalarResolver.Kind)
    case sequence([ComparableYAML])
    case mapping([String: ComparableYAML], order: [String])

    init(_ node: Node) {
        switch node.kind {
        case .scalar(let value, _):
            self = .scalar(value, node.resolved ?? .string)
        case .sequence(let items):
            self = .sequence(items.map(ComparableYAML.init))
        case .mapping(let pairs):
            var values: [String: ComparableYAML] = [:]
            for pair in pairs { values[pair.key.scalar ?? ""] = ComparableYAML(pair.value) }
            self = .mapping(values, order: pairs.map { $0.key.scalar ?? "" })
        }
    }

    var description: String {
        switch self {
        case .scalar(let value, let kind): return kind == .string ? "\"\(value)\"" : value
        case .sequence(let items): return "[" + items.map(\.description).joined(separator: ", ") + "]"
        case .mapping(let values, let order):
            return "{" + order.map { "\($0): \(values[$0]!.description)" }.joined(separator: ", ") + "}"
        }
    }
}
