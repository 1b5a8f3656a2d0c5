import Foundation
import SlipwayCore
import SlipwayTestSupport
import Testing

/// DevSpace's tutorial deployment (examples/component-chart: a helm deployment without a
/// chart, two images) through the binary: `render` prints manifests only, and `--local` runs
/// the pod on the real engine.
@Suite(.serialized, .requiresDockerEngine, .timeLimit(.minutes(10)))
struct ComponentChartIntegrationTests {
    static let example = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../examples/component-chart").standardized.path

    /// The example with its own project and image names, in a git repository.
    struct Project {
        let dir: String
        let name: String

        init(dir: String) throws {
            self.dir = dir
            name = "chart-test-\(UUID().uuidString.lowercased().prefix(8))"
            #expect(try sh(["cp", "-R", ComponentChartIntegrationTests.example + "/.", dir], cwd: "/").status == 0)
            var config = try String(contentsOfFile: dir + "/devspace.yaml", encoding: .utf8)
            config = config.replacingOccurrences(of: "name: component-chart-example", with: "name: \(name)")
                .replacingOccurrences(of: "ghcr.io/loft-sh/devspace-quickstart-golang-sidecar", with: image("sidecar"))
                .replacingOccurrences(of: "ghcr.io/loft-sh/devspace-quickstart-golang", with: image("app"))
            try config.write(toFile: dir + "/devspace.yaml", atomically: true, encoding: .utf8)
            try ".devspace/\n".write(toFile: dir + "/.gitignore", atomically: true, encoding: .utf8)
            for args in [["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "first"]] {
                let git = try sh(
                    ["git", "-c", "user.name=t", "-c", "user.email=t@localhost"] + args,
                    cwd: dir,
                    env: ["GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null"]
                )
                #expect(git.status == 0, "\(git.stderr)")
            }
        }

        func image(_ which: String) -> String { "slipway-test/\(name)-\(which)" }

        func slipway(_ args: [String]) throws -> SlipwayBinary.Result {
            try SlipwayBinary.run(args, in: dir, env: ["KUBECONFIG": dir + "/no-kubeconfig"], timeout: 300)
        }

        /// Container name → (ID, state, network mode) of this project's containers.
        func containers() throws -> [String: (id: String, state: String, network: String)] {
            let ids = try sh(
                ["docker", "ps", "--all", "--quiet", "--filter", "label=dev.slipway.config=\(dir)/devspace.yaml"],
                cwd: "/"
            ).stdout.split(separator: "\n").map(String.init)
            guard !ids.isEmpty else { return [:] }
            let out = try sh(
                ["docker", "inspect", "--format", "{{.Name}} {{.Id}} {{.State.Status}} {{.HostConfig.NetworkMode}}"]
                    + ids,
                cwd: "/"
            )
            var found: [String: (String, String, String)] = [:]
            for line in out.stdout.split(separator: "\n") {
                let f = line.split(separator: " ").map(String.init)
                if f.count == 4 { found[String(f[0].dropFirst())] = (f[1], f[2], f[3]) }
            }
            return found
        }

        /// What `nc` in `container` reads from `port` on localhost (retried while the server starts).
        func reach(from container: String, port: Int, expecting text: String) throws -> Bool {
            for _ in 0..<50 {
                let out = try sh(
                    ["docker", "exec", container, "sh", "-c", "nc -w 2 127.0.0.1 \(port) </dev/null"],
                    cwd: "/"
                )
                if out.stdout.contains(text) { return true }
                usleep(200_000)
            }
            return false
        }

        func cleanUp() {
            _ = try? sh(
                [
                    "sh", "-c",
                    "docker ps -aq --filter \"label=dev.slipway.config=$1/devspace.yaml\" | xargs -r docker rm -f",
                    "sh", dir,
                ],
                cwd: "/"
            )
            let images =
                (try? sh(["docker", "images", "--format", "{{.Repository}}:{{.Tag}}"], cwd: "/"))?.stdout ?? ""
            let ours = images.split(separator: "\n").map(String.init).filter { $0.hasPrefix("slipway-test/\(name)-") }
            if !ours.isEmpty { _ = try? sh(["docker", "rmi", "-f", "--no-prune"] + ours, cwd: "/") }
        }
    }

