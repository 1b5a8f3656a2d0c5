internal import Foundation

/// `--local`: a component-chart deployment's pod on the local Docker engine instead of a
/// cluster.
///
/// The pod is one small infra container of slipway's (`slipway/pause:<digest>`, a static
/// program that only waits: ``PauseImage``) that holds the pod's network (and IPC) namespace,
/// and one container per container of the pod's spec, each joined to it
/// (`NetworkMode: container:<infra>`), so that they reach each other on localhost, as in a
/// pod, and each can be replaced alone. The infra container runs on the host's network with
/// `hostNetwork: true` in the values, else on the engine's default bridge with `service.ports`
/// published on 127.0.0.1 (`port` → `containerPort`); `hostAliases` become its `/etc/hosts`
/// entries, which the pod's containers share.
///
/// Names and labels follow the `docker` deployment kind (``DockerDeployer``): a container is
/// `PROJECT-DEPLOYMENT-CONTAINER[-BRANCH]`, the infra container `PROJECT-DEPLOYMENT.pod[-BRANCH]`
/// (a `.` no container name of a pod can hold), each labelled `dev.slipway.config`, `.project`,
/// `.deployment`, `.container`, `.branch`, `.pod` (the infra container's name), `.role`
/// (`infra`, `init`, `app`) and `.spec` (a digest of what it was created with, its image's ID
/// included); the pod's own labels (`app.kubernetes.io/component: <release>`, the values'
/// `labels`) are kept on its containers as `dev.slipway.user.<key>`, so that a dev entry's
/// `labelSelector` (`-l`) finds them.
///
/// What the rest of the pod means here:
/// - `command` is the entrypoint and `args` the command, as in Kubernetes; `env` (`value`s),
///   `workingDir`, `tty`, `stdin` are passed; `restartPolicy` Always (the default) becomes
///   `unless-stopped`, OnFailure `on-failure`, Never `no`;
/// - `initContainers` run to completion, in order, in the pod's namespace before the
///   containers start — when the pod is created and when one of them changed; a failing one
///   stops the deploy;
/// - `emptyDir` volumes are Docker volumes that live as long as the pod; persistent ones
///   (`size`) are Docker volumes `purge` keeps, as Kubernetes keeps a claim; `secret` and
///   `configMap` volumes and `subPath` are not available locally (a note says so);
/// - one pod runs whatever `replicas` says; probes, `resources`, `envFrom`, `valueFrom`, the
///   ingress and the autoscaler are not used locally (a note says so).
public struct LocalPod: Sendable, Equatable {
    public enum Role: String, Sendable, Equatable {
        case infra
        case initContainer = "init"
        case app
    }

    /// One container of the pod as the engine creates it.
    public struct Member: Sendable, Equatable {
        /// The engine's name for it.
        public var name: String
        /// Its name in the pod (`container-0`, `sidecar`).
        public var podName: String
        public var role: Role
        public var image: String
        public var spec: DockerContainerSpec
    }

    /// A Docker volume of the pod.
    public struct Volume: Sendable, Equatable {
        public var name: String
        /// Kept by `purge` (a claim); else removed with the pod (`emptyDir`).
        public var persistent: Bool
    }

    public var deployment: String
    /// The branch environment (`--branch-env`), nil for the plain one.
    public var branch: String?
    public var infra: Member
    public var initContainers: [Member]
    public var containers: [Member]
    public var volumes: [Volume]
    /// What of the pod's spec does not apply locally, one line each.
    public var notes: [String]

    public var members: [Member] { [infra] + initContainers + containers }

    static let label = DockerDeployer.label

