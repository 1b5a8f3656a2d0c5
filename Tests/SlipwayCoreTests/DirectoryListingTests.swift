import Foundation
import SlipwayTestSupport
import Testing

@testable import SlipwayCore

#if canImport(Glibc)
import Glibc
#endif

/// The stat index keeps what the walk read of each directory; the next walk reads again only
/// the directories whose stat changed (git's untracked cache idea). These tests check that a
/// kept listing never stands in for a directory that changed, and that it is used otherwise.
@Suite struct DirectoryListingTests {
    /// A context of nested directories, an empty one, a link, an excluded directory and an
    /// excluded directory with a re-included file below it.
    private func makeTree(_ root: String) throws {
        let files = [
            "Dockerfile", ".dockerignore", "a.txt", "a/one", "a/two", "a/b/three", "a/b/c/four", "z/five",
            "build/out.o", "vendor/keep.go", "vendor/drop.c",
        ]
        for file in files { try write("\(file)\n", to: "\(root)/\(file)") }
        try write("build\nvendor\n!vendor/keep.go\n", to: "\(root)/.dockerignore")
        try FileManager.default.createDirectory(atPath: "\(root)/empty", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: "\(root)/a/link", withDestinationPath: "one")
    }

    private func write(_ text: String, to path: String) throws {
        try FileManager.default.createDirectory(
            atPath: (path as NSString).deletingLastPathComponent,
            withIntermediateDirectories: true
        )
        try text.write(toFile: path, atomically: false, encoding: .utf8)
    }

    private func matcher(_ root: String) throws -> IgnoreMatcher {
        try IgnoreMatcher.forContext(contextDir: root, dockerfileRelativeToContext: "Dockerfile").0
    }

    /// A walk with no index at all: what every walk must agree with.
    private func fresh(_ root: String) throws -> ContextSnapshot {
        try ContextDigester().snapshot(contextDir: root, matcher: try matcher(root)).snapshot
    }

    /// Later than every stamp of the tree, so its directories count as settled.
    private func later() -> Int64 { Int64(Date().timeIntervalSince1970 * 1e9) + 5_000_000_000 }

    private func summary(_ s: ContextSnapshot) -> [String] {
        s.entries.map { "\($0.kind.rawValue) \($0.path) \($0.contentDigest?.hex ?? "")" }
    }

    @Test func aKeptListingIsUsedUntilItsDirectoryChanges() throws {
        try withTemporaryDirectory { scratch in
            let root = "\(scratch)/ctx"
            try makeTree(root)
            let digester = ContextDigester()
            let first = try digester.snapshot(contextDir: root, matcher: try matcher(root), indexTime: later())
            // The context, a, a/b, a/b/c, empty, z, and vendor (excluded, entered for its `!` rule).
            #expect(first.snapshot.directoriesRead == 7)
            #expect(first.snapshot.directoriesKept == 0)
            #expect(first.snapshot.directoryListingsChanged)
            #expect(first.index.directories?.count == 7)

            let second = try digester.snapshot(
                contextDir: root,
                matcher: try matcher(root),
                index: first.index,
                indexTime: later()
            )
            #expect(second.snapshot.directoriesRead == 0, "nothing changed: every listing is kept")
            #expect(second.snapshot.directoriesKept == 7)
            #expect(!second.snapshot.directoryListingsChanged)
            #expect(summary(second.snapshot) == summary(first.snapshot))
            #expect(summary(second.snapshot) == summary(try fresh(root)))
            #expect(second.snapshot.digest == first.snapshot.digest)

            // Each change reaches the next walk through its directory's stamp; the walk then
            // agrees with one that keeps nothing.
            var index = second.index
            let changes: [(String, () throws -> Void)] = [
                ("add a file deep down", { try self.write("new\n", to: "\(root)/a/b/c/added") }),
                ("remove a file", { try FileManager.default.removeItem(atPath: "\(root)/a/two") }),
                (
                    "rename within a directory",
                    { try FileManager.default.moveItem(atPath: "\(root)/z/five", toPath: "\(root)/z/six") }
                ),
                (
                    "a file becomes a directory",
                    {
                        try FileManager.default.removeItem(atPath: "\(root)/a/one")
                        try self.write("inside\n", to: "\(root)/a/one/inner")
                    }
                ),
                ("add a directory to the empty one", { try self.write("x\n", to: "\(root)/empty/sub/x") }),
                ("re-include through an excluded directory", { try self.write("y\n", to: "\(root)/vendor/new.go") }),
                (
                    "an excluded directory's new file stays out",
                    { try self.write("z\n", to: "\(root)/build/new.o") }
                ),
                ("remove a whole directory", { try FileManager.default.removeItem(atPath: "\(root)/a/b") }),
            ]
            for (what, change) in changes {
                try change()
                let run = try digester.snapshot(
                    contextDir: root,
                    matcher: try matcher(root),
                    index: index,
                    indexTime: later()
                )
                let expected = try fresh(root)
                #expect(summary(run.snapshot) == summary(expected), "\(what)")
                #expect(run.snapshot.digest == expected.digest, "\(what)")
                #expect(run.snapshot.directoriesRead >= 1 || what.contains("stays out"), "\(what)")
                index = run.index
                // And the walk after it keeps everything again.
                let again = try digester.snapshot(
                    contextDir: root,
                    matcher: try matcher(root),
                    index: index,
                    indexTime: later()
                )
                #expect(again.snapshot.directoriesRead == 0, "\(what): read \(again.snapshot.directoriesRead)")
                #expect(again.snapshot.digest == expected.digest, "\(what)")
            }
        }
    }

