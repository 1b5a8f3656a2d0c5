import Foundation
import SlipwayCore
import SlipwayTestSupport
import Testing

/// What slipway says, as a DevSpace user reads it on the first day (issue 14): each message
/// through the built binary, on real files, git and the real Docker engine.
@Suite(.requiresDockerEngine, .timeLimit(.minutes(5)))
struct MessagesTests {
    /// A project of `images` (every one on the offline base image) and `extra` config; its
    /// images are removed by `cleanUp`.
    struct Project {
        let dir: String
        let repo = uniqueTestRepository()
        var env: [String: String]

        init(_ dir: String, images: [String: String] = ["app": ""], extra: String = "", git: Bool = true) throws {
            self.dir = dir
            env = ["KUBECONFIG": dir + "/no-kubeconfig", "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null"]
            try "FROM slipway/busybox\nCOPY hello.txt /hello.txt\n".write(
                toFile: dir + "/Dockerfile",
                atomically: true,
                encoding: .utf8
            )
            try "hello\n".write(toFile: dir + "/hello.txt", atomically: true, encoding: .utf8)
            var config = "version: v2beta1\nname: messages\nimages:\n"
            for (key, fields) in images.sorted(by: { $0.key < $1.key }) {
                config += "  \(key):\n    image: \(repo)-\(key)\n" + fields
            }
            try (config + extra).write(toFile: dir + "/devspace.yaml", atomically: true, encoding: .utf8)
            if git { #expect(try sh(["git", "init", "-q", dir], cwd: "/").status == 0) }
        }

        func slipway(_ args: [String], env extra: [String: String] = [:]) throws -> SlipwayBinary.Result {
            try SlipwayBinary.run(args, in: dir, env: env.merging(extra) { $1 }, timeout: 120)
        }

        func cleanUp() {
            let r = try? sh(
                ["sh", "-c", "docker images --format '{{.Repository}}:{{.Tag}}' | grep -F \"$1\"", "sh", repo],
                cwd: "/"
            )
            let ours = (r?.stdout ?? "").split(separator: "\n").map(String.init).filter { !$0.isEmpty }
            if !ours.isEmpty { _ = try? sh(["docker", "rmi", "-f", "--no-prune"] + ours, cwd: "/") }
        }
    }

    /// A kubeconfig whose current context (with a space in its name and namespace) points at
    /// a port where nothing listens.
    static func unreachableKubeconfig(_ path: String) throws {
        try """
        apiVersion: v1
        kind: Config
        current-context: my ctx
        contexts:
        - name: my ctx
          context: {cluster: c, user: u, namespace: team a}
        clusters:
        - name: c
          cluster: {server: "https://127.0.0.1:1"}
        users:
        - name: u
          user: {token: not-a-secret}
        """.write(toFile: path, atomically: true, encoding: .utf8)
    }

    @Test func purgeWithoutAClusterSaysPurgeAndNoStopDevNote() throws {
        try withTemporaryDirectory { dir in
            let p = try Project(dir, extra: "deployments:\n  k8s:\n    kubectl:\n      manifests: [k8s.yaml]\n")
            defer { p.cleanUp() }
            let purge = try p.slipway(["purge"])
            #expect(purge.status == 1)
            #expect(purge.stderr.contains("there is no cluster to purge k8s (kubectl) from"), "\(purge.stderr)")
            #expect(purge.stderr.contains("nothing was purged"), "\(purge.stderr)")
            #expect(
                !purge.stderr.contains("to deploy") && !purge.stderr.contains("nothing was deployed"),
                "\(purge.stderr)"
            )
            #expect(!(purge.stdout + purge.stderr).contains("stop_dev"), "no dev session can run: nothing to say")
        }
    }

