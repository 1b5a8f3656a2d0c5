import SlipwayTestSupport
import Testing

/// The dev-mode suites that drive the engine hard (dev containers swapped, rebuilt, restarted;
/// 2,000-file checkouts; the agent killed), one test at a time: run together with each other
/// and with the sync engines' tests in this process, a full run on 2 cores overloaded the engine
/// (a `docker stop` took 16 s) and pushed unrelated tests past their limits.
@Suite(.serialized, .requiresDockerEngine) enum DockerHeavyDevTests {}
