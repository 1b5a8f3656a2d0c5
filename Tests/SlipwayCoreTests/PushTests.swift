import Foundation
import SlipwayTestSupport
import Testing

@testable import SlipwayCore

// The pieces of pushing that need no registry: error classification, the retry schedule,
// the X-Registry-Auth header, where each image goes per kube context, and the streamed
// answer of the engine's push call split at awkward places. The registry itself is
// exercised in SlipwayCLITests/PushIntegrationTests.
struct PushTests {
    @Test(arguments: [
        ("unauthorized: authentication required", "authentication"),
        ("no basic auth credentials", "authentication"),
        ("denied: requested access to the resource is denied", "authentication"),
        ("An image does not exist locally with the tag: x/y", "permanent"),
        ("invalid reference format", "permanent"),
        (#"Get "http://127.0.0.1:1/v2/": dial tcp 127.0.0.1:1: connect: connection refused"#, "transient"),
        (#"Get "http://127.0.0.1:1/v2/": context deadline exceeded"#, "transient"),
        ("received unexpected HTTP status: 502 Bad Gateway", "transient"),
    ])
    func classifiesRegistryErrors(message: String, kind: String) {
        let found: String
        switch PushFailure.classify(message) {
        case .authentication: found = "authentication"
        case .permanent: found = "permanent"
        case .transient: found = "transient"
        case .stalled: found = "stalled"
        }
        #expect(found == kind)
    }

    @Test func retryScheduleDoubles() {
        let policy = PushPolicy()
        #expect(policy.attempts == 3)
        #expect(policy.backoff(after: 1) == .seconds(1))
        #expect(policy.backoff(after: 2) == .seconds(2))
        #expect(policy.backoff(after: 3) == .seconds(4))
        #expect(PushPolicy(attempts: 0).attempts == 1)
        #expect(PushFailure.stalled(.milliseconds(2500)).description == "no progress for 2.5 s")
    }

    @Test func registryAuthHeaderDecodesToTheCredential() throws {
        func decoded(_ header: String) throws -> [String: String] {
            var text = header.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
            while text.count % 4 != 0 { text += "=" }
            let data = try #require(Data(base64Encoded: text))
            return try #require(try JSONSerialization.jsonObject(with: data) as? [String: String])
        }
        // A password whose base64 has `+` and `/` in the standard alphabet.
        let password = "p>?>?~ü"
        let header = DockerEngine.registryAuthHeader(
            RegistryCredential(serverAddress: "127.0.0.1:5000", username: "me", secret: password)
        )
        #expect(!header.contains("+") && !header.contains("/"))
        #expect(try decoded(header) == ["username": "me", "password": password, "serveraddress": "127.0.0.1:5000"])
        let token = DockerEngine.registryAuthHeader(
            RegistryCredential(serverAddress: "ghcr.io", username: "", secret: "tok", isIdentityToken: true)
        )
        #expect(try decoded(token) == ["identitytoken": "tok", "serveraddress": "ghcr.io"])
        #expect(try decoded(DockerEngine.registryAuthHeader(nil)) == [:])
    }

    @Test func deliveryPerContext() throws {
        func image(_ extra: String = "") throws -> ImageConfig {
            let node = try #require(try YAMLParser().parse("image: ghcr.io/acme/app\n" + extra))
            return ImageConfig(key: "app", node: node)
        }
        let docker = DockerEngine()
        var options = BuildOptions()
        func target(_ context: String?, _ img: ImageConfig? = nil) throws -> DeliveryPlan.Target? {
            DeliveryPlan.decide(image: try img ?? image(), engine: docker, options: options, context: context).target
        }
        #expect(try target(nil) == .registry)
        #expect(try target("production") == .registry)
        for local in ["minikube", "docker-desktop", "docker-for-desktop", "orbstack", "vcluster-docker_x"] {
            #expect(try target(local) == nil, "\(local)")
        }
        #expect(try target("kind-dev") == .kind(cluster: "dev"))
        #expect(try target("vcluster_v_ns_kind-dev") == .kind(cluster: "dev"))
        #expect(try target("production", try image("skipPush: true\n")) == nil)
        // DevSpace loads into kind whenever the push is skipped there.
        #expect(try target("kind-dev", try image("skipPush: true\n")) == .kind(cluster: "dev"))
        options.skipPush = true
        #expect(try target(nil) == nil)
        #expect(try target("kind-dev") == .kind(cluster: "dev"))
        options.skipPush = false
        options.skipPushOnLocalCluster = false
        #expect(try target("docker-desktop") == .registry)
        // Custom builds push (or not) by themselves; buildah cannot feed `kind load`.
        #expect(
            DeliveryPlan.decide(
                image: try image(),
                engine: BuildahEngine(),
                options: BuildOptions(),
                context: "kind-dev"
            ).target == nil
        )
        #expect(DeliveryPlan(target: .kind(cluster: "dev")).recordKey("a:1") == "kind:dev a:1")
        #expect(DeliveryPlan(target: .registry).recordKey("a:1") == "a:1")
    }

    @Test func streamedLinesSurviveAnySplit() throws {
        let lines = [
            #"{"status":"The push refers to repository [127.0.0.1:5000/app]"}"#,
            #"{"status":"Pushing","progressDetail":{"current":1,"total":2},"id":"abc"}"#,
            #"{"progressDetail":{},"aux":{"Tag":"v1","Digest":"sha256:00","Size":528}}"#,
        ]
        // Chunked transfer encoding with a chunk boundary inside the second line.
        let text = lines.joined(separator: "\n") + "\n"
        let cut = text.utf8.count / 2
        let first = String(decoding: Array(text.utf8)[..<cut], as: UTF8.self)
        let second = String(decoding: Array(text.utf8)[cut...], as: UTF8.self)
        let body = Array(
            (String(first.utf8.count, radix: 16) + ";ext=1\r\n" + first + "\r\n" + String(second.utf8.count, radix: 16)
                + "\r\n" + second + "\r\n0\r\n\r\n").utf8
        )
        for step in [1, 2, 3, 7, 64, body.count] {
            var stream = JSONLineStream()
            var got: [String] = []
            var ended = false
            var i = 0
            // The caller stops reading at the last chunk (the trailer's CRLF is never parsed).
            while i < body.count && !ended {
                let piece = Array(body[i..<min(i + step, body.count)])
                i += step
                ended = try stream.append(
                    piece,
                    chunked: true,
                    request: "test",
                    { got.append(String(decoding: $0, as: UTF8.self)) }
                )
            }
            #expect(got == lines, "step \(step)")
            #expect(ended)
        }
        let message = try JSONDecoder().decode(DockerStreamMessage.self, from: Data(lines[2].utf8))
        #expect(message.aux?.digest == "sha256:00")
        let failure = try JSONDecoder().decode(
            DockerStreamMessage.self,
            from: Data(#"{"errorDetail":{"message":"denied"},"error":"denied"}"#.utf8)
        )
        #expect(failure.errorMessage == "denied")
    }

    @Test func cacheRecordsPushes() async throws {
        try await withTemporaryDirectory { dir in
            let cache = BuildCache(configPath: dir + "/devspace.yaml")
            var entry = ImageCacheEntry(imageName: "127.0.0.1:5000/app", tag: "v1", tags: ["v1"], imageID: "sha256:aa")
            try await cache.recordBuilds(["app": entry])
            #expect(try cache.read()["app"] == entry)
            let keys = ["127.0.0.1:5000/app:v1", "kind:dev 127.0.0.1:5000/app:v1"]
            try cache.recordDeliveries(["app": ("sha256:aa", keys)])
            entry.pushed = ["127.0.0.1:5000/app:v1": "sha256:aa", "kind:dev 127.0.0.1:5000/app:v1": "sha256:aa"]
            #expect(try cache.read()["app"] == entry)
            // A delivery of another image ID than the one recorded is not written.
            try cache.recordDeliveries(["app": ("sha256:bb", ["127.0.0.1:5000/app:v2"])])
            #expect(try cache.read()["app"] == entry)
        }
    }
}
