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
                toFile: docker + "/config.json", atomically: true, encoding: .utf8)
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
            #expect(json.contains("\"https:\\/\\/index.docker.io\\/v1\\/\"") || json.contains("\"https://index.docker.io/v1/\""))

            // Without -n, the kubeconfig context's namespace.
            try "current-context: kind-dev\ncontexts:\n- name: kind-dev\n  context:\n    cluster: kind-dev\n    namespace: from-kube\n"
                .write(toFile: dir + "/kubeconfig", atomically: true, encoding: .utf8)
            let fromKube = try SlipwayBinary.run(
                ["pull-secrets", "--render"], in: dir, env: env.merging(["KUBECONFIG": dir + "/kubeconfig"]) { $1 })
            #expect(fromKube.status == 0, "\(fromKube.stderr)")
            #expect(fromKube.stdout.contains("namespace: from-kube\n"), "\(fromKube.stdout)")
            try "contexts: {\n".write(toFile: dir + "/kubeconfig", atomically: true, encoding: .utf8)
            let brokenKube = try SlipwayBinary.run(
                ["pull-secrets", "--render"], in: dir, env: env.merging(["KUBECONFIG": dir + "/kubeconfig"]) { $1 })
            #expect(brokenKube.status == 1)
            #expect(brokenKube.stderr.hasPrefix("\(dir)/kubeconfig:"), "\(brokenKube.stderr)")

            let unknown = try SlipwayBinary.run(["pull-secrets", "--render", "nope"], in: dir, env: env)
            #expect(unknown.status == 1)
            #expect(unknown.stderr.contains(#"pullSecrets: no entry named "nope" (entries: ghcr, hub)"#), "\(unknown.stderr)")

            let apply = try SlipwayBinary.run(["pull-secrets"], in: dir, env: env)
            #expect(apply.status == 1)
            #expect(apply.stderr.contains("not available yet"), "\(apply.stderr)")

            try "{".write(toFile: docker + "/config.json", atomically: true, encoding: .utf8)
            let broken = try SlipwayBinary.run(["pull-secrets", "--render"], in: dir, env: env)
            #expect(broken.status == 1)
            #expect(broken.stderr.contains("\(docker)/config.json: not valid JSON"), "\(broken.stderr)")
            #expect(!broken.crashed)
        }
    }
}
