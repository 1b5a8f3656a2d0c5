import Foundation
import Testing

@testable import SlipwayCore

@Suite struct SchemaTests {
    static func diagnostics(_ yaml: String, file: String = "devspace.yaml") throws -> [ConfigDiagnostic] {
        let root = try #require(try YAMLParser().parse(yaml))
        return SchemaValidator.validate(root, file: file)
    }

    // MARK: A complete, valid configuration

    static let fullConfig = """
        version: v2beta1
        name: shop

        imports:
          - path: ./shared/devspace.yaml
            enabled: true
          - git: https://github.com/org/devspace-common
            branch: main
            subPath: configs
            cloneArgs: [--depth, "1"]
            disableShallow: false
            disablePull: true

        functions:
          greet: echo "hello $1"

        require:
          devspace: ">= 6.0, < 7.0"
          commands:
            - name: helm
              version: ">= 3.8"
              versionArgs: [version, --short]
              versionRegEx: "v(\\\\d+\\\\.\\\\d+\\\\.\\\\d+)"
          plugins:
            - name: devspace-plugin-loft
              version: ">= 1.0"

        vars:
          REGISTRY: ghcr.io/org
          REPLICAS: 2
          DEBUG: false
          GIT_SHA: $(git rev-parse --short HEAD)
          DB_PASSWORD:
            question: Which database password?
            password: true
            noCache: true
            source: input
          ENVIRONMENT:
            default: dev
            options: [dev, staging, prod]
            validationPattern: "^[a-z]+$"
            validationMessage: lowercase only
            alwaysResolve: true
          BUILD_DATE:
            commands:
              - os: darwin
                command: date
                args: [-u]
              - command: date -u
          EMPTY:

        localRegistry:
          enabled: true
          localbuild: false
          namespace: registry
          name: registry
          image: registry:2.8.1
          buildKitImage: moby/buildkit:master-rootless
          port: 5000
          persistence:
            enabled: true
            size: 5Gi
            storageClassName: standard

        pullSecrets:
          ghcr:
            name: ghcr
            registry: ghcr.io
            username: ${GHCR_USER}
            password: ${GHCR_TOKEN}
            email: ci@example.com
            secret: ghcr-pull
            serviceAccounts: [default, builder]

        images:
          api:
            image: ${REGISTRY}/api
            tags: [latest, "${GIT_SHA}", 1.0]
            dockerfile: ./api/Dockerfile
            context: ./api
            entrypoint: [/app/api]
            cmd: [--port, "8080"]
            appendDockerfileInstructions:
              - USER 1000
            buildArgs:
              GO_VERSION: "1.22"
              DEBUG: ${DEBUG}
              UNSET:
            target: runtime
            network: host
            rebuildStrategy: ignoreContextChanges
            skipPush: false
            createPullSecret: true
            docker:
              disableFallback: true
              preferMinikube: false
              useCli: true
              args: [--platform, linux/amd64]
              useBuildKit: true
            injectRestartHelper: false
            injectLegacyRestartHelper: false
            restartHelperPath: ./restart-helper.sh
          worker:
            image: ${REGISTRY}/worker
            buildKit:
              preferMinikube: false
              args: [--cache-from, type=registry]
              command: [docker, buildx]
              inCluster:
                name: builder
                namespace: build
                rootless: true
                image: moby/buildkit:rootless
                nodeSelector: kubernetes.io/arch=amd64
                noCreate: false
                noRecreate: true
                noLoad: false
                createArgs: [--driver-opt, image=moby/buildkit]
          cron:
            image: ${REGISTRY}/cron
            kaniko:
              cache: true
              snapshotMode: redo
              image: gcr.io/kaniko-project/executor:v1.20.1
              initImage: alpine
              args: [--verbosity, debug]
              command: [/kaniko/executor]
              namespace: build
              insecure: false
              pullSecret: ghcr-pull
              skipPullSecretMount: false
              nodeSelector:
                pool: builds
              tolerations:
                - key: dedicated
                  operator: Equal
                  value: builds
                  effect: NoSchedule
                  tolerationseconds: 60
              serviceAccount: kaniko
              generateName: kaniko-
              annotations: {team: platform}
              labels: {app: kaniko}
              initEnv: {HTTP_PROXY: "http://proxy:3128"}
              env: {DOCKER_CONFIG: /kaniko/.docker}
              envFrom:
                NPM_TOKEN:
                  secretKeyRef: {name: npm, key: token}
              additionalMounts:
                - mountPath: /cache
                  readOnly: true
                  subPath: npm
                  secret:
                    name: npm-cache
                    defaultMode: 0644
                    items:
                      - key: npmrc
                        path: .npmrc
                        mode: 0600
                - mountPath: /config
                  configMap:
                    name: build-config
                    items: [{key: a, path: b}]
              resources:
                requests: {cpu: 500m, memory: 1Gi}
                limits: {memory: 2Gi}
          legacy:
            image: ${REGISTRY}/legacy
            custom:
              command: ./build.sh --tag ${runtime.images.legacy.tag}
              onChange: ["src/**"]
              commands:
                - command: build.bat
                  os: windows
              args: [--push]
              appendArgs: [--quiet]
              imageFlag: --image
              imageTagOnly: false
              skipImageArg: true

        deployments:
          api:
            namespace: shop
            updateImageTags: true
            helm:
              releaseName: shop-api
              chart:
                name: ./charts/api
                version: 1.2.3
                repo: https://charts.example.com
                username: bot
                password: ${CHART_PASSWORD}
              values:
                image: ${REGISTRY}/api
                replicaCount: ${REPLICAS}
                ingress:
                  enabled: true
                  hosts: [{host: api.local, paths: ["/"]}]
              valuesFiles: [values.yaml, "values-${ENVIRONMENT}.yaml"]
              displayOutput: true
              upgradeArgs: [--atomic]
              templateArgs: [--debug]
              disableDependencyUpdate: false
          common:
            helm:
              chart:
                git: https://github.com/org/charts
                subPath: common
                tag: v1.0.0
          web:
            kubectl:
              manifests: [k8s/]
              applyArgs: [--server-side]
              createArgs: [--save-config]
              kubectlBinaryPath: /usr/local/bin/kubectl
              kustomize: true
              kustomizeArgs: [--enable-helm]
              kustomizeBinaryPath: /usr/local/bin/kustomize
              inlineManifest: |
                apiVersion: v1
                kind: ConfigMap
                metadata: {name: inline}
              patches:
                - target:
                    apiVersion: apps/v1
                    kind: Deployment
                    name: web
                  op: replace
                  path: spec.replicas
                  value: 3
          monitoring:
            tanka:
              path: tanka
              environmentPath: environments/default
              runJsonnetBundlerInstall: true
              externalStringVariables: {cluster: kind}
              topLevelString: [env=dev]
              targets: [deployment/.*]
          local:
            docker:
              network: shop
              containers:
                - name: db
                  image: postgres:16
                  command: [postgres]
                  args: [-c, log_statement=all]
                  env:
                    POSTGRES_PASSWORD: secret
                  ports: ["5432:5432"]
                  volumes: ["pgdata:/var/lib/postgresql/data"]
                  restart: unless-stopped
                  workingDir: /
                  labels: {tier: data}
                - name: cache
                  image: redis:7
                  env:
                    - name: REDIS_ARGS
                      value: --save ""

        dev:
          api:
            imageSelector: ${runtime.images.api}
            namespace: shop
            container: api
            arch: amd64
            devImage: ghcr.io/org/api-dev:latest
            command: [go, run, .]
            args: [--debug]
            workingDir: /app
            env:
              - name: DEBUG
                value: "true"
            resources:
              requests: {cpu: 100m}
              limits: {memory: 1Gi}
            sync:
              - path: ./api:/app
                excludePaths: [.git/, node_modules/]
                excludeFile: .dockerignore
                downloadExcludePaths: [tmp/]
                uploadExcludePaths: [bin/]
                startContainer: true
                initialSync: preferLocal
                initialSyncCompareBy: size
                waitInitialSync: false
                disableDownload: false
                polling: true
                noWatch: false
                printLogs: true
                bandwidthLimits: {download: 1024, upload: 512}
                onUpload:
                  restartContainer: true
                  exec:
                    - name: deps
                      command: go mod download
                      onChange: [go.mod, go.sum]
                      failOnError: true
                      once: false
                    - command: touch
                      args: [/tmp/reload]
                      local: true
              - path: ./VERSION:/app/VERSION
                file: true
                disableUpload: true
            ports:
              - port: "8080"
              - port: 2345:2345
                bindAddress: 0.0.0.0
            reversePorts:
              - port: 9000
            terminal:
              command: ./devspace_start.sh
              workDir: /app
              enabled: true
              disableReplace: false
              disableScreen: true
              disableTTY: false
            logs:
              enabled: true
              lastLines: 200
            ssh:
              enabled: true
              localHostname: api.shop.devspace
              localPort: 10022
              remoteAddress: 0.0.0.0:8022
              useInclude: true
            proxyCommands:
              - command: git
                gitCredentials: true
              - command: kubectl
                localCommand: kubectl
                skipContainerEnv: true
                env: {KUBECONFIG: /tmp/kubeconfig}
            restartHelper:
              path: ./restart-helper
              inject: true
            persistPaths:
              - path: /root/.cache
                volumePath: cache
                readOnly: false
                skipPopulate: true
                initContainer:
                  resources:
                    limits: {cpu: 100m}
            persistenceOptions:
              size: 10Gi
              storageClassName: fast
              accessModes: [ReadWriteOnce]
              readOnly: false
              name: api-cache
            patches:
              - op: add
                path: spec.containers[0].env
                value: {name: FOO, value: bar}
            open:
              - url: http://localhost:8080
          worker:
            labelSelector:
              app.kubernetes.io/name: worker
            containers:
              worker:
                command: [sleep, infinity]
                attach:
                  enabled: true
                  disableReplace: false
                  disableTTY: true
                sync:
                  - path: ./worker:/app

        pipelines:
          build: |-
            build_images --all
          deploy:
            name: deploy
            run: |-
              run_dependencies --all
              ensure_pull_secrets --all
              build_images --all -t $(git describe --always)
              create_deployments --all
            continueOnError: false
            flags:
              - name: skip-tests
                short: s
                type: bool
                default: false
                description: Skip the test step
              - name: replicas
                type: int
                default: 1

        commands:
          migrate: ./scripts/migrate.sh
          test:
            command: go test ./...
            args: [-race]
            appendArgs: true
            description: Run the tests
            section: Quality
            internal: false
            after: echo done

        dependencies:
          auth:
            path: ../auth
            pipeline: dev
            vars: {PORT: "9090"}
            overwriteVars: true
            ignoreDependencies: false
            namespace: auth
            disabled: false
          billing:
            git: https://github.com/org/billing
            revision: 0123abcd
            profiles: [minimal]
            disableProfileActivation: true

        hooks:
          - name: announce
            events: [before:deploy]
            command: echo
            args: [deploying]
            os: linux,darwin
            background: false
            silent: true
          - events: [after:deploy:api]
            container:
              labelSelector: {app: api}
              containerName: api
              namespace: shop
              pod: api-0
              imageSelector: ${runtime.images.api}
              wait: true
              timeout: 120
              once: true
            upload: {localPath: ./seed, containerPath: /seed}
            download: {localPath: ./out, containerPath: /out}
            logs: {tailLines: 50}
            wait: {running: true, terminatedWithCode: 0, timeout: 150}
            disabled: false

        profiles:
          - name: production
            description: Production settings
            activation:
              - env: {CI: "true"}
                vars: {ENVIRONMENT: prod}
            patches:
              - op: replace
                path: images.api.tags
                value: [stable]
              - op: remove
                path: dev
            merge:
              deployments:
                api:
                  helm:
                    values: {replicaCount: 3}
            replace:
              commands: {}
              hooks: []
          - name: child
            parent: production
            parents:
              - profile: base
                source:
                  git: https://github.com/org/profiles
                  branch: main
        """

