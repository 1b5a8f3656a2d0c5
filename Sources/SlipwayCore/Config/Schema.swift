/// The shape a value in a configuration file must have: what ``SchemaValidator`` checks.
///
/// Scalar cases follow how go-yaml v3 (and so DevSpace) decodes into Go types; see
/// ``SchemaValidator`` for the exact rules. Every optional field also accepts null.
public indirect enum SchemaType: Sendable, CustomStringConvertible {
    /// Go `string`: any scalar is taken as its text.
    case string
    /// Go `bool`.
    case bool
    /// Go `int`/`int32`/`int64`.
    case int
    /// Go `float64`.
    case number
    /// Go `interface{}`: anything, not looked into.
    case any
    /// Go slice.
    case list(SchemaType)
    /// Go `map[string]T`: free keys.
    case map(SchemaType)
    /// Go struct: known keys only (go-yaml's strict mode, which DevSpace uses).
    case object(ObjectSchema)
    /// A Go type with its own `UnmarshalYAML` that accepts several shapes (`pipelines.x` is a
    /// script or a map). The alternative is chosen by the node's kind.
    case oneOf([SchemaType])
    /// The value reaches its Go struct through `encoding/json` (DevSpace's `UnmarshalYAML` for
    /// pipelines, commands and vars re-encodes the map as JSON), so scalars must have exactly
    /// the right type: a number is not a string there.
    case jsonDecoded(SchemaType)

    /// "a string", "a list of strings", "a string or a map": for messages.
    public var description: String {
        switch self {
        case .string: return "a string"
        case .bool: return "a boolean"
        case .int: return "an integer"
        case .number: return "a number"
        case .any: return "any value"
        case .list(let element): return "a list of \(element.pluralDescription)"
        case .map(let value):
            if case .any = value { return "a map" }
            return "a map of \(value.pluralDescription)"
        case .object: return "a map"
        case .oneOf(let types): return Self.joinedWithOr(types.map(\.description))
        case .jsonDecoded(let type): return type.description
        }
    }

    private var pluralDescription: String {
        switch self {
        case .string: return "strings"
        case .bool: return "booleans"
        case .int: return "integers"
        case .number: return "numbers"
        case .any: return "values"
        case .list: return "lists"
        case .map, .object: return "maps"
        case .oneOf(let types): return Self.joinedWithOr(types.map(\.pluralDescription))
        case .jsonDecoded(let type): return type.pluralDescription
        }
    }

    private static func joinedWithOr(_ parts: [String]) -> String {
        guard parts.count > 1 else { return parts.first ?? "" }
        return parts.dropLast().joined(separator: ", ") + " or " + parts[parts.count - 1]
    }
}

/// The keys of one Go struct, in declaration order, with the type of each.
public struct ObjectSchema: Sendable {
    /// Keys in declaration order (for suggestions and messages).
    public private(set) var keys: [String]
    /// Keys that must be present. DevSpace's own "required" rules are semantic and live
    /// elsewhere; this is used only for slipway's own kinds.
    public let required: [String]
    private var types: [String: SchemaType]

    public init(_ fields: KeyValuePairs<String, SchemaType>, required: [String] = []) {
        var keys: [String] = []
        var types: [String: SchemaType] = [:]
        for (key, type) in fields {
            assert(types[key] == nil, "schema literal names \"\(key)\" twice")
            if types.updateValue(type, forKey: key) == nil { keys.append(key) }
        }
        self.keys = keys
        self.types = types
        self.required = required
    }

    /// The type under `key`, nil when the struct has no such field.
    public subscript(key: String) -> SchemaType? { types[key] }

    /// This struct with the fields of an embedded one (`yaml:",inline"`) after its own.
    ///
    /// go-yaml refuses a struct whose inlined fields repeat a key, so the two must not overlap.
    public func inlining(_ other: ObjectSchema) -> ObjectSchema {
        var copy = self
        for key in other.keys {
            assert(copy.types[key] == nil, "inlined struct repeats \"\(key)\"")
            if copy.types[key] == nil {
                copy.keys.append(key)
                copy.types[key] = other.types[key]
            }
        }
        return copy
    }
}

