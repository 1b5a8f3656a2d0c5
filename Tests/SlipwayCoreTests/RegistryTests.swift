import Foundation
import SlipwayTestSupport
import Testing

@testable import SlipwayCore

// Credentials from a real Docker config directory and a real credential-helper program (a
// shell script speaking the docker-credential-helper protocol), and pull-secret manifests
// checked with kubernetes-validate and decoded back.

private func base64(_ text: String) -> String { Data(text.utf8).base64EncodedString() }

/// A `docker-credential-NAME` script in `directory` that knows one server and one secret, and
/// records each server it was asked about in `asked.log`.
private func writeHelper(_ name: String, in directory: String, server: String, user: String, secret: String) throws {
    let path = "\(directory)/docker-credential-\(name)"
    let script = """
        #!/bin/sh
        [ "$1" = get ] || exit 2
        read -r server
        printf '%s\\n' "$server" >> "\(directory)/asked.log"
        if [ "$server" = '\(server)' ]; then
          printf '{"ServerURL":"%s","Username":"\(user)","Secret":"\(secret)"}\\n' "$server"
        else
          echo 'credentials not found in native keychain'
          exit 1
        fi
        """
    try writeExecutable(script, to: path)
}

@Suite struct RegistryTests {
    @Test func registryNamesNormalise() {
        #expect(RegistryName.registry(ofImage: "app") == RegistryName.dockerHub)
        #expect(RegistryName.registry(ofImage: "acme/app") == RegistryName.dockerHub)
        #expect(RegistryName.registry(ofImage: "docker.io/acme/app") == RegistryName.dockerHub)
        #expect(RegistryName.registry(ofImage: "ghcr.io/acme/app") == "ghcr.io")
        #expect(RegistryName.registry(ofImage: "127.0.0.1:5000/app") == "127.0.0.1:5000")
        #expect(RegistryName.registry(ofImage: "localhost/app") == "localhost")
        #expect(RegistryName.key("https://index.docker.io/v1/") == RegistryName.dockerHub)
        #expect(RegistryName.key("") == RegistryName.dockerHub)
        #expect(RegistryName.key("https://ghcr.io/v2/") == "ghcr.io")
    }