    /// The pod of a component-chart deployment's `manifests` (``ComponentChart``), its tags
    /// injected. The infra container's image is set by the deployer (``PauseImage``).
    public static func plan(
        manifests: [Node],
        loaded: LoadedConfig,
        deployment: String,
        branch: String?
    ) throws(DeployError) -> LocalPod {
        guard
            let workload = manifests.first(where: {
                ["Deployment", "StatefulSet"].contains($0["kind"]?.scalar ?? "")
            }),
            let pod = workload["spec"]?["template"]?["spec"]
        else {
            throw DeployError.local(
                deployment: deployment,
                message: "its values have no containers, so there is no pod to run"
            )
        }
        let project = loaded.config.name
        let suffix = branch.map { "-" + DockerDeployer.sanitize($0) } ?? ""
        let base = DockerDeployer.sanitize("\(project)-\(deployment)")
        let infraName = base + ".pod" + suffix
        var notes: [String] = []

        // The pod's own labels (the component chart's and the values' `labels`), as the
        // docker kind keeps a container's: `dev.slipway.user.KEY`, what `-l` selects on.
        var podLabels: [String: String] = [:]
        for pair in workload["spec"]?["template"]?["metadata"]?["labels"]?.pairs ?? [] {
            if let key = pair.key.scalar { podLabels["\(label).user.\(key)"] = pair.value.text ?? "" }
        }
        func labels(_ role: Role, _ podName: String) -> [String: String] {
            var labels = [
                "\(label).config": loaded.absolutePath, "\(label).project": project,
                "\(label).deployment": deployment, "\(label).container": podName,
                "\(label).branch": branch ?? "", "\(label).pod": infraName, "\(label).role": role.rawValue,
            ]
            if role != .infra { labels.merge(podLabels) { own, _ in own } }
            return labels
        }

        // Volumes: claims and emptyDirs become Docker volumes; secrets and config maps do not.
        var volumes: [String: Volume] = [:]
        var ordered: [Volume] = []
        func add(_ name: String, persistent: Bool) {
            let volume = Volume(
                name: DockerDeployer.sanitize("\(project)-\(deployment)-\(name)") + suffix,
                persistent: persistent
            )
            volumes[name] = volume
            ordered.append(volume)
        }
        for template in workload["spec"]?["volumeClaimTemplates"]?.items ?? [] {
            if let name = template["metadata"]?["name"]?.text { add(name, persistent: true) }
        }
        for volume in pod["volumes"]?.items ?? [] {
            guard let name = volume["name"]?.text else { continue }
            if volume["persistentVolumeClaim"] != nil {
                add(name, persistent: true)
            } else if volume["emptyDir"] != nil {
                add(name, persistent: false)
            } else {
                let kind = volume["secret"] != nil ? "secret" : volume["configMap"] != nil ? "configMap" : "volume"
                notes.append("the \(kind) volume \(name) is not mounted locally (no cluster to read it from)")
            }
        }

        let restart: String
        switch pod["restartPolicy"]?.text ?? "Always" {
        case "Never": restart = "no"
        case "OnFailure": restart = "on-failure"
        default: restart = "unless-stopped"
        }

        func member(_ container: Node, _ role: Role) -> Member {
            let podName = container["name"]?.text ?? "container"
            let image = container["image"]?.text ?? ""
            var environment: [String] = []
            for entry in container["env"]?.items ?? [] {
                guard let name = entry["name"]?.text else { continue }
                if entry["valueFrom"] != nil {
                    notes.append("\(podName): env \(name) uses valueFrom, which needs a cluster; it is not set locally")
                    continue
                }
                environment.append("\(name)=\(entry["value"]?.text ?? "")")
            }
            if container["envFrom"] != nil {
                notes.append("\(podName): envFrom needs a cluster; it is not used locally")
            }
            let command = container["command"]?.strings ?? []
            let args = container["args"]?.strings ?? []
            var spec = DockerContainerSpec(
                image: image,
                command: args.isEmpty ? nil : args,
                entrypoint: command.isEmpty ? nil : command,
                environment: environment,
                labels: labels(role, podName),
                workingDirectory: container["workingDir"]?.text,
                tty: container["tty"]?.bool ?? false,
                openStdin: container["stdin"]?.bool ?? false,
                networkMode: "container:\(infraName)"
            )
            spec.hostConfig["IpcMode"] = .string("container:\(infraName)")
            if role == .app { spec.hostConfig["RestartPolicy"] = ["Name": .string(restart)] }
            var mounts: [JSONValue] = []
            for mount in container["volumeMounts"]?.items ?? [] {
                guard let name = mount["name"]?.text, let path = mount["mountPath"]?.text,
                    let volume = volumes[name]
                else { continue }
                if let sub = mount["subPath"]?.text, !sub.isEmpty {
                    notes.append(
                        "\(podName): the subPath \(sub) of volume \(name) is not used locally (the whole volume is mounted)"
                    )
                }
                mounts.append([
                    "Type": "volume", "Source": .string(volume.name), "Target": .string(path),
                    "ReadOnly": .bool(mount["readOnly"]?.bool ?? false),
                ])
            }
            if !mounts.isEmpty { spec.hostConfig["Mounts"] = .array(mounts) }
            let probes = ["livenessProbe", "readinessProbe", "startupProbe"].filter { container[$0] != nil }
            if !probes.isEmpty {
                notes.append("\(podName): probes (\(probes.joined(separator: ", "))) are not run locally")
            }
            if container["resources"] != nil { notes.append("\(podName): resources are not applied locally") }
            let name = DockerDeployer.sanitize("\(project)-\(deployment)-\(podName)") + suffix
            return Member(name: name, podName: podName, role: role, image: image, spec: spec)
        }

        let initContainers = (pod["initContainers"]?.items ?? []).map { member($0, .initContainer) }
        if !initContainers.isEmpty {
            notes.append(
                "initContainers run to completion, in order, before the containers start (when the pod is created or they change)"
            )
        }
        let containers = (pod["containers"]?.items ?? []).map { member($0, .app) }

        // The infra container: the pod's network.
        let hostNetwork = pod["hostNetwork"]?.bool ?? false
        var infra = DockerContainerSpec(
            image: "",
            labels: labels(.infra, "pod"),
            networkMode: hostNetwork ? "host" : "bridge"
        )
        infra.hostConfig["IpcMode"] = "shareable"
        infra.hostConfig["RestartPolicy"] = ["Name": "unless-stopped"]
        var hosts: [String] = []
        for alias in pod["hostAliases"]?.items ?? [] {
            guard let ip = alias["ip"]?.text else { continue }
            for host in alias["hostnames"]?.strings ?? [] { hosts.append("\(host):\(ip)") }
        }
        if !hosts.isEmpty { infra.hostConfig["ExtraHosts"] = .strings(hosts) }
        let service = manifests.first {
            $0["kind"]?.scalar == "Service" && $0["spec"]?["clusterIP"]?.scalar != "None"
        }
        let ports = service?["spec"]?["ports"]?.items ?? []
        if !hostNetwork && !ports.isEmpty {
            var exposed: [String: JSONValue] = [:]
            var bindings: [String: JSONValue] = [:]
            for port in ports {
                guard let published = port["port"]?.text, let target = port["targetPort"]?.text else { continue }
                let key = "\(target)/\((port["protocol"]?.text ?? "TCP").lowercased())"
                exposed[key] = .object([:])
                var list = bindings[key]?.array ?? []
                list.append(["HostIp": "127.0.0.1", "HostPort": .string(published)])
                bindings[key] = .array(list)
            }
            infra.config["ExposedPorts"] = .object(exposed)
            infra.hostConfig["PortBindings"] = .object(bindings)
        }
        if let replicas = workload["spec"]?["replicas"]?.text, let n = Int(replicas), n > 1 {
            notes.append("replicas: \(n): one pod runs locally")
        }
        if manifests.contains(where: { $0["kind"]?.scalar == "Ingress" }) {
            notes.append("the ingress is not created locally (service.ports are published on 127.0.0.1)")
        }
        if manifests.contains(where: { $0["kind"]?.scalar == "HorizontalPodAutoscaler" }) {
            notes.append("autoScaling is not used locally")
        }
        return LocalPod(
            deployment: deployment,
            branch: branch,
            infra: Member(name: infraName, podName: "pod", role: .infra, image: "", spec: infra),
            initContainers: initContainers,
            containers: containers,
            volumes: ordered,
            notes: notes
        )
    }

