import Foundation
import SlipwayTestSupport
import Testing

@testable import SlipwayCore

/// Temporary names that say their owner, and the sweep that removes only dead owners' (the
/// agent's sweep at start is tested end to end in SlipwayCLITests/AgentRobustnessTests).
struct TempFilesTests {
    /// A process that ran and was reaped: its pid names no process now (unless reused at once).
    static func deadPID() throws -> Int32 {
        let started = try ChildProcess.start("/bin/true", [], environment: [:])
        close(started.output)
        _ = ChildProcess.wait(started.pid)
        return started.pid
    }

    @Test func namesSayTheirOwnerWithItsStartTime() throws {
        let pid = getpid()
        let start = try #require(ChildProcess.startTime(of: pid))
        let path = TempFiles.temporaryPath(for: "/x/journal.jsonl")
        #expect(path.hasPrefix("/x/journal.jsonl.tmp-\(pid).\(start)-"), "\(path)")
        #expect(
            TempFiles.owner(ofFile: (path as NSString).lastPathComponent) == TempFiles.Owner(pid: pid, start: start)
        )
        #expect(
            TempFiles.owner(ofFile: "agent.pid.tmp-123-4567") == TempFiles.Owner(pid: 123, start: nil),
            "the older format"
        )
        #expect(TempFiles.owner(ofFile: "cache.yaml.tmp-12.345-6") == TempFiles.Owner(pid: 12, start: 345))
        for name in [
            "notes.txt", "a.tmp-", "a.tmp-12", "a.tmp-x-1", "a.tmp-12.x-1", "a.tmp-12-", "a.tmp-0-5", "a.tmp-1.2.3-4",
        ] {
            #expect(TempFiles.owner(ofFile: name) == nil, "\(name)")
        }
        #expect(TempFiles.owner(ofDirectory: "slipway-watch-12.345-AbC123") == TempFiles.Owner(pid: 12, start: 345))
        #expect(TempFiles.owner(ofDirectory: "slipway-pipeline-9.8-zzzzzz") == TempFiles.Owner(pid: 9, start: 8))
        #expect(TempFiles.owner(ofDirectory: "slipway-watch-AbC123") == nil, "the older format names no owner")
        #expect(TempFiles.owner(ofDirectory: "slipway-test-12.345-AbC123") == nil)
        let made = try TempFiles.makeDirectory(kind: "pipeline").get()
        defer { rmdir(made) }
        #expect((made as NSString).lastPathComponent.hasPrefix("slipway-pipeline-\(pid).\(start)-"))
        #expect(
            TempFiles.owner(ofDirectory: (made as NSString).lastPathComponent)
                == TempFiles.Owner(pid: pid, start: start)
        )
    }

    @Test func theSweepRemovesOnlyWhatDeadOwnersOfThisUserLeft() throws {
        try withTemporaryDirectory { dir in
            let me = getpid()
            let start = try #require(ChildProcess.startTime(of: me))
            let dead = try Self.deadPID()
            let names: [String: Bool] = [  // name → removed
                "journal.jsonl.tmp-\(me).\(start)-1": false,  // a live owner
                "journal.jsonl.tmp-\(me).\(start + 1)-2": true,  // the pid, reused by another process
                "journal.jsonl.tmp-\(dead).\(start)-3": true,  // a dead owner
                "agent.pid.tmp-\(dead)-4": true,  // the older format, its pid gone
                "agent.pid.tmp-1-5": false,  // the older format, its pid alive (pid 1)
                "agent.pid.tmp-\(me)-6": true,  // the older format with this pid: not this process's
                "journal.jsonl": false,
                "notes.tmp-2024": false,
            ]
            try FileManager.default.createDirectory(atPath: dir + "/sub/deeper", withIntermediateDirectories: true)
            try FileManager.default.createDirectory(atPath: dir + "/skipped", withIntermediateDirectories: true)
            for (name, _) in names {
                for place in ["", "/sub/deeper", "/skipped"] {
                    #expect(FileManager.default.createFile(atPath: dir + place + "/" + name, contents: Data("x".utf8)))
                }
            }
            // Another user's file of a dead owner stays.
            let foreign = dir + "/foreign.tmp-\(dead).\(start)-7"
            #expect(FileManager.default.createFile(atPath: foreign, contents: nil))
            let chowned = getuid() == 0 && chown(foreign, 65534, 65534) == 0
            // Directories of dead owners go with what is in them; a live owner's stay.
            let deadDir = dir + "/slipway-watch-\(dead).\(start)-AbCdEf"
            let liveDir = dir + "/slipway-pipeline-\(me).\(start)-AbCdEf"
            let oldDir = dir + "/slipway-watch-AbCdEf"
            for d in [deadDir, liveDir, oldDir] {
                try FileManager.default.createDirectory(atPath: d + "/inner", withIntermediateDirectories: true)
                #expect(FileManager.default.createFile(atPath: d + "/inner/s1", contents: nil))
            }

            let removed = Set(TempFiles.sweep(dir, recursive: true, directories: true, skipping: ["skipped"]))
            for (name, gone) in names {
                for place in ["", "/sub/deeper"] {
                    #expect(
                        FileManager.default.fileExists(atPath: dir + place + "/" + name) == !gone,
                        "\(place)/\(name)"
                    )
                    #expect(removed.contains(dir + place + "/" + name) == gone, "\(place)/\(name)")
                }
                #expect(FileManager.default.fileExists(atPath: dir + "/skipped/" + name), "skipped: \(name)")
            }
            if chowned { #expect(FileManager.default.fileExists(atPath: foreign), "another user's file") }
            #expect(!FileManager.default.fileExists(atPath: deadDir))
            #expect(FileManager.default.fileExists(atPath: liveDir + "/inner/s1"))
            #expect(
                FileManager.default.fileExists(atPath: oldDir + "/inner/s1"),
                "an older directory name says no owner"
            )
            // Without `directories`, directory names are only entered.
            #expect(TempFiles.sweep(dir).isEmpty)
        }
    }
}

/// Process groups as the agent stops a job's.
struct ChildProcessGroupTests {
    @Test func aKilledGroupIsGoneThoughItsMembersAreZombies() throws {
        // sh and a sleep it leaves running, in a group of their own.
        let started = try ChildProcess.start(
            "/bin/sh",
            ["-c", "sleep 30 & sleep 30"],
            environment: ["PATH": "/usr/bin:/bin"],
            ownProcessGroup: true
        )
        defer { close(started.output) }
        usleep(200_000)
        #expect(ChildProcess.groupIsRunning(started.pid))
        kill(-started.pid, SIGKILL)
        // Not reaped yet: sh is this process's zombie, the orphaned sleep whoever's.
        var gone = false
        for _ in 0..<100 where !gone {
            gone = !ChildProcess.groupIsRunning(started.pid)
            if !gone { usleep(20_000) }
        }
        #expect(gone, "a group of zombies counts as gone")
        _ = ChildProcess.wait(started.pid)
        #expect(!ChildProcess.groupIsRunning(started.pid))
        #expect(!ChildProcess.groupIsRunning(0))
    }
}