    @Test func configFileAuthsAndErrors() async throws {
        try await withTemporaryDirectory { dir in
            let env = ["DOCKER_CONFIG": dir, "PATH": "/usr/bin:/bin"]
            // No file: no credentials, no error.
            #expect(
                try await DockerConfigFile.load(environment: env).credential(for: "ghcr.io", environment: env) == nil
            )

            try """
            {"auths": {
              "https://index.docker.io/v1/": {"auth": "\(base64("hubuser:hub:pass"))"},
              "ghcr.io": {"username": "gh", "password": "ghpass"},
              "https://registry.example.test/v1/": {"auth": "\(base64("ex:expass"))"},
              "token.example.test": {"identitytoken": "tok-123"}
            }}
            """.write(toFile: dir + "/config.json", atomically: true, encoding: .utf8)
            let config = try DockerConfigFile.load(environment: env)
            let hub = try #require(try await config.credential(for: "docker.io", environment: env))
            #expect(hub.username == "hubuser")
            #expect(hub.secret == "hub:pass", "only the first colon separates user and password")
            #expect(try await config.credential(for: "ghcr.io", environment: env)?.secret == "ghpass")
            #expect(try await config.credential(for: "registry.example.test", environment: env)?.username == "ex")
            let token = try #require(try await config.credential(for: "token.example.test", environment: env))
            #expect(token.isIdentityToken && token.secret == "tok-123")
            #expect(try await config.credential(for: "other.example.test", environment: env) == nil)
            // Descriptions never carry the secret.
            #expect(!"\(hub)".contains("hub:pass") && !String(reflecting: hub).contains("hub:pass"))

            try "{\"auths\": [".write(toFile: dir + "/config.json", atomically: true, encoding: .utf8)
            let error = #expect(throws: RegistryError.self) { try DockerConfigFile.load(environment: env) }
            #expect(
                error?.message.hasPrefix("\(dir)/config.json: not valid JSON") == true,
                "\(String(describing: error))"
            )
            try "{\"auths\": {\"ghcr.io\": {\"auth\": \"%%%\"}}}".write(
                toFile: dir + "/config.json",
                atomically: true,
                encoding: .utf8
            )
            let bad = try DockerConfigFile.load(environment: env)
            let authError = await #expect(throws: RegistryError.self) {
                try await bad.credential(for: "ghcr.io", environment: env)
            }
            #expect(authError?.message.contains("docker login ghcr.io") == true)
        }
    }

    @Test func credentialHelpersAreAskedWithTheirProtocol() async throws {
        try await withTemporaryDirectory { dir in
            let bin = dir + "/bin"
            try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
            try writeHelper("store", in: bin, server: RegistryName.dockerHub, user: "hub", secret: "s3cret-hub")
            try writeHelper("gh", in: bin, server: "ghcr.io", user: "<token>", secret: "gh-token")
            let env = ["DOCKER_CONFIG": dir, "PATH": "\(bin):/usr/bin:/bin"]
            try """
            {"auths": {"ghcr.io": {}, "https://index.docker.io/v1/": {}},
             "credsStore": "store", "credHelpers": {"ghcr.io": "gh"}}
            """.write(toFile: dir + "/config.json", atomically: true, encoding: .utf8)
            let config = try DockerConfigFile.load(environment: env)
            let hub = try #require(try await config.credential(for: "index.docker.io", environment: env))
            #expect(hub.username == "hub" && hub.secret == "s3cret-hub")
            let gh = try #require(try await config.credential(for: "ghcr.io", environment: env))
            #expect(gh.isIdentityToken && gh.secret == "gh-token")
            // Not stored: the store says so, which is no credentials rather than an error.
            #expect(try await config.credential(for: "quay.io", environment: env) == nil)
            let asked = try String(contentsOfFile: bin + "/asked.log", encoding: .utf8)
            #expect(asked == "https://index.docker.io/v1/\nghcr.io\nquay.io\n")

            // A helper named in the config but not installed is a clear error.
            try "{\"credsStore\": \"missing\"}".write(toFile: dir + "/config.json", atomically: true, encoding: .utf8)
            let missing = try DockerConfigFile.load(environment: env)
            let error = await #expect(throws: RegistryError.self) {
                try await missing.credential(for: "ghcr.io", environment: env)
            }
            #expect(error?.message.contains("docker-credential-missing") == true)
        }
    }

    private static let pullSecretsConfig = """
        version: v2beta1
        name: secrets
        pullSecrets:
          hub:
            registry: ""
          ghcr:
            registry: ghcr.io
            username: gh-user
            password: gh-pass
            serviceAccounts: [default, builder]
          private:
            registry: registry.example.test:5000
            secret: private-pull
            email: ops@example.test
          nothing:
            registry: nothing.example.test
        """

    private func render(showSecrets: Bool, dir: String) async throws -> PullSecretRenderer.Rendered {
        let loaded = try await loadConfig(Self.pullSecretsConfig)
        try """
        {"auths": {"https://index.docker.io/v1/": {"auth": "\(base64("hub-user:hub-pass"))"},
                   "registry.example.test:5000": {"username": "priv", "password": "priv-pass"}}}
        """.write(toFile: dir + "/config.json", atomically: true, encoding: .utf8)
        let env = ["DOCKER_CONFIG": dir, "PATH": "/usr/bin:/bin"]
        let docker = try DockerConfigFile.load(environment: env)
        return try await PullSecretRenderer(namespace: "team-a", showSecrets: showSecrets).render(
            loaded.config.pullSecrets
        ) { (registry: String) throws(RegistryError) -> RegistryCredential? in
            try await docker.credential(for: registry, environment: env)
        }
    }

    /// The `auths` of a rendered Secret, decoded.
    private func auths(_ secret: Node) throws -> [String: [String: String]] {
        let encoded = try #require(secret["data"]?[".dockerconfigjson"]?.scalar)
        let json = try #require(Data(base64Encoded: encoded))
        let object = try #require(try JSONSerialization.jsonObject(with: json) as? [String: [String: [String: String]]])
        return try #require(object["auths"])
    }

    @Test func pullSecretsMergePerRegistryAndDecodeBack() async throws {
        try await withTemporaryDirectory { dir in
            let rendered = try await render(showSecrets: true, dir: dir)
            #expect(rendered.warnings.count == 1)
            #expect(rendered.warnings.first?.hasPrefix("pullSecrets.nothing: no username or password") == true)
            let kinds = rendered.manifests.map {
                "\($0["kind"]?.scalar ?? "")/\($0["metadata"]?["name"]?.scalar ?? "")"
            }
            #expect(
                kinds == [
                    "Secret/devspace-pull-secrets", "Secret/private-pull", "ServiceAccount/default",
                    "ServiceAccount/builder",
                ]
            )
            #expect(rendered.manifests.allSatisfy { $0["metadata"]?["namespace"]?.scalar == "team-a" })
            #expect(rendered.manifests[0]["type"]?.scalar == "kubernetes.io/dockerconfigjson")

            let shared = try auths(rendered.manifests[0])
            #expect(Set(shared.keys) == ["https://index.docker.io/v1/", "ghcr.io"])
            #expect(shared["https://index.docker.io/v1/"]?["auth"] == base64("hub-user:hub-pass"))
            #expect(shared["ghcr.io"]?["username"] == "gh-user")
            #expect(shared["ghcr.io"]?["password"] == "gh-pass")
            #expect(shared["ghcr.io"]?["email"] == "noreply@devspace.sh")
            let privateAuths = try auths(rendered.manifests[1])
            #expect(privateAuths["registry.example.test:5000"]?["auth"] == base64("priv:priv-pass"))
            #expect(privateAuths["registry.example.test:5000"]?["email"] == "ops@example.test")

            // `default` pulls with both secrets, `builder` with the shared one.
            let pulls = rendered.manifests[2...].map {
                $0["imagePullSecrets"]?.items?.compactMap { $0["name"]?.scalar } ?? []
            }
            #expect(pulls == [["devspace-pull-secrets", "private-pull"], ["devspace-pull-secrets"]])
        }
    }

    @Test func pullSecretsAreRedactedUnlessAsked() async throws {
        try await withTemporaryDirectory { dir in
            let rendered = try await render(showSecrets: false, dir: dir)
            let text = try YAMLEmitter().emit(rendered.manifests)
            for secret in ["hub-pass", "gh-pass", "priv-pass"] {
                #expect(!text.contains(secret))
                #expect(!text.contains(base64(secret)))
            }
            let shared = try auths(rendered.manifests[0])
            #expect(shared["ghcr.io"]?["password"] == PullSecretRenderer.redacted)
            #expect(shared["ghcr.io"]?["auth"] == base64("gh-user:\(PullSecretRenderer.redacted)"))
        }
    }

    @Test(.requiresKubernetesValidate) func renderedManifestsValidate() async throws {
        try await withTemporaryDirectory { dir in
            for show in [false, true] {
                let rendered = try await render(showSecrets: show, dir: dir)
                let file = dir + "/manifests-\(show).yaml"
                try YAMLEmitter().emit(rendered.manifests).write(toFile: file, atomically: true, encoding: .utf8)
                let result = try sh(["kubernetes-validate", "--strict", file], cwd: dir)
                #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
            }
        }
    }
}
