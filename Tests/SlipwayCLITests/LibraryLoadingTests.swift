import Foundation
import SlipwayTestSupport
import Testing

/// libgit2 and the fifteen libraries it pulls in are loaded on the first libgit2 call
/// (`Sources/CGit2Loader`), so a run that needs no git fact does not pay for them at start-up.
/// glibc's loader says what it loads under `LD_DEBUG=files`.
@Suite struct LibraryLoadingTests {
    @Test func libgit2IsLoadedOnlyByARunThatAsksGitSomething() throws {
        try withTemporaryDirectory { directory in
            try "version: v2beta1\nname: lazy\n".write(
                toFile: directory + "/devspace.yaml",
                atomically: true,
                encoding: .utf8
            )
            #expect(try sh(["git", "init", "-q", directory], cwd: directory).status == 0)

            for arguments in [["--version"], ["validate"]] {
                let run = try SlipwayBinary.run(arguments, in: directory, env: ["LD_DEBUG": "files"])
                #expect(run.status == 0, "\(arguments): \(run.stderr.suffix(500))")
                #expect(run.stderr.contains("libc.so"), "LD_DEBUG=files printed nothing: \(run.stderr.prefix(300))")
                #expect(!run.stderr.contains("libgit2"), "\(arguments) loaded libgit2")
            }

            // `status` finds the repository's agent through libgit2: loaded then, and it works.
            let status = try SlipwayBinary.run(["status"], in: directory, env: ["LD_DEBUG": "files"])
            #expect(status.status == 0, "\(status.stderr.suffix(500))")
            #expect(status.stderr.contains("libgit2.so"), "status did not load libgit2")
            #expect(status.stdout.contains("agent: not running"), "\(status.stdout)")
        }
    }
}
