import Foundation
import SlipwayCore
import SlipwayTestSupport
import Testing

/// `slipway build` pushing to real registries (`docker-registry serve` on 127.0.0.1, a free
/// port) through the real Docker engine, and pulling the pushed tags back with `docker pull`.
/// Each test gets its own `DOCKER_CONFIG` and an empty `KUBECONFIG`, so the machine's own
/// credentials and clusters play no part.
@Suite(.serialized, .requiresDockerEngine, .requiresRegistry, .timeLimit(.minutes(10)))
struct PushIntegrationTests {
    /// A project whose images live in `registry`, built from the offline base image.
    struct Project {
        let dir: String
        let repository: String
        let dockerConfig: String
        var env: [String: String]

        init(dir: String, registry: String, tags: [String] = ["one", "two"], extraImageLines: String = "") throws {
            self.dir = dir
            repository = "\(registry)/slipway-test/\(UUID().uuidString.lowercased().prefix(12))"
            dockerConfig = dir + "/docker-config"
            try FileManager.default.createDirectory(atPath: dockerConfig, withIntermediateDirectories: true)
            env = ["DOCKER_CONFIG": dockerConfig, "KUBECONFIG": dir + "/no-kubeconfig"]
            try """
            version: v2beta1
            name: push-test
            images:
              app:
                image: \(repository)
                tags: [\(tags.joined(separator: ", "))]
            \(extraImageLines)
            """.write(toFile: dir + "/devspace.yaml", atomically: true, encoding: .utf8)
            try "FROM slipway/busybox\nRUN echo \(UUID().uuidString) > /id\n".write(
                toFile: dir + "/Dockerfile",
                atomically: true,
                encoding: .utf8
            )
            try "docker-config\n.devspace\n".write(toFile: dir + "/.dockerignore", atomically: true, encoding: .utf8)
        }

        func build(_ args: [String] = [], env extra: [String: String] = [:]) throws -> SlipwayBinary.Result {
            try SlipwayBinary.run(
                ["build", "--json"] + args,
                in: dir,
                env: env.merging(extra) { $1 },
                timeout: 120
            )
        }

        /// `auths` with user and password for `host`.
        func writeAuths(host: String, user: String, password: String) throws {
            let auth = Data("\(user):\(password)".utf8).base64EncodedString()
            try #"{"auths": {"\#(host)": {"auth": "\#(auth)"}}}"#.write(
                toFile: dockerConfig + "/config.json",
                atomically: true,
                encoding: .utf8
            )
        }

        /// The deliveries slipway's build record holds for the image `app`.
        func pushed() -> [String: String] {
            (try? BuildCache(configPath: dir + "/devspace.yaml").read())?["app"]?.pushed ?? [:]
        }