    /// What `--render --local` prints: the engine's containers as comment lines (every line a
    /// comment, so that the output stays a stream of manifests).
    public var described: String {
        var lines = ["# --local: the pod runs on the local Docker engine as:"]
        let network = infra.spec.hostConfig["NetworkMode"]?.string ?? ""
        var pod = "#   \(infra.name): slipway's pause program, network \(network)"
        if let bindings = infra.spec.hostConfig["PortBindings"]?.object, !bindings.isEmpty {
            let published = bindings.sorted { $0.key < $1.key }.compactMap { key, value in
                value.array?.first?["HostPort"]?.string.map { "127.0.0.1:\($0)→\(key)" }
            }
            pod += ", publishing " + published.joined(separator: ", ")
        }
        lines.append(pod)
        for member in initContainers + containers {
            var line = "#   \(member.name): \(member.image)"
            if member.role == .initContainer { line += " (init, runs to completion)" }
            if let entrypoint = member.spec.config["Entrypoint"]?.strings {
                line += ", entrypoint " + entrypoint.map(shellQuoted).joined(separator: " ")
            }
            if let cmd = member.spec.config["Cmd"]?.strings {
                line += ", command " + cmd.map(shellQuoted).joined(separator: " ")
            }
            lines.append(line)
        }
        for note in notes { lines.append("#   note: \(note)") }
        // A value with a line break (a script in `command`) continues the comment.
        return lines.joined(separator: "\n").split(separator: "\n", omittingEmptySubsequences: false)
            .map { $0.hasPrefix("#") ? String($0) : "#     " + $0 }.joined(separator: "\n")
    }
}

