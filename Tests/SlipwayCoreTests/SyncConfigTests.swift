import Foundation
import SlipwayTestSupport
import Testing

@testable import SlipwayCore

/// `dev.<name>.sync[]` typed: every DevSpace field, its place, DevSpace's rules, and the table
/// of what slipway does with each field.
@Suite struct SyncConfigTests {
    static let everyField = """
        version: v2beta1
        name: sync-fields
        dev:
          app:
            imageSelector: ghcr.io/org/app
            namespace: team
            container: web
            sync:
              - path: ./src:/app/src
                excludePaths: [node_modules/, "*.log"]
                excludeFile: .syncignore
                downloadExcludePaths: [build/]
                downloadExcludeFile: .down
                uploadExcludePaths: [tmp/]
                uploadExcludeFile: .up
                initialSync: preferNewest
                initialSyncCompareBy: size
                waitInitialSync: false
                disableDownload: true
                disableUpload: false
                noWatch: true
                file: false
                polling: true
                printLogs: true
                startContainer: true
                bandwidthLimits: {download: 100, upload: 50}
                onUpload:
                  restartContainer: true
                  exec:
                    - name: reload
                      command: kill -HUP 1
                      onChange: ["*.conf"]
                      once: true
              - path: lib
          multi:
            labelSelector: {app.kubernetes.io/component: api, tier: backend}
            sync:
              - path: ./ignored:/because-containers-are-given
            containers:
              api:
                sync:
                  - path: ":/srv"
              sidecar:
                container: side
                sync:
                  - path: ./a:b:/c
        """

    @Test func everyFieldIsTypedWithItsPlace() async throws {
        let loaded = try await loadConfig(Self.everyField)
        let app = try #require(loaded.config.devPod("app"))
        #expect(app.imageSelector == "ghcr.io/org/app" && app.namespace == "team")
        let container = try #require(app.containers.first)
        #expect(app.containers.count == 1 && container.container == "web" && container.path == "dev.app")
        #expect(container.sync.count == 2)
        let s = container.sync[0]
        #expect(s.key == "dev.app.sync[0]")
        #expect(s.localPath == "./src" && s.remotePath == "/app/src")
        #expect(s.excludePaths == ["node_modules/", "*.log"] && s.excludeFile == ".syncignore")
        #expect(s.downloadExcludePaths == ["build/"] && s.downloadExcludeFile == ".down")
        #expect(s.uploadExcludePaths == ["tmp/"] && s.uploadExcludeFile == ".up")
        #expect(s.initialSync == .preferNewest && s.initialSyncCompareBy == .size)
        #expect(!s.waitInitialSync && s.disableDownload && !s.disableUpload && s.noWatch && !s.file)
        #expect(s.polling && s.printLogs && s.startContainer && s.restartContainer)
        #expect(s.bandwidthLimits == SyncConfig.BandwidthLimits(download: 100, upload: 50))
        #expect(s.exec.count == 1 && s.exec[0].command == "kill -HUP 1" && s.exec[0].once)
        #expect(s.exec[0].onChange == ["*.conf"] && s.exec[0].name == "reload")
        // Places are 1-based line:column of each key.
        #expect(s.mark == Mark(line: 9, column: 9))
        #expect(s.marks["polling"] == Mark(line: 23, column: 9))
        #expect(s.marks["onUpload.exec"] == Mark(line: 29, column: 11))
        // Defaults of an entry that says only its path.
        let d = container.sync[1]
        #expect(d.localPath == "lib" && d.remotePath == "lib")
        #expect(d.initialSync == nil && d.initialSyncCompareBy == .mtime && d.waitInitialSync)
        #expect(!d.disableDownload && !d.disableUpload && !d.noWatch && d.exec.isEmpty && d.bandwidthLimits == nil)

        // `containers` replaces the entry's own sync (DevSpace's EachDevContainer); a
        // container's name defaults to its key.
        let multi = try #require(loaded.config.devPod("multi"))
        #expect(multi.labelSelector.map(\.key) == ["app.kubernetes.io/component", "tier"])
        #expect(multi.containers.map(\.container) == ["api", "side"])
        #expect(multi.containers.map(\.path) == ["dev.multi.containers.api", "dev.multi.containers.sidecar"])
        #expect(multi.containers[0].sync[0].localPath == "." && multi.containers[0].sync[0].remotePath == "/srv")
        #expect(multi.containers[1].sync[0].localPath == "./a:b" && multi.containers[1].sync[0].remotePath == "/c")
        #expect(multi.containers[1].sync[0].key == "dev.multi.containers.sidecar.sync[0]")
    }

    @Test(arguments: [
        ("", ".", "."), (".", ".", "."), ("src", "src", "src"), ("./src:/app", "./src", "/app"),
        (":/app", ".", "/app"), ("./x:", "./x", "."), ("a:b:c", "a:b", "c"), ("C:\\dir:/app", "C:\\dir", "/app"),
    ])
    func pathsSplitOnTheLastColon(_ path: String, _ local: String, _ remote: String) {
        let split = SyncConfig.split(path)
        #expect(split.local == local && split.remote == remote, "\(path)")
    }

