import Foundation
import SlipwayCore
import SlipwayTestSupport
import Testing

/// Every source of values outside the config — the branch name, the environment, `--var`, a
/// command variable's output, a variable that refers to another — carrying shell code, through
/// `print`, `build`, `deploy`, the hooks and the agent: nothing ever runs (no marker file), the
/// values arrive as they were, and DevSpace's `tr / -` idiom still gives the branch's text.
@Suite(.serialized, .requiresDockerEngine, .requiresRegistry, .timeLimit(.minutes(10)))
struct HostileValueIntegrationTests {
    static func project(_ dir: String, registry: TestRegistry, deployment: String) throws -> AgentProject {
        let name = UUID().uuidString.lowercased().prefix(12)
        let image = "\(registry.host)/\(name)/app"
        let extra = """
                tags: ["${SLIPWAY_BRANCH_TAG}"]
                buildArgs:
                  BRANCH: ${DEVSPACE_GIT_BRANCH}
                  FROM_ENV: ${FROM_ENV}
            vars:
              FROM_CMD: $(printf '%s' "${DEVSPACE_GIT_BRANCH}")
              OTHER: ${FROM_CMD}
              IDIOM: $(echo ${DEVSPACE_GIT_BRANCH} | tr / -)
              FROM_ENV:
                source: env
                default: none
              FROM_VAR:
                default: none
            deployments:
              \(deployment):
                docker:
                  network: none
                  containers:
                    - name: app
                      image: \(image)
                      command: ["sleep", "3600"]
                      env:
                        BRANCH: ${DEVSPACE_GIT_BRANCH}
                        FROM_CMD: ${FROM_CMD}
                        OTHER: ${OTHER}
                        IDIOM: ${IDIOM}
                        FROM_ENV: ${FROM_ENV}
                        FROM_VAR: ${FROM_VAR}
            """
        return try AgentProject(dir: dir + "/work", extraConfig: extra, image: image)
    }

    /// The environment of the deployment's container.
    static func containerEnvironment(_ p: AgentProject, _ deployment: String) throws -> [String: String] {
        let r = try sh(
            [
                "docker", "inspect", "--format", "{{range .Config.Env}}{{println .}}{{end}}",
                "agent-test-\(deployment)-app",
            ],
            cwd: "/"
        )
        var env: [String: String] = [:]
        for line in r.stdout.split(separator: "\n") {
            guard let eq = line.firstIndex(of: "=") else { continue }
            env[String(line[..<eq])] = String(line[line.index(after: eq)...])
        }
        return env
    }