/// DevSpace's `devspace.yaml` at `version: v2beta1`, one value per Go struct of
/// `pkg/devspace/config/versions/latest/schema.go` (devspace-sh/devspace, v6.3 line), named
/// after it, plus slipway's own `deployments.*.docker`.
///
/// Keys are the `yaml:"…"` tags. Fields hidden from DevSpace's JSON schema
/// (`jsonschema:"-"`: `profiles`, `hooks`, deprecated custom-build options, …) are still read
/// by its YAML decoder, so they are here too.
public enum Schema {
    /// The whole file (`Config`).
    public static let config = SchemaType.object(configStruct)

    static let configStruct = ObjectSchema([
        "version": .string,
        "name": .string,
        "imports": .list(.object(importStruct)),
        "functions": .map(.string),
        "pipelines": .map(pipeline),
        "images": .map(.object(image)),
        "deployments": .map(.object(deploymentConfig)),
        "dev": .map(.object(devPod)),
        "vars": .map(variable),
        "commands": .map(commandConfig),
        "dependencies": .map(.object(dependencyConfig)),
        "pullSecrets": .map(.object(pullSecretConfig)),
        "require": .object(requireConfig),
        "profiles": .list(.object(profileConfig)),
        "hooks": .list(.object(hookConfig)),
        "localRegistry": .object(localRegistryConfig),
    ])

    // MARK: Imports, pipelines, requirements

    /// `Import`: `enabled` plus an inlined `SourceConfig`.
    static let importStruct = ObjectSchema(["enabled": .bool]).inlining(sourceConfig)

    static let sourceConfig = ObjectSchema([
        "path": .string,
        "git": .string,
        "subPath": .string,
        "branch": .string,
        "tag": .string,
        "revision": .string,
        "cloneArgs": .list(.string),
        "disableShallow": .bool,
        "disablePull": .bool,
    ])

    /// `Pipeline`: a script, or a map decoded through JSON.
    static let pipeline = SchemaType.oneOf([.string, .jsonDecoded(.object(pipelineStruct))])

    static let pipelineStruct = ObjectSchema([
        "name": .string,
        "run": .string,
        "flags": .list(.object(pipelineFlag)),
        "continueOnError": .bool,
    ])

    static let pipelineFlag = ObjectSchema([
        "name": .string,
        "short": .string,
        "type": .string,
        "default": .any,
        "description": .string,
    ])

    static let requireConfig = ObjectSchema([
        "devspace": .string,
        "commands": .list(.object(requireCommand)),
        "plugins": .list(.object(requirePlugin)),
    ])

    static let requireCommand = ObjectSchema([
        "name": .string,
        "versionArgs": .list(.string),
        "versionRegEx": .string,
        "version": .string,
    ])

    static let requirePlugin = ObjectSchema([
        "name": .string,
        "version": .string,
    ])

    // MARK: Images

    static let image = ObjectSchema([
        "name": .string,
        "image": .string,
        "tags": .list(.string),
        "dockerfile": .string,
        "context": .string,
        "entrypoint": .list(.string),
        "cmd": .list(.string),
        "appendDockerfileInstructions": .list(.string),
        "buildArgs": .map(.string),  // map[string]*string
        "target": .string,
        "network": .string,
        "rebuildStrategy": .string,
        "skipPush": .bool,
        "createPullSecret": .bool,
        "buildKit": .object(buildKitConfig),
        "docker": .object(dockerConfig),
        "kaniko": .object(kanikoConfig),
        "custom": .object(customConfig),
        // Hidden; written by the v1beta11 upgrade.
        "injectRestartHelper": .bool,
        "injectLegacyRestartHelper": .bool,
        "restartHelperPath": .string,
    ])

