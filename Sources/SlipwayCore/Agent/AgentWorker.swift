internal import Foundation

/// The worker: one job at a time, as `slipway run-pipeline --chdir DIR PIPELINE` in a process
/// group of its own.
extension AgentDaemon {
    func workerLoop() {
        while true {
            cond.lock()
            while !stopping && queue.next == nil { cond.wait() }
            guard !stopping, let job = queue.next else {
                cond.unlock()
                return
            }
            cond.unlock()
            let (result, interrupted) = execute(job)
            if interrupted { return }
            // The notice exists before anyone can learn that the job failed.
            if !result.ok && job.pipeline != "gate" { noteFailure(job, result) }
            cond.lock()
            do {
                try commit([JournalRecord(.finished, at: result.finishedAt, id: job.id, result: result)])
                // A long-running agent keeps its journal small too (records are written under `cond`).
                if journal.size > 256 << 10 {
                    try journal.rewrite(queue.compacted())
                    log.write("journal compacted")
                }
            } catch {
                log.write("job \(job.id): \(error.message)")
            }
            cond.unlock()
            let took = String(format: "%.1f", result.finishedAt - result.startedAt)
            if result.ok {
                log.write("job \(job.id) finished in \(took) s: \(result.message)")
                if job.pipeline == "commit" { retain(job, result) }
            } else {
                log.write("job \(job.id) failed after \(took) s: \(result.message)")
                for line in result.lastLines ?? [] { log.write("job \(job.id) failed:   \(line)") }
            }
        }
    }

    /// Leaves the failure for the next hook to print (`failed/<id>`): one line, then the
    /// failing tool's last lines.
    func noteFailure(_ job: AgentJob, _ result: JobResult) {
        let line =
            "job \(job.id) (\(job.summary)) failed: \(result.message)\n"
            + (result.lastLines ?? []).map { "  \($0)\n" }.joined()
        // Written under a hidden name and renamed: the hooks' `failed/*` never sees half a file.
        let hidden = "\(paths.failed)/.\(job.id).tmp"
        if case .success = AtomicFile.write(Array(line.utf8), to: hidden, mode: 0o600) {
            rename(hidden, "\(paths.failed)/\(job.id)")
        }
    }

