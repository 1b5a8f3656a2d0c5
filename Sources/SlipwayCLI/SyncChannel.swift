import ArgumentParser
import Foundation
import SlipwayCore

extension SlipwayCommand {
    /// `slipway __sync-channel CONTAINER`: measures the sync channel into a running container
    /// (bench/sync-channel runs it on a release build). Not for direct use.
    struct SyncChannel: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "__sync-channel",
            abstract: "Measures the round trip of the sync channel into a container.",
            shouldDisplay: false
        )

        @Argument(help: "A running container (name or ID).") var container: String
        @Option(help: "The directory in the container the probe writes to.") var root = "/tmp/slipway-sync-probe"
        @Option(help: "How many writes.") var count = 200
        @Option(help: "Bytes per write.") var size = 1024
        @Option(help: "Seconds to keep the channel open and watching, idle, after the line is printed.")
        var hold: Double = 0

        func run() async throws {
            let environment = ProcessInfo.processInfo.environment
            guard let program = SyncHelperProgram.program(besides: selfExecutable(), environment: environment) else {
                Terminal.error("\(SyncHelperProgram.programName) is not installed beside slipway nor on PATH")
                throw ExitCode.failure
            }
            do {
                let (remote, report, changes) = try await SyncChannelProbe.measure(
                    environment: environment,
                    container: container,
                    program: program,
                    root: root,
                    count: count,
                    size: size,
                    watch: hold > 0
                )
                let milliseconds = report.roundTrips.map { String(format: "%.4f", Self.milliseconds($0)) }
                Terminal.out(
                    "{\"connect_ms\": \(String(format: "%.3f", Self.milliseconds(report.connect))), "
                        + "\"installed\": \(report.installedHelper), \"helper_pid\": \(report.helperPID), "
                        + "\"round_trips_ms\": [\(milliseconds.joined(separator: ", "))]}\n"
                )
                if hold > 0 { try await Task.sleep(for: .milliseconds(Int(hold * 1000))) }
                _ = changes
                remote.close()
            } catch {
                Terminal.error("sync channel: \(error)")
                throw ExitCode.failure
            }
        }

        static func milliseconds(_ duration: Duration) -> Double {
            let (seconds, attoseconds) = duration.components
            return Double(seconds) * 1000 + Double(attoseconds) / 1e15
        }
    }
}
