import ArgumentParser
import Foundation
import SlipwayCore

extension SlipwayCommand {
    struct PullSecrets: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "pull-secrets",
            abstract: "Render the image pull secrets of devspace.yaml's pullSecrets (ensure_pull_secrets).",
            discussion: """
                Makes one kubernetes.io/dockerconfigjson Secret per secret name (default
                devspace-pull-secrets; entries merged per registry, Docker Hub under
                https://index.docker.io/v1/) and the service accounts (default: default) that pull
                with it. Credentials come from the config, else from ~/.docker/config.json
                (DOCKER_CONFIG): auths, credsStore, credHelpers. Passwords and tokens are shown
                as <redacted> unless --show-secrets is given. The namespace is -n, else the
                kubeconfig context's. Applying them to a cluster is not available yet: pipe
                --render to `kubectl apply -f -`.
                """)

        @OptionGroup var global: GlobalOptions

        @Argument(help: "Entries of pullSecrets to render (all when none are named).")
        var names: [String] = []

        @Flag(name: .customLong("render"), help: "Print the manifests instead of applying them.")
        var render = false

        @Flag(name: .customLong("show-secrets"), help: "Put the real passwords and tokens into the printed Secret.")
        var showSecrets = false

        func run() async throws {
            guard render else {
                Terminal.error(
                    "slipway pull-secrets: applying to a cluster is not available yet; run `slipway pull-secrets --render --show-secrets | kubectl apply -f -`")
                throw ExitCode.failure
            }
            let loaded = try await global.load()
            let all = loaded.config.pullSecrets
            for name in names where !all.contains(where: { $0.name == name }) {
                let known = all.map(\.name).joined(separator: ", ")
                Terminal.error(
                    "\(loaded.displayPath): pullSecrets: no entry named \"\(name)\""
                        + (known.isEmpty ? "; the config has no pullSecrets" : " (entries: \(known))"))
                throw ExitCode.failure
            }
            let selected = names.isEmpty ? all : all.filter { names.contains($0.name) }
            let environment = ProcessInfo.processInfo.environment
            do {
                // -n, else the kubeconfig context's namespace (as kubectl would use).
                var namespace = global.namespace
                if namespace == nil, let kube = try Kubeconfig.load(environment: environment),
                    let context = kube.context(global.kubeContext)
                {
                    namespace = context.namespace ?? "default"
                }
                let docker = try DockerConfigFile.load(environment: environment)
                let rendered = try await PullSecretRenderer(namespace: namespace, showSecrets: showSecrets).render(
                    selected
                ) { (registry: String) throws(RegistryError) -> RegistryCredential? in
                    try await docker.credential(for: registry, environment: environment)
                }
                for warning in rendered.warnings { Terminal.error("warning: \(warning)") }
                if rendered.manifests.isEmpty {
                    if !global.silent { Terminal.error("no pull secrets to render") }
                    return
                }
                Terminal.out(try YAMLEmitter().emit(rendered.manifests))
            } catch let error as RegistryError {
                Terminal.error(error.description)
                throw ExitCode.failure
            } catch let error as KubeconfigError {
                Terminal.error(error.description)
                throw ExitCode.failure
            } catch let error as YAMLError {
                Terminal.error("pull-secrets: \(error.message)")
                throw ExitCode.failure
            }
        }
    }
}