    @Test func fullConfigHasNoDiagnostics() throws {
        let diagnostics = try Self.diagnostics(Self.fullConfig)
        #expect(diagnostics.isEmpty, "\(diagnostics.map(\.description).joined(separator: "\n"))")
    }

    // MARK: Valid snippets that look suspicious

    struct Valid: Sendable, CustomTestStringConvertible {
        var name: String
        var yaml: String
        var testDescription: String { name }
    }

    @Test(arguments: [
        Valid(
            name: "null for every kind of field",
            yaml: """
                images:
                  app:
                    image: x
                    tags: null
                    skipPush: ~
                    buildArgs:
                    docker:
                deployments:
                  web:
                localRegistry: {port: null}
                """
        ),
        Valid(
            name: "numbers and booleans in string fields",
            yaml: """
                name: 42
                images:
                  app:
                    image: 1.5
                    tags: [1, 2.5, true, 0x1F]
                    buildArgs: {VERSION: 1.22, ENABLED: yes}
                dev:
                  app:
                    ports: [{port: 8080}]
                """
        ),
        Valid(
            name: "variables in bool and int fields",
            yaml: """
                images:
                  app:
                    image: x
                    skipPush: ${SKIP_PUSH}
                localRegistry:
                  port: $(echo 5000)
                  enabled: "${USE_REGISTRY}"
                pipelines:
                  dev:
                    continueOnError: ${CONTINUE}
                """
        ),
        Valid(
            name: "YAML 1.1 booleans go-yaml v3 still decodes into a bool",
            yaml: """
                images:
                  app:
                    image: x
                    skipPush: yes
                    createPullSecret: Off
                """
        ),
        Valid(
            name: "integral float in an int field",
            yaml: """
                localRegistry: {port: 5000.0}
                """
        ),
        Valid(
            name: "string forms of pipelines, commands and vars",
            yaml: """
                pipelines: {dev: run_default_pipeline dev}
                commands: {hi: echo hi, n: 5}
                vars: {A: 1, B: true, C: $(date), D: "x"}
                """
        ),
        Valid(
            name: "keys of JSON-decoded maps match ignoring case",
            yaml: """
                pipelines: {dev: {Run: echo, ContinueOnError: true}}
                """
        ),
        Valid(
            name: "helm values are free-form",
            yaml: """
                deployments:
                  web:
                    helm:
                      values:
                        anything: {goes: [here, {dockerFile: 1}]}
                """
        ),
        Valid(name: "an empty file", yaml: "{}"),
    ])
    func validSnippet(_ valid: Valid) throws {
        let diagnostics = try Self.diagnostics(valid.yaml)
        #expect(diagnostics.isEmpty, "\(diagnostics.map(\.description).joined(separator: "\n"))")
    }