    @Test func nothingRunsThroughPrintBuildDeployHooksAndTheAgent() throws {
        let registry = try TestRegistry()
        defer { registry.stop() }
        try withTemporaryDirectory { dir in
            let deployment = "hostile" + UUID().uuidString.lowercased().prefix(8)
            let p = try Self.project(dir, registry: registry, deployment: deployment)
            defer { p.cleanUp() }
            let markers = (0..<hostileValues.count).map { "\(dir)/marker-\($0)" }
            func value(_ i: Int) -> String { hostileValues[i].replacingOccurrences(of: "MARKER", with: markers[i]) }
            func noMarker(_ when: String) {
                for m in markers { #expect(!FileManager.default.fileExists(atPath: m), "\(when): \(m) was created") }
            }

            // By hand: print, build and deploy on every hostile branch git accepts, with
            // hostile values in the environment and on the command line as well.
            var branches: [String] = []
            for i in hostileValues.indices {
                let branch = value(i)
                guard try p.git(["checkout", "-q", "-b", branch]).status == 0 else { continue }
                branches.append(branch)
                let env = ["FROM_ENV": value((i + 1) % hostileValues.count)]
                let fromVar = value((i + 2) % hostileValues.count)
                let vars = ["--var", "FROM_VAR=\(fromVar)"]
                let printed = try p.slipway(["print", "--skip-info"] + vars, env: env)
                #expect(printed.status == 0, "\(branch): \(printed.stderr)")
                let tree = try #require(try YAMLParser().parse(printed.stdout))
                let containerEnv = tree["deployments"]?[deployment]?["docker"]?["containers"]?.items?.first?["env"]
                #expect(containerEnv?["BRANCH"]?.scalar == branch)
                #expect(containerEnv?["FROM_CMD"]?.scalar == branch)
                #expect(containerEnv?["OTHER"]?.scalar == branch)
                #expect(containerEnv?["FROM_ENV"]?.scalar == env["FROM_ENV"])
                #expect(containerEnv?["FROM_VAR"]?.scalar == fromVar)
                // DevSpace's idiom: the branch with / as -, still data.
                #expect(containerEnv?["IDIOM"]?.scalar == branch.replacingOccurrences(of: "/", with: "-"))
                noMarker("print on \(branch)")

                let built = try p.slipway(["build", "--skip-push"] + vars, env: env)
                #expect(built.status == 0, "\(branch): \(built.stderr)")
                #expect(try p.imageExists(BranchTag.tag(for: branch)))
                noMarker("build on \(branch)")

                let deployed = try p.slipway(["deploy", "--skip-push"] + vars, env: env)
                #expect(deployed.status == 0, "\(branch): \(deployed.stderr)")
                let running = try Self.containerEnvironment(p, deployment)
                #expect(running["BRANCH"] == branch && running["FROM_CMD"] == branch && running["OTHER"] == branch)
                #expect(running["FROM_ENV"] == env["FROM_ENV"] && running["FROM_VAR"] == fromVar)
                noMarker("deploy on \(branch)")
                #expect(try p.git(["checkout", "-q", "main"]).status == 0)
            }
            #expect(branches.count >= 12, "git accepted \(branches.count) of the names")

            // Through the hooks and the agent: a commit on every hostile branch is built by
            // the agent (its environment holds a hostile value too); a push of three of them
            // is built, pushed and deployed.
            let remote = dir + "/remote.git"
            #expect(try sh(["git", "init", "-q", "--bare", remote], cwd: dir).status == 0)
            #expect(try p.git(["remote", "add", "origin", remote]).status == 0)
            #expect(try p.slipway(["hooks", "install"]).status == 0)
            let agentEnv = ["FROM_ENV": value(0)]
            for (n, branch) in branches.enumerated() {
                #expect(try p.git(["checkout", "-q", branch], env: agentEnv).status == 0)
                try p.write("app/hello.txt", "commit \(n)\n")
                #expect(try p.git(["commit", "-qam", "hostile \(n)"], env: agentEnv).status == 0)
                _ = try p.waitIdle()
                #expect(
                    try p.imageExists(try p.describe()),
                    "\(branch): the agent built the commit\n\(p.log().suffix(2000))"
                )
            }
            for branch in branches.prefix(3) {
                #expect(try p.git(["checkout", "-q", branch], env: agentEnv).status == 0)
                let push = try p.git(["push", "-q", "origin", branch], env: agentEnv)
                #expect(push.status == 0, "\(push.stderr)")
                _ = try p.waitIdle()
                let tag = BranchTag.tag(for: branch)
                #expect(
                    try AgentHookIntegrationTests.registryTags(registry, p.repo).contains(tag),
                    "\(p.log().suffix(2000))"
                )
            }
            let s = try #require(try p.status())
            #expect(s.last.first { $0.pipeline == "push" }?.result?.ok == true, "\(p.log().suffix(2000))")
            noMarker("the hooks and the agent")
        }
    }

    /// A `$(…)` that fails is an error at its place: nothing is built, nothing pushed (never
    /// `image:false`).
    @Test(arguments: [
        "$(git describe --always)", "$(exit 3)", "$(missing-command-of-slipway)", "$(echo err >&2; exit 1)",
    ])
    func aFailingExpressionBuildsAndPushesNothing(expression: String) throws {
        let registry = try TestRegistry()
        defer { registry.stop() }
        try withTemporaryDirectory { dir in
            let name = UUID().uuidString.lowercased().prefix(12)
            let image = "\(registry.host)/\(name)/app"
            try "FROM slipway/busybox\n".write(toFile: dir + "/Dockerfile", atomically: true, encoding: .utf8)
            try """
            version: v2beta1
            name: failing
            images:
              app:
                image: \(image)
                tags: ["\(expression)"]
            """.write(toFile: dir + "/devspace.yaml", atomically: true, encoding: .utf8)
            // No git repository here: a source archive, or a checkout without .git.
            let r = try SlipwayBinary.run(["build"], in: dir, env: ["KUBECONFIG": dir + "/none"])
            #expect(r.status == 1)
            #expect(r.stderr.hasPrefix("devspace.yaml:6:12: images.app.tags[0]: \(expression) failed"), "\(r.stderr)")
            let images = try sh(["docker", "images", "--format", "{{.Repository}}:{{.Tag}}", image], cwd: "/")
            #expect(images.stdout.isEmpty, "built: \(images.stdout)")
            #expect(try AgentHookIntegrationTests.registryTags(registry, image).isEmpty)
            #expect(!FileManager.default.fileExists(atPath: dir + "/.devspace/slipway/builds.json"))
        }
    }
}
