import Foundation
import SlipwayTestSupport
import Testing

/// `slipway pull-secrets` end to end: the binary, a config and a Docker config directory.
@Suite struct PullSecretsCommandTests {
    @Test func rendersRedactedManifestsAndExplainsWhatItCannotDo() throws {
        try withTemporaryDirectory { dir in
            try """
            version: v2beta1
            name: ps
            pullSecrets:
              ghcr:
                registry: ghcr.io
                username: me
                password: hunter2
              hub:
                registry: docker.io
            """.write(toFile: dir + "/devspace.yaml", atomically: true, encoding: .utf8)
            let docker = dir + "/docker-config"
            try FileManager.default.createDirectory(atPath: docker, withIntermediateDirectories: true)
            let auth = Data("hubuser:hubpass".utf8).base64EncodedString()
            try "{\"auths\": {\"https://index.docker.io/v1/\": {\"auth\": \"\(auth)\"}}}".write(
                toFile: docker + "/config.json",
                atomically: true,
                encoding: .utf8
            )
            let env = ["DOCKER_CONFIG": docker]

            let rendered = try SlipwayBinary.run(["pull-secrets", "--render", "-n", "dev"], in: dir, env: env)
            #expect(rendered.status == 0, "\(rendered.stderr)")
            #expect(rendered.stdout.contains("kind: Secret\n"))
            #expect(rendered.stdout.contains("namespace: dev\n"))
            #expect(rendered.stdout.contains("kind: ServiceAccount\n"))
            for secret in ["hunter2", "hubpass"] {
                #expect(!rendered.stdout.contains(secret) && !rendered.stderr.contains(secret))
            }

            let shown = try SlipwayBinary.run(["pull-secrets", "--render", "--show-secrets"], in: dir, env: env)
            #expect(shown.status == 0)
            let line = shown.stdout.split(separator: "\n").first { $0.contains(".dockerconfigjson:") }
            let encoded = line.map { String($0.split(separator: " ").last ?? "") } ?? ""
            let json = Data(base64Encoded: encoded).map { String(decoding: $0, as: UTF8.self) } ?? ""
            #expect(json.contains("\"password\":\"hunter2\""), "\(json)")
            #expect(
                json.contains("\"https:\\/\\/index.docker.io\\/v1\\/\"")
                    || json.contains("\"https://index.docker.io/v1/\"")
            )

            // Without -n, the kubeconfig context's namespace.
            try
                "current-context: kind-dev\ncontexts:\n- name: kind-dev\n  context:\n    cluster: kind-dev\n    namespace: from-kube\n"
                .write(toFile: dir + "/kubeconfig", atomically: true, encoding: .utf8)
            let fromKube = try SlipwayBinary.run(
                ["pull-secrets", "--render"],
                in: dir,
                env: env.merging(["KUBECONFIG": dir + "/kubeconfig"]) { $1 }
            )
            #expect(fromKube.status == 0, "\(fromKube.stderr)")
            #expect(fromKube.stdout.contains("namespace: from-kube\n"), "\(fromKube.stdout)")
            try "contexts: {\n".write(toFile: dir + "/kubeconfig", atomically: true, encoding: .utf8)
            let brokenKube = try SlipwayBinary.run(
                ["pull-secrets", "--render"],
                in: dir,
                env: env.merging(["KUBECONFIG": dir + "/kubeconfig"]) { $1 }
            )
            #expect(brokenKube.status == 1)
            #expect(brokenKube.stderr.hasPrefix("\(dir)/kubeconfig:"), "\(brokenKube.stderr)")

            let unknown = try SlipwayBinary.run(["pull-secrets", "--render", "nope"], in: dir, env: env)
            #expect(unknown.status == 1)
            #expect(
                unknown.stderr.contains(#"pullSecrets: no entry named "nope" (entries: ghcr, hub)"#),
                "\(unknown.stderr)"
            )

            // Applying without a kubeconfig: nothing is run, and the message says why.
            let noCluster = try SlipwayBinary.run(
                ["pull-secrets"],
                in: dir,
                env: env.merging(["KUBECONFIG": dir + "/none"]) { $1 }
            )
            #expect(noCluster.status == 1)
            #expect(noCluster.stderr.contains("there is no cluster to apply to: no kubeconfig"), "\(noCluster.stderr)")
            #expect(noCluster.stderr.contains("slipway pull-secrets --render"))

            // The real kubectl against a context whose API server does not answer: exit 1, the
            // failed command named, no secret shown.
            try """
            apiVersion: v1
            kind: Config
            current-context: c1
            contexts:
            - name: c1
              context: {cluster: c1, user: u1, namespace: dev}
            clusters:
            - name: c1
              cluster: {server: "https://127.0.0.1:\(try freePort())"}
            users:
            - name: u1
              user: {token: abc}
            """.write(toFile: dir + "/kubeconfig", atomically: true, encoding: .utf8)
            let started = Date()
            let unreachable = try SlipwayBinary.run(
                ["pull-secrets"],
                in: dir,
                env: env.merging(["KUBECONFIG": dir + "/kubeconfig"]) { $1 }
            )
            #expect(unreachable.status == 1)
            #expect(Date().timeIntervalSince(started) < 30)
            #expect(
                unreachable.stderr.contains("kubectl --context c1 --namespace dev apply -f - failed"),
                "\(unreachable.stderr)"
            )
            #expect(unreachable.stderr.contains("is a cluster reachable"))
            for secret in ["hunter2", "hubpass"] {
                #expect(!unreachable.stdout.contains(secret) && !unreachable.stderr.contains(secret))
            }