    @Test("render --silent: standard output is only manifests, with both built tags", .requiresKubernetesValidate)
    func renderPrintsOnlyManifests() throws {
        try withTemporaryDirectory { dir in
            let p = try Project(dir: dir)
            defer { p.cleanUp() }
            for args in [["render", "--silent", "--skip-push"], ["render", "--skip-push"]] {
                let render = try p.slipway(args)
                #expect(render.status == 0, "\(render.stderr)")
                // Exactly what a pipe into kubectl would read.
                try render.stdout.write(toFile: dir + "/stdout.yaml", atomically: true, encoding: .utf8)
                let validated = try sh(["kubernetes-validate", "--strict", dir + "/stdout.yaml"], cwd: dir)
                #expect(validated.status == 0, "\(validated.stdout)\(validated.stderr)\n\(render.stdout)")
                let docs = try YAMLParser().parseAll(Array(render.stdout.utf8)).filter { !$0.isNull }
                #expect(docs.map { $0["kind"]?.scalar } == ["Deployment"], "\(render.stdout)")
                let images =
                    docs.first?["spec"]?["template"]?["spec"]?["containers"]?.items?.compactMap {
                        $0["image"]?.scalar
                    } ?? []
                #expect(images.count == 2)
                for (image, which) in zip(images, ["app", "sidecar"]) {
                    #expect(image.hasPrefix(p.image(which) + ":") && !image.hasSuffix(":latest"), "\(image)")
                    // The injected tag is the one just built.
                    #expect(try sh(["docker", "image", "inspect", image], cwd: "/").status == 0, "\(image)")
                }
                if !args.contains("--silent") {
                    #expect(render.stderr.contains("build:app"), "the build's log goes to stderr: \(render.stderr)")
                }
                #expect(!render.stdout.contains("build:"))
            }
        }
    }

    @Test("--local: one network namespace, each container replaced alone, purged")
    func localPod() throws {
        try withTemporaryDirectory { dir in
            let p = try Project(dir: dir)
            defer { p.cleanUp() }
            let (appPort, sidecarPort) = (try freePort(), try freePort())
            // dockerd here has no bridge: the pod uses the host's network (hostNetwork). Each
            // container answers on a port of its own.
            var config = try String(contentsOfFile: dir + "/devspace.yaml", encoding: .utf8)
            config = config.replacingOccurrences(
                of: "        - image: \(p.image("app"))\n",
                with: "        - image: \(p.image("app"))\n"
                    + "          command: [sh, -c, \"nc -ll -p \(appPort) -e echo pong-from-app\"]\n"
            )
            config = config.replacingOccurrences(
                of: "          name: sidecar\n",
                with: "          name: sidecar\n" + "          command: [sh, -c]\n"
                    + "          args: [\"nc -ll -p \(sidecarPort) -e echo pong-from-sidecar\"]\n"
                    + "        hostNetwork: true\n"
            )
            try config.write(toFile: dir + "/devspace.yaml", atomically: true, encoding: .utf8)
            let (infra, app, sidecar) = ("\(p.name)-app.pod", "\(p.name)-app-container-0", "\(p.name)-app-sidecar")

            let first = try p.slipway(["deploy", "--local"])
            #expect(first.status == 0, "\(first.stderr)\n\(config)")
            #expect(first.stdout.contains("deploy:app \(app): created (\(p.image("app")):"), "\(first.stdout)")
            #expect(first.stdout.contains("deploy:app \(sidecar): created"))
            var running = try p.containers()
            #expect(Set(running.keys) == [infra, app, sidecar], "\(running)")
            #expect(running.values.allSatisfy { $0.state == "running" }, "\(running)")
            let infraID = try #require(running[infra]?.id)
            #expect(running[infra]?.network == "host")
            #expect(running[app]?.network == "container:\(infraID)", "the app joined the pod's namespace")
            #expect(running[sidecar]?.network == "container:\(infraID)")
            // On localhost, one way and back.
            #expect(try p.reach(from: app, port: sidecarPort, expecting: "pong-from-sidecar"))
            #expect(try p.reach(from: sidecar, port: appPort, expecting: "pong-from-app"))
            let appID = running[app]?.id
            let sidecarID = running[sidecar]?.id

            // The same again: nothing restarted.
            let same = try p.slipway(["deploy", "--local"])
            #expect(same.status == 0, "\(same.stderr)")
            #expect(same.stdout.contains("deploy:app \(app): unchanged"), "\(same.stdout)")
            #expect(same.stdout.contains("deploy:app \(sidecar): unchanged"))

            // A change to the sidecar's Dockerfile replaces the sidecar alone.
            let dockerfile = dir + "/Dockerfile.sidecar"
            let text = try String(contentsOfFile: dockerfile, encoding: .utf8)
            try (text + "RUN echo 2 > /version\n").write(toFile: dockerfile, atomically: true, encoding: .utf8)
            let second = try p.slipway(["deploy", "--local"])
            #expect(second.status == 0, "\(second.stderr)")
            #expect(second.stdout.contains("deploy:app \(sidecar): replaced"), "\(second.stdout)")
            #expect(second.stdout.contains("deploy:app \(app): unchanged"))
            running = try p.containers()
            #expect(running[app]?.id == appID && running[app]?.state == "running", "the app kept running")
            #expect(running[infra]?.id == infraID, "the pod kept its namespace")
            #expect(running[sidecar]?.id != sidecarID && running[sidecar]?.state == "running")
            #expect(try p.reach(from: app, port: sidecarPort, expecting: "pong-from-sidecar"))
            #expect(try p.reach(from: sidecar, port: appPort, expecting: "pong-from-app"))

            let purge = try p.slipway(["purge", "--local"])
            #expect(purge.status == 0, "\(purge.stderr)")
            #expect(purge.stdout.contains("deploy:app purged: "), "\(purge.stdout)")
            #expect(try p.containers().isEmpty, "purge --local leaves none of the pod's containers")
        }
    }

