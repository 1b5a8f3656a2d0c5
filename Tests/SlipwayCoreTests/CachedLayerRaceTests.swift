import Testing

@testable import SlipwayCore

/// The classic builder fails a step when an image it reuses as cache is removed meanwhile
/// (seen in CI: another test's clean-up, or the agent's retention, removing an image whose
/// unused parents were this build's cache); slipway builds once more on such a failure only.
struct CachedLayerRaceTests {
    @Test func aRemovedCachedLayerIsRecognisedAndNothingElseIs() {
        // The lines the engine printed in the CI failure, as the build's last lines.
        let lost = [
            "Step 2/2 : COPY hello.txt /hello.txt",
            "unable to find image \"sha256:3f75747e7b4c96eb3eb1e426eb51f120e02b6f47ac5fb27d5fa7b26c0e0b11af\"",
        ]
        #expect(DockerEngine.lostCachedLayer(lost))
        #expect(
            DockerEngine.lostCachedLayer([
                "Step 3/4 : RUN make", "Error response from daemon: No such image: sha256:0123",
            ])
        )
        // A build that fails on its own is not built again.
        #expect(
            !DockerEngine.lostCachedLayer([
                "Step 2/2 : RUN false", "The command '/bin/sh -c false' returned a non-zero code: 1",
            ])
        )
        #expect(!DockerEngine.lostCachedLayer(["Step 1/2 : FROM nosuch/image", "pull access denied for nosuch/image"]))
        #expect(!DockerEngine.lostCachedLayer([]))
    }
}