    @Test func ignoredFieldsAreNotedAtTheirPlaces() async throws {
        let loaded = try await loadConfig(Self.everyField)
        let notes = loaded.config.syncNotes(file: loaded.displayPath).map(\.description)
        // startContainer, onUpload.restartContainer and onUpload.exec are slipway dev's now.
        let keys = ["bandwidthLimits", "polling", "printLogs"]
        // And the entry's namespace, which no local container has.
        #expect(notes.count == keys.count + 1, "\(notes)")
        #expect(notes.contains { $0.contains(": dev.app.namespace: ignored because ") }, "\(notes)")
        for key in keys {
            #expect(
                notes.contains { $0.contains(": dev.app.sync[0].\(key): ignored because ") },
                "\(key) in \(notes)"
            )
        }
        #expect(notes.contains { $0.hasPrefix("devspace.yaml:23:9: dev.app.sync[0].polling: ignored because") })
        // A field set to what DevSpace does by default changes nothing: no note.
        let quiet = try await loadConfig(
            """
            version: v2beta1
            name: quiet
            dev:
              app:
                imageSelector: app
                sync:
                  - path: .:/app
                    polling: false
                    printLogs: false
            """
        )
        #expect(quiet.config.syncNotes(file: quiet.displayPath).isEmpty)
    }

    @Test func devSpacesRulesNameThePlace() async throws {
        let diagnostics = try await loadErrors(
            """
            version: v2beta1
            name: rules
            dev:
              app:
                imageSelector: app
                sync:
                  - path: .:/app
                    initialSync: mirrorlocal
                    initialSyncCompareBy: hash
                    excludePaths:
                      - !keep
                    onUpload:
                      exec:
                        - name: no-command
              other:
                labelSelector: {a: b}
                containers:
                  web:
                    sync:
                      - initialSync: newest
            """
        ).map(\.description)
        #expect(
            diagnostics.contains {
                $0.hasPrefix(
                    "devspace.yaml:8:22: dev.app.sync[0].initialSync: \"mirrorlocal\" is not an initial sync strategy"
                )
                    && $0.contains(
                        "mirrorLocal, mirrorRemote, preferLocal, preferRemote, preferNewest, keepAll, disabled"
                    )
            },
            "\(diagnostics)"
        )
        #expect(
            diagnostics.contains {
                $0.hasPrefix("devspace.yaml:9:31: dev.app.sync[0].initialSyncCompareBy: \"hash\" is not a compare mode")
            },
            "\(diagnostics)"
        )
        #expect(
            diagnostics.contains {
                $0.hasPrefix("devspace.yaml:11:13: dev.app.sync[0].excludePaths[0]: the pattern is empty")
                    && $0.contains("'!path'")
            },
            "\(diagnostics)"
        )
        #expect(
            diagnostics.contains {
                $0.hasPrefix("devspace.yaml:14:15: dev.app.sync[0].onUpload.exec[0].command: command is required")
            },
            "\(diagnostics)"
        )
        #expect(
            diagnostics.contains {
                $0.hasPrefix("devspace.yaml:20:26: dev.other.containers.web.sync[0].initialSync: \"newest\"")
            },
            "\(diagnostics)"
        )
    }

    /// The table covers every key the schema allows under `sync[]` and `onUpload`, and nothing else.
    @Test func theFieldTableCoversTheSchema() {
        let table = SyncConfig.fields.map(\.key)
        var schema = Schema.syncConfig.keys.filter { $0 != "onUpload" }
        schema += Schema.syncOnUpload.keys.map { "onUpload." + $0 }
        #expect(Set(table) == Set(schema), "table \(table.sorted()) schema \(schema.sorted())")
        #expect(table.count == Set(table).count)
        for (key, support) in SyncConfig.fields {
            switch support {
            case .supported(let text): #expect(!text.isEmpty, "\(key)")
            case .ignored(let reason): #expect(reason.count > 20, "\(key)")
            }
        }
    }

    /// docs/sync.md lists every field as the table says: supported, or ignored with why.
    @Test func theDocsListEveryField() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let docs = try String(contentsOf: root.appendingPathComponent("docs/sync.md"), encoding: .utf8)
        let rows = docs.split(separator: "\n").filter { $0.hasPrefix("| `") }
        for (key, support) in SyncConfig.fields {
            let row = rows.first { $0.hasPrefix("| `\(key)` |") }
            #expect(row != nil, "docs/sync.md has no row for \(key)")
            guard let row else { continue }
            switch support {
            case .supported: #expect(row.contains("| supported |"), "\(row)")
            case .ignored: #expect(row.contains("| ignored |"), "\(row)")
            }
        }
    }
}