/// The image of the pods' infra container: `slipway/pause:<first 12 hex digits of the
/// program's SHA-256>`, made on demand from the `slipway-pause` program installed beside the
/// slipway binary (a static program that waits for a signal and exits; Swift builds it as
/// its own product) as a one-file image (`docker import`, `FROM scratch` in effect). It needs
/// neither a registry nor a base image, so it works offline and on any engine.
public enum PauseImage {
    public static let repository = "slipway/pause"
    public static let programName = "slipway-pause"

    /// The pause program: beside `executable` (the slipway binary, links resolved), else on PATH.
    public static func program(besides executable: String, environment: [String: String]) -> String? {
        let directory = (executable as NSString).deletingLastPathComponent
        let beside = directory + "/" + programName
        if access(beside, X_OK) == 0 { return beside }
        return findExecutable(programName, path: environment["PATH"])
    }

    /// The image's reference, imported first when the engine does not have it.
    static func ensure(_ api: DockerAPI, program: String) throws(DeployError) -> String {
        guard let data = FileManager.default.contents(atPath: program) else {
            throw DeployError.engine("cannot read \(program), the pods' pause program")
        }
        let tag = String(sha256Hex(bytes: Array(data)).prefix(12))
        let reference = "\(repository):\(tag)"
        do {
            if try api.imageExists(reference) != nil { return reference }
            try api.importImage(
                repository: repository,
                tag: tag,
                changes: ["ENTRYPOINT [\"/pause\"]", "LABEL \(DockerDeployer.label).pause=\(tag)"]
            ) { tar in
                try tar.appendFile("pause", TarAttributes(mode: 0o755), contents: Array(data))
            }
            return reference
        } catch {
            throw DeployError.engine("cannot make the pods' infra image \(reference) from \(program): \(error)")
        }
    }
}

/// Runs and removes ``LocalPod``s over the engine's API.
public struct LocalPodDeployer: Sendable {
    public let loaded: LoadedConfig
    let api: DockerAPI

    public init(loaded: LoadedConfig, environment: [String: String]) throws(DeployError) {
        self.loaded = loaded
        do {
            // A forced remove kills first and waits for the process: more than a lookup's time.
            api = try DockerAPI.fromEnvironment(environment, timeout: .seconds(30))
        } catch {
            throw DeployError.engine("--local needs the Docker engine's API on its unix socket: \(error)")
        }
    }

    static var label: String { DockerDeployer.label }

    /// Runs `pod`, keeping what is unchanged: a container whose spec and image are the same
    /// stays (unless `force`); a changed container is replaced alone; a changed infra container
    /// (network, ports, hosts) replaces the whole pod. Containers of the deployment the pod no
    /// longer has are removed.
    public func deploy(
        _ pod: LocalPod,
        pauseProgram: String?,
        force: Bool
    ) async throws(DeployError) -> [(String, DockerDeployer.Outcome)] {
        let result = await onOwnThread { [self] in
            Result { () throws(DeployError) in try deploySync(pod, pauseProgram: pauseProgram, force: force) }
        }
        return try result.get()
    }

    /// Removes the pod of `deployment` in `branch`'s environment: its containers and its
    /// `emptyDir` volumes. Returns the removed containers and the persistent volumes kept.
    public func purge(
        deployment: String,
        branch: String?
    ) async throws(DeployError) -> (
        removed: [String], kept: [String]
    ) {
        let result = await onOwnThread { [self] in
            Result { () throws(DeployError) in try purgeSync(deployment: deployment, branch: branch) }
        }
        return try result.get()
    }

