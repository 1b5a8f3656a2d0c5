import Foundation
import SlipwayTestSupport
import Testing

@testable import SlipwayCore

/// Every helm deployment without a chart (DevSpace's component chart) in DevSpace's own test
/// data renders, and its manifests pass `kubernetes-validate --strict`.
@Suite struct ComponentChartCorpusTests {
    @Test(.requiresKubernetesValidate) func everyComponentChartDeploymentOfTheCorpusRendersAndValidates() async throws {
        guard let root = CompatibilityCorpusTests.corpus else { return }
        try await withTemporaryDirectory { out in
            var rendered: [(file: String, source: String)] = []
            for rel in CompatibilityCorpusTests.configs(in: root) {
                let path = root + "/" + rel
                let options = LoadOptions(
                    configPath: (rel as NSString).lastPathComponent,
                    workingDirectory: (path as NSString).deletingLastPathComponent,
                    environment: ["PATH": "/usr/bin:/bin", "HOME": "/nonexistent-home"]
                )
                // Configs DevSpace cannot load either are CompatibilityCorpusTests' concern.
                guard let loaded = try? await ConfigLoader.load(options) else { continue }
                let renderer = ClusterRenderer(
                    loaded: loaded,
                    injector: TagInjector(loaded: loaded, run: [:]),
                    namespace: nil,
                    environment: [:]
                )
                for deployment in loaded.config.deployments where ClusterRenderer.isComponentChart(deployment) {
                    let source = "\(rel): deployments.\(deployment.name)"
                    do {
                        let (docs, _) = try renderer.componentChart(deployment)
                        #expect(!docs.isEmpty, "\(source) renders nothing")
                        let file =
                            out + "/" + "\(rel)--\(deployment.name).yaml".replacingOccurrences(of: "/", with: "_")
                        try YAMLEmitter().emit(docs).write(toFile: file, atomically: true, encoding: .utf8)
                        rendered.append((file, source))
                    } catch {
                        Issue.record("\(source) does not render: \(error)")
                    }
                }
            }
            // 68 helm deployments without a chart and 6 naming component-chart from
            // charts.devspace.sh, in the configs that load (the two compose configs DevSpace
            // rejects hold 4 more).
            #expect(rendered.count == 74, "\(rendered.count) component-chart deployments rendered")
            // One kubernetes-validate for all (it starts slowly); when it fails, each file alone
            // says which.
            let all = try sh(["kubernetes-validate", "--strict"] + rendered.map(\.file), cwd: out)
            if all.status != 0 {
                for (file, source) in rendered {
                    let one = try sh(["kubernetes-validate", "--strict", file], cwd: out)
                    if one.status != 0 {
                        let text = (try? String(contentsOfFile: file, encoding: .utf8)) ?? ""
                        Issue.record("\(source) does not validate: \(one.stdout)\(one.stderr)\n\(text)")
                    }
                }
            }
        }
    }
}
