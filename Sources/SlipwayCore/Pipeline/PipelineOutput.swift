/// Where a pipeline function's output goes. The core never prints: the caller renders these
/// (the CLI on the terminal; the agent's jobs are CLI processes whose output it logs).
public protocol PipelineOutput: Sendable {
    /// A line of the function's answer, for standard output (`get_image`, a deployment's outcome).
    func line(_ text: String)
    /// A note, warning or failure, for standard error.
    func note(_ text: String)
    /// A build's progress (`build_images`).
    func build(_ event: BuildEvent)
    /// A build's summary (`build_images`, when it is done).
    func buildReport(_ report: BuildReport)
}