    static let dockerConfig = ObjectSchema([
        "disableFallback": .bool,
        "preferMinikube": .bool,
        "useCli": .bool,
        "args": .list(.string),
        "useBuildKit": .bool,  // deprecated, hidden
    ])

    static let buildKitConfig = ObjectSchema([
        "inCluster": .object(buildKitInClusterConfig),
        "preferMinikube": .bool,
        "args": .list(.string),
        "command": .list(.string),
    ])

    static let buildKitInClusterConfig = ObjectSchema([
        "name": .string,
        "namespace": .string,
        "rootless": .bool,
        "image": .string,
        "nodeSelector": .string,
        "noCreate": .bool,
        "noRecreate": .bool,
        "noLoad": .bool,
        "createArgs": .list(.string),
    ])

    static let kanikoConfig = ObjectSchema([
        "cache": .bool,
        "snapshotMode": .string,
        "image": .string,
        "initImage": .string,
        "args": .list(.string),
        "command": .list(.string),
        "namespace": .string,
        "insecure": .bool,
        "pullSecret": .string,
        "skipPullSecretMount": .bool,
        "nodeSelector": .map(.string),
        "tolerations": .list(.object(toleration)),
        "serviceAccount": .string,
        "generateName": .string,
        "annotations": .map(.string),
        "labels": .map(.string),
        "initEnv": .map(.string),
        "env": .map(.string),
        "envFrom": .map(.map(.any)),
        "additionalMounts": .list(.object(kanikoAdditionalMount)),
        "resources": .object(podResources),
    ])

    /// Kubernetes' `core/v1.Toleration`. It has only JSON tags, so go-yaml keys it by the
    /// lower-cased field name (`tolerationseconds`); the JSON spelling is accepted as well.
    static let toleration = ObjectSchema([
        "key": .string,
        "operator": .string,
        "value": .string,
        "effect": .string,
        "tolerationseconds": .int,
        "tolerationSeconds": .int,
    ])

    static let podResources = ObjectSchema([
        "requests": .map(.string),
        "limits": .map(.string),
    ])

    static let kanikoAdditionalMount = ObjectSchema([
        "secret": .object(kanikoAdditionalMountSecret),
        "configMap": .object(kanikoAdditionalMountConfigMap),
        "readOnly": .bool,
        "mountPath": .string,
        "subPath": .string,
    ])

    static let kanikoAdditionalMountConfigMap = ObjectSchema([
        "name": .string,
        "items": .list(.object(kanikoAdditionalMountKeyToPath)),
        "defaultMode": .int,
    ])

    static let kanikoAdditionalMountSecret = ObjectSchema([
        "name": .string,
        "items": .list(.object(kanikoAdditionalMountKeyToPath)),
        "defaultMode": .int,
    ])

    static let kanikoAdditionalMountKeyToPath = ObjectSchema([
        "key": .string,
        "path": .string,
        "mode": .int,
    ])

    static let customConfig = ObjectSchema([
        "command": .string,
        "onChange": .list(.string),
        // Deprecated and hidden, still executed.
        "commands": .list(.object(customConfigCommand)),
        "args": .list(.string),
        "appendArgs": .list(.string),
        "imageFlag": .string,
        "imageTagOnly": .bool,
        "skipImageArg": .bool,
    ])

    static let customConfigCommand = ObjectSchema([
        "command": .string,
        "os": .string,
    ])

    static let localRegistryConfig = ObjectSchema([
        "enabled": .bool,
        "localbuild": .bool,
        "namespace": .string,
        "name": .string,
        "image": .string,
        "buildKitImage": .string,
        "port": .int,
        "persistence": .object(localRegistryPersistence),
    ])

    static let localRegistryPersistence = ObjectSchema([
        "enabled": .bool,
        "size": .string,
        "storageClassName": .string,
    ])

    // MARK: Deployments