    // MARK: Problems, one per case

    struct Bad: Sendable, CustomTestStringConvertible {
        var name: String
        var yaml: String
        var path: String
        var line: Int
        var column: Int
        var message: String
        var testDescription: String { name }
    }

    @Test(arguments: [
        Bad(
            name: "unknown top-level key, suggestion",
            yaml: "version: v2beta1\nimagse:\n  app:\n    image: x\n",
            path: "imagse",
            line: 2,
            column: 1,
            message: #"unknown key "imagse"; did you mean "images"?"#
        ),
        Bad(
            name: "unknown top-level key, other case",
            yaml: "Images:\n  app: {image: x}\n",
            path: "Images",
            line: 1,
            column: 1,
            message: #"unknown key "Images"; did you mean "images"?"#
        ),
        Bad(
            name: "unknown top-level key, nothing close",
            yaml: "version: v2beta1\nfrobnicate: true\n",
            path: "frobnicate",
            line: 2,
            column: 1,
            message: #"unknown key "frobnicate"; allowed keys: version, name, imports, functions, pipelines, images"#
        ),
        Bad(
            name: "unknown image key, case",
            yaml: "images:\n  app:\n    image: x\n    dockerFile: ./Dockerfile\n",
            path: "images.app.dockerFile",
            line: 4,
            column: 5,
            message: #"unknown key "dockerFile"; did you mean "dockerfile"?"#
        ),
        Bad(
            name: "unknown image key, typo",
            yaml: "images:\n  app:\n    image: x\n    buildArg: {A: b}\n",
            path: "images.app.buildArg",
            line: 4,
            column: 5,
            message: #"did you mean "buildArgs"?"#
        ),
        Bad(
            name: "v1beta11 image build section",
            yaml: "images:\n  app:\n    image: x\n    build:\n      docker: {}\n",
            path: "images.app.build",
            line: 4,
            column: 5,
            message: #"unknown key "build"; did you mean "buildArgs" or "buildKit"?"#
        ),
        Bad(
            name: "unknown sync key",
            yaml:
                "dev:\n  app:\n    imageSelector: x\n    sync:\n      - path: .:/app\n        excludePath: [node_modules]\n",
            path: "dev.app.sync[0].excludePath",
            line: 6,
            column: 9,
            message: #"unknown key "excludePath"; did you mean "excludePaths"?"#
        ),
        Bad(
            name: "truncated sync key",
            yaml: "dev:\n  app:\n    imageSelector: x\n    sync:\n      - path: .:/app\n        exclude: [.git]\n",
            path: "dev.app.sync[0].exclude",
            line: 6,
            column: 9,
            message: #"unknown key "exclude"; did you mean "excludePaths" or "excludeFile"?"#
        ),
        Bad(
            name: "unknown key in sync onUpload exec",
            yaml:
                "dev:\n  app:\n    sync:\n      - path: .\n        onUpload:\n          exec:\n            - comand: make\n",
            path: "dev.app.sync[0].onUpload.exec[0].comand",
            line: 7,
            column: 15,
            message: #"did you mean "command"?"#
        ),
        Bad(
            name: "tags as a string",
            yaml: "images:\n  app:\n    image: x\n    tags: latest\n",
            path: "images.app.tags",
            line: 4,
            column: 11,
            message: "expected a list of strings, found a string"
        ),
        Bad(
            name: "tags as an unresolved variable",
            yaml: "images:\n  app:\n    image: x\n    tags: ${TAGS}\n",
            path: "images.app.tags",
            line: 4,
            column: 11,
            message: "expected a list of strings, found a string"
        ),
        Bad(
            name: "skipPush quoted",
            yaml: "images:\n  app:\n    image: x\n    skipPush: \"true\"\n",
            path: "images.app.skipPush",
            line: 4,
            column: 15,
            message: "expected a boolean, found a string"
        ),
        Bad(
            name: "skipPush as integer",
            yaml: "images:\n  app:\n    image: x\n    skipPush: 1\n",
            path: "images.app.skipPush",
            line: 4,
            column: 15,
            message: "expected a boolean, found an integer"
        ),
        Bad(
            name: "buildArgs as a list",
            yaml: "images:\n  app:\n    image: x\n    buildArgs:\n      - FOO=bar\n",
            path: "images.app.buildArgs",
            line: 5,
            column: 7,
            message: "expected a map of strings, found a list"
        ),
        Bad(
            name: "buildArgs value as a map",
            yaml: "images:\n  app:\n    image: x\n    buildArgs:\n      FOO: {a: b}\n",
            path: "images.app.buildArgs.FOO",
            line: 5,
            column: 12,
            message: "expected a string, found a map"
        ),
        Bad(
            name: "pipelines as a list",
            yaml: "pipelines:\n  - dev\n",
            path: "pipelines",
            line: 2,
            column: 3,
            message: "expected a map of strings or maps, found a list"
        ),
        Bad(
            name: "pipeline as a list",
            yaml: "pipelines:\n  dev: [build_images, create_deployments]\n",
            path: "pipelines.dev",
            line: 2,
            column: 8,
            message: "expected a string or a map, found a list"
        ),
        Bad(
            name: "pipeline run as a number (decoded through JSON)",
            yaml: "pipelines:\n  dev:\n    run: 5\n",
            path: "pipelines.dev.run",
            line: 3,
            column: 10,
            message: "expected a string, found an integer"
        ),
        Bad(
            name: "pipeline unknown key",
            yaml: "pipelines:\n  dev:\n    runn: echo\n",
            path: "pipelines.dev.runn",
            line: 3,
            column: 5,
            message: #"unknown key "runn"; did you mean "run"?"#
        ),
        Bad(
            name: "vars as a v1beta11 list",
            yaml: "vars:\n  - name: A\n    value: b\n",
            path: "vars",
            line: 2,
            column: 3,
            message: "expected a map of strings or maps, found a list"
        ),
        Bad(
            name: "var as a list",
            yaml: "vars:\n  A: [1, 2]\n",
            path: "vars.A",
            line: 2,
            column: 6,
            message: "expected a string or a map, found a list"
        ),
        Bad(
            name: "var options as a string",
            yaml: "vars:\n  A:\n    question: Pick\n    options: a\n",
            path: "vars.A.options",
            line: 4,
            column: 14,
            message: "expected a list of strings, found a string"
        ),
        Bad(
            name: "YAML 1.1 boolean in a command (decoded through JSON)",
            yaml: "commands:\n  build:\n    command: make\n    appendArgs: yes\n",
            path: "commands.build.appendArgs",
            line: 4,
            column: 17,
            message: "expected a boolean, found a string"
        ),
        Bad(
            name: "deployments as a v1beta11 list",
            yaml: "deployments:\n  - name: web\n    helm: {}\n",
            path: "deployments",
            line: 2,
            column: 3,
            message: "expected a map of maps, found a list"
        ),
        Bad(
            name: "dev section as a list",
            yaml: "dev:\n  - imageSelector: x\n",
            path: "dev",
            line: 2,
            column: 3,
            message: "expected a map of maps, found a list"
        ),
        Bad(
            name: "valuesFiles as a string",
            yaml: "deployments:\n  web:\n    helm:\n      valuesFiles: values.yaml\n",
            path: "deployments.web.helm.valuesFiles",
            line: 4,
            column: 20,
            message: "expected a list of strings, found a string"
        ),
        Bad(
            name: "valuesFiles item as a map",
            yaml: "deployments:\n  web:\n    helm:\n      valuesFiles:\n        - {file: values.yaml}\n",
            path: "deployments.web.helm.valuesFiles[0]",
            line: 5,
            column: 11,
            message: "expected a string, found a map"
        ),
        Bad(
            name: "helm values as a list",
            yaml: "deployments:\n  web:\n    helm:\n      values: [a]\n",
            path: "deployments.web.helm.values",
            line: 4,
            column: 15,
            message: "expected a map, found a list"
        ),
        Bad(
            name: "labelSelector as a list",
            yaml: "dev:\n  app:\n    labelSelector: [app=web]\n",
            path: "dev.app.labelSelector",
            line: 3,
            column: 20,
            message: "expected a map of strings, found a list"
        ),
        Bad(
            name: "ports as a map",
            yaml: "dev:\n  app:\n    ports:\n      port: 8080\n",
            path: "dev.app.ports",
            line: 4,
            column: 7,
            message: "expected a list of maps, found a map"
        ),
        Bad(
            name: "hooks as a map",
            yaml: "hooks:\n  before: {command: echo}\n",
            path: "hooks",
            line: 2,
            column: 3,
            message: "expected a list of maps, found a map"
        ),
        Bad(
            name: "boolean in an int field",
            yaml: "localRegistry:\n  port: true\n",
            path: "localRegistry.port",
            line: 2,
            column: 9,
            message: "expected an integer, found a boolean"
        ),
        Bad(
            name: "fraction in an int field",
            yaml: "dev:\n  app:\n    logs:\n      lastLines: 1.5\n",
            path: "dev.app.logs.lastLines",
            line: 4,
            column: 18,
            message: "expected an integer, found a number"
        ),
        Bad(
            name: "string in an int field",
            yaml: "dev:\n  app:\n    ssh:\n      localPort: \"10022\"\n",
            path: "dev.app.ssh.localPort",
            line: 4,
            column: 18,
            message: "expected an integer, found a string"
        ),
        Bad(
            name: "unknown key in a profile patch",
            yaml: "profiles:\n  - name: p\n    patches:\n      - op: replace\n        path: images\n        vaule: 1\n",
            path: "profiles[0].patches[0].vaule",
            line: 6,
            column: 9,
            message: #"did you mean "value"?"#
        ),
        Bad(
            name: "require.plugins as a map",
            yaml: "require:\n  plugins:\n    loft: \">= 1\"\n",
            path: "require.plugins",
            line: 3,
            column: 5,
            message: "expected a list of maps, found a map"
        ),
        Bad(
            name: "slipway docker container without image",
            yaml: "deployments:\n  local:\n    docker:\n      containers:\n        - name: db\n",
            path: "deployments.local.docker.containers[0].image",
            line: 5,
            column: 11,
            message: "image is required"
        ),
        Bad(
            name: "slipway docker env as a string",
            yaml:
                "deployments:\n  local:\n    docker:\n      containers:\n        - image: redis\n          env: FOO=bar\n",
            path: "deployments.local.docker.containers[0].env",
            line: 6,
            column: 16,
            message: "expected a map of strings or a list of maps, found a string"
        ),
        Bad(
            name: "slipway docker ports as a map",
            yaml:
                "deployments:\n  local:\n    docker:\n      containers:\n        - image: redis\n          ports: {6379: 6379}\n",
            path: "deployments.local.docker.containers[0].ports",
            line: 6,
            column: 18,
            message: "expected a list of strings, found a map"
        ),
        Bad(
            name: "the file is a list",
            yaml: "- version: v2beta1\n",
            path: "",
            line: 1,
            column: 1,
            message: "expected a map, found a list"
        ),
    ])
    func badInput(_ bad: Bad) throws {
        let diagnostics = try Self.diagnostics(bad.yaml)
        #expect(diagnostics.count == 1, "\(diagnostics.map(\.description).joined(separator: "\n"))")
        let diagnostic = try #require(diagnostics.first)
        #expect(diagnostic.path == bad.path)
        #expect(diagnostic.mark == Mark(line: bad.line, column: bad.column))
        #expect(diagnostic.message.contains(bad.message), "\(diagnostic.message)")
        #expect(diagnostic.file == "devspace.yaml")
    }

