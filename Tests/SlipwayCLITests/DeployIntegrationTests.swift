import Foundation
import SlipwayTestSupport
import Testing

/// `slipway deploy`, `purge`, `run-pipeline` end to end: the example project of
/// examples/deploy (an app and a sidecar on the offline base image) copied into a fresh git
/// repository, the real Docker engine, real bash pipelines.
@Suite(.serialized, .requiresDockerEngine, .timeLimit(.minutes(10)))
struct DeployIntegrationTests {
    static let example = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../examples/deploy").standardized.path

    /// The example with its own project name, image names and port, in a git repository.
    struct Project {
        let dir: String
        let name: String
        let port: Int

        init(dir: String) throws {
            self.dir = dir
            let id = UUID().uuidString.lowercased().prefix(8)
            name = "deploy-test-\(id)"
            port = try freePort()
            #expect(try sh(["cp", "-R", DeployIntegrationTests.example + "/.", dir], cwd: "/").status == 0)
            var config = try String(contentsOfFile: dir + "/devspace.yaml", encoding: .utf8)
            config = config.replacingOccurrences(of: "name: deploy-example", with: "name: \(name)")
                .replacingOccurrences(of: "slipway-examples/deploy-", with: "slipway-test/\(name)-")
                .replacingOccurrences(of: "PORT: \"8081\"", with: "PORT: \"\(port)\"")
            try config.write(toFile: dir + "/devspace.yaml", atomically: true, encoding: .utf8)
            try ".devspace/\n".write(toFile: dir + "/.gitignore", atomically: true, encoding: .utf8)
            for args in [["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "first"]] {
                #expect(try git(args).status == 0)
            }
        }

        @discardableResult
        func git(_ args: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
            try sh(
                ["git", "-c", "user.name=t", "-c", "user.email=t@localhost"] + args,
                cwd: dir,
                env: ["GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null"]
            )
        }

        func slipway(_ args: [String]) throws -> SlipwayBinary.Result {
            try SlipwayBinary.run(args, in: dir, env: ["KUBECONFIG": dir + "/no-kubeconfig"], timeout: 300)
        }

        /// Container name → (image, container ID), for this project's containers.
        func containers() throws -> [String: (image: String, id: String)] {
            let out = try sh(
                [
                    "docker", "ps", "--all", "--filter", "label=dev.slipway.config=\(dir)/devspace.yaml", "--format",
                    "{{.Names}} {{.Image}} {{.ID}}",
                ],
                cwd: "/"
            )
            var found: [String: (String, String)] = [:]
            for line in out.stdout.split(separator: "\n") {
                let f = line.split(separator: " ").map(String.init)
                if f.count == 3 { found[f[0]] = (f[1], f[2]) }
            }
            return found
        }

        /// What the sidecar last fetched from the app (it polls every 2 s).
        func sidecarSaw(_ text: String) throws -> Bool {
            for _ in 0..<50 {
                let out = try sh(["docker", "exec", "\(name)-watcher-sidecar", "cat", "/tmp/last"], cwd: "/")
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

    @Test("build → deploy → change → deploy → release pipeline → purge")
    func deployLifecycle() throws {
        try withTemporaryDirectory { dir in
            let p = try Project(dir: dir)
            defer { p.cleanUp() }
            let app = "\(p.name)-web-app"
            let sidecar = "\(p.name)-watcher-sidecar"

            let first = try p.slipway(["deploy"])
            #expect(first.status == 0, "\(first.stderr)")
            #expect(first.stdout.contains("deploy:web \(app): created"), "\(first.stdout)")
            #expect(first.stdout.contains("deploy:watcher \(sidecar): created"))
            var running = try p.containers()
            #expect(Set(running.keys) == [app, sidecar])
            #expect(try p.sidecarSaw("version 1"), "the sidecar reaches the app")
            let sidecarID = running[sidecar]?.id
            let firstAppImage = running[app]?.image ?? ""
            // The deploy state beside the build cache names both deployments and their containers.
            let stateFile = dir + "/.devspace/slipway-deployments.json"
            let stateText = (try? String(contentsOfFile: stateFile, encoding: .utf8)) ?? ""
            let deployState = try #require(
                try JSONSerialization.jsonObject(with: Data(stateText.utf8)) as? [String: [String: [String: Any]]],
                "\(stateText)"
            )
            #expect(deployState[""]?["web"]?["objects"] as? [String] == [app])
            #expect(deployState[""]?["watcher"]?["kind"] as? String == "docker")

            // Change the app: only its deployment is replaced, with the new tag.
            try "<h1>deploy-example: version 2</h1>\n".write(
                toFile: dir + "/app/index.html",
                atomically: true,
                encoding: .utf8
            )
            let second = try p.slipway(["deploy"])
            #expect(second.status == 0, "\(second.stderr)")
            #expect(second.stdout.contains("deploy:web \(app): replaced"), "\(second.stdout)")
            #expect(second.stdout.contains("deploy:watcher \(sidecar): unchanged"))
            running = try p.containers()
            #expect(running[sidecar]?.id == sidecarID, "the unchanged deployment was not restarted")
            #expect(running[app]?.image != firstAppImage)
            #expect(running[app]?.image.hasPrefix("slipway-test/\(p.name)-app:") == true)
            #expect(try p.sidecarSaw("version 2"))

            // Nothing changed: nothing restarted.
            let third = try p.slipway(["deploy"])
            #expect(third.stdout.contains("deploy:web \(app): unchanged"), "\(third.stdout)")

            // The release pipeline: every image tagged with `git describe --always`.
            #expect(try p.git(["commit", "-qam", "version 2"]).status == 0)
            let describe = try p.git(["describe", "--always"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            let release = try p.slipway(["run-pipeline", "release"])
            #expect(release.status == 0, "\(release.stderr)")
            running = try p.containers()
            #expect(running[app]?.image == "slipway-test/\(p.name)-app:\(describe)")
            #expect(running[sidecar]?.image == "slipway-test/\(p.name)-sidecar:\(describe)")

            // --render prints the command lines and changes nothing.
            let before = try p.containers().mapValues(\.id)
            let render = try p.slipway(["render", "--skip-build"])
            #expect(render.status == 0, "\(render.stderr)")
            #expect(render.stdout.contains("docker run --detach --name \(app) --network host"), "\(render.stdout)")
            #expect(try p.containers().mapValues(\.id) == before)

            let purge = try p.slipway(["purge"])
            #expect(purge.status == 0, "\(purge.stderr)")
            #expect(try p.containers().isEmpty, "purge leaves none of the project's containers")
            let purged = (try? String(contentsOfFile: stateFile, encoding: .utf8)) ?? ""
            #expect(!purged.contains("\"web\"") && !purged.contains("\"watcher\""), "\(purged)")
        }
    }

    @Test("pipelines: flags, a failing function, continueOnError, runtime image references")
    func pipelineScripts() throws {
        try withTemporaryDirectory { dir in
            let p = try Project(dir: dir)
            defer { p.cleanUp() }
            var config = try String(contentsOfFile: dir + "/devspace.yaml", encoding: .utf8)
            config += """
                  greet:
                    flags:
                      - name: who
                        short: w
                        type: string
                        default: world
                      - name: loud
                        type: bool
                    run: |-
                      echo "hello $(get_flag who) loud=$(get_flag loud)"
                      build_images app --skip-push
                      echo "built ${runtime.images.app.image} at ${runtime.images.app.tag}"
                      is_equal "$(get_image app)" "${runtime.images.app}" && echo same
                  broken:
                    run: |-
                      echo before
                      build_images nosuchimage
                      echo after
                  tolerant:
                    continueOnError: true
                    run: |-
                      build_images nosuchimage
                      echo still-here
                  loop:
                    run: run_pipelines loop
                  build:
                    run: |-
                      echo custom-build
                      run_default_pipeline build

                """
            try config.write(toFile: dir + "/devspace.yaml", atomically: true, encoding: .utf8)

            let greet = try p.slipway(["run-pipeline", "greet", "--who", "slipway", "--loud"])
            #expect(greet.status == 0, "\(greet.stderr)")
            #expect(greet.stdout.contains("hello slipway loud=true\n"), "\(greet.stdout)")
            let line = greet.stdout.split(separator: "\n").first { $0.hasPrefix("built ") } ?? ""
            #expect(line.hasPrefix("built slipway-test/\(p.name)-app at "), "\(greet.stdout)")
            #expect(greet.stdout.contains("\nsame\n"))
            let defaults = try p.slipway(["run-pipeline", "greet", "-w", "you"])
            #expect(defaults.stdout.contains("hello you loud=false\n"), "\(defaults.stdout)")
            // Global flags after the pipeline's name, as DevSpace takes them.
            let global = try p.slipway(["run-pipeline", "greet", "--debug", "-w", "you", "--var", "EXTRA=1", "--loud"])
            #expect(global.status == 0, "\(global.stderr)")
            #expect(global.stdout.contains("hello you loud=true\n"), "\(global.stdout)")

            let broken = try p.slipway(["run-pipeline", "broken"])
            #expect(broken.status == 1)
            #expect(broken.stdout.contains("before\n"))
            #expect(!broken.stdout.contains("after"))
            #expect(
                broken.stderr.contains(#"build_images: no image named "nosuchimage" (images: app, sidecar)"#),
                "\(broken.stderr)"
            )
            #expect(broken.stderr.contains("pipeline broken failed (exit status 1)"))

            let tolerant = try p.slipway(["run-pipeline", "tolerant"])
            #expect(tolerant.status == 0, "\(tolerant.stderr)")
            #expect(tolerant.stdout.contains("still-here"))

            let loop = try p.slipway(["run-pipeline", "loop"])
            #expect(loop.status != 0)
            #expect(loop.stderr.contains("pipeline loop runs itself"), "\(loop.stderr)")

            // A pipeline that overrides `build` and runs DevSpace's default one inside.
            let build = try p.slipway(["run-pipeline", "build", "--skip-push"])
            #expect(build.status == 0, "\(build.stderr)")
            #expect(build.stdout.contains("custom-build\n"))
            #expect(build.stdout.contains("skip → "), "the default build pipeline ran build_images: \(build.stdout)")

            let unknownFlag = try p.slipway(["run-pipeline", "greet", "--nope"])
            #expect(unknownFlag.status == 64)
            #expect(unknownFlag.stderr.contains("Unknown option '--nope'"), "\(unknownFlag.stderr)")
            #expect(unknownFlag.stderr.contains("pipeline greet declares the flags --who, --loud"))
            let unknown = try p.slipway(["run-pipeline", "nope"])
            #expect(unknown.status == 1)
            #expect(unknown.stderr.contains(#"no pipeline named "nope""#), "\(unknown.stderr)")
        }
    }

    @Test("two branches deployed side by side; purging one leaves the other running")
    func branchEnvironments() throws {
        try withTemporaryDirectory { dir in
            let p = try Project(dir: dir)
            defer { p.cleanUp() }
            let second = try freePort()
            #expect(try p.git(["checkout", "-q", "-b", "feature/login"]).status == 0)
            let a = try p.slipway(["deploy", "--branch-env"])
            #expect(a.status == 0, "\(a.stderr)")
            #expect(try p.git(["checkout", "-q", "-b", "fix/typo"]).status == 0)
            let b = try p.slipway(["deploy", "--branch-env", "--var", "PORT=\(second)"])
            #expect(b.status == 0, "\(b.stderr)")
            let running = try p.containers()
            #expect(
                Set(running.keys) == [
                    "\(p.name)-web-app-feature-login", "\(p.name)-watcher-sidecar-feature-login",
                    "\(p.name)-web-app-fix-typo", "\(p.name)-watcher-sidecar-fix-typo",
                ],
                "\(running.keys)"
            )
            let states = try sh(
                [
                    "docker", "ps", "--filter", "label=dev.slipway.config=\(dir)/devspace.yaml", "--format",
                    "{{.Names}}",
                ],
                cwd: "/"
            )
            #expect(states.stdout.split(separator: "\n").count == 4, "all four are running")

            let purge = try p.slipway(["purge", "--branch-env"])
            #expect(purge.status == 0, "\(purge.stderr)")
            #expect(
                Set(try p.containers().keys) == [
                    "\(p.name)-web-app-feature-login", "\(p.name)-watcher-sidecar-feature-login",
                ]
            )
        }
    }

    @Test("kubectl and helm deployments: rendered with tags; without a cluster nothing is deployed")
    func clusterDeploymentsWithoutACluster() throws {
        try withTemporaryDirectory { dir in
            let p = try Project(dir: dir)
            defer { p.cleanUp() }
            var config = try String(contentsOfFile: dir + "/devspace.yaml", encoding: .utf8)
            config = config.replacingOccurrences(
                of: "\npipelines:",
                with: """

                      k8s:
                        kubectl:
                          manifests: [k8s.yaml]
                      chart:
                        helm:
                          chart: {name: ./chart}
                          values:
                            image: slipway-test/\(p.name)-app
                    pipelines:
                    """
            )
            try config.write(toFile: dir + "/devspace.yaml", atomically: true, encoding: .utf8)
            try
                "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers:\n  - name: app\n    image: slipway-test/\(p.name)-app\n"
                .write(toFile: dir + "/k8s.yaml", atomically: true, encoding: .utf8)
            try FileManager.default.createDirectory(atPath: dir + "/chart", withIntermediateDirectories: true)

            let deploy = try p.slipway(["deploy"])
            #expect(deploy.status == 1)
            #expect(
                deploy.stderr.contains("there is no cluster to deploy k8s (kubectl), chart (helm) to"),
                "\(deploy.stderr)"
            )
            #expect(deploy.stderr.contains("nothing was deployed"))
            #expect(deploy.stderr.contains("slipway render"))
            #expect(try p.containers().isEmpty, "not even the docker deployments were started")

            let render = try p.slipway(["render"])
            #expect(render.status == 0, "\(render.stderr)")
            let tag = try #require(
                render.stdout.split(separator: "\n").first { $0.contains("image: slipway-test/\(p.name)-app:") }
            )
            #expect(tag.hasPrefix("    image: slipway-test/\(p.name)-app:"), "\(render.stdout)")
            #expect(render.stdout.contains("# deployments.chart (helm): helm upgrade chart \(dir)/chart --install"))
            #expect(render.stdout.contains("image: slipway-test/\(p.name)-app:"))
            #expect(try p.containers().isEmpty)
        }
    }
}
