import Foundation
import SlipwayTestSupport
import Testing

@testable import SlipwayCore

/// Containers labelled as slipway's deployers label them, made with the docker CLI (not the
/// code under test) under a config path no other test uses, and removed at the end.
struct LabelledContainers {
    /// The config the containers claim to come from (it need not exist).
    let config: String
    let marker = "dev.slipway.selection-test=" + UUID().uuidString.lowercased()
    var names: [String] = []

    init(config: String = "/nonexistent/\(UUID().uuidString.lowercased())/devspace.yaml") {
        self.config = config
    }

    /// A unique engine name for `base`.
    func name(_ base: String) -> String { "\(base)-\(marker.suffix(8))" }

    /// `docker run -d --network none slipway/busybox sleep 300` (or `docker create` when not
    /// `start`) with the labels of a slipway deployment; returns the container's ID.
    @discardableResult
    func make(
        _ base: String,
        deployment: String = "api",
        container: String = "main",
        branch: String = "",
        role: String? = nil,
        user: [String: String] = [:],
        workdir: String? = nil,
        image: String = "slipway/busybox:latest",
        start: Bool = true
    ) throws -> String {
        var args = ["docker", start ? "run" : "create"]
        if start { args.append("-d") }
        args += ["--network", "none", "--name", name(base), "--label", marker]
        var labels = [
            "dev.slipway.config": config, "dev.slipway.project": "p", "dev.slipway.deployment": deployment,
            "dev.slipway.container": container, "dev.slipway.branch": branch,
        ]
        if let role { labels["dev.slipway.role"] = role }
        for (k, v) in user { labels["dev.slipway.user.\(k)"] = v }
        for (k, v) in labels.sorted(by: { $0.key < $1.key }) { args += ["--label", "\(k)=\(v)"] }
        if let workdir { args += ["--workdir", workdir] }
        args += [image, "sleep", "300"]
        let out = try sh(args, cwd: "/")
        guard out.status == 0 else { throw TestSupportError("docker \(args): \(out.stderr)") }
        return out.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func removeAll() {
        _ = try? sh(
            ["sh", "-c", "docker ps -aq --filter \"label=$1\" | xargs -r docker rm -f >/dev/null", "sh", marker],
            cwd: "/"
        )
    }
}

@Suite(.requiresDockerEngine) struct ContainerSelectionTests {
    let resolver = ContainerResolver(api: DockerAPI())

    func names(_ selector: ContainerSelector) throws -> [String] {
        try resolver.matches(selector).map(\.name)
    }

    @Test func eachSelectorFormFindsItsContainers() throws {
        let c = LabelledContainers()
        defer { c.removeAll() }
        let a = try c.make("a", user: ["tier": "web"], workdir: "/srv")
        try c.make("b", deployment: "worker", user: ["tier": "jobs"])
        let feature = try c.make("c", branch: "feature-x")
        try c.make(
            "d",
            container: "sidecar",
            role: "app",
            user: ["app.kubernetes.io/component": "api"],
            image: "docker.io/slipway/busybox"
        )
        try c.make("pod", container: "pod", role: "infra")
        let (na, nb, nc, nd) = (c.name("a"), c.name("b"), c.name("c"), c.name("d"))
        let scope = ContainerSelector(configPath: c.config)

        // The scope alone: the plain environment's app containers (a pod's infra container is none).
        #expect(try names(scope) == [na, nb, nd])
        var s = scope
        s.containerName = "main"
        #expect(try names(s) == [na, nb])
        s = scope
        s.labels = try LabelRequirement.parse("tier=web")
        #expect(try names(s) == [na])
        s.labels = try LabelRequirement.parse("tier!=web")
        #expect(try names(s) == [nb, nd])
        s.labels = try LabelRequirement.parse("tier")
        #expect(try names(s) == [na, nb])
        s.labels = try LabelRequirement.parse("!tier")
        #expect(try names(s) == [nd])
        s.labels = try LabelRequirement.parse("dev.slipway.deployment=api")
        #expect(try names(s) == [na, nd])
        s.labels = try LabelRequirement.parse("app.kubernetes.io/component=api, dev.slipway.container==sidecar")
        #expect(try names(s) == [nd])
        s = scope
        for image in ["slipway/busybox", "slipway/busybox:latest", "docker.io/slipway/busybox:latest"] {
            s.image = image
            #expect(try names(s) == [na, nb, nd], "\(image)")
        }
        s.image = "slipway/busybox:1.0"
        #expect(try names(s).isEmpty)
        s.image = "slipway/other"
        #expect(try names(s).isEmpty)
        // A branch environment is its own scope.
        s = scope
        s.branch = "feature-x"
        s.containerName = "main"
        #expect(try names(s) == [nc])
        // --container: any engine container, by name or ID prefix, whatever the scope.
        #expect(try names(ContainerSelector(container: nc)) == [nc])
        #expect(try resolver.matches(ContainerSelector(container: String(feature.prefix(12)))).map(\.id) == [feature])
        // What a target needs: the working directory (/ when the image sets none) and labels.
        let found = try resolver.matches(ContainerSelector(container: a))
        #expect(found.first?.workingDirectory == "/srv" && found.first?.running == true)
        #expect(try resolver.matches(ContainerSelector(container: nb)).first?.workingDirectory == "/")
        #expect(found.first?.deployment == "api" && found.first?.containerName == "main")
    }

