import Foundation
import SlipwayTestSupport
import Testing

@testable import SlipwayCore

/// DevSpace's component chart (0.9.2) rendered by slipway: names, labels, services, the
/// StatefulSet for volumes, ingress, resources, and errors that name the value's place.
@Suite struct ComponentChartTests {
    /// Renders `values` (YAML, as written under `helm.values` in devspace.yaml) for `release`.
    func render(_ values: String, release: String = "app") throws -> [Node] {
        let node = try #require(try YAMLParser().parse(values))
        return try ComponentChart.render(
            values: node,
            release: release,
            deployment: release,
            origin: ValueOrigin(layers: [("devspace.yaml", node)])
        )
    }

    func error(_ values: String) throws -> ComponentChartError? {
        do {
            _ = try render(values)
            return nil
        } catch let error as ComponentChartError {
            return error
        }
    }

    func kind(_ docs: [Node], _ kind: String) -> [Node] { docs.filter { $0["kind"]?.scalar == kind } }

    /// Writes `docs` and runs `kubernetes-validate --strict` on them.
    func validate(_ docs: [Node]) throws {
        try withTemporaryDirectory { dir in
            let text = try YAMLEmitter().emit(docs)
            try text.write(toFile: dir + "/m.yaml", atomically: true, encoding: .utf8)
            let out = try sh(["kubernetes-validate", "--strict", dir + "/m.yaml"], cwd: dir)
            #expect(out.status == 0, "\(out.stdout)\(out.stderr)\n\(text)")
        }
    }

    @Test(.requiresKubernetesValidate) func theTutorialsTwoContainersMakeOneDeployment() throws {
        let docs = try render(
            """
            containers:
            - image: ghcr.io/loft-sh/devspace-quickstart-golang:t1
            - image: ghcr.io/loft-sh/devspace-quickstart-golang-sidecar:t2
              name: sidecar
            """
        )
        #expect(docs.count == 1, "no service without service.ports")
        let deployment = try #require(kind(docs, "Deployment").first)
        #expect(deployment["apiVersion"]?.scalar == "apps/v1")
        #expect(deployment["metadata"]?["name"]?.scalar == "app")
        let labels = try #require(deployment["metadata"]?["labels"])
        #expect(labels["app.kubernetes.io/name"]?.scalar == "devspace-app")
        #expect(labels["app.kubernetes.io/component"]?.scalar == "app")
        #expect(labels["app.kubernetes.io/managed-by"]?.scalar == "Helm")
        #expect(deployment["metadata"]?["annotations"]?["helm.sh/chart"]?.scalar == "component-chart-0.9.2")
        let spec = try #require(deployment["spec"])
        #expect(spec["replicas"]?.scalar == "1")
        #expect(spec["strategy"]?["type"]?.scalar == "Recreate")
        #expect(spec["selector"]?["matchLabels"] == labels)
        #expect(spec["template"]?["metadata"]?["labels"] == labels)
        let pod = try #require(spec["template"]?["spec"])
        #expect(pod["terminationGracePeriodSeconds"]?.scalar == "5")
        let containers = try #require(pod["containers"]?.items)
        #expect(containers.map { $0["name"]?.scalar } == ["container-0", "sidecar"])
        #expect(containers[0]["image"]?.scalar == "ghcr.io/loft-sh/devspace-quickstart-golang:t1")
        #expect(containers[1]["image"]?.scalar == "ghcr.io/loft-sh/devspace-quickstart-golang-sidecar:t2")
        #expect(pod["volumes"] == nil && pod["initContainers"] == nil)
        try validate(docs)
    }

