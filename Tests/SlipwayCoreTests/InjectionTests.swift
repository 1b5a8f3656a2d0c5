import Foundation
import SlipwayTestSupport
import Testing

@testable import SlipwayCore

// Tag injection into kubectl manifests, inline manifests and helm values, as DevSpace does it
// (and without its repository+tag bug). Rendered manifests are checked with kubernetes-validate.
@Suite struct InjectionTests {
    static let config = """
        version: v2beta1
        name: inject
        images:
          app:
            image: ghcr.io/acme/app
          sidecar:
            image: ghcr.io/acme/sidecar
            tags: [fallback-#]
        deployments:
          manifests:
            kubectl:
              manifests: [k8s/]
              patches:
                - target: {kind: Deployment, name: web}
                  op: replace
                  path: spec.replicas
                  value: 3
                - target: {kind: ConfigMap}
                  op: add
                  path: data.extra
                  value: patched
              inlineManifest: |
                apiVersion: v1
                kind: ConfigMap
                metadata:
                  name: versions
                  labels:
                    app-tag: ${runtime.images.app.tag}
                data:
                  image: ${runtime.images.app}
                  untouched: ghcr.io/acme/app
          chart:
            helm:
              chart: {name: ./chart}
              valuesFiles: [values-extra.yaml]
              values:
                legacy:
                  repository: ghcr.io/acme/app
                  tag: tag(app)
                both: image(app)@tag(sidecar)
                override: from-inline
          kust:
            kubectl:
              manifests: [kust]
              kustomize: true
          frozen:
            updateImageTags: false
            helm:
              chart: {name: ./chart}
        """

    static let deployment = """
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: web}
        spec:
          selector: {matchLabels: {app: web}}
          template:
            metadata: {labels: {app: web}}
            spec:
              initContainers:
                - name: init
                  image: ghcr.io/acme/sidecar:old
              containers:
                - name: app
                  image: ghcr.io/acme/app
                  env:
                    - {name: UPSTREAM, value: ghcr.io/acme/app}
                - name: sidecar
                  image: ghcr.io/acme/sidecar
                - name: other
                  image: docker.io/library/busybox:1.36
        """

    func loaded(_ dir: String) async throws -> LoadedConfig {
        try Self.config.write(toFile: dir + "/devspace.yaml", atomically: true, encoding: .utf8)
        try FileManager.default.createDirectory(atPath: dir + "/k8s", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: dir + "/chart", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: dir + "/kust", withIntermediateDirectories: true)
        try "resources: [pod.yaml]\ncommonLabels: {team: web}\n".write(
            toFile: dir + "/kust/kustomization.yaml",
            atomically: true,
            encoding: .utf8
        )
        try
            "apiVersion: v1\nkind: Pod\nmetadata: {name: one}\nspec:\n  containers:\n  - {name: app, image: ghcr.io/acme/app}\n"
            .write(toFile: dir + "/kust/pod.yaml", atomically: true, encoding: .utf8)
        try Self.deployment.write(toFile: dir + "/k8s/deployment.yaml", atomically: true, encoding: .utf8)
        try "image: ghcr.io/acme/app\noverride: from-chart\nnested: {list: [{image: ghcr.io/acme/sidecar}]}\n".write(
            toFile: dir + "/chart/values.yaml",
            atomically: true,
            encoding: .utf8
        )
        try "override: from-file\nsidecars:\n  - image: ghcr.io/acme/sidecar:whatever\n".write(
            toFile: dir + "/values-extra.yaml",
            atomically: true,
            encoding: .utf8
        )
        return try await ConfigLoader.load(LoadOptions(workingDirectory: dir, environment: ["HOME": dir]))
    }

    func renderer(_ loaded: LoadedConfig) -> ClusterRenderer {
        // app was built in this run; sidecar only has its config tag (the `#` becomes `x`).
        let injector = TagInjector(loaded: loaded, run: ["app": .init(image: "ghcr.io/acme/app", tag: "t1")])
        return ClusterRenderer(
            loaded: loaded,
            injector: injector,
            namespace: "dev",
            environment: ProcessInfo.processInfo.environment
        )
    }