    /// Without `hostNetwork` the pod is on the engine's bridge with `service.ports` published
    /// on 127.0.0.1; an engine without a bridge (dockerd --bridge=none, as here) would give the
    /// pod no network at all, which is an error that says what to do.
    @Test("--local without hostNetwork: ports published on the bridge, or a clear error without one")
    func localPodOnTheBridge() throws {
        try withTemporaryDirectory { dir in
            let p = try Project(dir: dir)
            defer { p.cleanUp() }
            let port = try freePort()
            var config = try String(contentsOfFile: dir + "/devspace.yaml", encoding: .utf8)
            config += "        service:\n          ports: [{port: \(port), containerPort: 8080}]\n"
            try config.write(toFile: dir + "/devspace.yaml", atomically: true, encoding: .utf8)
            let deploy = try p.slipway(["deploy", "--local"])
            let bridge = try sh(["docker", "network", "inspect", "bridge"], cwd: "/").status == 0
            if bridge {
                #expect(deploy.status == 0, "\(deploy.stderr)")
                let page = try sh(["wget", "-qO-", "http://127.0.0.1:\(port)/"], cwd: "/")
                #expect(page.stdout.contains("Hello from app"), "\(page.stdout)\(page.stderr)")
            } else {
                #expect(deploy.status == 1)
                #expect(
                    deploy.stderr.contains(
                        "deployments.app (--local): the Docker engine has no bridge network (dockerd --bridge=none), so the pod would have no network; set hostNetwork: true in the values"
                    ),
                    "\(deploy.stderr)"
                )
                #expect(try p.containers().isEmpty, "nothing was started")
            }
        }
    }