    @Test(.requiresKubernetesValidate) func containerFieldsLabelsAndServicePorts() throws {
        let docs = try render(
            """
            labels: {team: web, tier: 1}
            annotations: {owner: me}
            replicas: 3
            rollingUpdate: {enabled: true}
            pullSecrets: [regcred]
            hostAliases: [{ip: 10.0.0.1, hostnames: [db]}]
            containers:
            - image: app:1
              command: [sh, -c]
              args: ["echo hi", 8080]
              workingDir: /srv
              env: [{name: PORT, value: "8080"}]
              envFrom: [{configMapRef: {name: cfg}}]
              livenessProbe: {httpGet: {path: /, port: 8080}}
              resources: {limits: {cpu: 500m, memory: 128Mi}}
            initContainers:
            - image: busybox
              command: [true]
            service:
              ports:
              - port: 80
                containerPort: 8080
              - port: 9090
                protocol: UDP
                name: metrics
            """,
            release: "web-feature-x"
        )
        #expect(docs.map { $0["kind"]?.scalar } == ["Service", "Deployment"], "helm's install order")
        let service = try #require(kind(docs, "Service").first)
        #expect(service["metadata"]?["name"]?.scalar == "web-feature-x")
        #expect(service["metadata"]?["labels"]?["app.kubernetes.io/name"]?.scalar == "web-feature-x")
        let ports = try #require(service["spec"]?["ports"]?.items)
        #expect(ports[0]["name"]?.scalar == "port-0" && ports[0]["port"]?.scalar == "80")
        #expect(ports[0]["targetPort"]?.scalar == "8080" && ports[0]["protocol"]?.scalar == "TCP")
        #expect(ports[1]["name"]?.scalar == "metrics" && ports[1]["targetPort"]?.scalar == "9090")
        #expect(ports[1]["protocol"]?.scalar == "UDP")
        #expect(service["spec"]?["type"]?.scalar == "ClusterIP")
        let selector = try #require(service["spec"]?["selector"]?.pairs)
        #expect(selector.map(\.key.scalar) == ["app.kubernetes.io/name", "app.kubernetes.io/component"])

        let deployment = try #require(kind(docs, "Deployment").first)
        #expect(deployment["metadata"]?["labels"]?["team"]?.scalar == "web")
        #expect(deployment["metadata"]?["labels"]?["tier"]?.resolved == .string, "label values are quoted")
        #expect(deployment["metadata"]?["annotations"]?["owner"]?.scalar == "me")
        #expect(deployment["spec"]?["replicas"]?.scalar == "3")
        #expect(deployment["spec"]?["strategy"]?["type"]?.scalar == "RollingUpdate")
        #expect(deployment["spec"]?["strategy"]?["rollingUpdate"]?["maxSurge"]?.scalar == "25%")
        #expect(deployment["spec"]?["strategy"]?["rollingUpdate"]?["maxUnavailable"]?.scalar == "0%")
        let pod = try #require(deployment["spec"]?["template"]?["spec"])
        #expect(pod["imagePullSecrets"]?.items?.first?["name"]?.scalar == "regcred")
        #expect(pod["hostAliases"]?.items?.first?["ip"]?.scalar == "10.0.0.1")
        let container = try #require(pod["containers"]?.items?.first)
        #expect(container["command"]?.strings == ["sh", "-c"])
        #expect(container["args"]?.strings == ["echo hi", "8080"])
        #expect(container["args"]?.items?[1].resolved == .string, "args are quoted")
        #expect(container["workingDir"]?.scalar == "/srv")
        #expect(container["env"]?.items?.first?["value"]?.scalar == "8080")
        #expect(container["envFrom"]?.items?.first?["configMapRef"]?["name"]?.scalar == "cfg")
        #expect(container["livenessProbe"]?["httpGet"]?["port"]?.scalar == "8080")
        // A limit without its request gets a request of 0.
        #expect(container["resources"]?["limits"]?["cpu"]?.scalar == "500m")
        #expect(container["resources"]?["requests"]?["cpu"]?.scalar == "0")
        #expect(container["resources"]?["requests"]?["memory"]?.scalar == "0")
        #expect(pod["initContainers"]?.items?.first?["name"]?.scalar == "init-container-0")
        try validate(docs)
    }

