import Foundation
import SlipwayTestSupport
import Testing

@testable import SlipwayCore

/// Loads `text` as `devspace.yaml` in a fresh directory.
func loadConfig(
    _ text: String,
    vars: [(String, String)] = [],
    profiles: [String] = [],
    env: [String: String] = [:],
    files: [String: String] = [:]
) async throws -> LoadedConfig {
    try await withTemporaryDirectory { dir in
        try text.write(toFile: dir + "/devspace.yaml", atomically: true, encoding: .utf8)
        for (name, content) in files {
            try content.write(toFile: dir + "/" + name, atomically: true, encoding: .utf8)
        }
        var environment = ["PATH": "/usr/bin:/bin", "HOME": "/nonexistent-home"]
        for (k, v) in env { environment[k] = v }
        return try await ConfigLoader.load(
            LoadOptions(workingDirectory: dir, environment: environment, vars: vars, profiles: profiles)
        )
    }
}

/// The diagnostics of a config that must fail to load.
func loadErrors(
    _ text: String,
    vars: [(String, String)] = [],
    profiles: [String] = [],
    env: [String: String] = [:],
    files: [String: String] = [:]
) async throws -> [ConfigDiagnostic] {
    do {
        _ = try await loadConfig(text, vars: vars, profiles: profiles, env: env, files: files)
        Issue.record("expected the config to fail to load")
        return []
    } catch let error as ConfigError {
        return error.diagnostics
    }
}

@Suite struct VariableTests {
    @Test func valuesDefaultsAndTypes() async throws {
        let loaded = try await loadConfig(
            """
            version: v2beta1
            name: vars-test
            vars:
              REGISTRY: ghcr.io/acme
              REPLICAS: 3
              DEBUG:
                value: true
              FROM_ENV:
                source: env
                default: fallback
              NESTED:
                default: ${REGISTRY}/nested
            deployments:
              web:
                helm:
                  values:
                    image: ${REGISTRY}/app
                    replicas: ${REPLICAS}
                    debug: ${DEBUG}
                    label: replicas-${REPLICAS}
                    env: ${FROM_ENV}
                    nested: ${NESTED}
                    forced: $!{REPLICAS}
                    escaped: $${REGISTRY}
                    runtime: ${runtime.images.app.tag}
            """
        )
        let values = try #require(loaded.tree["deployments"]?["web"]?["helm"]?["values"])
        #expect(values["image"]?.scalar == "ghcr.io/acme/app")
        #expect(values["replicas"]?.scalar == "3")
        #expect(values["replicas"]?.resolved == .int)
        #expect(values["debug"]?.resolved == .bool)
        #expect(values["label"]?.scalar == "replicas-3")
        #expect(values["label"]?.resolved == .string)
        #expect(values["env"]?.scalar == "fallback")
        #expect(values["nested"]?.scalar == "ghcr.io/acme/nested")
        #expect(values["forced"]?.scalar == "3")
        #expect(values["forced"]?.resolved == .string)
        #expect(values["escaped"]?.scalar == "${REGISTRY}")
        #expect(values["runtime"]?.scalar == "${runtime.images.app.tag}")
        #expect(loaded.tree["vars"] == nil)
    }

    @Test func precedenceCliOverEnvOverDefault() async throws {
        let text = """
            version: v2beta1
            name: precedence
            vars:
              TAG:
                default: from-default
            images:
              app:
                image: acme/app
                tags: ["${TAG}"]
            """
        let byDefault = try await loadConfig(text)
        #expect(byDefault.config.images[0].tags == ["from-default"])
        let byEnv = try await loadConfig(text, env: ["TAG": "from-env"])
        #expect(byEnv.config.images[0].tags == ["from-env"])
        let byFlag = try await loadConfig(text, vars: [("TAG", "from-flag")], env: ["TAG": "from-env"])
        #expect(byFlag.config.images[0].tags == ["from-flag"])
    }

    @Test func commandVariablesAndExpressions() async throws {
        let loaded = try await loadConfig(
            """
            version: v2beta1
            name: commands
            vars:
              VERSION:
                command: echo 1.2.3
              WORDS:
                command: printf
                args: ["%s-%s", "a", "b"]
            images:
              app:
                image: acme/app
                tags: ["${VERSION}", "$(echo expr)", "${WORDS}"]
            """
        )
        #expect(loaded.config.images[0].tags == ["1.2.3", "expr", "a-b"])
    }

