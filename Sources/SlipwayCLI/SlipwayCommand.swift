public import ArgumentParser
import SlipwayCore

public struct SlipwayCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "slipway",
        abstract: "Git-driven container builds, tags and deploys for devspace.yaml projects."
    )

    public init() {}
}
