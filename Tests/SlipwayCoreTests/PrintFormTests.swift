import Foundation
import SlipwayTestSupport
import Testing

@testable import SlipwayCore

/// `devspace print`'s form: DevSpace's `yaml.Marshal` of its Go structs (`cmd/print.go`).
@Suite struct PrintFormTests {
    @Test func theConfigPrintsAsDevSpacesStructs() async throws {
        let loaded = try await loadConfig(
            """
            version: v2beta1
            name: printed
            vars:
              ON: $(true)
            images:
              app:
                image: ghcr.io/acme/app:v1
                tags: ["$(true)"]
                skipPush: ${ON}
                createPullSecret: false
                rebuildStrategy: ""
                buildArgs: {}
            pipelines:
              deploy: |-
                build_images --all
              build:
                run: build_images app
            deployments:
              web:
                updateImageTags: false
                helm:
                  values:
                    zeta: 1
                    alpha:
                      nested10: x
                      nested9: y
            dev:
              app:
                imageSelector: ghcr.io/acme/app
                ports:
                  - port: 8080
                workingDir: /app
                containers:
                  side:
                    workingDir: /side
            """
        )
        let text = try YAMLEmitter().emit(ConfigPrinter.devspaceForm(loaded))
        #expect(
            text == """
                version: v2beta1
                name: printed
                pipelines:
                  build:
                    name: build
                    run: build_images app
                  deploy:
                    name: deploy
                    run: build_images --all
                images:
                  app:
                    name: app
                    image: ghcr.io/acme/app
                    tags:
                    - v1
                    - "true"
                    skipPush: true
                    createPullSecret: false
                deployments:
                  web:
                    name: web
                    helm:
                      values:
                        alpha:
                          nested9: "y"
                          nested10: x
                        zeta: 1
                    updateImageTags: false
                dev:
                  app:
                    name: app
                    imageSelector: ghcr.io/acme/app
                    workingDir: /app
                    ports:
                    - port: "8080"
                    containers:
                      side:
                        container: side
                        workingDir: /side

                """,
            "\(text)"
        )
        // The defaults DevSpace applies later are not written into the tree, but still apply.
        #expect(loaded.config.images.first?.dockerfile == "./Dockerfile")
        #expect(loaded.config.images.first?.context == "./")
    }

    @Test func goYAMLSortsKeysLikeGo() {
        // Runs of digits compare as numbers; letters as runes (capitals first).
        let keys = ["b10", "b9", "a10", "a2", "a1", "B", "a", "port2", "port10"]
        #expect(
            keys.sorted(by: ConfigPrinter.goLess) == ["B", "a", "a1", "a2", "a10", "b9", "b10", "port2", "port10"]
        )
    }
}

/// `${runtime.images…}`, `get_image` and injection with nothing built or cached: DevSpace's
/// `BuildImageString` / `legacy.resolveImage` leave the name as written (no `:latest`).
@Suite struct RuntimeImageFallbackTests {
    @Test func withoutATagTheNameStaysAsWritten() async throws {
        try await withTemporaryDirectory { dir in
            let loaded = try await load(
                """
                version: v2beta1
                name: fallback
                images:
                  app:
                    image: ghcr.io/acme/app
                  tagged:
                    image: ghcr.io/acme/tagged
                    tags: ["dev-###"]
                """,
                in: dir
            )
            let injector = TagInjector(loaded: loaded, run: [:])
            #expect(injector.inject("ghcr.io/acme/app") == "ghcr.io/acme/app")
            #expect(injector.inject("ghcr.io/acme/app:pinned") == "ghcr.io/acme/app:pinned")
            #expect(injector.inject("${runtime.images.app}") == "ghcr.io/acme/app")
            #expect(injector.inject("${runtime.images.app.tag}") == "latest")
            #expect(injector.inject("tag(app)") == "latest")
            #expect(injector.inject("ghcr.io/acme/tagged") == "ghcr.io/acme/tagged:dev-xxx")
            let built = TagInjector(loaded: loaded, run: ["app": RuntimeImage(image: "ghcr.io/acme/app", tag: "b1")])
            #expect(built.inject("ghcr.io/acme/app:pinned") == "ghcr.io/acme/app:b1")
        }
    }
}

/// What `build` reads, checked by `BuildPlanner` (which `validate` runs too).
@Suite struct BuildInputTests {
    @Test func missingFilesAndAnUnknownTargetAreReportedAtTheirPlaces() async throws {
        try await withTemporaryDirectory { dir in
            try "FROM scratch AS base\nFROM scratch AS final\n".write(
                toFile: dir + "/Dockerfile",
                atomically: true,
                encoding: .utf8
            )
            let loaded = try await load(
                """
                version: v2beta1
                name: inputs
                images:
                  staged:
                    image: acme/staged
                    target: nosuch
                  missing:
                    image: acme/missing
                    dockerfile: ./missing.Dockerfile
                    context: ./nodir
                  fine:
                    image: acme/fine
                    target: FINAL
                """,
                in: dir
            )
            do {
                _ = try BuildPlanner.plan(loaded, options: BuildOptions())
                Issue.record("expected the plan to fail")
            } catch let error as ConfigError {
                let found = error.diagnostics.map { "\($0.mark) \($0.path)" }
                #expect(
                    found == [
                        "6:13 images.staged.target", "10:14 images.missing.context", "9:17 images.missing.dockerfile",
                    ],
                    "\(error.diagnostics)"
                )
                #expect(error.diagnostics[0].message.contains("no stage named \"nosuch\""))
                #expect(error.diagnostics[0].message.contains("its stages: base, final"))
            }
        }
    }
}