    @Test(.requiresKubernetesValidate) func aWritablePersistentVolumeMakesAStatefulSet() throws {
        let docs = try render(
            """
            containers:
            - image: mysql
              volumeMounts:
              - containerPath: /var/lib/mysql
                volume: {name: data, subPath: /mysql/}
              - containerPath: /shared
                volume: {name: shared, shared: true}
              - containerPath: /cache
                volume: {name: cache}
              - containerPath: /secret
                volume: {name: token, readOnly: true}
            volumes:
            - name: data
              size: 5Gi
              storageClassName: fast
            - name: shared
              size: 1Gi
            - name: cache
              emptyDir: {}
            - name: token
              secret: {secretName: token}
            - name: unused
              size: 1Gi
            """,
            release: "db"
        )
        #expect(docs.map { $0["kind"]?.scalar } == ["PersistentVolumeClaim", "Service", "StatefulSet"])
        let claim = try #require(kind(docs, "PersistentVolumeClaim").first)
        #expect(claim["metadata"]?["name"]?.scalar == "shared", "a shared volume is a claim of its own")
        #expect(claim["spec"]?["resources"]?["requests"]?["storage"]?.scalar == "1Gi")
        #expect(claim["spec"]?["accessModes"]?.strings == ["ReadWriteOnce"])
        let headless = try #require(kind(docs, "Service").first)
        #expect(headless["metadata"]?["name"]?.scalar == "db-headless")
        #expect(headless["spec"]?["clusterIP"]?.scalar == "None")
        let set = try #require(kind(docs, "StatefulSet").first)
        #expect(set["spec"]?["serviceName"]?.scalar == "db-headless")
        #expect(set["spec"]?["podManagementPolicy"]?.scalar == "OrderedReady")
        #expect(set["spec"]?["strategy"] == nil)
        let templates = try #require(set["spec"]?["volumeClaimTemplates"]?.items)
        #expect(templates.map { $0["metadata"]?["name"]?.scalar } == ["data"])
        #expect(templates[0]["spec"]?["storageClassName"]?.scalar == "fast")
        #expect(templates[0]["spec"]?["resources"]?["requests"]?["storage"]?.scalar == "5Gi")
        let pod = try #require(set["spec"]?["template"]?["spec"])
        let volumes = try #require(pod["volumes"]?.items)
        #expect(volumes.map { $0["name"]?.scalar } == ["shared", "cache", "token"])
        #expect(volumes[0]["persistentVolumeClaim"]?["claimName"]?.scalar == "shared")
        #expect(volumes[1]["emptyDir"]?.isMapping == true)
        #expect(volumes[2]["secret"]?["secretName"]?.scalar == "token")
        let mounts = try #require(pod["containers"]?.items?.first?["volumeMounts"]?.items)
        #expect(mounts[0]["mountPath"]?.scalar == "/var/lib/mysql")
        #expect(mounts[0]["subPath"]?.scalar == "mysql", "the chart trims the subPath's slashes")
        #expect(mounts[0]["readOnly"]?.scalar == "false")
        #expect(mounts[3]["readOnly"]?.scalar == "true")
        try validate(docs)

        // Mounted read-only, a persistent volume is a claim of its own and the pod a Deployment.
        let readOnly = try render(
            "containers: [{image: x, volumeMounts: [{containerPath: /d, volume: {name: d, readOnly: true}}]}]\nvolumes: [{name: d, size: 1Gi}]\nserviceName: custom"
        )
        #expect(readOnly.map { $0["kind"]?.scalar } == ["PersistentVolumeClaim", "Deployment"])
    }