    @Test func predefinedVariables() async throws {
        let loaded = try await loadConfig(
            """
            version: v2beta1
            name: predefined
            images:
              app:
                image: acme/${DEVSPACE_NAME}
                tags: ["${DEVSPACE_RANDOM}", "${devspace.name}", "x${DEVSPACE_NAMESPACE}"]
            """
        )
        let image = loaded.config.images[0]
        #expect(image.image == "acme/predefined")
        #expect(image.tags[0].count == 6 && image.tags[0].allSatisfy(\.isLetter))
        #expect(image.tags[1] == "predefined")
        #expect(image.tags[2] == "x")
    }

    @Test func onlyUsedVariablesAreResolved() async throws {
        // UNUSED asks a question; DevSpace (and slipway) only resolve variables that are used.
        let loaded = try await loadConfig(
            """
            version: v2beta1
            name: unused
            vars:
              UNUSED:
                question: never asked?
            images:
              app:
                image: acme/app
            """
        )
        #expect(loaded.config.images.count == 1)
    }

    /// Failures are reported where the variable is used, except a definition that refers to
    /// itself, which is reported at the definition.
    @Test(arguments: [
        ("tags: [\"${NOPE}\"]", "${NOPE} is not a variable", "images.app.tags[0]", 15, 12),
        ("tags: [\"${Q}\"]", "needs an answer to \"Which version?\"", "images.app.tags[0]", 15, 12),
        ("tags: [\"${ENVONLY}\"]", "environment variable ENVONLY, which is not set", "images.app.tags[0]", 15, 12),
        ("tags: [\"${FAILS}\"]", "exited with status 3", "images.app.tags[0]", 15, 12),
        ("tags: [\"${SELF}\"]", "refers to itself", "vars.SELF.default", 11, 14),
    ])
    func variableFailuresNameTheVariableAndPosition(
        line: String,
        message: String,
        path: String,
        errorLine: Int,
        errorColumn: Int
    ) async throws {
        let errors = try await loadErrors(
            """
            version: v2beta1
            name: failing
            vars:
              Q:
                question: Which version?
              ENVONLY:
                source: env
              FAILS:
                command: exit 3
              SELF:
                default: ${SELF}
            images:
              app:
                image: acme/app
                \(line)
            """
        )
        let first = try #require(errors.first)
        #expect(first.mark == Mark(line: errorLine, column: errorColumn))
        #expect(first.path == path)
        #expect(first.message.contains(message), "\(first.message)")
    }
}

@Suite struct ProfileTests {
    let base = """
        version: v2beta1
        name: profiles
        images:
          app:
            image: acme/app
            tags: [dev]
          worker:
            image: acme/worker
        deployments:
          web:
            kubectl:
              manifests: [k8s/web.yaml]
        profiles:
          - name: base-prod
            merge:
              images:
                app:
                  target: production
          - name: prod
            parent: base-prod
            patches:
              - op: replace
                path: images.app.tags[0]
                value: stable
              - op: add
                path: images.app.tags
                value: latest
              - op: remove
                path: images.worker
              - op: add
                path: deployments.web.kubectl.manifests
                value: k8s/prod.yaml
          - name: no-images
            replace:
              images: {}
          - name: ci
            activation:
              - env:
                  CI: "true"
            merge:
              images:
                app:
                  skipPush: true
          - name: broken
            patches:
              - op: replace
                path: images.nope.image
                value: x
        """