        func cleanUp() {
            let images =
                (try? sh(["docker", "images", "--format", "{{.Repository}}:{{.Tag}}"], cwd: "/"))?.stdout ?? ""
            let ours = images.split(separator: "\n").map(String.init).filter { $0.hasPrefix(repository + ":") }
            if !ours.isEmpty { _ = try? sh(["docker", "rmi", "-f", "--no-prune"] + ours, cwd: "/") }
        }
    }

    struct Summary {
        var result: String
        var pushed: [String]
        var loaded: [String] = []
        var pushError: String?
        var imageID: String?
    }

    static func summary(_ r: SlipwayBinary.Result) throws -> Summary {
        let json = try #require(
            try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any],
            "stdout: \(r.stdout)\n\(r.stderr)"
        )
        let app = try #require((json["images"] as? [[String: Any]])?.first { $0["image"] as? String == "app" })
        return Summary(
            result: app["result"] as? String ?? "",
            pushed: app["pushed"] as? [String] ?? [],
            loaded: app["loaded"] as? [String] ?? [],
            pushError: app["pushError"] as? String,
            imageID: app["imageID"] as? String
        )
    }

    /// Removes the local tag and pulls it back from the registry: the pulled image must be the
    /// one built.
    static func pullBack(
        _ reference: String,
        expecting id: String,
        dockerConfig: String,
        path: String? = nil
    ) throws {
        var env = ["DOCKER_CONFIG": dockerConfig]
        if let path { env["PATH"] = path }
        #expect(try sh(["docker", "rmi", reference], cwd: "/").status == 0)
        let pulled = try sh(["docker", "pull", reference], cwd: "/", env: env)
        #expect(pulled.status == 0, "docker pull \(reference): \(pulled.stderr)")
        let inspected = try sh(["docker", "image", "inspect", "--format", "{{.Id}}", reference], cwd: "/")
        #expect(inspected.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == id)
    }

    @Test("every tag is pushed, pulled back intact, and not pushed again")
    func pushesEveryTag() throws {
        let registry = try TestRegistry()
        defer { registry.stop() }
        try withTemporaryDirectory { dir in
            let p = try Project(dir: dir, registry: registry.host)
            defer { p.cleanUp() }
            let first = try p.build()
            #expect(first.status == 0, "\(first.stderr)")
            let s = try Self.summary(first)
            #expect(s.result == "built")
            #expect(s.pushed == ["\(p.repository):one", "\(p.repository):two"])
            let id = try #require(s.imageID)
            #expect(first.stderr.contains("push:app pushed \(p.repository):one to \(registry.host) (sha256:"))
            #expect(p.pushed()["\(p.repository):two"] == id)
            for tag in ["one", "two"] {
                try Self.pullBack("\(p.repository):\(tag)", expecting: id, dockerConfig: p.dockerConfig)
            }

            // Nothing changed, everything pushed: no push at all.
            let second = try p.build()
            #expect(second.status == 0)
            #expect(try Self.summary(second).pushed.isEmpty)
            #expect(!second.stderr.contains("pushing"))

            // --skip-push with a new tag re-tags only; the next run pushes just that tag.
            let skipped = try p.build(["--skip-push", "-t", "three"])
            #expect(skipped.status == 0)
            #expect(try Self.summary(skipped).result == "retagged")
            #expect(try Self.summary(skipped).pushed.isEmpty)
            let pushed = try p.build(["-t", "three"])
            #expect(try Self.summary(pushed).pushed == ["\(p.repository):three"])
            try Self.pullBack("\(p.repository):three", expecting: id, dockerConfig: p.dockerConfig)
        }
    }

    @Test("skipPush in the config pushes nothing")
    func skipPushInConfig() throws {
        let registry = try TestRegistry()
        defer { registry.stop() }
        try withTemporaryDirectory { dir in
            let p = try Project(dir: dir, registry: registry.host, extraImageLines: "    skipPush: true")
            defer { p.cleanUp() }
            let r = try p.build()
            #expect(r.status == 0, "\(r.stderr)")
            #expect(try Self.summary(r).pushed.isEmpty)
            #expect(try sh(["docker", "pull", "\(p.repository):one"], cwd: "/").status != 0)
        }
    }

    @Test("an htpasswd registry takes credentials from config.json or a helper, and refuses a push without")
    func authenticatedRegistry() throws {
        let registry = try TestRegistry(authenticated: true)
        defer { registry.stop() }
        try withTemporaryDirectory { dir in
            let p = try Project(dir: dir, registry: registry.host)
            defer { p.cleanUp() }

            // No credentials: a clear error naming the registry and `docker login`, exit 1,
            // the build recorded, the push not.
            let none = try p.build()
            #expect(none.status == 1)
            let s = try Self.summary(none)
            #expect(s.result == "built")
            let error = try #require(s.pushError)
            #expect(error.contains("\(registry.host) wants credentials"))
            #expect(error.contains("docker login \(registry.host)"))
            #expect(none.stderr.contains("push:app failed:"))
            #expect(p.pushed().isEmpty)

            // A wrong password: refused, not retried, the password never printed.
            try p.writeAuths(host: registry.host, user: TestRegistry.user, password: "wrong-password-xyz")
            let started = Date()
            let wrong = try p.build()
            #expect(wrong.status == 1)
            #expect(Date().timeIntervalSince(started) < 10)
            let refused = try #require(try Self.summary(wrong).pushError)
            #expect(refused.contains("\(registry.host) refused the credentials of user \(TestRegistry.user)"))
            #expect(refused.contains("\(p.dockerConfig)/config.json"))
            #expect(!wrong.stderr.contains("attempt 2"))
            #expect(!(wrong.stdout + wrong.stderr).contains("wrong-password-xyz"))
            #expect(p.pushed().isEmpty)

            // The right password in config.json's auths.
            try p.writeAuths(host: registry.host, user: TestRegistry.user, password: TestRegistry.password)
            let withAuths = try p.build()
            #expect(withAuths.status == 0, "\(withAuths.stderr)")
            #expect(try Self.summary(withAuths).pushed == ["\(p.repository):one", "\(p.repository):two"])
            #expect(!(withAuths.stdout + withAuths.stderr).contains(TestRegistry.password))
            let id = try #require(try Self.summary(withAuths).imageID)
            try Self.pullBack("\(p.repository):one", expecting: id, dockerConfig: p.dockerConfig)

            // A credential helper named in credHelpers, asked with `get` on stdin.
            let bin = dir + "/bin"
            try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
            let helper = bin + "/docker-credential-slipwaytest"
            try writeExecutable(
                """
                #!/bin/sh
                [ "$1" = get ] || exit 1
                read -r server
                echo "$server" >> "\(dir)/helper-asked"
                printf '{"ServerURL":"%s","Username":"\(TestRegistry.user)","Secret":"\(TestRegistry.password)"}' "$server"
                """,
                to: helper
            )
            try #"{"credHelpers": {"\#(registry.host)": "slipwaytest"}}"#.write(
                toFile: p.dockerConfig + "/config.json",
                atomically: true,
                encoding: .utf8
            )
            let path = bin + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")
            let withHelper = try p.build(["-t", "helper"], env: ["PATH": path])
            #expect(withHelper.status == 0, "\(withHelper.stderr)")
            #expect(try Self.summary(withHelper).pushed == ["\(p.repository):helper"])
            // slipway asks once per run; `docker build` asks the helpers of config.json too.
            let asked = (try? String(contentsOfFile: dir + "/helper-asked", encoding: .utf8)) ?? ""
            #expect(!asked.isEmpty && asked.split(separator: "\n").allSatisfy { $0 == registry.host }, "\(asked)")
            #expect(!(withHelper.stdout + withHelper.stderr).contains(TestRegistry.password))
            try Self.pullBack("\(p.repository):helper", expecting: id, dockerConfig: p.dockerConfig, path: path)
        }
    }

    @Test("a registry that is down, or that never answers, ends within its documented time")
    func unreachableRegistries() throws {
        // Down: nothing listens on the port. Three attempts, 1 s and 2 s apart: about 3 s.
        try withTemporaryDirectory { dir in
            let p = try Project(dir: dir, registry: "127.0.0.1:\(try freePort())")
            defer { p.cleanUp() }
            let started = Date()
            let down = try p.build()
            let seconds = Date().timeIntervalSince(started)
            #expect(down.status == 1)
            #expect(seconds < 15, "took \(seconds) s")
            let error = try #require(try Self.summary(down).pushError)
            #expect(error.contains("failed after 3 attempts (1 s, 2 s apart)"))
            #expect(error.contains("connection refused"))
            #expect(down.stderr.contains("push attempt 2 of 3 failed"))
            #expect(p.pushed().isEmpty)
            #expect(try Self.summary(down).result == "built")
        }
        // Silent: the connection is accepted and nothing ever comes back. With --push-timeout 2,
        // three stopped attempts and the pauses: about 2 + 1 + 2 + 2 + 2 = 9 s.
        let silent = try SilentServer()
        defer { silent.stop() }
        try withTemporaryDirectory { dir in
            let p = try Project(dir: dir, registry: "127.0.0.1:\(silent.port)")
            defer { p.cleanUp() }
            let started = Date()
            let hung = try p.build(["--push-timeout", "2"])
            let seconds = Date().timeIntervalSince(started)
            #expect(hung.status == 1)
            #expect(seconds >= 8 && seconds < 25, "took \(seconds) s")
            let error = try #require(try Self.summary(hung).pushError)
            #expect(error.contains("no progress for 2 s, so it was stopped"))
            #expect(error.contains("--push-timeout"))
            #expect(p.pushed().isEmpty)
        }
    }

    @Test("local kube contexts skip the push; kind-dev runs kind load for every tag")
    func localClusters() throws {
        let registry = try TestRegistry()
        defer { registry.stop() }
        try withTemporaryDirectory { dir in
            var p = try Project(dir: dir, registry: registry.host)
            defer { p.cleanUp() }
            // No kind cluster can run on this machine (no nested containers for its nodes), so
            // a `kind` on PATH records its arguments instead; kind's own behaviour is not tested.
            let bin = dir + "/bin"
            try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
            try writeExecutable("#!/bin/sh\nprintf '%s\\n' \"$*\" >> \"\(dir)/kind-calls\"\n", to: bin + "/kind")
            p.env["PATH"] = bin + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")
            let kubeconfig = dir + "/kubeconfig"
            p.env["KUBECONFIG"] = kubeconfig
            func use(_ context: String) throws {
                try """
                apiVersion: v1
                kind: Config
                current-context: \(context)
                contexts:
                - name: \(context)
                  context: {cluster: c, user: u}
                clusters:
                - name: c
                  cluster: {server: "https://127.0.0.1:1"}
                users:
                - name: u
                  user: {}
                """.write(toFile: kubeconfig, atomically: true, encoding: .utf8)
            }
            let local = [
                "minikube", "docker-desktop", "docker-for-desktop", "orbstack", "vcluster_dev_team_minikube",
                "vcluster-docker_dev",
            ]
            for (i, context) in local.enumerated() {
                try use(context)
                let r = try p.build(["-t", "local\(i)"])
                #expect(r.status == 0, "\(context): \(r.stderr)")
                #expect(try Self.summary(r).pushed.isEmpty, "\(context)")
                #expect(!r.stderr.contains("pushing"), "\(context)")
            }
            #expect(!FileManager.default.fileExists(atPath: dir + "/kind-calls"))

            try use("kind-dev")
            let kind = try p.build(["-t", "k1,k2"])
            #expect(kind.status == 0, "\(kind.stderr)")
            #expect(!kind.stderr.contains("pushing"))
            var calls = (try? String(contentsOfFile: dir + "/kind-calls", encoding: .utf8)) ?? ""
            #expect(
                calls
                    == "load docker-image --name dev \(p.repository):k1\nload docker-image --name dev \(p.repository):k2\n"
            )
            // Loaded, not pushed: the JSON and the terminal say so.
            #expect(try Self.summary(kind).pushed.isEmpty)
            #expect(
                try Self.summary(kind).loaded == [
                    "\(p.repository):k1 (kind cluster dev)", "\(p.repository):k2 (kind cluster dev)",
                ]
            )
            #expect(kind.stdout.contains(p.repository), "--json escapes no slash: \(kind.stdout)")
            #expect(!kind.stdout.contains("\\/"), "--json escapes no slash: \(kind.stdout)")
            let shown = try SlipwayBinary.run(["build", "-t", "k3"], in: dir, env: p.env, timeout: 120)
            #expect(shown.status == 0, "\(shown.stderr)")
            #expect(shown.stdout.contains("loaded \(p.repository):k3 into kind cluster dev"), "\(shown.stdout)")
            #expect(shown.stdout.contains(", loaded into kind"), "\(shown.stdout)")
            #expect(!shown.stdout.contains("pushed"), "\(shown.stdout)")
            // Loaded once: the next run does not load again.
            let again = try p.build(["-t", "k1,k2"])
            #expect(try Self.summary(again).loaded.isEmpty)
            calls += "load docker-image --name dev \(p.repository):k3\n"
            #expect((try? String(contentsOfFile: dir + "/kind-calls", encoding: .utf8)) == calls)

            // --kube-context names a remote cluster: pushed to the registry after all.
            let remote = try p.build(["-t", "k1", "--kube-context", "production"])
            #expect(remote.status == 0, "\(remote.stderr)")
            #expect(try Self.summary(remote).pushed == ["\(p.repository):k1"])
            // --no-skip-push-local-kube pushes from a local context too.
            try use("docker-desktop")
            let forced = try p.build(["-t", "k2", "--no-skip-push-local-kube"])
            #expect(try Self.summary(forced).pushed == ["\(p.repository):k2"])
        }
    }

    @Test("buildah pushes from its own store with the credentials in a private auth file", .requiresBuildah)
    func buildahPushes() throws {
        let registry = try TestRegistry(authenticated: true)
        defer { registry.stop() }
        try withTemporaryDirectory { dir in
            let p = try Project(dir: dir, registry: registry.host, tags: ["b1"])
            defer {
                p.cleanUp()
                _ = try? sh(["buildah", "rmi", "-f", "\(p.repository):b1"], cwd: dir)
            }
            let marker = UUID().uuidString
            try "FROM scratch\nCOPY marker /marker\n".write(
                toFile: dir + "/Dockerfile",
                atomically: true,
                encoding: .utf8
            )
            try marker.write(toFile: dir + "/marker", atomically: true, encoding: .utf8)
            try p.writeAuths(host: registry.host, user: TestRegistry.user, password: TestRegistry.password)
            let r = try p.build(["--engine", "buildah"])
            #expect(r.status == 0, "\(r.stderr)")
            #expect(try Self.summary(r).pushed == ["\(p.repository):b1"])
            #expect(!(r.stdout + r.stderr).contains(TestRegistry.password))
            // The Docker engine pulls what buildah pushed.
            let pulled = try sh(
                ["docker", "pull", "\(p.repository):b1"],
                cwd: "/",
                env: ["DOCKER_CONFIG": p.dockerConfig]
            )
            #expect(pulled.status == 0, "\(pulled.stderr)")
            let saved = try sh(
                [
                    "sh", "-c", "docker save \"$1\" | tar -xO --wildcards '*.tar' 2>/dev/null | tar -xO marker", "sh",
                    "\(p.repository):b1",
                ],
                cwd: "/"
            )
            #expect(saved.stdout == marker, "\(saved.stderr)")
        }
    }

    @Test("DOCKER_HOST=tcp:// builds, looks up, re-tags and pushes through the docker CLI")
    func tcpDockerHost() throws {
        let registry = try TestRegistry()
        defer { registry.stop() }
        let proxy = try DockerTCPProxy()
        defer { proxy.stop() }
        try withTemporaryDirectory { dir in
            let p = try Project(dir: dir, registry: registry.host)
            defer { p.cleanUp() }
            let env = ["DOCKER_HOST": proxy.host]
            let first = try p.build(env: env)
            #expect(first.status == 0, "\(first.stderr)")
            #expect(try Self.summary(first).result == "built")
            #expect(try Self.summary(first).pushed == ["\(p.repository):one", "\(p.repository):two"])
            let id = try #require(try Self.summary(first).imageID)
            #expect(proxy.connections > 0)
            let before = proxy.connections
            let again = try p.build(env: env)
            #expect(try Self.summary(again).result == "skipped", "\(again.stdout)")
            #expect(proxy.connections > before, "the presence check went through the CLI")
            let retag = try p.build(["-t", "three"], env: env)
            #expect(try Self.summary(retag).result == "retagged")
            #expect(try Self.summary(retag).pushed == ["\(p.repository):three"])
            try Self.pullBack("\(p.repository):three", expecting: id, dockerConfig: p.dockerConfig)
        }
    }

    @Test("on a minikube context images build in minikube's engine (docker-env) and are not pushed")
    func minikubeDockerEnv() throws {
        let registry = try TestRegistry()
        defer { registry.stop() }
        // minikube cannot run here (it needs a VM or nested containers): a `minikube` on PATH
        // answers `docker-env` with a DOCKER_HOST that reaches the real engine over TCP.
        let proxy = try DockerTCPProxy()
        defer { proxy.stop() }
        try withTemporaryDirectory { dir in
            var p = try Project(dir: dir, registry: registry.host)
            defer { p.cleanUp() }
            let bin = dir + "/bin"
            try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
            try writeExecutable(
                """
                #!/bin/sh
                printf '%s\\n' "$*" >> "\(dir)/minikube-calls"
                echo "DOCKER_HOST=\(proxy.host)"
                echo "MINIKUBE_ACTIVE_DOCKERD=minikube"
                """,
                to: bin + "/minikube"
            )
            p.env["PATH"] = bin + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")
            try "current-context: minikube\ncontexts:\n- name: minikube\n  context: {cluster: minikube}\n".write(
                toFile: dir + "/kubeconfig",
                atomically: true,
                encoding: .utf8
            )
            p.env["KUBECONFIG"] = dir + "/kubeconfig"
            let r = try p.build()
            #expect(r.status == 0, "\(r.stderr)")
            #expect(try Self.summary(r).result == "built")
            #expect(try Self.summary(r).pushed.isEmpty)
            #expect(
                r.stderr.contains("building in its Docker engine (\(proxy.host)), nothing is pushed"),
                "\(r.stderr)"
            )
            #expect(proxy.connections > 0)
            let calls = (try? String(contentsOfFile: dir + "/minikube-calls", encoding: .utf8)) ?? ""
            #expect(calls == "docker-env --shell none --profile minikube\n")

            // preferMinikube: false builds with this machine's engine (and still pushes nothing).
            let lines = try String(contentsOfFile: dir + "/devspace.yaml", encoding: .utf8)
            try (lines + "    docker: {preferMinikube: false}\n").write(
                toFile: dir + "/devspace.yaml",
                atomically: true,
                encoding: .utf8
            )
            let before = proxy.connections
            let local = try p.build(["-t", "local"])
            #expect(local.status == 0, "\(local.stderr)")
            #expect(proxy.connections == before)
            #expect(try Self.summary(local).pushed.isEmpty)
            #expect(!local.stderr.contains("building in its Docker engine"))
        }
    }
}