    /// Putting a directory's mtime back after adding a file does not hide the file: the ctime
    /// is part of the stamp, and nobody can set it.
    @Test func aDirectoryWhoseMtimeWasPutBackIsReadAgain() throws {
        try withTemporaryDirectory { scratch in
            let root = "\(scratch)/ctx"
            try makeTree(root)
            let digester = ContextDigester()
            let first = try digester.snapshot(contextDir: root, matcher: try matcher(root), indexTime: later())
            var before = stat()
            #expect(lstat("\(root)/a", &before) == 0)
            try write("hidden?\n", to: "\(root)/a/sneaky")
            var times = [before.st_atim, before.st_mtim]
            #expect(utimensat(AT_FDCWD, "\(root)/a", &times, 0) == 0)
            var after = stat()
            #expect(lstat("\(root)/a", &after) == 0)
            #expect(after.st_mtim.tv_nsec == before.st_mtim.tv_nsec && after.st_mtim.tv_sec == before.st_mtim.tv_sec)

            let run = try digester.snapshot(
                contextDir: root,
                matcher: try matcher(root),
                index: first.index,
                indexTime: later()
            )
            #expect(run.snapshot.entries.contains { $0.path == "a/sneaky" })
            #expect(run.snapshot.digest == (try fresh(root)).digest)
            #expect(run.snapshot.directoriesRead == 1)
        }
    }

    /// A listing of a directory changed within the timestamp granularity of the walk's start
    /// is not kept: a change right after the reading could carry the same stamp.
    @Test func aRacyDirectoryIsNotKept() throws {
        try withTemporaryDirectory { scratch in
            let root = "\(scratch)/ctx"
            try makeTree(root)
            let now = Int64(Date().timeIntervalSince1970 * 1e9)
            let first = try ContextDigester().snapshot(contextDir: root, matcher: try matcher(root), indexTime: now)
            #expect(first.index.directories == nil, "every directory was just made")
            #expect(!first.snapshot.directoryListingsChanged)
            // A table whose time makes its listings racy is not used.
            let kept = try ContextDigester().snapshot(contextDir: root, matcher: try matcher(root), indexTime: later())
            var racy = kept.index
            racy.directories?.timestampNanoseconds = now - 1_000_000_000
            let run = try ContextDigester().snapshot(
                contextDir: root,
                matcher: try matcher(root),
                index: racy,
                indexTime: later()
            )
            #expect(run.snapshot.directoriesKept == 0)
            #expect(run.snapshot.directoriesRead == 7)
        }
    }