    @Test func parentsMergeAndPatches() async throws {
        let loaded = try await loadConfig(base, profiles: ["prod"])
        #expect(loaded.appliedProfiles == ["base-prod", "prod"])
        let app = try #require(loaded.config.image("app"))
        #expect(app.tags == ["stable", "latest"])
        #expect(app.target == "production")
        #expect(loaded.config.image("worker") == nil)
        #expect(
            loaded.tree["deployments"]?["web"]?["kubectl"]?["manifests"]?.items?.map(\.scalar) == [
                "k8s/web.yaml", "k8s/prod.yaml",
            ]
        )
        #expect(loaded.tree["profiles"] == nil)
    }

    @Test func replaceSwapsASection() async throws {
        let loaded = try await loadConfig(base, profiles: ["no-images"])
        #expect(loaded.config.images.isEmpty)
    }

    @Test func activationByEnvironment() async throws {
        let off = try await loadConfig(base)
        #expect(off.config.image("app")?.skipPush == false)
        let on = try await loadConfig(base, env: ["CI": "true"])
        #expect(on.config.image("app")?.skipPush == true)
        #expect(on.appliedProfiles == ["ci"])
    }

    @Test func unknownProfileAndBadPatchAreClearErrors() async throws {
        let unknown = try await loadErrors(base, profiles: ["staging"])
        #expect(unknown.first?.message.contains("no profile named \"staging\"") == true)
        let broken = try await loadErrors(base, profiles: ["broken"])
        #expect(broken.first?.path == "profiles[broken].patches[0].path")
        #expect(broken.first?.mark == Mark(line: 47, column: 15))
    }

    @Test(arguments: [
        ("images.app.tags[0]", [ProfileApplier.Segment.key("images"), .key("app"), .key("tags"), .index(0)]),
        ("/images/app/tags/-", [.key("images"), .key("app"), .key("tags"), .append]),
        ("dev[name=web].sync", [.key("dev"), .match("name", "web"), .key("sync")]),
        ("images[\"my.app\"]", [.key("images"), .key("my.app")]),
    ])
    func patchPaths(path: String, segments: [ProfileApplier.Segment]) {
        #expect(ProfileApplier.parsePath(path) == segments)
    }
}

@Suite struct AdjustmentTests {
    @Test func imageTagMovesToTagsAndDefaultsAreExplicit() async throws {
        let loaded = try await loadConfig(
            """
            version: v2beta1
            name: adjust
            images:
              app:
                image: docker.io/library/nginx:1.25
                tags: [extra]
              registry:
                image: localhost:5000/team/app
            """
        )
        let app = try #require(loaded.config.image("app"))
        #expect(app.image == "nginx")
        #expect(app.tags == ["1.25", "extra"])
        #expect(app.dockerfile == "./Dockerfile")
        #expect(app.context == "./")
        let registry = try #require(loaded.config.image("registry"))
        #expect(registry.image == "localhost:5000/team/app")
        #expect(registry.tags.isEmpty)
    }

    @Test func everyImageFieldDecodes() async throws {
        let loaded = try await loadConfig(
            """
            version: v2beta1
            name: fields
            images:
              app:
                image: ghcr.io/acme/app
                tags: [v1, dev-###]
                dockerfile: ./docker/Dockerfile
                context: ./src
                buildArgs: {A: "1", B: null}
                target: runtime
                network: host
                entrypoint: [/app]
                cmd: [serve, --port, "80"]
                appendDockerfileInstructions: [USER nobody]
                rebuildStrategy: ignoreContextChanges
                skipPush: true
                createPullSecret: false
                docker: {preferMinikube: false, disableFallback: true, useCli: true, args: [--pull]}
              custom:
                image: ghcr.io/acme/custom
                custom:
                  command: ./build.sh
                  args: [--fast]
                  appendArgs: [--push]
                  imageFlag: --image
                  imageTagOnly: true
                  skipImageArg: false
                  onChange: ["src/**"]
            """
        )
        let app = try #require(loaded.config.image("app"))
        #expect(app.tags == ["v1", "dev-###"])
        #expect(app.dockerfile == "./docker/Dockerfile")
        #expect(app.context == "./src")
        #expect(app.buildArgs == [.init(name: "A", value: "1"), .init(name: "B", value: nil)])
        #expect(app.target == "runtime")
        #expect(app.network == "host")
        #expect(app.entrypoint == ["/app"])
        #expect(app.cmd == ["serve", "--port", "80"])
        #expect(app.appendDockerfileInstructions == ["USER nobody"])
        #expect(app.rebuildStrategy == .ignoreContextChanges)
        #expect(app.skipPush)
        #expect(app.createPullSecret == false)
        #expect(
            app.docker
                == .init(
                    preferMinikube: false,
                    disableFallback: true,
                    useCli: true,
                    useBuildKit: false,
                    args: ["--pull"]
                )
        )
        let custom = try #require(loaded.config.image("custom")?.custom)
        #expect(
            custom
                == .init(
                    command: "./build.sh",
                    args: ["--fast"],
                    appendArgs: ["--push"],
                    imageFlag: "--image",
                    imageTagOnly: true,
                    skipImageArg: false,
                    onChange: ["src/**"]
                )
        )
    }
}