    static let deploymentConfig = ObjectSchema([
        "name": .string,
        "helm": .object(helmConfig),
        "kubectl": .object(kubectlConfig),
        "tanka": .object(tankaConfig),
        "updateImageTags": .bool,
        "namespace": .string,
        // slipway's own deployment kind; DevSpace does not know it.
        "docker": .object(dockerDeploymentConfig),
    ])

    static let helmConfig = ObjectSchema([
        "releaseName": .string,
        "chart": .object(chartConfig),
        "values": .map(.any),
        "valuesFiles": .list(.string),
        "displayOutput": .bool,
        "upgradeArgs": .list(.string),
        "templateArgs": .list(.string),
        "disableDependencyUpdate": .bool,
    ])

    /// `ChartConfig`: a repository chart, or an inlined `SourceConfig`.
    static let chartConfig = ObjectSchema([
        "name": .string,
        "version": .string,
        "repo": .string,
        "username": .string,
        "password": .string,
    ]).inlining(sourceConfig)

    static let kubectlConfig = ObjectSchema([
        "manifests": .list(.string),
        "applyArgs": .list(.string),
        "createArgs": .list(.string),
        "kubectlBinaryPath": .string,
        "inlineManifest": .string,
        "kustomize": .bool,
        "kustomizeArgs": .list(.string),
        "kustomizeBinaryPath": .string,
        "patches": .list(.object(patchTarget)),
    ])

    /// `PatchTarget`: `target` plus an inlined `PatchConfig`.
    static let patchTarget = ObjectSchema(["target": .object(target)]).inlining(patchConfig)

    static let target = ObjectSchema([
        "apiVersion": .string,
        "kind": .string,
        "name": .string,
    ])

    static let tankaConfig = ObjectSchema([
        "path": .string,
        "runJsonnetBundlerInstall": .bool,
        "runJsonnetBundlerUpdate": .bool,
        "environmentPath": .string,
        "environmentName": .string,
        "externalCodeVariables": .map(.string),
        "externalStringVariables": .map(.string),
        "topLevelCode": .list(.string),
        "topLevelString": .list(.string),
        "targets": .list(.string),
        "jsonnetBundlerBinaryPath": .string,
        "tankaBinaryPath": .string,
    ])

    /// slipway's own `deployments.*.docker`: containers run with the local docker engine.
    static let dockerDeploymentConfig = ObjectSchema([
        "containers": .list(.object(dockerContainer)),
        "network": .string,
    ])

    /// slipway's own: one container of a `docker` deployment.
    static let dockerContainer = ObjectSchema(
        [
            "name": .string,
            "image": .string,
            "command": .list(.string),
            "args": .list(.string),
            "env": .oneOf([.map(.string), .list(.object(envVar))]),
            "ports": .list(.string),  // "8080:80"
            "volumes": .list(.string),
            "restart": .string,
            "workingDir": .string,
            "labels": .map(.string),
        ],
        required: ["image"]
    )

    // MARK: Dev

    /// `DevPod`: selector and pod-wide options, plus an inlined `DevContainer`.
    static let devPod = ObjectSchema([
        "name": .string,
        "imageSelector": .string,
        "labelSelector": .map(.string),
        "namespace": .string,
        "ports": .list(.object(portMapping)),
        "persistenceOptions": .object(persistenceOptions),
        "patches": .list(.object(patchConfig)),
        "open": .list(.object(openConfig)),
        "containers": .map(.object(devContainer)),
    ]).inlining(devContainer)

    static let devContainer = ObjectSchema([
        "container": .string,
        "arch": .string,
        "devImage": .string,
        "command": .list(.string),
        "args": .list(.string),
        "workingDir": .string,
        "env": .list(.object(envVar)),
        "resources": .object(podResources),
        "reversePorts": .list(.object(portMapping)),
        "sync": .list(.object(syncConfig)),
        "persistPaths": .list(.object(persistentPath)),
        "terminal": .object(terminal),
        "logs": .object(logs),
        "attach": .object(attach),
        "ssh": .object(ssh),
        "proxyCommands": .list(.object(proxyCommand)),
        "restartHelper": .object(restartHelper),
    ])

