import ArgumentParser
import Foundation
import SlipwayCore

extension SlipwayCommand {
    struct PullSecrets: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "pull-secrets",
            abstract: "Apply (or render) the image pull secrets of devspace.yaml's pullSecrets (ensure_pull_secrets).",
            discussion: """
                Makes one kubernetes.io/dockerconfigjson Secret per secret name (default \
                devspace-pull-secrets; entries merged per registry, Docker Hub under \
                https://index.docker.io/v1/) and the service accounts (default: default) that pull \
                with it. Credentials come from the config, else from ~/.docker/config.json \
                (DOCKER_CONFIG): auths, credsStore, credHelpers. Passwords and tokens are shown \
                as <redacted> unless --show-secrets is given. The namespace is -n, else the \
                kubeconfig context's (the context: --kube-context, else the current one).

                Without --render they are applied with kubectl: the Secrets with \
                `kubectl apply -f -` (on stdin), then each service account gets the missing \
                secret names added to its imagePullSecrets (`kubectl get` + `kubectl patch`; a \
                missing account is created). Without a kubeconfig nothing is run.
                """
        )

        @OptionGroup var global: GlobalOptions

        @Argument(help: "Entries of pullSecrets to apply or render (all when none are named).")
        var names: [String] = []

        @Flag(name: .customLong("render"), help: "Print the manifests instead of applying them.")
        var render = false

        @Flag(name: .customLong("show-secrets"), help: "Put the real passwords and tokens into the printed Secret.")
        var showSecrets = false

        func run() async throws {
            let loaded = try await global.load()
            let all = loaded.config.pullSecrets
            for name in names where !all.contains(where: { $0.name == name }) {
                let known = all.map(\.name).joined(separator: ", ")
                Terminal.error(
                    "\(loaded.displayPath): pullSecrets: no entry named \"\(name)\""
                        + (known.isEmpty ? "; the config has no pullSecrets" : " (entries: \(known))")
                )
                throw ExitCode.failure
            }
            let selected = names.isEmpty ? all : all.filter { names.contains($0.name) }
            let environment = try global.environment()
            do {
                // -n, else the kube context's namespace (as kubectl would use).
                let target = try KubeTarget.resolve(
                    context: global.kubeContext,
                    namespace: global.namespace,
                    environment: environment
                )
                let namespace = target?.namespace ?? global.namespace
                if !render && target == nil {
                    Terminal.error(
                        "slipway pull-secrets: there is no cluster to apply to: no kubeconfig (KUBECONFIG, ~/.kube/config), or it names no current context and --kube-context is not given; print the manifests with `slipway pull-secrets --render`"
                    )
                    throw ExitCode.failure
                }
                let docker = try DockerConfigFile.load(environment: environment)
                let rendered = try await PullSecretRenderer(namespace: namespace, showSecrets: showSecrets || !render)
                    .render(
                        selected
                    ) { (registry: String) throws(RegistryError) -> RegistryCredential? in
                        try await docker.credential(for: registry, environment: environment)
                    }
                for warning in rendered.warnings { Terminal.error("warning: \(warning)") }
                if rendered.manifests.isEmpty {
                    if !global.silent { Terminal.error("no pull secrets to \(render ? "render" : "apply")") }
                    return
                }
                if render {
                    Terminal.out(try YAMLEmitter().emit(rendered.manifests))
                    return
                }
                let applier = PullSecretApplier(
                    context: target?.context,
                    namespace: namespace,
                    environment: environment
                )
                for line in try await applier.apply(rendered) where !global.silent { Terminal.out(line + "\n") }
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