            try "{".write(toFile: docker + "/config.json", atomically: true, encoding: .utf8)
            let broken = try SlipwayBinary.run(["pull-secrets", "--render"], in: dir, env: env)
            #expect(broken.status == 1)
            #expect(broken.stderr.contains("\(docker)/config.json: not valid JSON"), "\(broken.stderr)")
            #expect(!broken.crashed)
        }
    }

    /// What `slipway pull-secrets` asks of kubectl. No Kubernetes cluster can run on this
    /// machine (no kind, minikube or k3s, and no nested containers for them), so a `kubectl` on
    /// PATH records its arguments and stdin and answers `get serviceaccount` the way the API
    /// server would; the real kubectl's failure without a cluster is tested above.
    @Test func appliesSecretsThenAddsThemToServiceAccounts() throws {
        try withTemporaryDirectory { dir in
            try """
            version: v2beta1
            name: ps
            pullSecrets:
              ghcr:
                registry: ghcr.io
                username: me
                password: hunter2
                serviceAccounts: [default, builder]
            """.write(toFile: dir + "/devspace.yaml", atomically: true, encoding: .utf8)
            try "current-context: c1\ncontexts:\n- name: c1\n  context: {cluster: c1, namespace: team}\n".write(
                toFile: dir + "/kubeconfig",
                atomically: true,
                encoding: .utf8
            )
            let bin = dir + "/bin"
            try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
            try writeExecutable(
                """
                #!/bin/sh
                n=$(ls "\(dir)"/call-* 2>/dev/null | wc -l)
                printf '%s\\n' "$@" > "\(dir)/call-$n"
                case "$*" in
                  *" apply -f -") cat > "\(dir)/stdin-$n"; echo "secret/devspace-pull-secrets created" ;;
                  *" create -f -") cat > "\(dir)/stdin-$n"; echo "serviceaccount/builder created" ;;
                  *"get serviceaccount default -o json") echo '{"kind":"ServiceAccount","imagePullSecrets":[{"name":"other"}]}' ;;
                  *"get serviceaccount builder -o json") echo 'Error from server (NotFound): serviceaccounts "builder" not found' >&2; exit 1 ;;
                  *" patch serviceaccount default "*) echo "serviceaccount/default patched" ;;
                  *) echo "unexpected: $*" >&2; exit 3 ;;
                esac
                """,
                to: bin + "/kubectl"
            )
            let env = [
                "KUBECONFIG": dir + "/kubeconfig", "DOCKER_CONFIG": dir + "/none",
                "PATH": bin + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"),
            ]
            let r = try SlipwayBinary.run(["pull-secrets"], in: dir, env: env)
            #expect(r.status == 0, "\(r.stderr)")
            #expect(
                r.stdout
                    == "secret/devspace-pull-secrets created\nserviceaccount/default patched\nserviceaccount/builder created\n"
            )
            #expect(!r.stdout.contains("hunter2") && !r.stderr.contains("hunter2"))
            func call(_ n: Int) -> [String] {
                ((try? String(contentsOfFile: dir + "/call-\(n)", encoding: .utf8)) ?? "").split(separator: "\n").map(
                    String.init
                )
            }
            let scope = ["--context", "c1", "--namespace", "team"]
            #expect(call(0) == scope + ["apply", "-f", "-"])
            #expect(call(1) == scope + ["get", "serviceaccount", "default", "-o", "json"])
            #expect(
                call(2) == scope + [
                    "patch", "serviceaccount", "default", "--type", "merge", "-p",
                    #"{"imagePullSecrets":[{"name":"other"},{"name":"devspace-pull-secrets"}]}"#,
                ]
            )
            #expect(call(3) == scope + ["get", "serviceaccount", "builder", "-o", "json"])
            #expect(call(4) == scope + ["create", "-f", "-"])
            // The applied Secret carries the real password (decoded back).
            let applied = (try? String(contentsOfFile: dir + "/stdin-0", encoding: .utf8)) ?? ""
            let encoded =
                applied.split(separator: "\n").first { $0.contains(".dockerconfigjson:") }
                .map { String($0.split(separator: " ").last ?? "") } ?? ""
            let json = Data(base64Encoded: encoded).map { String(decoding: $0, as: UTF8.self) } ?? ""
            #expect(json.contains(#""password":"hunter2""#), "\(applied)")
            let created = (try? String(contentsOfFile: dir + "/stdin-4", encoding: .utf8)) ?? ""
            #expect(
                created.contains("kind: ServiceAccount") && created.contains("name: devspace-pull-secrets"),
                "\(created)"
            )
        }
    }
}
