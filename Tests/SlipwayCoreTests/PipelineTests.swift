import Foundation
import Testing

@testable import SlipwayCore

// Pipeline scripts as text: the runtime references bash cannot parse, and the prelude.
// Running them (real bash, the real engine) is in SlipwayCLITests/DeployIntegrationTests.
struct PipelineTests {
    @Test(arguments: [
        ("echo ${runtime.images.app}", "echo $(get_image app)"),
        (
            "x=${runtime.images.app.tag}-${runtime.images.web-2.image}",
            "x=$(get_image --only=tag app)-$(get_image --only=image web-2)"
        ),
        ("${runtime.images.app.other}", "${runtime.images.app.other}"),
        ("${runtime.dependencies.dep.images.app}", "${runtime.dependencies.dep.images.app}"),
        ("${runtime.images.$(touch x)}", "${runtime.images.$(touch x)}"),
        ("unclosed ${runtime.images.app", "unclosed ${runtime.images.app"),
        ("plain $HOME ${NAME}", "plain $HOME ${NAME}"),
    ])
    func rewritesRuntimeReferences(script: String, expected: String) {
        #expect(PipelineScript.rewriteRuntimeReferences(script) == expected)
    }

    @Test func programDefinesFunctionsAndHonoursContinueOnError() {
        let strict = PipelineScript.program("build_images --all", continueOnError: false)
        #expect(strict.hasPrefix("set -e\n"))
        #expect(strict.contains("build_images() { \"$SLIPWAY_EXECUTABLE\" __pipeline-function build_images \"$@\"; }"))
        #expect(strict.contains("__create_deployments() { create_deployments \"$@\"; }"))
        #expect(strict.hasSuffix("build_images --all\n"))
        #expect(PipelineScript.program("true", continueOnError: true).hasPrefix("set +e\n"))
    }

    @Test func defaultPipelinesAreDevSpaces() throws {
        let config = DevSpaceConfig(decoding: try #require(try YAMLParser().parse("version: v2beta1\nname: x\n")))
        #expect(
            PipelineScript.script("deploy", in: config)?.run
                == "run_dependencies --all\nensure_pull_secrets --all\nbuild_images --all\ncreate_deployments --all"
        )
        #expect(PipelineScript.script("nope", in: config) == nil)
        let own = DevSpaceConfig(
            decoding: try #require(
                try YAMLParser().parse("pipelines:\n  deploy:\n    run: echo mine\n    continueOnError: true\n")
            )
        )
        #expect(PipelineScript.script("deploy", in: own)?.run == "echo mine")
        #expect(PipelineScript.script("deploy", in: own)?.continueOnError == true)
    }

    /// The names an agent's job reports so that the hooks pass them on: what the variables
    /// looked up in the environment, set or not — not `--var`s, predefined values, commands
    /// or `source: input`.
    @Test func theLoaderNamesTheEnvironmentVariablesTheConfigReads() async throws {
        let loaded = try await loadConfig(
            """
            version: v2beta1
            name: names
            vars:
              FROM_ENV: {source: env, default: x}
              ASKED: {source: input, default: y}
              COMPUTED: {command: echo, args: [z]}
              PLAIN: value
              GIVEN: {source: env, default: g}
              UNUSED: {source: env, default: u}
            images:
              app:
                image: reg/app
                buildArgs:
                  ALL: "${FROM_ENV}-${ASKED}-${COMPUTED}-${PLAIN}-${GIVEN}-${SET_IN_ENV}-${DEVSPACE_NAMESPACE}"
            pipelines:
              deploy:
                run: echo "${ALSO_FROM_ENV:-}"
            """,
            vars: [("GIVEN", "g2")],
            env: ["SET_IN_ENV": "s", "ALSO_FROM_ENV": "a"]
        )
        #expect(loaded.environmentNames == ["FROM_ENV", "SET_IN_ENV"])
    }

    @Test func stripsTagsForInjection() {
        #expect(TagInjector.stripTag("ghcr.io/acme/app:v1") == "ghcr.io/acme/app")
        #expect(TagInjector.stripTag("localhost:5000/app") == "localhost:5000/app")
        #expect(TagInjector.stripTag("app@sha256:00") == "app@sha256:00")
        #expect(DockerDeployer.sanitize("my proj-web/app") == "my-proj-web-app")
        #expect(DockerDeployer.sanitize("..x") == "x")
        #expect(shellQuoted("a b'c") == "'a b'\\''c'")
        #expect(shellQuoted("--name=x") == "--name=x")
    }
}