    @Test func noMatchSaysWhatCameClose() throws {
        let c = LabelledContainers()
        defer { c.removeAll() }
        try c.make("stopped", container: "web", start: false)
        try c.make("branch", container: "main", branch: "feature-x")
        var s = ContainerSelector(containerName: "web", configPath: c.config)
        #expect(throws: ContainerSelectionError.self) { try resolver.running(s, wait: false) }
        do throws(ContainerSelectionError) {
            _ = try resolver.running(s, wait: false)
        } catch {
            let text = error.description
            #expect(text.contains("no running container matches --container-name web"), "\(text)")
            #expect(text.contains("\(c.name("stopped")) (") && text.contains("is not running"), "\(text)")
            #expect(text.contains("--wait"), "\(text)")
        }
        s.containerName = "main"
        do throws(ContainerSelectionError) {
            _ = try resolver.running(s, wait: false)
            Issue.record("expected no match")
        } catch {
            #expect(
                error.description.contains(
                    "\(c.name("branch")) is in the branch environment feature-x (--branch-env feature-x)"
                ),
                "\(error)"
            )
        }
        // --container names an engine container; a deployment's container name is -c.
        do throws(ContainerSelectionError) {
            _ = try resolver.running(ContainerSelector(container: "main-\(UUID().uuidString)"), wait: false)
            Issue.record("expected no match")
        } catch {
            #expect(error.description.contains("the engine has no container of that name or ID"), "\(error)")
        }
    }