    static let restartHelper = ObjectSchema([
        "path": .string,
        "inject": .bool,
    ])

    static let proxyCommand = ObjectSchema([
        "gitCredentials": .bool,
        "command": .string,
        "localCommand": .string,
        "skipContainerEnv": .bool,
        "env": .map(.string),
    ])

    static let ssh = ObjectSchema([
        "enabled": .bool,
        "localHostname": .string,
        "localPort": .int,
        "remoteAddress": .string,
        "useInclude": .bool,
    ])

    static let envVar = ObjectSchema([
        "name": .string,
        "value": .string,
    ])

    static let attach = ObjectSchema([
        "enabled": .bool,
        "disableReplace": .bool,
        "disableTTY": .bool,
    ])

    static let logs = ObjectSchema([
        "enabled": .bool,
        "lastLines": .int,
    ])

    static let persistenceOptions = ObjectSchema([
        "size": .string,
        "storageClassName": .string,
        "accessModes": .list(.string),
        "readOnly": .bool,
        "name": .string,
    ])

    static let persistentPath = ObjectSchema([
        "path": .string,
        "volumePath": .string,
        "readOnly": .bool,
        "skipPopulate": .bool,
        "initContainer": .object(persistentPathInitContainer),
    ])

    static let persistentPathInitContainer = ObjectSchema([
        "resources": .object(podResources)
    ])

    static let portMapping = ObjectSchema([
        "port": .string,
        "bindAddress": .string,
    ])

    static let openConfig = ObjectSchema([
        "url": .string
    ])

    static let syncConfig = ObjectSchema([
        "path": .string,
        "excludePaths": .list(.string),
        "excludeFile": .string,
        "downloadExcludePaths": .list(.string),
        "downloadExcludeFile": .string,
        "uploadExcludePaths": .list(.string),
        "uploadExcludeFile": .string,
        "startContainer": .bool,
        "onUpload": .object(syncOnUpload),
        "initialSync": .string,
        "waitInitialSync": .bool,
        "initialSyncCompareBy": .string,
        "disableDownload": .bool,
        "disableUpload": .bool,
        "bandwidthLimits": .object(bandwidthLimits),
        "polling": .bool,
        "noWatch": .bool,
        "file": .bool,
        "printLogs": .bool,  // hidden
    ])

    static let syncOnUpload = ObjectSchema([
        "restartContainer": .bool,
        "exec": .list(.object(syncExec)),
        "execRemote": .object(syncExecCommand),  // deprecated, hidden
    ])

    static let syncExec = ObjectSchema([
        "name": .string,
        "command": .string,
        "args": .list(.string),
        "failOnError": .bool,
        "local": .bool,
        "once": .bool,
        "onChange": .list(.string),
    ])

    static let syncExecCommand = ObjectSchema([
        "command": .string,
        "args": .list(.string),
        "onFileChange": .object(syncCommand),
        "onDirCreate": .object(syncCommand),
        "onBatch": .object(syncCommand),
    ])

    static let syncCommand = ObjectSchema([
        "command": .string,
        "args": .list(.string),
    ])

    static let bandwidthLimits = ObjectSchema([
        "download": .int,
        "upload": .int,
    ])

    static let terminal = ObjectSchema([
        "command": .string,
        "workDir": .string,
        "enabled": .bool,
        "disableReplace": .bool,
        "disableScreen": .bool,
        "disableTTY": .bool,
    ])

    // MARK: Dependencies, hooks, commands, vars

    /// `DependencyConfig`, with an inlined `SourceConfig`.
    static let dependencyConfig = ObjectSchema([
        "name": .string,
        "disabled": .bool,
        "pipeline": .string,
        "vars": .map(.string),
        "overwriteVars": .bool,
        "ignoreDependencies": .bool,
        "namespace": .string,
        "profiles": .list(.string),  // hidden
        "disableProfileActivation": .bool,  // hidden
    ]).inlining(sourceConfig)