    @Test(.requiresKubernetesValidate) func ingressWithTLSAndTheAutoscaler() throws {
        let docs = try render(
            """
            containers: [{image: web}]
            service:
              name: web-svc
              ports: [{port: 8080}]
            ingress:
              tls: true
              rules:
              - host: app.example.com
              - host: api.example.com
                path: /api
                pathType: Prefix
                servicePort: 9000
            autoScaling:
              horizontal: {maxReplicas: 4, averageRelativeCPU: 80}
            """
        )
        #expect(
            docs.map { $0["kind"]?.scalar } == ["Service", "Deployment", "HorizontalPodAutoscaler", "Ingress"]
        )
        let ingress = try #require(kind(docs, "Ingress").first)
        #expect(ingress["apiVersion"]?.scalar == "networking.k8s.io/v1")
        #expect(ingress["metadata"]?["name"]?.scalar == "web-svc", "named after the service")
        let annotations = try #require(ingress["metadata"]?["annotations"])
        #expect(annotations["cert-manager.io/cluster-issuer"]?.scalar == "lets-encrypt-http-issuer")
        #expect(annotations["acme.cert-manager.io/http01-ingress-class"]?.scalar == "nginx")
        let rules = try #require(ingress["spec"]?["rules"]?.items)
        #expect(rules.map { $0["host"]?.scalar } == ["app.example.com", "api.example.com"])
        let first = try #require(rules[0]["http"]?["paths"]?.items?.first)
        #expect(first["path"]?.scalar == "/" && first["pathType"]?.scalar == "ImplementationSpecific")
        #expect(first["backend"]?["service"]?["name"]?.scalar == "web-svc")
        #expect(first["backend"]?["service"]?["port"]?["number"]?.scalar == "8080", "the first service port")
        let second = try #require(rules[1]["http"]?["paths"]?.items?.first)
        #expect(second["path"]?.scalar == "/api" && second["pathType"]?.scalar == "Prefix")
        #expect(second["backend"]?["service"]?["port"]?["number"]?.scalar == "9000")
        let tls = try #require(ingress["spec"]?["tls"]?.items?.first)
        #expect(tls["secretName"]?.scalar == "tls-web-svc")
        #expect(tls["hosts"]?.strings == ["app.example.com", "api.example.com"])
        let hpa = try #require(kind(docs, "HorizontalPodAutoscaler").first)
        #expect(hpa["spec"]?["scaleTargetRef"]?["kind"]?.scalar == "Deployment")
        #expect(hpa["spec"]?["maxReplicas"]?.scalar == "4")
        try validate(docs)