    @Test(.requiresKubernetesValidate) func kubectlManifestsGetTagsOnImageFieldsOnly() async throws {
        try await withTemporaryDirectory { dir in
            let loaded = try await loaded(dir)
            let deployment = try #require(loaded.config.deployments.first { $0.name == "manifests" })
            let docs = try await renderer(loaded).kubectlManifests(deployment)
            #expect(docs.count == 2)
            let spec = try #require(docs[0]["spec"]?["template"]?["spec"])
            let containers = try #require(spec["containers"]?.items)
            #expect(containers[0]["image"]?.text == "ghcr.io/acme/app:t1")
            #expect(containers[0]["env"]?.items?.first?["value"]?.text == "ghcr.io/acme/app", "only fields named image")
            #expect(containers[1]["image"]?.text == "ghcr.io/acme/sidecar:fallback-x")
            #expect(containers[2]["image"]?.text == "docker.io/library/busybox:1.36")
            // Nothing built or cached: a value's own tag stays (DevSpace's `legacy.resolveImage`).
            #expect(spec["initContainers"]?.items?.first?["image"]?.text == "ghcr.io/acme/sidecar:old")
            #expect(docs[0]["spec"]?["replicas"]?.text == "3", "kubectl.patches applied to the Deployment")
            #expect(docs[0]["data"] == nil)
            let configMap = docs[1]
            #expect(configMap["data"]?["extra"]?.text == "patched")
            #expect(configMap["metadata"]?["labels"]?["app-tag"]?.text == "t1")
            #expect(configMap["data"]?["image"]?.text == "ghcr.io/acme/app:t1")
            #expect(configMap["data"]?["untouched"]?.text == "ghcr.io/acme/app")

            let file = dir + "/rendered.yaml"
            try YAMLEmitter().emit(docs).write(toFile: file, atomically: true, encoding: .utf8)
            let validated = try sh(["kubernetes-validate", "--strict", file], cwd: dir)
            #expect(validated.status == 0, "\(validated.stdout)\(validated.stderr)")
        }
    }

    @Test func helmValuesMergeAndInjectWithoutTheRepositoryTagBug() async throws {
        try await withTemporaryDirectory { dir in
            let loaded = try await loaded(dir)
            let chart = try #require(loaded.config.deployments.first { $0.name == "chart" })
            let (values, release, command) = try renderer(loaded).helm(chart)
            #expect(values["image"]?.text == "ghcr.io/acme/app:t1")
            #expect(values["nested"]?["list"]?.items?.first?["image"]?.text == "ghcr.io/acme/sidecar:fallback-x")
            // Nothing built or cached: a value's own tag stays (DevSpace's `legacy.resolveImage`).
            #expect(values["sidecars"]?.items?.first?["image"]?.text == "ghcr.io/acme/sidecar:whatever")
            #expect(values["override"]?.text == "from-inline")
            // A repository beside a tag key stays a repository; the tag helper still works.
            #expect(values["legacy"]?["repository"]?.text == "ghcr.io/acme/app")
            #expect(values["legacy"]?["tag"]?.text == "t1")
            #expect(values["both"]?.text == "ghcr.io/acme/app@fallback-x")
            #expect(
                command == [
                    "helm", "upgrade", "chart", dir + "/chart", "--install", "--namespace", "dev", "--values",
                    "VALUES_FILE",
                ]
            )
            #expect(release == "chart")
            let branch = try renderer(loaded).helm(chart, releaseSuffix: "-fix-typo", scope: ["--kube-context", "c"])
            #expect(branch.release == "chart-fix-typo")
            #expect(
                branch.command == [
                    "helm", "upgrade", "chart-fix-typo", dir + "/chart", "--install", "--kube-context", "c", "--values",
                    "VALUES_FILE",
                ]
            )

            let frozen = try #require(loaded.config.deployments.first { $0.name == "frozen" })
            #expect(try renderer(loaded).helm(frozen).values["image"]?.text == "ghcr.io/acme/app")
        }
    }
}

extension InjectionTests {
    @Test func aPatchWhoseTargetMatchesNothingIsAnError() async throws {
        try await withTemporaryDirectory { dir in
            let loaded = try await loaded(dir)
            var deployment = try #require(loaded.config.deployments.first { $0.name == "manifests" })
            deployment.spec["patches"] = try YAMLParser().parse(
                "- target: {kind: Service, name: nope}\n  op: remove\n  path: spec\n"
            )
            await #expect(throws: DeployError.self) { try await renderer(loaded).kubectlManifests(deployment) }
            do throws(DeployError) {
                _ = try await renderer(loaded).kubectlManifests(deployment)
            } catch {
                #expect(
                    error.message.contains(
                        "patches[0]: its target (kind=Service, name=nope) matches none of the manifests"
                    ),
                    "\(error)"
                )
            }
        }
    }
}

extension InjectionTests {
    /// `kustomize: true` runs the real `kubectl kustomize` (it needs no cluster); the tags go
    /// into its output.
    @Test func kustomizeOutputGetsTheTags() async throws {
        try await withTemporaryDirectory { dir in
            let loaded = try await loaded(dir)
            let deployment = try #require(loaded.config.deployments.first { $0.name == "kust" })
            let docs = try await renderer(loaded).kubectlManifests(deployment)
            #expect(docs.count == 1)
            #expect(docs.first?["metadata"]?["labels"]?["team"]?.text == "web", "kustomize ran")
            #expect(docs.first?["spec"]?["containers"]?.items?.first?["image"]?.text == "ghcr.io/acme/app:t1")
        }
    }
}