    // MARK: Work (on a thread of its own)

    func engine<T>(_ what: String, _ body: () throws(DockerAPIError) -> T) throws(DeployError) -> T {
        do { return try body() } catch { throw DeployError.engine("\(what): \(error)") }
    }

    func scopeLabels(_ deployment: String, _ branch: String?) -> [String] {
        [
            "\(Self.label).config=\(loaded.absolutePath)", "\(Self.label).deployment=\(deployment)",
            "\(Self.label).branch=\(branch ?? "")",
        ]
    }

    func deploySync(
        _ pod: LocalPod,
        pauseProgram: String?,
        force: Bool
    ) throws(DeployError) -> [(
        String, DockerDeployer.Outcome
    )] {
        guard let pauseProgram else {
            throw DeployError.local(
                deployment: pod.deployment,
                message:
                    "\(PauseImage.programName), the program that holds a pod's network, is not installed beside slipway nor on PATH; reinstall slipway (./install.sh installs both)"
            )
        }
        var pod = pod
        pod.infra.image = try PauseImage.ensure(api, program: pauseProgram)
        pod.infra.spec.image = pod.infra.image
        let branch = pod.branch

        // Every image there (pulled when it is not), and its ID for the spec digests.
        var imageIDs: [String: String] = [:]
        for member in pod.members where imageIDs[member.image] == nil {
            if let id = try engine(
                "cannot look up the image \(member.image)",
                { () throws(DockerAPIError) in
                    try api.imageExists(member.image)
                }
            ) {
                imageIDs[member.image] = id
                continue
            }
            do {
                try api.pullImage(member.image)
            } catch {
                throw DeployError.imageMissing(deployment: pod.deployment, image: member.image)
            }
            guard let id = try? api.imageExists(member.image) else {
                throw DeployError.imageMissing(deployment: pod.deployment, image: member.image)
            }
            imageIDs[member.image] = id
        }
        func digest(_ member: LocalPod.Member) -> String {
            sha256Hex(
                String(decoding: member.spec.body.encoded(), as: UTF8.self) + "\u{1F}" + (imageIDs[member.image] ?? "")
            )
        }

        let existing = try engine("cannot list the containers of this config") { () throws(DockerAPIError) in
            try api.containers(labels: scopeLabels(pod.deployment, branch))
        }
        func current(_ name: String) -> DockerContainerSummary? { existing.first { $0.name == name } }
        var outcomes: [(String, DockerDeployer.Outcome)] = []
        var removed: Set<String> = []
        func remove(_ name: String) throws(DeployError) {
            _ = try engine("cannot remove the container \(name)") { () throws(DockerAPIError) in
                try api.removeContainer(name, force: true)
            }
            removed.insert(name)
        }
        func create(_ member: LocalPod.Member, digest: String) throws(DeployError) {
            var spec = member.spec
            spec.labels["\(Self.label).spec"] = digest
            _ = try engine("cannot create the container \(member.name)") { () throws(DockerAPIError) in
                try api.createContainer(name: member.name, spec: spec)
            }
        }
        func start(_ name: String) throws(DeployError) {
            _ = try engine("cannot start the container \(name)") { () throws(DockerAPIError) in
                try api.startContainer(name)
            }
        }

        // An engine started without a bridge (dockerd --bridge=none) takes a container on
        // "bridge" and gives it no network at all: say so instead.
        if pod.infra.spec.hostConfig["NetworkMode"]?.string == "bridge" {
            let bridge = try engine("cannot look up the engine's networks") { () throws(DockerAPIError) in
                try api.networkExists("bridge")
            }
            guard bridge else {
                throw DeployError.local(
                    deployment: pod.deployment,
                    message:
                        "the Docker engine has no bridge network (dockerd --bridge=none), so the pod would have no network; set hostNetwork: true in the values to run it on the host's network"
                )
            }
        }

        // The infra container: kept, or the whole pod made again.
        let infraDigest = digest(pod.infra)
        let oldInfra = current(pod.infra.name)
        let podIsNew =
            force || oldInfra == nil || oldInfra?.labels["\(Self.label).spec"] != infraDigest
            || oldInfra?.state != "running"
        if podIsNew {
            for container in existing { try remove(container.name) }
            // A container of one of these names that this config does not own is in the way.
            for member in pod.members where current(member.name) == nil {
                if (try? api.inspectContainer(member.name)) != nil { try remove(member.name) }
            }
            for volume in pod.volumes where !volume.persistent {
                _ = try engine("cannot remove the volume \(volume.name)") { () throws(DockerAPIError) in
                    try api.removeVolume(volume.name, force: true)
                }
            }
        }
        for volume in pod.volumes {
            var labels = pod.infra.spec.labels
            labels["\(Self.label).role"] = nil
            labels["\(Self.label).container"] = nil
            labels["\(Self.label).volume"] = volume.persistent ? "persistent" : "pod"
            try engine("cannot create the volume \(volume.name)") { () throws(DockerAPIError) in
                try api.createVolume(volume.name, labels: labels)
            }
        }
        if podIsNew {
            try create(pod.infra, digest: infraDigest)
            try start(pod.infra.name)
            outcomes.append((pod.infra.name, oldInfra == nil ? .created : .replaced))
        } else {
            outcomes.append((pod.infra.name, .unchanged))
        }

        // Init containers: run again, in order, when the pod is new or one of them changed.
        let initChanged = pod.initContainers.contains { current($0.name)?.labels["\(Self.label).spec"] != digest($0) }
        if podIsNew || initChanged {
            for member in pod.initContainers {
                if current(member.name) != nil && !removed.contains(member.name) { try remove(member.name) }
                try create(member, digest: digest(member))
                try start(member.name)
                let status = try engine("cannot wait for the init container \(member.name)") {
                    () throws(DockerAPIError) in try api.waitContainer(member.name)
                }
                guard status == 0 else {
                    throw DeployError.local(
                        deployment: pod.deployment,
                        message:
                            "the init container \(member.podName) exited with status \(status); `docker logs \(member.name)` shows why"
                    )
                }
                outcomes.append((member.name, current(member.name) == nil ? .created : .replaced))
            }
        }

        // The containers: each replaced alone when it changed.
        for member in pod.containers {
            let d = digest(member)
            let old = removed.contains(member.name) ? nil : current(member.name)
            // A container that exits is restarted by the engine (restartPolicy): alive too.
            if let old, !podIsNew, old.labels["\(Self.label).spec"] == d, ["running", "restarting"].contains(old.state)
            {
                outcomes.append((member.name, .unchanged))
                continue
            }
            if old != nil { try remove(member.name) }
            try create(member, digest: d)
            try start(member.name)
            outcomes.append((member.name, current(member.name) == nil ? .created : .replaced))
        }
        let names = Set(pod.members.map(\.name))
        for container in existing where !names.contains(container.name) && !removed.contains(container.name) {
            try remove(container.name)
            outcomes.append((container.name, .removed))
        }
        return outcomes
    }

    func purgeSync(deployment: String, branch: String?) throws(DeployError) -> (removed: [String], kept: [String]) {
        let labels = scopeLabels(deployment, branch)
        let found = try engine("cannot list the containers of this config") { () throws(DockerAPIError) in
            try api.containers(labels: labels)
        }
        // The pod's containers first, its infra container last.
        let ordered =
            found.filter { $0.labels["\(Self.label).role"] != "infra" }
            + found.filter { $0.labels["\(Self.label).role"] == "infra" }
        for container in ordered {
            _ = try engine("cannot remove the container \(container.name)") { () throws(DockerAPIError) in
                try api.removeContainer(container.name, force: true)
            }
        }
        let podVolumes = try engine("cannot list the volumes of this config") { () throws(DockerAPIError) in
            try api.volumes(labels: labels + ["\(Self.label).volume=pod"])
        }
        for volume in podVolumes {
            _ = try engine("cannot remove the volume \(volume)") { () throws(DockerAPIError) in
                try api.removeVolume(volume, force: true)
            }
        }
        let kept = try engine("cannot list the volumes of this config") { () throws(DockerAPIError) in
            try api.volumes(labels: labels + ["\(Self.label).volume=persistent"])
        }
        return (ordered.map(\.name), kept)
    }
}
