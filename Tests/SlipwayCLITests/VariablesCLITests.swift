import Foundation
import SlipwayTestSupport
import Testing

/// Runs a command under a pseudo-terminal (python3's `pty`: the child gets it as its
/// controlling terminal, stdin, stdout and stderr), answers each prompt with the next of
/// `ANSWERS` (`|`-separated) once the output has paused after a prompt, and prints everything
/// the terminal showed, then `EXIT n`.
private let ptyDriver = """
    import os, pty, select, sys, time
    answers = os.environ["ANSWERS"].split("|") if os.environ.get("ANSWERS") else []
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(sys.argv[1], sys.argv[1:])
    out, pending, last = b"", b"", time.time()
    deadline = time.time() + 20
    while time.time() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                data = os.read(fd, 4096)
            except OSError:
                break
            if not data:
                break
            out += data
            pending += data
            last = time.time()
        elif answers and pending.rstrip()[-1:] in (b":", b"?", b")") and time.time() - last > 0.3:
            os.write(fd, (answers.pop(0) + "\\n").encode())
            pending = b""
    _, status = os.waitpid(pid, 0)
    sys.stdout.write(out.decode(errors="replace").replace("\\r\\n", "\\n"))
    sys.stdout.write("\\nEXIT %d\\n" % os.waitstatus_to_exitcode(status))
    """

/// Questions, the vars cache, undefined variables, `print` and `validate` through the binary.
@Suite struct VariablesCLITests {
    static let questions = """
        version: v2beta1
        name: quest
        vars:
          TARGET:
            question: Which environment do you deploy to?
            options: [dev, staging, production]
            default: staging
          TOKEN:
            question: Registry token?
            password: true
        deployments:
          web:
            namespace: shop-${TARGET}
            helm:
              chart:
                name: ./chart
              values:
                token: ${TOKEN}
                shell: ${NOT_A_VARIABLE}
        """

    /// `slipway ARGS` under a pseudo-terminal, answering `answers` in turn.
    static func onTerminal(_ args: [String], in dir: String, answers: [String]) throws -> String {
        let driver = dir + "/.pty-driver.py"
        if !FileManager.default.fileExists(atPath: driver) {
            try ptyDriver.write(toFile: driver, atomically: true, encoding: .utf8)
        }
        let r = try sh(
            ["python3", driver, SlipwayBinary.path] + args,
            cwd: dir,
            env: [
                "ANSWERS": answers.joined(separator: "|"), "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "",
                "HOME": dir, "LANG": "C.UTF-8",
            ],
            replacingEnvironment: true
        )
        #expect(r.status == 0, "python3 pty driver: \(r.stderr)")
        return r.stdout
    }

    /// On a terminal the questions are asked (a choice, a password without echo), the answers
    /// used and remembered in `.devspace/cache.yaml` (0600: it holds a password); the next run
    /// asks nothing. Without a terminal, remembered answers are used too.
    @Test func askedOnATerminalAndRemembered() throws {
        try withTemporaryDirectory { dir in
            try Self.questions.write(toFile: dir + "/devspace.yaml", atomically: true, encoding: .utf8)
            let first = try Self.onTerminal(["print", "--skip-info"], in: dir, answers: ["3", "hunter2-token"])
            #expect(first.contains("? Which environment do you deploy to?"), "\(first)")
            #expect(first.contains("  3) production") && first.contains("[2]:"), "the default is preselected: \(first)")
            #expect(first.contains("? Registry token?"), "\(first)")
            #expect(!first.contains("hunter2"), "a password is neither echoed nor printed: \(first)")
            #expect(first.contains("namespace: shop-production"), "\(first)")
            #expect(first.contains("token: '********'"), "\(first)")
            #expect(first.contains("shell: ${NOT_A_VARIABLE}"), "left as written: \(first)")
            #expect(first.hasSuffix("EXIT 0\n"), "\(first)")

            let cacheFile = dir + "/.devspace/cache.yaml"
            var st = stat()
            #expect(stat(cacheFile, &st) == 0 && st.st_mode & 0o777 == 0o600)
            let cache = try String(contentsOfFile: cacheFile, encoding: .utf8)
            #expect(cache.contains("TARGET: production") && cache.contains("TOKEN: hunter2-token"), "\(cache)")

            let second = try Self.onTerminal(["print", "--skip-info"], in: dir, answers: [])
            #expect(!second.contains("? "), "nothing is asked again: \(second)")
            #expect(second.contains("namespace: shop-production") && second.hasSuffix("EXIT 0\n"), "\(second)")

            let unattended = try SlipwayBinary.run(["print", "--skip-info"], in: dir)
            #expect(unattended.status == 0 && unattended.stdout.contains("namespace: shop-production"))

            // `slipway reset vars`, as `devspace reset vars`: forgotten, so asked again.
            let reset = try SlipwayBinary.run(["reset", "vars"], in: dir)
            #expect(reset.status == 0 && reset.stdout.contains("Successfully deleted all variables"), "\(reset)")
            #expect(!(try String(contentsOfFile: cacheFile, encoding: .utf8)).contains("TARGET"))
            let third = try Self.onTerminal(["print", "--skip-info"], in: dir, answers: ["", "t2"])
            #expect(third.contains("? Which environment") && third.contains("namespace: shop-staging"), "\(third)")
        }
    }