    @Test func waitSeesAContainerStart() async throws {
        let c = LabelledContainers()
        defer { c.removeAll() }
        try c.make("late", container: "late", start: false)
        let selector = ContainerSelector(containerName: "late", configPath: c.config)
        let resolver = self.resolver
        async let found = onOwnThread {
            (
                Result { () throws(ContainerSelectionError) in
                    try resolver.running(selector, wait: true, timeout: .seconds(60))
                }, ContinuousClock.now
            )
        }
        try await Task.sleep(for: .milliseconds(700))
        let started = try sh(["docker", "start", c.name("late")], cwd: "/")
        let startReturned = ContinuousClock.now
        #expect(started.status == 0, "\(started.stderr)")
        let (result, returned) = await found
        let containers = try result.get()
        #expect(containers.map(\.name) == [c.name("late")] && containers.first?.running == true)
        // Seen at the start's event (or the next look, 2 s later), whatever the machine's load
        // made `docker start` itself take.
        #expect(returned - startReturned < .seconds(5), "\(returned - startReturned) after docker start returned")

        // Nothing comes: the wait ends at its limit and says so.
        let none = ContainerSelector(containerName: "never", configPath: c.config)
        let t0 = ContinuousClock.now
        #expect(
            throws: ContainerSelectionError.timedOut(
                selector: none.description,
                scope: none.scopeDescription,
                seconds: 2
            )
        ) {
            try resolver.running(none, wait: true, timeout: .seconds(2))
        }
        #expect(ContinuousClock.now - t0 < .seconds(15))
    }

    /// Dev mode stops the original and runs a dev container with the same labels: a command
    /// that acts on one container (`enter`, `logs`) finds the running one, not an ambiguity.
    @Test func oneContainerIsTheRunningOneAmongStoppedTwins() throws {
        let c = LabelledContainers()
        defer { c.removeAll() }
        let original = try c.make("a-original", user: ["tier": "web"])
        #expect(try sh(["docker", "kill", original], cwd: "/").status == 0)
        let dev = try c.make("b-dev", user: ["tier": "web"])
        let chosen = try resolver.one(ContainerSelector(configPath: c.config), loaded: nil)
        #expect(chosen.id == dev && chosen.running)
        try c.make("c-other", deployment: "worker")
        #expect(throws: ContainerSelectionError.self) {
            try resolver.one(ContainerSelector(configPath: c.config), loaded: nil)
        }
        let asked = try resolver.one(ContainerSelector(configPath: c.config), loaded: nil) { _, options in
            options.firstIndex { $0.hasPrefix(c.name("c-other")) }
        }
        #expect(asked.name == c.name("c-other"))
    }

    @Test(arguments: [
        ("nginx", "nginx", true), ("nginx", "nginx:1.27", true), ("nginx", "docker.io/library/nginx:1", true),
        ("nginx:latest", "nginx", true), ("nginx:latest", "nginx:latest", true), ("nginx:1.27", "nginx:1.26", false),
        ("nginx:1.27", "nginx", false), ("ghcr.io/o/app", "ghcr.io/o/app:abc", true), ("ghcr.io/o/app", "o/app", false),
        ("localhost:5000/app", "localhost:5000/app:v1", true), ("localhost:5000/app:v1", "localhost:5000/app:v1", true),
        ("app:dev-###", "app:dev-abc", true), ("app:dev-###", "app:dev-a1c", false), ("app", "application", false),
    ])
    func imagesMatchAsDevSpaceComparesThem(_ selector: String, _ image: String, _ expected: Bool) {
        #expect(ContainerSelector.imageMatches(selector: selector, image: image) == expected, "\(selector) ~ \(image)")
    }

    @Test func labelSelectorsParseAsKubernetesEqualityTerms() throws {
        let terms = try LabelRequirement.parse("a=1, b==2,c!=3,d,!e,f=")
        #expect(terms.map(\.description) == ["a=1", "b=2", "c!=3", "d", "!e", "f="])
        #expect(terms[0].engineKey == "dev.slipway.user.a")
        #expect(try LabelRequirement.parse("dev.slipway.deployment=api")[0].engineKey == "dev.slipway.deployment")
        for bad in ["a in (x,y)", "a=1,,b=2", "=x", "", "a b=c"] {
            #expect(throws: ContainerSelectionError.self, "\(bad)") { try LabelRequirement.parse(bad) }
        }
    }
}

/// The component chart's pod labels reach its local containers, where `-l` finds them.
@Suite struct LocalPodLabelTests {
    @Test func podLabelsAreKeptAsUserLabels() async throws {
        let loaded = try await loadConfig(
            """
            version: v2beta1
            name: labels
            deployments:
              api:
                helm:
                  values:
                    labels: {tier: backend}
                    containers:
                      - image: slipway/busybox
                        name: web
            """
        )
        let values = try #require(loaded.config.deployments.first?.spec["values"])
        let manifests = try ComponentChart.render(
            values: values,
            release: "api",
            deployment: "api",
            origin: ValueOrigin(layers: [("devspace.yaml", values)])
        )
        let pod = try LocalPod.plan(manifests: manifests, loaded: loaded, deployment: "api", branch: nil)
        let labels = try #require(pod.containers.first?.spec.labels)
        #expect(labels["dev.slipway.user.app.kubernetes.io/component"] == "api")
        #expect(labels["dev.slipway.user.tier"] == "backend")
        #expect(labels["dev.slipway.container"] == "web" && labels["dev.slipway.role"] == "app")
        #expect(pod.infra.spec.labels["dev.slipway.user.tier"] == nil)
    }
}