    @Test func aFailedKubectlShowsItsWholeCommandQuoted() throws {
        try withTemporaryDirectory { dir in
            var p = try Project(dir, extra: "deployments:\n  k8s:\n    kubectl:\n      manifests: [k8s.yaml]\n")
            defer { p.cleanUp() }
            try "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers:\n  - name: app\n    image: x\n"
                .write(toFile: dir + "/k8s.yaml", atomically: true, encoding: .utf8)
            try Self.unreachableKubeconfig(dir + "/kubeconfig")
            p.env["KUBECONFIG"] = dir + "/kubeconfig"
            let deploy = try p.slipway(["deploy", "--skip-push"])
            #expect(deploy.status == 1)
            #expect(
                deploy.stderr.contains(
                    "deploy:k8s failed: kubectl --context 'my ctx' --namespace 'team a' apply --force -f - failed (exit status"
                ),
                "\(deploy.stderr)"
            )
        }
    }

    @Test func theGitInContextNoteComesOncePerRun() throws {
        try withTemporaryDirectory { dir in
            let p = try Project(dir, images: ["api": "", "web": ""])
            defer { p.cleanUp() }
            let build = try p.slipway(["build", "--skip-push", "--dry-run"])
            #expect(build.status == 0, "\(build.stderr)")
            let notes = build.stdout.split(separator: "\n").filter {
                $0.contains("holds .git") || $0.contains("hold .git")
            }
            #expect(
                notes == [
                    "note: images api, web: their contexts hold .git and .dockerignore does not exclude it, so every commit changes the context and rebuilds them; add .git to .dockerignore"
                ],
                "\(build.stdout)"
            )
        }
    }

    @Test func jsonEscapesNoSlash() throws {
        try withTemporaryDirectory { dir in
            let p = try Project(dir)
            defer { p.cleanUp() }
            let build = try p.slipway(["build", "--skip-push", "--dry-run", "--json"])
            #expect(build.status == 0, "\(build.stderr)")
            #expect(build.stdout.contains("\"imageName\" : \"\(p.repo)-app\""), "\(build.stdout)")
            #expect(!build.stdout.contains("\\/"), "\(build.stdout)")
        }
    }

    @Test func ignoreContextChangesGivesTheRightReason() throws {
        try withTemporaryDirectory { dir in
            let p = try Project(dir, git: false)
            defer { p.cleanUp() }
            #expect(try p.slipway(["build", "--skip-push"]).status == 0)
            // The strategy changes: the reason says so, not "context changed".
            let config = try String(contentsOfFile: dir + "/devspace.yaml", encoding: .utf8)
            try config.replacingOccurrences(of: "-app\n", with: "-app\n    rebuildStrategy: ignoreContextChanges\n")
                .write(toFile: dir + "/devspace.yaml", atomically: true, encoding: .utf8)
            let changed = try p.slipway(["build", "--skip-push"])
            #expect(changed.status == 0, "\(changed.stderr)")
            #expect(
                changed.stdout.contains(
                    "rebuildStrategy is now ignoreContextChanges (the last build was decided on its context)"
                ),
                "\(changed.stdout)"
            )
            #expect(!changed.stdout.contains("context changed"), "\(changed.stdout)")
            // Under the strategy a context change is no reason at all; the Dockerfile is.
            try "changed\n".write(toFile: dir + "/hello.txt", atomically: true, encoding: .utf8)
            let same = try p.slipway(["build", "--skip-push", "--dry-run"])
            #expect(same.stdout.contains(": up to date"), "\(same.stdout)")
            try "FROM slipway/busybox\nCOPY hello.txt /other.txt\n".write(
                toFile: dir + "/Dockerfile",
                atomically: true,
                encoding: .utf8
            )
            let dockerfile = try p.slipway(["build", "--skip-push", "--dry-run"])
            #expect(dockerfile.stdout.contains(": Dockerfile changed"), "\(dockerfile.stdout)")
        }
    }

    @Test func notAGitRepositoryIsSaidOnce() throws {
        try withTemporaryDirectory { dir in
            let p = try Project(dir, images: ["app": "    tags: [\"$(git log -1 --format=%h)\"]\n"], git: false)
            defer { p.cleanUp() }
            for args in [["status"], ["agent", "start"]] {
                let r = try p.slipway(args)
                #expect(r.status == 1)
                #expect(
                    r.stderr
                        == "slipway: \(dir) is not inside a git repository; run `git init` there, or use --chdir to run slipway in a directory of a git repository\n",
                    "\(r.stderr)"
                )
            }
            let print = try p.slipway(["print"])
            #expect(print.status == 1)
            #expect(print.stderr.contains("this directory is not in a git repository"), "\(print.stderr)")
            #expect(!print.stderr.contains("fatal: not a git repository"), "\(print.stderr)")
        }
    }

    @Test func inClusterBuildsSayWhyWithAClusterToo() throws {
        try withTemporaryDirectory { dir in
            var p = try Project(dir, images: ["app": "    kaniko: {}\n", "bk": "    buildKit: {inCluster: {}}\n"])
            defer { p.cleanUp() }
            try Self.unreachableKubeconfig(dir + "/kubeconfig")
            p.env["KUBECONFIG"] = dir + "/kubeconfig"
            let build = try p.slipway(["build", "--skip-push"])
            #expect(build.status == 1)
            #expect(
                build.stderr.contains(
                    "kaniko: images.app.kaniko builds inside a Kubernetes cluster, which slipway does not do yet (with a cluster or without"
                ),
                "\(build.stderr)"
            )
            #expect(
                build.stderr.contains("buildkit: images.bk.buildKit.inCluster builds inside a Kubernetes cluster"),
                "\(build.stderr)"
            )
            #expect(!build.stderr.contains("none configured"), "\(build.stderr)")
        }
    }

    @Test func aFailedBuildsLogIsPrintedOnce() throws {
        try withTemporaryDirectory { dir in
            let p = try Project(dir)
            defer { p.cleanUp() }
            try "FROM slipway/busybox\nRUN echo this-step-breaks-\(p.repo.suffix(8)) && false\n".write(
                toFile: dir + "/Dockerfile",
                atomically: true,
                encoding: .utf8
            )
            let build = try p.slipway(["build", "--skip-push"])
            #expect(build.status == 1)
            let all = build.stdout + build.stderr
            let marker = "this-step-breaks-\(p.repo.suffix(8))"
            // The engine echoes the step once and prints its output once.
            let shown = all.components(separatedBy: "returned a non-zero code").count - 1
            #expect(shown == 1, "\(all)")
            #expect(all.components(separatedBy: "\n").filter { $0.hasSuffix(" " + marker) }.count == 1, "\(all)")
            #expect(
                build.stderr.contains(
                    "build:app failed: docker: building app failed (exit status 1) (its output is above)"
                ),
                "\(build.stderr)"
            )
            // Without the log on the terminal (--silent), the error carries its last lines.
            let silent = try p.slipway(["build", "--skip-push", "--silent"])
            #expect(silent.status == 1)
            #expect(silent.stderr.contains("returned a non-zero code"), "\(silent.stderr)")
            #expect(!silent.stderr.contains("its output is above"), "\(silent.stderr)")
        }
    }
}