    // MARK: Several problems at once

    @Test func everyProblemIsReportedInDocumentOrder() throws {
        let yaml = """
            version: v2beta1
            imagse: {}
            images:
              api:
                image: ghcr.io/org/api
                dockerFile: Dockerfile
                tags: latest
                skipPush: 1
              web:
                image: ghcr.io/org/web
                buildArgs: [A=b]
            deployments:
              web:
                helm:
                  valuesFiles: [values.yaml, {a: b}]
            dev:
              web:
                sync:
                  - path: .
                    excludePath: [.git]
            """
        let diagnostics = try Self.diagnostics(yaml, file: "app/devspace.yaml")
        #expect(
            diagnostics.map(\.description) == [
                #"app/devspace.yaml:2:1: imagse: unknown key "imagse"; did you mean "images"?"#,
                #"app/devspace.yaml:6:5: images.api.dockerFile: unknown key "dockerFile"; did you mean "dockerfile"?"#,
                "app/devspace.yaml:7:11: images.api.tags: expected a list of strings, found a string",
                "app/devspace.yaml:8:15: images.api.skipPush: expected a boolean, found an integer",
                "app/devspace.yaml:11:16: images.web.buildArgs: expected a map of strings, found a list",
                "app/devspace.yaml:15:34: deployments.web.helm.valuesFiles[1]: expected a string, found a map",
                #"app/devspace.yaml:20:9: dev.web.sync[0].excludePath: unknown key "excludePath"; did you mean "excludePaths"?"#,
            ]
        )
    }

    // MARK: Depth and helpers

    @Test func deepFreeFormValuesAreNotWalked() throws {
        let depth = 900
        let deep = String(repeating: "[", count: depth) + String(repeating: "]", count: depth)
        // A list where a map belongs is one type error, found without descending into it.
        let values = "deployments:\n  web:\n    helm:\n      values: \(deep)\n"
        let diagnostics = try Self.diagnostics(values)
        #expect(diagnostics.map(\.path) == ["deployments.web.helm.values"])

        let patch =
            "profiles:\n  - name: deep\n    patches:\n      - op: add\n        path: x\n        value: \(deep)\n"
        #expect(try Self.diagnostics(patch).isEmpty)
    }

    @Test func nonScalarKeysAreReported() {
        // The parser rejects these; a tree built in code can still hold one.
        let key = Node.sequence([.string("a")], mark: Mark(line: 2, column: 3))
        let root = Node.mapping([
            ("images", Node(.mapping([Node.Pair(key: key, value: .null)]), mark: Mark(line: 2, column: 3)))
        ])
        let diagnostics = SchemaValidator.validate(root, file: "f.yaml")
        #expect(diagnostics.map(\.description) == ["f.yaml:2:3: images: expected a string key, found a list"])
    }

    struct Suggestion: Sendable, CustomTestStringConvertible {
        var key: String
        var allowed: [String]
        var expected: [String]
        var testDescription: String { key }
    }

    @Test(arguments: [
        Suggestion(key: "dockerFile", allowed: Schema.image.keys, expected: ["dockerfile"]),
        Suggestion(key: "imagse", allowed: Schema.configStruct.keys, expected: ["images"]),
        Suggestion(key: "synk", allowed: Schema.devContainer.keys, expected: ["sync"]),
        Suggestion(key: "skippush", allowed: Schema.image.keys, expected: ["skipPush"]),
        Suggestion(key: "exclude", allowed: Schema.syncConfig.keys, expected: ["excludePaths", "excludeFile"]),
        Suggestion(key: "zzzzzz", allowed: Schema.configStruct.keys, expected: []),
        Suggestion(key: "ab", allowed: Schema.configStruct.keys, expected: []),
    ])
    func suggestion(_ suggestion: Suggestion) {
        #expect(SchemaValidator.closestKeys(to: suggestion.key, among: suggestion.allowed) == suggestion.expected)
    }

    // MARK: DevSpace's own configurations

    /// Corpus files DevSpace itself rejects: the compose converter's expected outputs still
    /// carry `helm.componentChart`, which v2beta1 removed (its test decodes them leniently).
    static let knownRejected: [String: [String]] = [
        "pkg/devspace/compose/testdata/depends_on/devspace.yaml": ["deployments.proxy.helm.componentChart"],
        "pkg/devspace/compose/testdata/depends_on_with_build/devspace.yaml": ["deployments.proxy.helm.componentChart"],
    ]

    static let corpusRoot: String? = {
        if let root = ProcessInfo.processInfo.environment["SLIPWAY_COMPAT_CORPUS"], !root.isEmpty { return root }
        let fallback = "/work/shared/compat/devspace"
        return FileManager.default.fileExists(atPath: fallback) ? fallback : nil
    }()

    @Test(.enabled(if: corpusRoot != nil, "no DevSpace corpus (set SLIPWAY_COMPAT_CORPUS)"))
    func devSpaceCorpus() throws {
        let root = try #require(Self.corpusRoot)
        let enumerator = try #require(FileManager.default.enumerator(atPath: root))
        var files: [String] = []
        while let relative = enumerator.nextObject() as? String {
            let name = (relative as NSString).lastPathComponent
            if name.hasPrefix("devspace"), name.hasSuffix(".yaml") { files.append(relative) }
        }
        files.sort()
        #expect(!files.isEmpty)

        var flagged: [String: [ConfigDiagnostic]] = [:]
        for relative in files {
            let text = try String(contentsOfFile: root + "/" + relative, encoding: .utf8)
            let node: Node?
            do { node = try YAMLParser().parse(text) } catch {
                Issue.record("\(relative): \(error)")
                continue
            }
            guard let node else { continue }
            let diagnostics = SchemaValidator.validate(node, file: relative)
            if !diagnostics.isEmpty { flagged[relative] = diagnostics }
        }
        for (_, diagnostics) in flagged.sorted(by: { $0.key < $1.key }) {
            for diagnostic in diagnostics { print(diagnostic) }
        }
        print("schema: \(files.count) DevSpace configurations, \(flagged.count) with diagnostics")

        let expected = Self.knownRejected.filter { files.contains($0.key) }
        #expect(flagged.mapValues { $0.map(\.path) } == expected)
        for diagnostic in flagged.values.joined() {
            #expect(diagnostic.message.hasPrefix(#"unknown key "componentChart""#))
        }
    }
}