        // A secret name, an issuer of one's own, and `disabled`.
        let named = try render(
            "containers: [{image: web}]\nservice: {ports: [{port: 80}]}\ningress: {tls: my-cert, annotations: {cert-manager.io/issuer: mine}, rules: [{host: a.b}]}"
        )
        let other = try #require(kind(named, "Ingress").first)
        #expect(other["spec"]?["tls"]?.items?.first?["secretName"]?.scalar == "my-cert")
        #expect(other["metadata"]?["annotations"]?["cert-manager.io/cluster-issuer"] == nil)
        #expect(other["metadata"]?["annotations"]?["cert-manager.io/issuer"]?.scalar == "mine")
        let disabled = try render(
            "containers: [{image: web}]\nservice: {ports: [{port: 80}]}\ningress: {disabled: true, rules: [{host: a.b}]}"
        )
        #expect(kind(disabled, "Ingress").isEmpty)
    }

    @Test func badValuesNameTheirPlace() throws {
        let missing = try #require(try error("containers:\n- image: a\n- name: b\n"))
        #expect(
            missing.description
                == "devspace.yaml:3:3: deployments.app.helm.values.containers[1]: a container needs an image"
        )
        let volume = try #require(
            try error("containers:\n- image: a\n  volumeMounts:\n  - containerPath: /x\n    volume: {name: nope}\n")
        )
        #expect(volume.path == "containers[0].volumeMounts[0].volume.name")
        #expect(volume.mark == Mark(line: 5, column: 20))
        #expect(volume.message.contains("there is no volume named nope in volumes (there are none)"))
        let port = try #require(try error("containers: [{image: a}]\nservice:\n  ports:\n  - port: http\n"))
        #expect(port.description.hasPrefix("devspace.yaml:4:11: deployments.app.helm.values.service.ports[0].port: "))
        let size = try #require(
            try error(
                "containers: [{image: a, volumeMounts: [{containerPath: /d, volume: {name: d}}]}]\nvolumes: [{name: d}]"
            )
        )
        #expect(size.message.contains("needs a size"))
        let duplicate = try #require(try error("containers: [{image: a, name: x}, {image: b, name: x}]"))
        #expect(duplicate.message == "two containers of this pod are named x")
        let badName = try #require(try error("containers: [{image: a, name: My_App}]"))
        #expect(badName.path == "containers[0].name")
        let notList = try #require(try error("containers: {image: a}"))
        #expect(notList.message == "must be a list, not a map")
        #expect(try render("containers: []").isEmpty, "no containers: no workload, as the chart")
    }

    /// Through the config: tags injected as for any helm values, and an error in a values
    /// file names that file.
    @Test(.requiresKubernetesValidate) func theRendererInjectsTagsAndNamesTheValuesFile() async throws {
        try await withTemporaryDirectory { dir in
            let config = """
                version: v2beta1
                name: tutorial
                images:
                  app:
                    image: ghcr.io/loft-sh/devspace-quickstart-golang
                  sidecar:
                    image: ghcr.io/loft-sh/devspace-quickstart-golang-sidecar
                deployments:
                  app:
                    helm:
                      values:
                        containers:
                        - image: ghcr.io/loft-sh/devspace-quickstart-golang
                        - image: ghcr.io/loft-sh/devspace-quickstart-golang-sidecar
                          name: sidecar
                  broken:
                    helm:
                      valuesFiles: [extra.yaml]
                      values:
                        containers: [{image: x}]
                """
            try config.write(toFile: dir + "/devspace.yaml", atomically: true, encoding: .utf8)
            try "service:\n  ports:\n    - port: 99999\n".write(
                toFile: dir + "/extra.yaml",
                atomically: true,
                encoding: .utf8
            )
            let loaded = try await ConfigLoader.load(LoadOptions(workingDirectory: dir, environment: ["HOME": dir]))
            let injector = TagInjector(
                loaded: loaded,
                run: [
                    "app": .init(image: "ghcr.io/loft-sh/devspace-quickstart-golang", tag: "t1"),
                    "sidecar": .init(image: "ghcr.io/loft-sh/devspace-quickstart-golang-sidecar", tag: "t2"),
                ]
            )
            let renderer = ClusterRenderer(loaded: loaded, injector: injector, namespace: nil, environment: [:])
            let app = try #require(loaded.config.deployments.first { $0.name == "app" })
            #expect(ClusterRenderer.isComponentChart(app))
            let (docs, release) = try renderer.componentChart(app, releaseSuffix: "-fix-typo")
            #expect(release == "app-fix-typo")
            let images = docs.first?["spec"]?["template"]?["spec"]?["containers"]?.items?.map { $0["image"]?.scalar }
            #expect(
                images == [
                    "ghcr.io/loft-sh/devspace-quickstart-golang:t1",
                    "ghcr.io/loft-sh/devspace-quickstart-golang-sidecar:t2",
                ]
            )
            try validate(docs)

            let broken = try #require(loaded.config.deployments.first { $0.name == "broken" })
            do throws(DeployError) {
                _ = try renderer.componentChart(broken)
                Issue.record("a port of 99999 renders")
            } catch {
                #expect(
                    error.description
                        == "extra.yaml:3:13: deployments.broken.helm.values.service.ports[0].port: must be a whole number from 1 to 65535",
                    "\(error)"
                )
            }
        }
    }
}
