import Foundation
import SlipwayCore
import Testing

@testable import SlipwayCLI

/// `slipway sync --json`'s event lines, built by hand (not JSONSerialization): the same text
/// JSONSerialization writes with sorted keys and unescaped slashes, valid JSON for any path.
@Suite struct SyncEventJSONTests {
    static let hostile = "dir/a \"quoted\" \\ back\nnew\tline\u{01}\u{1F} é 日本 😀/end"

    func parsed(_ line: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
    }

    func serialized(_ object: [String: Any]) throws -> String {
        let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
        return String(decoding: data, as: UTF8.self)
    }

    @Test func aDecisionWithAHostilePathIsWhatJSONSerializationWrites() throws {
        let decision = SyncDecision(path: Self.hostile, direction: .upload, action: .uploaded)
        let line = try #require(SyncEventRenderer.json("c:/app", .decision(decision)))
        let expected: [String: Any] = [
            "sync": "c:/app", "event": "decision", "path": Self.hostile, "direction": "upload",
            "decision": decision.description,
        ]
        #expect(line == (try serialized(expected)))
        #expect(try parsed(line)["path"] as? String == Self.hostile)
        #expect(!line.contains("\n"))
    }

    @Test func aBatchReportCarriesItsTimesAsNumbers() throws {
        var report = SyncBatchReport(kind: .upload)
        report.files = 1000
        report.bytes = 320_000
        report.changes = 1000
        report.latency = .milliseconds(312)
        report.applying = .microseconds(160_450)
        report.waitedForGit = .seconds(1)
        let line = try #require(SyncEventRenderer.json("c:/app", .batch(report)))
        let object = try parsed(line)
        #expect(object["files"] as? Int == 1000)
        #expect(object["bytes"] as? Int == 320_000)
        #expect(object["kind"] as? String == "upload")
        #expect(object["latencyMs"] as? Double == 312)
        #expect(object["applyingMs"] as? Double == 160.45)
        #expect(object["waitedForGitMs"] as? Double == 1000)
        #expect(
            Array(object.keys).sorted() == [
                "applyingMs", "bytes", "changes", "conflicts", "event", "failures", "files", "kind", "latencyMs",
                "sync", "waitedForGitMs",
            ]
        )
        // Keys in sorted order, as JSONSerialization's .sortedKeys writes them.
        #expect(line.hasPrefix("{\"applyingMs\":160.45,\"bytes\":320000,"))
    }

    @Test func notesAndReasonsKeepEveryCharacter() throws {
        let line = try #require(SyncEventRenderer.json("s", .note(Self.hostile)))
        #expect(line == (try serialized(["sync": "s", "event": "note", "text": Self.hostile])))
        #expect(SyncEventRenderer.json("s", .resumed) == nil)
    }
}