    /// Runs `job`; `interrupted` when the agent was stopped meanwhile (the job stays running
    /// in the journal and is resumed by the next agent).
    func execute(_ job: AgentJob) -> (JobResult, interrupted: Bool) {
        let started = Date().timeIntervalSince1970
        func failure(_ message: String, status: Int32 = -1) -> (JobResult, Bool) {
            (
                JobResult(
                    ok: false,
                    status: status,
                    message: message,
                    tags: [],
                    startedAt: started,
                    finishedAt: Date().timeIntervalSince1970
                ), false
            )
        }
        let directory: String
        let describe: String?
        do {
            (directory, describe) = try directoryFor(job)
        } catch {
            return failure(error.message)
        }
        // The variables that matter for the job as the hook (or command) that submitted it saw them.
        var env = environment
        var passedOn = ""
        if let names = job.environment {
            if let captured = readEnvironment(job.id) {
                env = captured.applied(to: env)
                passedOn =
                    job.pipeline == "dev"
                    ? ", with the environment of the `slipway dev` that started its session (\(names.count) variables)"
                    : names.isEmpty
                        ? ", none of the variables passed on was set"
                        : ", with \(names.joined(separator: ", ")) as submitted"
            } else {
                log.write(
                    "job \(job.id): the environment it was submitted with is missing (\(paths.jobEnvironment(job.id))); it runs with the agent's"
                )
            }
        }
        // A repository with hooks but no config (yet): nothing to do, and nothing to report.
        if env["DEVSPACE_CONFIG"] == nil, !FileManager.default.fileExists(atPath: directory + "/devspace.yaml") {
            let now = Date().timeIntervalSince1970
            return (
                JobResult(
                    ok: true,
                    status: 0,
                    message: "no devspace.yaml in \(directory): nothing to do",
                    tags: [],
                    startedAt: started,
                    finishedAt: now
                ), false
            )
        }
        env["SLIPWAY"] = "0"  // git commands inside pipelines must not trigger the hooks again
        env["NO_COLOR"] = "1"
        env.merge(
            JobEnvironment.variables(
                id: job.id,
                pipeline: job.pipeline,
                commit: job.commit,
                ref: job.ref,
                worktree: job.worktree,
                branch: job.branch,
                describe: describe
            )
        ) { $1 }
        let resultFile = "\(paths.jobs)/\(job.id).images"
        unlink(resultFile)
        env[JobResultFile.environmentKey] = resultFile
        let failureFile = "\(paths.jobs)/\(job.id).failure"
        unlink(failureFile)
        env[JobFailureFile.environmentKey] = failureFile
        let namesFile = "\(paths.jobs)/\(job.id).names"
        unlink(namesFile)
        env[JobEnvironment.namesFileKey] = namesFile
        if job.pipeline == "dev" { env[JobDevFile.environmentKey] = paths.jobDev(job.id) }
        let warmFile = "\(paths.jobs)/\(job.id).warm"
        env.merge(warmth.prepare(directory: directory, snapshotPath: warmFile)) { $1 }
        defer {
            unlink(warmFile)
            // The next job of this worktree finds its contexts warm.
            if !directory.hasPrefix(paths.checkouts + "/") { warmth.watch(directory) }
        }

        let child: ChildProcess.Started
        do {
            child = try ChildProcess.start(
                executable,
                ["run-pipeline", "--chdir", directory, job.pipeline] + (job.arguments ?? []),
                environment: env,
                ownProcessGroup: true
            )
        } catch {
            return failure(error.standardError)
        }
        cond.lock()
        current = (job.id, child.pid)
        do {
            try commit([
                JournalRecord(.started, id: job.id, pid: child.pid, start: ChildProcess.startTime(of: child.pid))
            ])
        } catch {
            log.write("job \(job.id): \(error.message)")
        }
        cond.unlock()
        log.write(
            "job \(job.id) started: \(job.summary) in \(directory)"
                + (env["SLIPWAY_JOB_DESCRIBE"].map { " (describe: \($0))" } ?? "")
                + (env[WarmSnapshot.environmentVariable] != nil ? ", with warm digests" : "") + passedOn
        )

        var tail: [String] = []
        var pending: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16_384)
        while true {
            let n = read(child.output, &chunk, chunk.count)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            pending += chunk[..<n]
            while let nl = pending.firstIndex(of: UInt8(ascii: "\n")) {
                let line = Self.plain(String(decoding: pending[..<nl], as: UTF8.self))
                pending.removeSubrange(...nl)
                log.write("job \(job.id): \(line)")
                if !line.trimmingCharacters(in: .whitespaces).isEmpty {
                    tail.append(line)
                    if tail.count > 40 { tail.removeFirst() }
                }
            }
        }
        if !pending.isEmpty {
            let line = Self.plain(String(decoding: pending, as: UTF8.self))
            log.write("job \(job.id): \(line)")
            tail.append(line)
        }
        close(child.output)
        let status = ChildProcess.wait(child.pid)
        cond.lock()
        current = nil
        let interrupted = stopping
        cond.unlock()
        let tags = JobResultFile.read(resultFile)
        unlink(resultFile)
        recordEnvironmentNames(from: namesFile)
        let failures = JobFailureFile.read(failureFile)
        unlink(failureFile)
        let finished = Date().timeIntervalSince1970
        if status == 0 {
            let message = tags.isEmpty ? "ok (no images built)" : "ok: " + tags.joined(separator: ", ")
            return (
                JobResult(
                    ok: true,
                    status: 0,
                    message: message,
                    tags: tags,
                    startedAt: started,
                    finishedAt: finished,
                    describe: describe
                ), interrupted
            )
        }
        // The first function that failed says why (a build's error and its last lines); else
        // the output's last line that reads like an error.
        let reason =
            failures.first?.message ?? Self.errorLine(tail)
            ?? "the \(job.pipeline) pipeline exited with status \(status)"
        return (
            JobResult(
                ok: false,
                status: status,
                message: reason,
                tags: tags,
                startedAt: started,
                finishedAt: finished,
                describe: describe,
                lastLines: failures.first.flatMap { $0.lines.isEmpty ? nil : $0.lines }
            ), interrupted
        )
    }

    /// The line of a failed pipeline's output that says why: the last one that reads like an
    /// error, else the last one.
    static func errorLine(_ tail: [String]) -> String? {
        // `pipeline NAME failed (exit status N)` closes every failed run and says nothing new;
        // a build's summary table (`IMAGE  TAGS  RESULT …` and its rows) repeats a failure
        // without its cause.
        var trimmed: [String] = []
        var inTable = false
        for line in tail.map({ $0.trimmingCharacters(in: .whitespaces) }) where !line.isEmpty {
            if line.hasPrefix("IMAGE ") && line.contains(" RESULT ") {
                inTable = true
                continue
            }
            if inTable {
                // A row starts with an image key and two spaces; what follows the table does not.
                let head = line.prefix { $0 != " " }
                if !head.hasSuffix(":"), line.dropFirst(head.count).hasPrefix("  ") { continue }
                inTable = false
            }
            if line.hasPrefix("pipeline ") && line.contains(" failed (exit status ") { continue }
            trimmed.append(line)
        }
        let markers = ["error", "failed", "cannot", "not found", "does not exist", "no such", "refused", "denied"]
        return trimmed.last { line in markers.contains { line.lowercased().contains($0) } } ?? trimmed.last
    }

    /// `text` without ANSI escape sequences and carriage-return progress.
    static func plain(_ text: String) -> String {
        var out = ""
        var escape = false
        for scalar in text.unicodeScalars {
            if escape {
                if (0x40...0x7e).contains(scalar.value) && scalar != "[" { escape = false }
                continue
            }
            if scalar == "\u{1b}" {
                escape = true
                continue
            }
            if scalar == "\r" {
                out = ""
                continue
            }
            out.unicodeScalars.append(scalar)
        }
        return out
    }

    /// Where `job` runs: its worktree when that has the job's commit checked out (as a
    /// foreground `slipway build` would build it), else a linked worktree of the agent's own
    /// (`checkouts/<branch tag>`) moved to the commit; and the commit's description there
    /// (`git describe --always`, made a valid tag).
    func directoryFor(_ job: AgentJob) throws(AgentError) -> (directory: String, describe: String?) {
        func described(_ repository: GitRepository?) -> String? {
            (try? repository?.describe(tags: false)).flatMap { $0.map(BranchTag.tag(for:)) }
        }
        var isDirectory: ObjCBool = false
        // A dev session's job works on the worktree as it is, edits included (as the
        // foreground `slipway dev` does).
        if job.pipeline == "dev" {
            guard FileManager.default.fileExists(atPath: job.worktree, isDirectory: &isDirectory), isDirectory.boolValue
            else { throw AgentError.invalidJob("\(job.worktree) no longer exists; the dev session cannot run there") }
            return (job.worktree, nil)
        }
        if FileManager.default.fileExists(atPath: job.worktree, isDirectory: &isDirectory), isDirectory.boolValue,
            let repository = try? GitRepository.discover(from: job.worktree),
            (try? repository.head().commit) == job.commit
        {
            return (job.worktree, described(repository))
        }
        guard let git = findExecutable("git", path: environment["PATH"]) else {
            throw AgentError.tool("git is not on PATH; the agent needs it to check out \(job.commit.prefix(7))")
        }
        let name = BranchTag.tag(for: job.branch ?? "detached")
        let directory = "\(paths.checkouts)/\(name)"
        var env = environment
        env["SLIPWAY"] = "0"
        let moved: (status: Int32, output: String)
        do {
            if FileManager.default.fileExists(atPath: directory + "/.git") {
                moved = try ChildProcess.run(
                    git,
                    ["-C", directory, "checkout", "--quiet", "--detach", "--force", job.commit],
                    environment: env
                )
            } else {
                try? FileManager.default.removeItem(atPath: directory)
                moved = try ChildProcess.run(
                    git,
                    [
                        "--git-dir=\(paths.commonDir)", "worktree", "add", "--quiet", "--detach", "--force", directory,
                        job.commit,
                    ],
                    environment: env
                )
            }
        } catch {
            throw AgentError.tool("cannot check out \(job.commit.prefix(7)) for job \(job.id) (\(error.standardError))")
        }
        guard moved.status == 0 else {
            let why = moved.output.split(separator: "\n").last.map(String.init) ?? "status \(moved.status)"
            throw AgentError.tool("cannot check out \(job.commit.prefix(7)) for job \(job.id) (\(why))")
        }
        let reason =
            FileManager.default.fileExists(atPath: job.worktree)
            ? "HEAD of \(job.worktree) is no longer \(job.commit.prefix(7))" : "\(job.worktree) no longer exists"
        log.write("job \(job.id): \(reason): running in \(directory)")
        return (directory, described(try? GitRepository.discover(from: directory)))
    }

    /// After a commit job: records its commit-tagged images and removes the oldest beyond the
    /// configured number.
    func retain(_ job: AgentJob, _ result: JobResult) {
        var env = environment
        env["SLIPWAY"] = "0"
        let retention = ImageRetention(paths: paths, environment: env)
        // Only the tags named after the commit count: a pipeline's other tags are the user's.
        let tagged = result.tags.filter { ImageReference.split($0).tag == result.describe }
        guard !tagged.isEmpty else { return }
        do {
            try retention.record(tagged, commit: job.commit, at: result.finishedAt)
            let keep = retention.configuredKeep()
            let removed = try retention.prune(keep: keep)
            for line in removed { log.write("retention (keep \(keep) per image): \(line)") }
        } catch {
            log.write("retention: \(error.message)")
        }
    }
}