    /// Listings made with other ignore rules are not used: what is listed and entered depends
    /// on them.
    @Test func otherIgnoreRulesReadEverythingAgain() throws {
        try withTemporaryDirectory { scratch in
            let root = "\(scratch)/ctx"
            try makeTree(root)
            let first = try ContextDigester().snapshot(contextDir: root, matcher: try matcher(root), indexTime: later())
            try write("build\n", to: "\(root)/.dockerignore")
            let run = try ContextDigester().snapshot(
                contextDir: root,
                matcher: try matcher(root),
                index: first.index,
                indexTime: later()
            )
            #expect(run.snapshot.directoriesKept == 0)
            #expect(run.snapshot.entries.contains { $0.path == "vendor/drop.c" })
            #expect(summary(run.snapshot) == summary(try fresh(root)))
            #expect(run.index.directories?.rules != first.index.directories?.rules)
        }
    }

    /// The listings survive saving and loading; a damaged table is refused whole, and a
    /// version 3 index (records only) is still read.
    @Test func theTableIsSavedCheckedAndOptional() throws {
        try withTemporaryDirectory { scratch in
            let root = "\(scratch)/ctx"
            try makeTree(root)
            let first = try ContextDigester().snapshot(contextDir: root, matcher: try matcher(root), indexTime: later())
            let path = "\(scratch)/stat.idx"
            try first.index.save(to: path)
            let loaded = StatIndex.load(from: path)
            #expect(loaded == first.index)
            let run = try ContextDigester().snapshot(
                contextDir: root,
                matcher: try matcher(root),
                index: loaded,
                indexTime: later()
            )
            #expect(run.snapshot.directoriesRead == 0)

            // A table whose key names a child that does not exist, or whose names do not match
            // its children, is refused.
            let table = try #require(first.index.directories)
            var encoded: [UInt8] = []
            table.encode(into: &encoded)
            #expect(encoded.withUnsafeBytes { DirectoryTable.decode($0) } == table)
            // The first record is the context's (path ""): its counts, flags, keys and pool at
            // fixed places after the table's header.
            func u32(_ at: Int) -> Int {
                encoded.withUnsafeBytes {
                    Int(UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: at, as: UInt32.self)))
                }
            }
            let context = DirectoryTable.headerSize
            #expect(u32(context) == 0)
            let children = u32(context + 36)
            let keys = u32(context + 40)
            let flags = context + 48
            let keysAt = flags + children
            let poolAt = keysAt + 4 * keys
            let firstNUL = try #require(encoded[poolAt...].firstIndex(of: 0))
            var refused: [(String, [UInt8])] = []
            var damaged = encoded
            damaged[flags] = 4
            refused.append(("a flag that is not listed or entered", damaged))
            damaged = encoded
            damaged.replaceSubrange(
                keysAt..<(keysAt + 4),
                with: [UInt8(children * 2 & 0xFF), UInt8(children * 2 >> 8), 0, 0]
            )
            refused.append(("a key naming no child", damaged))
            damaged = encoded
            damaged[firstNUL] = UInt8(ascii: "x")
            refused.append(("one name fewer than children", damaged))
            damaged = encoded
            damaged[poolAt] = UInt8(ascii: "/")
            refused.append(("a name with a slash", damaged))
            damaged = encoded
            damaged[context + 36] &+= 1
            refused.append(("a child count that does not fit", damaged))
            for (what, bytes) in refused {
                #expect(bytes.withUnsafeBytes { DirectoryTable.decode($0) } == nil, "\(what)")
            }
            // Damage anywhere else may leave the format intact (a stamp, a name's letter): what
            // decodes must still read without a trap.
            for position in stride(from: DirectoryTable.headerSize, to: encoded.count, by: 7) {
                var damaged = encoded
                damaged[position] ^= 0xFF
                if let decoded = damaged.withUnsafeBytes({ DirectoryTable.decode($0) }) {
                    for record in 0..<decoded.count {
                        _ = decoded.listing(record, now: decoded.stamp(record), granularityNanoseconds: 0)
                    }
                }
            }
            #expect([UInt8](encoded.dropLast()).withUnsafeBytes { DirectoryTable.decode($0) } == nil)

            // Version 3: the same records without the table.
            var plain = first.index
            plain.directories = nil
            var bytes = plain.encoded()
            bytes.removeLast(StatIndex.trailerSize + DirectoryTable.headerSize)
            bytes[8] = 3
            let checksum = bytes.withUnsafeBytes { StatIndex.checksum($0) }
            appendLittleEndian(checksum, to: &bytes)
            let old = try #require(StatIndex.decode(bytes))
            #expect(old.records == first.index.records)
            #expect(old.directories == nil)
        }
    }
}