    /// A cluster cannot be started here: a kubectl on PATH records its calls and standard input
    /// (the real kubectl's refusal without a cluster is covered by the deploy tests).
    @Test("on a cluster: kubectl apply, unchanged, objects the values drop deleted, purge")
    func appliedWithKubectl() throws {
        try withTemporaryDirectory { dir in
            let p = try Project(dir: dir)
            defer { p.cleanUp() }
            try "current-context: c1\ncontexts:\n- name: c1\n  context: {cluster: c1, namespace: team}\n".write(
                toFile: dir + "/kubeconfig",
                atomically: true,
                encoding: .utf8
            )
            let bin = dir + "/bin"
            try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
            try writeExecutable(
                """
                #!/bin/sh
                n=$(ls "\(dir)"/call-* 2>/dev/null | wc -l)
                printf '%s\\n' "$@" > "\(dir)/call-$n"
                case "$*" in
                  *" -f -"*) cat > "\(dir)/stdin-$n"; echo "deployment.apps/app configured" ;;
                  *) echo "deleted" ;;
                esac
                """,
                to: bin + "/kubectl"
            )
            let env = [
                "KUBECONFIG": dir + "/kubeconfig",
                "PATH": bin + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"),
            ]
            func slipway(_ args: [String]) throws -> SlipwayBinary.Result {
                try SlipwayBinary.run(args, in: dir, env: env, timeout: 120)
            }
            func call(_ n: Int) -> [String] {
                ((try? String(contentsOfFile: dir + "/call-\(n)", encoding: .utf8)) ?? "").split(separator: "\n")
                    .map(String.init)
            }
            func stdin(_ n: Int) -> String { (try? String(contentsOfFile: dir + "/stdin-\(n)", encoding: .utf8)) ?? "" }
            // With a service, so that dropping it later leaves an object to delete.
            var config = try String(contentsOfFile: dir + "/devspace.yaml", encoding: .utf8)
            config += "        service:\n          ports: [{port: 8080}]\n"
            try config.write(toFile: dir + "/devspace.yaml", atomically: true, encoding: .utf8)
            let scope = ["--context", "c1", "--namespace", "team"]

            let render = try slipway(["render", "--skip-build"])
            #expect(render.status == 0, "\(render.stderr)")
            let first = try slipway(["deploy", "--skip-build"])
            #expect(first.status == 0, "\(first.stderr)")
            #expect(first.stdout.contains("deploy:app deployment.apps/app configured"), "\(first.stdout)")
            #expect(call(0) == scope + ["apply", "--force", "-f", "-"])
            let applied = try YAMLParser().parseAll(Array(stdin(0).utf8))
            #expect(applied.map { $0["kind"]?.scalar } == ["Service", "Deployment"])
            #expect(render.stdout.hasSuffix(stdin(0)), "what render prints is what is applied")

            let again = try slipway(["deploy", "--skip-build"])
            #expect(again.stdout.contains("deploy:app unchanged"), "\(again.stdout)")
            #expect(call(1).isEmpty)

            // The service dropped from the values: applied without it, and deleted.
            config = config.replacingOccurrences(of: "        service:\n          ports: [{port: 8080}]\n", with: "")
            try config.write(toFile: dir + "/devspace.yaml", atomically: true, encoding: .utf8)
            let third = try slipway(["deploy", "--skip-build"])
            #expect(third.status == 0, "\(third.stderr)")
            #expect(call(1) == scope + ["apply", "--force", "-f", "-"])
            #expect(call(2) == scope + ["delete", "--ignore-not-found", "Service/app"])

            let purge = try slipway(["purge"])
            #expect(purge.status == 0, "\(purge.stderr)")
            #expect(call(3) == scope + ["delete", "--ignore-not-found", "-f", "-"])
            #expect(try YAMLParser().parseAll(Array(stdin(3).utf8)).map { $0["kind"]?.scalar } == ["Deployment"])
        }
    }

    @Test("render of every kind: standard output stays a stream of manifests", .requiresKubernetesValidate)
    func renderOfEveryKind() throws {
        try withTemporaryDirectory { dir in
            let p = try Project(dir: dir)
            defer { p.cleanUp() }
            var config = try String(contentsOfFile: dir + "/devspace.yaml", encoding: .utf8)
            // A script with a line break: its second line must stay inside the comment.
            config += "        initContainers:\n        - image: slipway/busybox\n"
            config += "          command: [sh, -c, \"echo one\\necho two\"]\n"
            config += """
                  plain:
                    kubectl:
                      manifests: [k8s.yaml]
                  chart:
                    helm:
                      chart: {name: ./chart}
                      values: {image: \(p.image("app"))}
                  local:
                    docker:
                      containers: [{image: \(p.image("sidecar"))}]

                """
            try config.write(toFile: dir + "/devspace.yaml", atomically: true, encoding: .utf8)
            try "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: plain}\ndata: {a: b}\n".write(
                toFile: dir + "/k8s.yaml",
                atomically: true,
                encoding: .utf8
            )
            try FileManager.default.createDirectory(atPath: dir + "/chart", withIntermediateDirectories: true)
            let render = try p.slipway(["render", "--skip-push", "--local"])
            #expect(render.status == 0, "\(render.stderr)")
            try render.stdout.write(toFile: dir + "/stdout.yaml", atomically: true, encoding: .utf8)
            let validated = try sh(["kubernetes-validate", "--strict", dir + "/stdout.yaml"], cwd: dir)
            #expect(validated.status == 0, "\(validated.stdout)\(validated.stderr)\n\(render.stdout)")
            let kinds = try YAMLParser().parseAll(Array(render.stdout.utf8)).compactMap { $0["kind"]?.scalar }
            #expect(kinds == ["Deployment", "ConfigMap"], "\(render.stdout)")
            // What slipway does not render itself is there as comments.
            #expect(render.stdout.contains("# --local: the pod runs on the local Docker engine as:"))
            #expect(render.stdout.contains("# deployments.chart (helm): helm upgrade chart \(dir)/chart --install"))
            #expect(render.stdout.contains("#   image: \(p.image("app")):"))
            #expect(render.stdout.contains("# docker run --detach --name \(p.name)-local-main"))
        }
    }
}