    /// Without a terminal the default is taken and nothing is asked; a question without a
    /// default is the clear error at the value's place.
    @Test func withoutATerminalTheDefaultIsUsed() throws {
        try withTemporaryDirectory { dir in
            try Self.questions.write(toFile: dir + "/devspace.yaml", atomically: true, encoding: .utf8)
            let failed = try SlipwayBinary.run(["print", "--skip-info"], in: dir)
            #expect(failed.status == 1)
            #expect(
                failed.stderr.hasPrefix("devspace.yaml:18:16: deployments.web.helm.values.token: variable ${TOKEN}"),
                "\(failed.stderr)"
            )
            #expect(failed.stderr.contains("no terminal to ask on"), "\(failed.stderr)")
            let r = try SlipwayBinary.run(["print", "--skip-info", "--var", "TOKEN=x"], in: dir)
            #expect(r.status == 0, "\(r.stderr)")
            #expect(r.stdout.contains("namespace: shop-staging") && !r.stdout.contains("?"), "\(r.stdout)")
            #expect(
                !FileManager.default.fileExists(atPath: dir + "/.devspace/cache.yaml"),
                "no answer, nothing written"
            )
        }
    }

    /// A pipeline's functions run as `slipway __pipeline-function` processes: they get the
    /// answers the pipeline's load was given and never ask again.
    @Test func pipelineFunctionsDoNotAskAgain() throws {
        try withTemporaryDirectory { dir in
            let config = """
                version: v2beta1
                name: quest
                vars:
                  TARGET:
                    question: Which environment?
                    noCache: true
                images:
                  app:
                    image: ghcr.io/acme/app-${TARGET}
                pipelines:
                  show: |-
                    echo "target=${TARGET}"
                    get_image app
                    get_image --only=tag app
                """
            try config.write(toFile: dir + "/devspace.yaml", atomically: true, encoding: .utf8)
            let out = try Self.onTerminal(["run-pipeline", "show"], in: dir, answers: ["prod"])
            #expect(out.components(separatedBy: "? Which environment?").count == 2, "asked exactly once: \(out)")
            #expect(out.contains("target=prod\n"), "\(out)")
            // Nothing built or cached: the name as written, and `latest` only for the tag.
            #expect(out.contains("\nghcr.io/acme/app-prod\n") && out.contains("\nlatest\n"), "\(out)")
            #expect(!FileManager.default.fileExists(atPath: dir + "/.devspace/cache.yaml"), "noCache")
        }
    }

    /// `print` as `devspace print`: the variables and the loaded path first (not with
    /// `--skip-info` or `--silent`), and `--dependency` prints a dependency's config.
    @Test func printInfoAndDependency() throws {
        try withTemporaryDirectory { dir in
            try FileManager.default.createDirectory(atPath: dir + "/backend", withIntermediateDirectories: true)
            try """
            version: v2beta1
            name: backend
            vars:
              PORT: "8080"
            images:
              api:
                image: acme/backend-${PORT}-${FROM_PARENT}
            """.write(toFile: dir + "/backend/devspace.yaml", atomically: true, encoding: .utf8)
            try """
            version: v2beta1
            name: front
            vars:
              REGION: eu
            images:
              web:
                image: acme/web-${REGION}
            dependencies:
              backend:
                path: ./backend
                vars:
                  FROM_PARENT: given
            """.write(toFile: dir + "/devspace.yaml", atomically: true, encoding: .utf8)
            let r = try SlipwayBinary.run(["print"], in: dir)
            #expect(r.status == 0, "\(r.stderr)")
            #expect(r.stdout.hasPrefix("\n-------------------\n\nVars:\n"), "\(r.stdout)")
            #expect(r.stdout.contains("   REGION | eu "), "\(r.stdout)")
            #expect(r.stdout.contains("Loaded path: \(dir)/devspace.yaml\n\n-------------------\n\nversion: v2beta1\n"))
            let skip = try SlipwayBinary.run(["print", "--skip-info"], in: dir)
            #expect(skip.stdout.hasPrefix("version: v2beta1\nname: front\n"), "\(skip.stdout)")
            let silent = try SlipwayBinary.run(["print", "--silent"], in: dir)
            #expect(silent.stdout == skip.stdout)

            let dep = try SlipwayBinary.run(["print", "--skip-info", "--dependency", "backend"], in: dir)
            #expect(dep.status == 0, "\(dep.stderr)")
            #expect(dep.stdout.contains("name: backend") && dep.stdout.contains("image: acme/backend-8080-given"))
            let missing = try SlipwayBinary.run(["print", "--dependency", "nope"], in: dir)
            #expect(missing.status == 1)
            #expect(missing.stderr.contains("couldn't find dependency nope"), "\(missing.stderr)")
        }
    }

    /// `validate` refuses what `build` would, at the config's place, exit 1; `build` says the same.
    @Test func validateChecksWhatABuildReads() throws {
        try withTemporaryDirectory { dir in
            try "FROM scratch AS base\n".write(toFile: dir + "/Dockerfile", atomically: true, encoding: .utf8)
            let config = """
                version: v2beta1
                name: inputs
                images:
                  staged:
                    image: acme/staged
                    target: release
                  missing:
                    image: acme/missing
                    dockerfile: ./missing.Dockerfile
                    context: ./nodir
                """
            try config.write(toFile: dir + "/devspace.yaml", atomically: true, encoding: .utf8)
            let expected = [
                "devspace.yaml:6:13: images.staged.target: ./Dockerfile has no stage named \"release\"",
                "devspace.yaml:10:14: images.missing.context: ./nodir does not exist",
                "devspace.yaml:9:17: images.missing.dockerfile: ./missing.Dockerfile does not exist",
            ]
            for command in [["validate"], ["build", "--skip-push"]] {
                let r = try SlipwayBinary.run(command, in: dir)
                #expect(r.status == 1, "\(command): \(r)")
                let lines = r.stderr.split(separator: "\n").map(String.init)
                #expect(lines.count == 3, "\(command): \(r.stderr)")
                for (line, prefix) in zip(lines, expected) { #expect(line.hasPrefix(prefix), "\(command): \(line)") }
            }

            try "version: v2beta1\nname: upper\nimages:\n  app:\n    image: Acme/app\n".write(
                toFile: dir + "/devspace.yaml",
                atomically: true,
                encoding: .utf8
            )
            let upper = try SlipwayBinary.run(["validate"], in: dir)
            #expect(upper.status == 1)
            #expect(
                upper.stderr.hasPrefix(
                    "devspace.yaml:5:12: images.app.image: \"Acme/app\": invalid reference format: repository name must be lowercase"
                ),
                "\(upper.stderr)"
            )
        }
    }
}