@Suite struct ImportTests {
    @Test func localImportsMergeAndMainWins() async throws {
        let loaded = try await loadConfig(
            """
            version: v2beta1
            name: importer
            imports:
              - path: shared.yaml
            images:
              app:
                image: acme/app
            """,
            files: [
                "shared.yaml": """
                version: v2beta1
                name: shared
                images:
                  app:
                    image: acme/ignored
                  sidecar:
                    image: acme/sidecar
                pipelines:
                  build: build_images --all
                """
            ]
        )
        #expect(loaded.config.images.map(\.key) == ["app", "sidecar"])
        #expect(loaded.config.image("app")?.image == "acme/app")
        #expect(loaded.config.pipeline("build")?.run == "build_images --all")
    }

    @Test func missingAndGitImportsAreClear() async throws {
        let missing = try await loadErrors("version: v2beta1\nname: x-y\nimports:\n  - path: nope.yaml\n")
        #expect(missing.first?.mark == Mark(line: 4, column: 11))
        #expect(missing.first?.message.contains("does not exist") == true)
        let git = try await loadErrors(
            "version: v2beta1\nname: x-y\nimports:\n  - git: https://example.invalid/x.git\n"
        )
        #expect(git.first?.message.contains("not supported by slipway yet") == true)
    }
}

@Suite struct DevSpaceCompatibilityDetailTests {
    @Test func byteOrderMarkIsSkipped() async throws {
        let loaded = try await loadConfig("\u{FEFF}version: v2beta1\nname: bom-file\n")
        #expect(loaded.config.name == "bom-file")
    }

    @Test func yaml11BooleansReadAsDevSpaceReadsThem() async throws {
        let loaded = try await loadConfig(
            "version: v2beta1\nname: bools\nimages:\n  a:\n    image: x/a\n    skipPush: yes\n  b:\n    image: x/b\n    skipPush: off\n"
        )
        #expect(loaded.config.image("a")?.skipPush == true)
        #expect(loaded.config.image("b")?.skipPush == false)
    }

    @Test func patchesFollowDevSpace() async throws {
        let text = """
            version: v2beta1
            name: patches
            deployments:
              web:
                helm:
                  values:
                    replicas: 1
            profiles:
              - name: p
                patches:
                  - op: add
                    path: deployments.web.helm.values
                    value:
                      debug: true
                  - op: replace
                    path: deployments.web.helm.values.missing
                    value: added
                  - op: remove
                    path: deployments.web.helm.values.notThere
              - name: scalar
                patches:
                  - op: add
                    path: deployments.web.helm.values.replicas
                    value: 2
            """
        let loaded = try await loadConfig(text, profiles: ["p"])
        let values = try #require(loaded.tree["deployments"]?["web"]?["helm"]?["values"])
        #expect(values["replicas"]?.scalar == "1")  // `add` onto a map adds keys, keeps the rest
        #expect(values["debug"]?.scalar == "true")
        #expect(values["missing"]?.scalar == "added")  // `replace` of a missing dotted path adds
        let errors = try await loadErrors(text, profiles: ["scalar"])
        #expect(errors.first?.message.contains("use op: replace") == true)
    }

    @Test func emptyEntriesAreErrors() async throws {
        let errors = try await loadErrors("version: v2beta1\nname: empty\nimages:\n  web:\ndev:\n  x:\n")
        #expect(errors.map(\.path) == ["images.web", "dev.x"])
    }

    @Test func profileCannotRemoveTheVersion() async throws {
        let errors = try await loadErrors(
            "version: v2beta1\nname: nover\nprofiles:\n  - name: p\n    patches:\n      - op: remove\n        path: version\n",
            profiles: ["p"]
        )
        #expect(errors.first?.path == "version")
    }
}
