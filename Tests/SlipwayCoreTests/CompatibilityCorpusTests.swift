import Foundation
import Testing

@testable import SlipwayCore

/// Loads every config of DevSpace's own test data (`../shared/compat/devspace`, named by
/// `SLIPWAY_COMPAT_CORPUS`). In CI the corpus must be there; on a laptop without it the suite
/// has nothing to load and says so.
@Suite struct CompatibilityCorpusTests {
    static let corpus: String? = {
        let env = ProcessInfo.processInfo.environment
        if let dir = env["SLIPWAY_COMPAT_CORPUS"] { return dir }
        let sibling = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("shared/compat/devspace")
            .path
        return FileManager.default.fileExists(atPath: sibling) ? sibling : nil
    }()

    /// The configs DevSpace itself cannot load, and the reason slipway must give.
    static let expectedFailures: [String: String] = [
        // imports name files that are not in the corpus
        "e2e/tests/imports/testdata/conditional/devspace.yaml": "does not exist",
        "e2e/tests/imports/testdata/local/devspace.yaml": "does not exist",
        "e2e/tests/imports/testdata/localregistry/devspace.yaml": "does not exist",
        // a git import / dependency
        "e2e/tests/dependencies/testdata/git/devspace.yaml": "not supported by slipway yet",
        // a question without a default, and no terminal to ask on (DevSpace fails too; its
        // `with_default_value` sibling loads: without a terminal the default "" is taken)
        "pkg/devspace/config/loader/variable/testing/without_default_value/devspace.yaml": "no terminal to ask on",
    ]

    static func configs(in root: String) -> [String] {
        guard let walker = FileManager.default.enumerator(atPath: root) else { return [] }
        var out: [String] = []
        while let rel = walker.nextObject() as? String {
            let name = (rel as NSString).lastPathComponent
            if name.hasPrefix("devspace") && name.hasSuffix(".yaml") && !rel.contains("/.devspace/") { out.append(rel) }
        }
        return out.sorted()
    }

    @Test func corpusIsPresentInCI() {
        if ProcessInfo.processInfo.environment["CI"] != nil {
            #expect(Self.corpus != nil, "CI must set SLIPWAY_COMPAT_CORPUS (.ci/run does)")
        }
    }

    @Test func everyConfigLoadsOrFailsClearly() async throws {
        guard let root = Self.corpus else { return }
        let files = Self.configs(in: root)
        #expect(files.count == 101, "the corpus holds 101 configs, found \(files.count)")
        var loaded = 0
        var failures: [String: String] = [:]
        for rel in files {
            let path = root + "/" + rel
            let dir = (path as NSString).deletingLastPathComponent
            let options = LoadOptions(
                configPath: (rel as NSString).lastPathComponent,
                workingDirectory: dir,
                environment: ["PATH": "/usr/bin:/bin", "HOME": "/nonexistent-home"]
            )
            do {
                let config = try await ConfigLoader.load(options)
                _ = try YAMLEmitter().emit(config.tree)
                loaded += 1
            } catch let error as ConfigError {
                let first = try #require(error.diagnostics.first)
                // One clear line: file:line:col, then the message.
                #expect(first.description.hasPrefix((rel as NSString).lastPathComponent + ":"))
                #expect(!first.message.isEmpty && !first.message.contains("\n"))
                failures[rel] = first.description
            }
        }
        for (rel, message) in failures.sorted(by: { $0.key < $1.key }) {
            if let reason = Self.expectedFailures[rel] {
                #expect(message.contains(reason), "\(rel): \(message)")
            } else if Self.typeErrorFailures.contains(rel) {
                #expect(message.contains("unknown key \"componentChart\""), "\(rel): \(message)")
            } else {
                Issue.record("\(rel) should load: \(message)")
            }
        }
        for rel in Array(Self.expectedFailures.keys) + Array(Self.typeErrorFailures) where failures[rel] == nil {
            Issue.record("\(rel) loaded, but DevSpace cannot load it")
        }
        #expect(loaded == 94, "loaded \(loaded) of \(files.count)")
    }

    /// The two compose test files with a field DevSpace's v2beta1 schema rejects (`componentChart`
    /// belongs to the older v1beta11 helm config).
    static let typeErrorFailures: Set<String> = [
        "pkg/devspace/compose/testdata/depends_on/devspace.yaml",
        "pkg/devspace/compose/testdata/depends_on_with_build/devspace.yaml",
    ]
}
