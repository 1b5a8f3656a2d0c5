// swift-tools-version: 6.2
import PackageDescription

let strict: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "slipway",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "slipway", targets: ["slipway"]),
        /// The program of a `--local` pod's infra container, installed beside `slipway`.
        .executable(name: "slipway-pause", targets: ["SlipwayPause"]),
        /// The sync helper slipway copies into containers, installed beside `slipway`.
        .executable(name: "slipway-helper", targets: ["SlipwayHelper"]),
        .library(name: "SlipwayCore", targets: ["SlipwayCore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/swiftlang/swift-subprocess", from: "1.0.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
    ],
    targets: [
        /// libgit2's headers: repository facts (HEAD, branch, describe, status, trees). Links
        /// nothing; CGit2Loader defines the functions.
        .systemLibrary(name: "CGit2", providers: [.apt(["libgit2-dev"])]),
        /// The libgit2 functions slipway calls, each loading libgit2 (dlopen) on first use: a run
        /// that needs no git fact does not pay for libgit2 and its fifteen libraries at start-up.
        .target(name: "CGit2Loader", linkerSettings: [.linkedLibrary("dl")]),
        /// libyaml: the YAML parser and emitter under the config loader.
        .systemLibrary(name: "CYAML", pkgConfig: "yaml-0.1", providers: [.apt(["libyaml-dev"])]),
        /// libinotifytools: file watching for the agent and dev mode.
        .systemLibrary(name: "CInotifyTools", providers: [.apt(["libinotifytools0-dev"])]),
        /// Linux calls the Glibc module leaves out (accept4, eventfd) for the agent's socket loop.
        .systemLibrary(name: "CLinux"),
        /// The git hook script (`hooks/slipway-hook`), embedded in the binary as `HookScript.text`.
        .target(
            name: "SlipwayHookScript",
            path: "hooks",
            resources: [.embedInCode("slipway-hook")],
            swiftSettings: strict
        ),
        /// The engine: config, git, build, deploy. Never prints, never exits.
        .target(
            name: "SlipwayCore",
            dependencies: [
                "CGit2", "CGit2Loader", "CYAML", "CInotifyTools", "CLinux", "SlipwayHookScript",
                .product(name: "Subprocess", package: "swift-subprocess"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict
        ),
        /// The command line: parses flags, calls SlipwayCore, renders results and errors.
        .target(
            name: "SlipwayCLI",
            dependencies: [
                "SlipwayCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict
        ),
        /// The `slipway` executable: an entry point, nothing more.
        .executableTarget(name: "slipway", dependencies: ["SlipwayCLI"], swiftSettings: strict),
        /// `slipway-pause`: a static C program that holds a `--local` pod's namespaces (see its source).
        .executableTarget(
            name: "SlipwayPause",
            linkerSettings: [
                .unsafeFlags(["-static-executable", "-Xlinker", "--gc-sections", "-Xlinker", "--strip-all"])
            ]
        ),
        /// `slipway-helper`: the static C program slipway runs inside a container to sync a tree
        /// there (docs/sync-protocol.md).
        .executableTarget(
            name: "SlipwayHelper",
            cSettings: [.unsafeFlags(["-O2", "-Wall", "-Wextra"])],
            linkerSettings: [
                .unsafeFlags(["-static-executable", "-Xlinker", "--gc-sections", "-Xlinker", "--strip-all"])
            ]
        ),
        /// Helpers shared by the test targets: temporary directories, processes, engine checks.
        .target(name: "SlipwayTestSupport", path: "Tests/SlipwayTestSupport", swiftSettings: strict),
        .testTarget(
            name: "SlipwayCoreTests",
            // The sync tests copy the helper into containers and run the pause program as PID 1.
            dependencies: ["SlipwayCore", "SlipwayTestSupport", "SlipwayHelper", "SlipwayPause"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "SlipwayCLITests",
            // Depends on the executable so that `swift test` builds the binary the end-to-end tests run.
            dependencies: ["SlipwayCLI", "SlipwayCore", "SlipwayTestSupport", "slipway", "SlipwayPause"],
            exclude: ["Fixtures"],
            swiftSettings: strict
        ),
    ]
)
