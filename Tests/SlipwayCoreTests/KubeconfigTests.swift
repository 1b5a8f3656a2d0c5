import Foundation
import SlipwayTestSupport
import Testing

@testable import SlipwayCore

// Kubeconfig files written at test time (no cluster is needed to read one): the current
// context, KUBECONFIG merging, the local-cluster rules, and the variables that use them.

private func kubeconfig(current: String?, contexts: [(String, String, String?)], extra: String = "") -> String {
    var text = "apiVersion: v1\nkind: Config\n"
    if let current { text += "current-context: \(current)\n" }
    text += "contexts:\n"
    for (name, cluster, namespace) in contexts {
        text += "- name: \(name)\n  context:\n    cluster: \(cluster)\n"
        if let namespace { text += "    namespace: \(namespace)\n" }
    }
    return text + extra
}

@Suite struct KubeconfigTests {
    @Test(arguments: [
        "minikube", "kind-dev", "kind-kind", "docker-desktop", "docker-for-desktop", "orbstack",
        "vcluster-docker_my-vcluster", "vcluster_app_team_kind-dev", "vcluster_app_team_minikube",
        "vcluster_app_team_docker-desktop",
    ])
    func localContextsAreLocal(_ name: String) {
        #expect(Kubeconfig.isLocal(contextName: name))
    }

    @Test(arguments: [
        "prod", "gke_acme_europe-west1_main", "arn:aws:eks:eu-west-1:123:cluster/main", "kind", "minikube-prod",
        "vcluster_app_team_gke_acme", "my-kind-dev",
    ])
    func otherContextsAreNot(_ name: String) {
        #expect(!Kubeconfig.isLocal(contextName: name))
    }

    @Test func kindClusterNames() {
        #expect(Kubeconfig.kindCluster(contextName: "kind-dev") == "dev")
        #expect(Kubeconfig.kindCluster(contextName: "kind-kind") == "kind")
        #expect(Kubeconfig.kindCluster(contextName: "vcluster_app_team_kind-dev") == "dev")
        #expect(Kubeconfig.kindCluster(contextName: "minikube") == nil)
    }

    @Test func kubeconfigListsMergeAsKubectlDoes() throws {
        try withTemporaryDirectory { dir in
            let first = dir + "/first"
            let second = dir + "/second"
            try kubeconfig(current: "kind-dev", contexts: [("kind-dev", "kind-dev", nil)])
                .write(toFile: first, atomically: true, encoding: .utf8)
            try kubeconfig(
                current: "prod",
                contexts: [("prod", "gke", "shop"), ("kind-dev", "other", "ignored")],
                extra: """
                    clusters:
                    - name: mk
                      cluster:
                        server: https://192.168.49.2:8443
                        extensions:
                        - name: cluster_info
                          extension:
                            provider: minikube.sigs.k8s.io
                    """
            ).write(toFile: second, atomically: true, encoding: .utf8)
            let env = ["KUBECONFIG": "\(first):\(dir)/missing:\(second)", "HOME": dir]
            let kube = try #require(try Kubeconfig.load(environment: env))
            #expect(kube.files == [first, second])
            #expect(kube.currentContext == "kind-dev", "the first file to set it wins")
            #expect(kube.context()?.cluster == "kind-dev")
            #expect(kube.context()?.namespace == nil)
            #expect(kube.context("prod")?.namespace == "shop")
            #expect(kube.isLocal(try #require(kube.context())))
            #expect(!kube.isLocal(try #require(kube.context("prod"))))
            // A profile named anything is local when minikube wrote its cluster.
            #expect(kube.isLocal(Kubeconfig.Context(name: "work", cluster: "mk", namespace: nil)))

            // No kubeconfig at all: no cluster.
            #expect(try Kubeconfig.load(environment: ["HOME": dir + "/nowhere"]) == nil)
        }
    }

    @Test func brokenKubeconfigNamesFileLineAndColumn() throws {
        try withTemporaryDirectory { dir in
            let path = dir + "/config"
            try "apiVersion: v1\ncontexts:\n  name: x\n".write(toFile: path, atomically: true, encoding: .utf8)
            let shape = #expect(throws: KubeconfigError.self) { try Kubeconfig.load(environment: ["KUBECONFIG": path]) }
            #expect(
                shape?.description.hasPrefix("\(path):3:3: contexts: expected a list") == true,
                "\(String(describing: shape))"
            )
            try "contexts: [\n".write(toFile: path, atomically: true, encoding: .utf8)
            let syntax = #expect(throws: KubeconfigError.self) {
                try Kubeconfig.load(environment: ["KUBECONFIG": path])
            }
            #expect(syntax?.file == path)
            #expect((syntax?.mark.line ?? 0) >= 1)
        }
    }

    @Test func contextAndNamespaceVariablesComeFromTheKubeconfig() async throws {
        try await withTemporaryDirectory { dir in
            let path = dir + "/kubeconfig"
            try kubeconfig(current: "kind-dev", contexts: [("kind-dev", "kind-dev", "team-a"), ("prod", "gke", nil)])
                .write(toFile: path, atomically: true, encoding: .utf8)
            let config = """
                version: v2beta1
                name: kube
                vars:
                  WHERE: "${DEVSPACE_CONTEXT}/${DEVSPACE_NAMESPACE}"
                deployments:
                  app:
                    helm:
                      values:
                        where: "${WHERE}"
                """
            // (A value, not a tag: "kind-dev/team-a" is not a valid image tag.)
            func tag(_ options: (LoadOptions) -> LoadOptions) async throws -> String? {
                try config.write(toFile: dir + "/devspace.yaml", atomically: true, encoding: .utf8)
                let base = LoadOptions(
                    workingDirectory: dir,
                    environment: ["KUBECONFIG": path, "PATH": "/usr/bin:/bin"]
                )
                return try await ConfigLoader.load(options(base)).tree["deployments"]?["app"]?["helm"]?["values"]?[
                    "where"
                ]?.scalar
            }
            #expect(try await tag { $0 } == "kind-dev/team-a")
            #expect(
                try await tag {
                    var o = $0
                    o.kubeContext = "prod"
                    return o
                } == "prod/default"
            )
            #expect(
                try await tag {
                    var o = $0
                    o.namespace = "mine"
                    return o
                } == "kind-dev/mine"
            )
            #expect(
                try await tag {
                    var o = $0
                    o.environment = ["PATH": "/usr/bin:/bin"]
                    return o
                } == "/"
            )
        }
    }
}