    static let hookConfig = ObjectSchema([
        "name": .string,
        "disabled": .bool,
        "events": .list(.string),
        "command": .string,
        "args": .list(.string),
        "os": .string,
        "upload": .object(hookSyncConfig),
        "download": .object(hookSyncConfig),
        "logs": .object(hookLogsConfig),
        "wait": .object(hookWaitConfig),
        "background": .bool,
        "silent": .bool,
        "container": .object(hookContainer),
    ])

    static let hookWaitConfig = ObjectSchema([
        "running": .bool,
        "terminatedWithCode": .int,
        "timeout": .int,
    ])

    static let hookLogsConfig = ObjectSchema([
        "tailLines": .int
    ])

    static let hookSyncConfig = ObjectSchema([
        "localPath": .string,
        "containerPath": .string,
    ])

    static let hookContainer = ObjectSchema([
        "labelSelector": .map(.string),
        "pod": .string,
        "namespace": .string,
        "imageSelector": .string,
        "containerName": .string,
        "wait": .bool,
        "timeout": .int,
        "once": .bool,
    ])

    /// `CommandConfig`: a shell command, or a map decoded through JSON.
    static let commandConfig = SchemaType.oneOf([.string, .jsonDecoded(.object(commandConfigStruct))])

    static let commandConfigStruct = ObjectSchema([
        "name": .string,
        "section": .string,
        "command": .string,
        "args": .list(.string),
        "appendArgs": .bool,
        "description": .string,
        "internal": .bool,
        "after": .string,
    ])

    /// `Variable`: a value (`$(cmd)` makes it a command), or a map decoded through JSON.
    static let variable = SchemaType.oneOf([.string, .jsonDecoded(.object(variableStruct))])

    static let variableStruct = ObjectSchema([
        "name": .string,
        "value": .any,  // string, integer or boolean
        "question": .string,
        "default": .any,  // string, integer or boolean
        "options": .list(.string),
        "password": .bool,
        "validationPattern": .string,
        "validationMessage": .string,
        "noCache": .bool,
        "command": .string,
        "args": .list(.string),
        "commands": .list(.object(variableCommand)),
        "alwaysResolve": .bool,
        "source": .string,
    ])

    static let variableCommand = ObjectSchema([
        "os": .string,
        "command": .string,
        "args": .list(.string),
    ])

    // MARK: Profiles and pull secrets

    static let profileConfig = ObjectSchema([
        "name": .string,
        "description": .string,
        "parent": .string,
        "parents": .list(.object(profileParent)),
        "patches": .list(.object(patchConfig)),
        "replace": .object(profileConfigStructure),
        "merge": .object(profileConfigStructure),
        "activation": .list(.object(profileActivation)),
    ])

    /// What `replace`/`merge` may name. Contents are checked only once the profile is
    /// applied, as DevSpace does.
    static let profileConfigStructure = ObjectSchema([
        "vars": .map(.any),
        "pullSecrets": .map(.any),
        "images": .map(.any),
        "deployments": .map(.any),
        "dev": .map(.any),
        "commands": .map(.any),
        "dependencies": .map(.any),
        "hooks": .list(.any),
        // Deprecated, hidden: v1beta11 list forms.
        "oldDeployments": .list(.any),
        "oldDependencies": .list(.any),
        "oldCommands": .list(.any),
        "oldPullSecrets": .list(.any),
        "oldVars": .list(.any),
    ])

    static let profileParent = ObjectSchema([
        "source": .object(sourceConfig),
        "profile": .string,
    ])

    static let profileActivation = ObjectSchema([
        "env": .map(.string),
        "vars": .map(.string),
    ])

    static let patchConfig = ObjectSchema([
        "op": .string,
        "path": .string,
        "value": .any,
    ])

    static let pullSecretConfig = ObjectSchema([
        "name": .string,
        "registry": .string,
        "username": .string,
        "password": .string,
        "email": .string,
        "secret": .string,
        "serviceAccounts": .list(.string),
    ])
}
