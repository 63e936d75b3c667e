"""Pods: PodSpec, containers, volumes, scheduling constraints, and PodStatus."""

from __future__ import annotations

from api.schema import (
    any_value,
    arr,
    boolean,
    int_or_string,
    integer,
    map_of,
    obj,
    quantity,
    string,
    string_map,
    strings,
    time,
)

from .meta import LabelSelector, ObjectMeta

CORE = "io.k8s.api.core.v1."

ContainerPort = obj(
    CORE + "ContainerPort",
    "A port a container listens on.",
    required=("containerPort",),
    name=string("Name a Service can refer to (IANA_SVC_NAME, at most 15 characters)."),
    containerPort=integer("Port number inside the pod's network namespace (1-65535)."),
    hostPort=integer("Port on the node forwarded to containerPort."),
    hostIP=string("Host address to bind hostPort to."),
    protocol=string("TCP, UDP or SCTP; defaults to TCP.", enum=("TCP", "UDP", "SCTP")),
)

KeySelector = obj(
    CORE + "KeySelector",
    "A key of a ConfigMap or Secret.",
    required=("key",),
    name=string("Name of the ConfigMap or Secret."),
    key=string("The key to select."),
    optional=boolean("Whether the object or key may be missing."),
)

EnvVarSource = obj(
    CORE + "EnvVarSource",
    "Where an environment variable's value comes from.",
    configMapKeyRef=KeySelector.described("A key of a ConfigMap."),
    secretKeyRef=KeySelector.described("A key of a Secret."),
    fieldRef=obj(
        CORE + "ObjectFieldSelector",
        "A field of the pod.",
        required=("fieldPath",),
        apiVersion=string("Version of the schema the path is written in."),
        fieldPath=string("Path of the field, e.g. metadata.name or status.podIP."),
    ),
    resourceFieldRef=obj(
        CORE + "ResourceFieldSelector",
        "A container's resource limit/request.",
        required=("resource",),
        containerName=string("Container name."),
        resource=string("limits.cpu, requests.memory, ..."),
        divisor=quantity("Unit to express the value in."),
    ),
)

EnvVar = obj(
    CORE + "EnvVar",
    "An environment variable for a container.",
    required=("name",),
    name=string("Name of the variable."),
    value=string("Value; $(VAR) references to earlier variables are expanded."),
    valueFrom=EnvVarSource.described("Take the value from elsewhere instead."),
)

EnvFromSource = obj(
    CORE + "EnvFromSource",
    "A ConfigMap or Secret whose keys all become environment variables.",
    prefix=string("Prefix added to every variable name."),
    configMapRef=obj(
        CORE + "ConfigMapEnvSource",
        "The ConfigMap.",
        name=string("Its name."),
        optional=boolean("May it be missing?"),
    ),
    secretRef=obj(
        CORE + "SecretEnvSource",
        "The Secret.",
        name=string("Its name."),
        optional=boolean("May it be missing?"),
    ),
)

ResourceRequirements = obj(
    CORE + "ResourceRequirements",
    "Compute resources a container asks for (requests) and may not exceed (limits).",
    limits=map_of(quantity(), "Maximum amounts, e.g. cpu: 500m, memory: 128Mi."),
    requests=map_of(quantity(), "Amounts the scheduler reserves; default to the limits."),
    claims=any_value("Dynamic resource claims (not supported by skiff).", shape="array"),
)

VolumeMount = obj(
    CORE + "VolumeMount",
    "Where a pod volume appears inside a container.",
    required=("name", "mountPath"),
    name=string("Name of the pod volume."),
    mountPath=string("Path inside the container; must not contain ':'."),
    subPath=string("Sub-path of the volume to mount instead of its root."),
    readOnly=boolean("Mount read-only."),
    mountPropagation=string("None, HostToContainer or Bidirectional."),
    subPathExpr=string("Like subPath, with $(VAR) expansion."),
    recursiveReadOnly=string("Disabled, IfPossible or Enabled."),
)

ExecAction = obj(
    CORE + "ExecAction",
    "Run a command in the container; exit 0 is success.",
    command=strings("The command and its arguments (not run in a shell)."),
)
HTTPGetAction = obj(
    CORE + "HTTPGetAction",
    "An HTTP GET against the container; 200-399 is success.",
    required=("port",),
    path=string("Path to request."),
    port=int_or_string("Port number or name."),
    host=string("Host to connect to; defaults to the pod IP."),
    scheme=string("HTTP or HTTPS.", enum=("HTTP", "HTTPS")),
    httpHeaders=arr(
        obj(
            CORE + "HTTPHeader",
            "A header.",
            required=("name", "value"),
            name=string("Header name."),
            value=string("Header value."),
        ),
        "Extra request headers.",
    ),
)
TCPSocketAction = obj(
    CORE + "TCPSocketAction",
    "A TCP connect; success when it connects.",
    required=("port",),
    port=int_or_string("Port number or name."),
    host=string("Host; defaults to the pod IP."),
)

Probe = obj(
    CORE + "Probe",
    "A periodic check of a container: liveness restarts it, readiness gates traffic.",
    exec=ExecAction,
    httpGet=HTTPGetAction,
    tcpSocket=TCPSocketAction,
    grpc=any_value("A gRPC health check (not supported by skiff)."),
    initialDelaySeconds=integer("Seconds after start before the first probe."),
    timeoutSeconds=integer("Seconds before a probe times out; default 1."),
    periodSeconds=integer("Seconds between probes; default 10."),
    successThreshold=integer("Consecutive successes to count as success; default 1."),
    failureThreshold=integer("Consecutive failures to count as failure; default 3."),
    terminationGracePeriodSeconds=integer(
        "Grace period when a liveness failure kills.", format="int64"
    ),
)

LifecycleHandler = obj(
    CORE + "LifecycleHandler",
    "An action at a lifecycle event.",
    exec=ExecAction,
    httpGet=HTTPGetAction,
    tcpSocket=TCPSocketAction,
    sleep=obj(
        CORE + "SleepAction",
        "Sleep.",
        required=("seconds",),
        seconds=integer("Seconds to sleep.", format="int64"),
    ),
)
Lifecycle = obj(
    CORE + "Lifecycle",
    "Actions run after start and before stop.",
    postStart=LifecycleHandler,
    preStop=LifecycleHandler,
)

Capabilities = obj(
    CORE + "Capabilities",
    "Linux capabilities to add and drop.",
    add=strings("Capabilities to add."),
    drop=strings("Capabilities to drop."),
)

SecurityContext = obj(
    CORE + "SecurityContext",
    "Privileges of a container.",
    runAsUser=integer("UID to run as.", format="int64"),
    runAsGroup=integer("GID to run as.", format="int64"),
    runAsNonRoot=boolean("Refuse to start as UID 0."),
    privileged=boolean("Run privileged: all capabilities, all devices."),
    readOnlyRootFilesystem=boolean("Mount the root filesystem read-only."),
    allowPrivilegeEscalation=boolean("Allow gaining privileges (no_new_privs off)."),
    capabilities=Capabilities,
    procMount=string("Default or Unmasked."),
    seccompProfile=any_value("Seccomp profile."),
    seLinuxOptions=any_value("SELinux options."),
    appArmorProfile=any_value("AppArmor profile."),
    windowsOptions=any_value("Windows options."),
)

Container = obj(
    CORE + "Container",
    "A process to run in a pod, from an image.",
    required=("name",),
    name=string("Name of the container, unique in the pod (DNS label)."),
    image=string("The image to run, e.g. nginx:1.25."),
    command=strings("Replaces the image's ENTRYPOINT."),
    args=strings("Replaces the image's CMD."),
    workingDir=string("Working directory; defaults to the image's."),
    ports=arr(ContainerPort, "Ports the container exposes.", merge_key="containerPort"),
    env=arr(EnvVar, "Environment variables.", merge_key="name"),
    envFrom=arr(EnvFromSource, "Sources of many environment variables at once."),
    resources=ResourceRequirements,
    volumeMounts=arr(VolumeMount, "Pod volumes to mount.", merge_key="mountPath"),
    volumeDevices=any_value("Block devices (not supported by skiff).", shape="array"),
    livenessProbe=Probe.described("Restart the container when this fails."),
    readinessProbe=Probe.described("Take the pod out of Service endpoints when this fails."),
    startupProbe=Probe.described("Hold the other probes until this succeeds once."),
    lifecycle=Lifecycle,
    terminationMessagePath=string("File whose content becomes the termination message."),
    terminationMessagePolicy=string(
        "File or FallbackToLogsOnError.", enum=("File", "FallbackToLogsOnError")
    ),
    imagePullPolicy=string(
        "Always, IfNotPresent or Never.", enum=("Always", "IfNotPresent", "Never")
    ),
    securityContext=SecurityContext,
    stdin=boolean("Keep stdin open."),
    stdinOnce=boolean("Close stdin after the first attach ends."),
    tty=boolean("Allocate a terminal."),
    restartPolicy=string("Always, for sidecar init containers."),
    resizePolicy=any_value("In-place resize policy.", shape="array"),
)

KeyToPath = obj(
    CORE + "KeyToPath",
    "Maps a key to a file path.",
    required=("key", "path"),
    key=string("The key."),
    path=string("Relative file path."),
    mode=integer("File mode bits."),
)

Volume = obj(
    CORE + "Volume",
    "A directory available to the pod's containers.",
    required=("name",),
    name=string("Name of the volume, unique in the pod."),
    emptyDir=obj(
        CORE + "EmptyDirVolumeSource",
        "A fresh directory that lives as long as the pod.",
        medium=string('"" (disk) or Memory (tmpfs).'),
        sizeLimit=quantity("Maximum size."),
    ),
    hostPath=obj(
        CORE + "HostPathVolumeSource",
        "A path on the node.",
        required=("path",),
        path=string("The path on the node."),
        type=string("Directory, DirectoryOrCreate, File, FileOrCreate, ..."),
    ),
    configMap=obj(
        CORE + "ConfigMapVolumeSource",
        "The keys of a ConfigMap as files.",
        name=string("The ConfigMap."),
        items=arr(KeyToPath, "Keys to project."),
        defaultMode=integer("Mode of the files."),
        optional=boolean("May it be missing?"),
    ),
    secret=obj(
        CORE + "SecretVolumeSource",
        "The keys of a Secret as files.",
        secretName=string("The Secret."),
        items=arr(KeyToPath, "Keys to project."),
        defaultMode=integer("Mode of the files."),
        optional=boolean("May it be missing?"),
    ),
    downwardAPI=any_value("Pod fields as files."),
    projected=any_value("Several sources in one directory."),
    persistentVolumeClaim=obj(
        CORE + "PersistentVolumeClaimVolumeSource",
        "The volume bound to a PersistentVolumeClaim in the pod's namespace.",
        required=("claimName",),
        claimName=string("The claim."),
        readOnly=boolean("Mount read-only."),
    ),
    nfs=any_value("An NFS export (not supported by skiff)."),
)

Toleration = obj(
    CORE + "Toleration",
    "Lets the pod be scheduled on (or stay on) nodes with a matching taint.",
    key=string("Taint key; empty with Exists matches every taint."),
    operator=string("Exists or Equal; default Equal.", enum=("Exists", "Equal")),
    value=string("Taint value for Equal."),
    effect=string(
        "NoSchedule, PreferNoSchedule or NoExecute; empty matches all.",
        enum=("NoSchedule", "PreferNoSchedule", "NoExecute"),
    ),
    tolerationSeconds=integer(
        "For NoExecute: how long the pod stays after the taint appears.", format="int64"
    ),
)

NodeSelectorRequirement = obj(
    CORE + "NodeSelectorRequirement",
    "A node label requirement.",
    required=("key", "operator"),
    key=string("Label key."),
    operator=string(
        "In, NotIn, Exists, DoesNotExist, Gt, Lt.",
        enum=("In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"),
    ),
    values=strings("Values."),
)
NodeSelectorTerm = obj(
    CORE + "NodeSelectorTerm",
    "Requirements that must all hold.",
    matchExpressions=arr(NodeSelectorRequirement, "On labels."),
    matchFields=arr(NodeSelectorRequirement, "On fields."),
)
PodAffinityTerm = obj(
    CORE + "PodAffinityTerm",
    "Pods (by labels) that must or must not share a topology domain.",
    required=("topologyKey",),
    labelSelector=LabelSelector,
    namespaces=strings("Namespaces to look in; default the pod's."),
    namespaceSelector=LabelSelector,
    topologyKey=string("Node label defining the domain, e.g. kubernetes.io/hostname."),
    matchLabelKeys=strings("Label keys taken from the incoming pod."),
    mismatchLabelKeys=strings("Label keys that must differ."),
)
WeightedPodAffinityTerm = obj(
    CORE + "WeightedPodAffinityTerm",
    "A preference with a weight.",
    required=("weight", "podAffinityTerm"),
    weight=integer("1-100."),
    podAffinityTerm=PodAffinityTerm,
)
PodAffinity = obj(
    CORE + "PodAffinity",
    "Pod (anti-)affinity rules.",
    requiredDuringSchedulingIgnoredDuringExecution=arr(PodAffinityTerm, "Hard rules."),
    preferredDuringSchedulingIgnoredDuringExecution=arr(WeightedPodAffinityTerm, "Soft rules."),
)
Affinity = obj(
    CORE + "Affinity",
    "Scheduling constraints on nodes and on other pods.",
    nodeAffinity=obj(
        CORE + "NodeAffinity",
        "Which nodes the pod may or prefers to run on.",
        requiredDuringSchedulingIgnoredDuringExecution=obj(
            CORE + "NodeSelector",
            "Any of the terms must match.",
            required=("nodeSelectorTerms",),
            nodeSelectorTerms=arr(NodeSelectorTerm, "The terms, ORed."),
        ),
        preferredDuringSchedulingIgnoredDuringExecution=arr(
            obj(
                CORE + "PreferredSchedulingTerm",
                "A weighted preference.",
                required=("weight", "preference"),
                weight=integer("1-100."),
                preference=NodeSelectorTerm,
            ),
            "Soft preferences.",
        ),
    ),
    podAffinity=PodAffinity.described("Run near pods matching these terms."),
    podAntiAffinity=PodAffinity.described("Run away from pods matching these terms."),
)

TopologySpreadConstraint = obj(
    CORE + "TopologySpreadConstraint",
    "Spread matching pods evenly over a topology.",
    required=("maxSkew", "topologyKey", "whenUnsatisfiable"),
    maxSkew=integer("Largest allowed difference in matching pods between domains."),
    topologyKey=string("Node label defining the domains."),
    whenUnsatisfiable=string(
        "DoNotSchedule or ScheduleAnyway.", enum=("DoNotSchedule", "ScheduleAnyway")
    ),
    labelSelector=LabelSelector,
    minDomains=integer("Minimum number of domains."),
    nodeAffinityPolicy=string("Honor or Ignore."),
    nodeTaintsPolicy=string("Honor or Ignore."),
    matchLabelKeys=strings("Label keys taken from the incoming pod."),
)

PodSpec = obj(
    CORE + "PodSpec",
    "The desired state of a pod: its containers, volumes and where and how to run them.",
    required=("containers",),
    containers=arr(Container, "The containers of the pod; at least one.", merge_key="name"),
    initContainers=arr(
        Container, "Containers run to completion, in order, before the others.", merge_key="name"
    ),
    ephemeralContainers=any_value("Debug containers (not supported by skiff).", shape="array"),
    volumes=arr(Volume, "Volumes the containers can mount.", merge_key="name"),
    restartPolicy=string(
        "Always, OnFailure or Never; default Always.", enum=("Always", "OnFailure", "Never")
    ),
    terminationGracePeriodSeconds=integer(
        "Seconds between SIGTERM and SIGKILL; default 30.", format="int64"
    ),
    activeDeadlineSeconds=integer("Seconds the pod may run before it is failed.", format="int64"),
    dnsPolicy=string(
        "ClusterFirst, ClusterFirstWithHostNet, Default or None.",
        enum=("ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"),
    ),
    dnsConfig=obj(
        CORE + "PodDNSConfig",
        "Extra DNS settings.",
        nameservers=strings("Name servers."),
        searches=strings("Search domains."),
        options=arr(
            obj(
                CORE + "PodDNSConfigOption",
                "A resolver option.",
                name=string("Name."),
                value=string("Value."),
            ),
            "Options.",
        ),
    ),
    nodeSelector=string_map("Labels a node must have to run the pod."),
    serviceAccountName=string("The ServiceAccount the pod runs as."),
    serviceAccount=string("Deprecated alias of serviceAccountName."),
    automountServiceAccountToken=boolean("Mount the service account token."),
    nodeName=string("The node the pod is bound to; set by the scheduler."),
    hostNetwork=boolean("Use the node's network namespace."),
    hostPID=boolean("Use the node's PID namespace."),
    hostIPC=boolean("Use the node's IPC namespace."),
    shareProcessNamespace=boolean("One PID namespace for all containers."),
    securityContext=obj(
        CORE + "PodSecurityContext",
        "Security settings for all containers.",
        runAsUser=integer("UID.", format="int64"),
        runAsGroup=integer("GID.", format="int64"),
        runAsNonRoot=boolean("Refuse UID 0."),
        fsGroup=integer("Group owning volumes.", format="int64"),
        supplementalGroups=arr(integer(format="int64"), "Extra groups."),
        sysctls=arr(
            obj(CORE + "Sysctl", "A sysctl.", name=string("Name."), value=string("Value.")),
            "Namespaced sysctls.",
        ),
        seccompProfile=any_value("Seccomp profile."),
        seLinuxOptions=any_value("SELinux."),
        fsGroupChangePolicy=string("OnRootMismatch or Always."),
        appArmorProfile=any_value("AppArmor."),
        windowsOptions=any_value("Windows."),
        supplementalGroupsPolicy=string("Merge or Strict."),
        seLinuxChangePolicy=string("SELinux relabel policy."),
    ),
    imagePullSecrets=arr(
        obj(CORE + "LocalObjectReference", "A reference by name.", name=string("Name.")),
        "Secrets for pulling images.",
        merge_key="name",
    ),
    hostname=string("Hostname of the pod; default the pod name."),
    subdomain=string("Subdomain: the pod gets <hostname>.<subdomain>.<ns>.svc.<domain>."),
    affinity=Affinity,
    schedulerName=string("Which scheduler places the pod; default default-scheduler."),
    tolerations=arr(Toleration, "Taints the pod tolerates."),
    hostAliases=arr(
        obj(
            CORE + "HostAlias",
            "Extra /etc/hosts entry.",
            ip=string("Address."),
            hostnames=strings("Names."),
        ),
        "Extra /etc/hosts entries.",
        merge_key="ip",
    ),
    priorityClassName=string("Name of a PriorityClass."),
    priority=integer("Scheduling priority; higher first."),
    readinessGates=arr(
        obj(
            CORE + "PodReadinessGate",
            "An extra readiness condition.",
            conditionType=string("Condition type."),
        ),
        "Extra readiness gates.",
    ),
    runtimeClassName=string("RuntimeClass to run with."),
    enableServiceLinks=boolean("Inject service environment variables; default true."),
    preemptionPolicy=string("PreemptLowerPriority or Never."),
    overhead=map_of(quantity(), "Resources the sandbox itself uses."),
    topologySpreadConstraints=arr(
        TopologySpreadConstraint, "How to spread pods.", merge_key="topologyKey"
    ),
    setHostnameAsFQDN=boolean("Use the FQDN as hostname."),
    os=obj(CORE + "PodOS", "Operating system.", name=string("linux or windows.")),
    hostUsers=boolean("Use the host user namespace."),
    schedulingGates=arr(
        obj(CORE + "PodSchedulingGate", "A gate.", name=string("Name.")),
        "Gates that hold scheduling.",
        merge_key="name",
    ),
    resourceClaims=any_value("Resource claims.", shape="array"),
    resources=any_value("Pod-level resources."),
)

ContainerStateWaiting = obj(
    CORE + "ContainerStateWaiting",
    "Not yet running.",
    reason=string("Why, e.g. ContainerCreating, CrashLoopBackOff."),
    message=string("Details."),
)
ContainerStateRunning = obj(
    CORE + "ContainerStateRunning", "Running.", startedAt=time("When it started.")
)
ContainerStateTerminated = obj(
    CORE + "ContainerStateTerminated",
    "Finished.",
    required=("exitCode",),
    exitCode=integer("Exit code."),
    signal=integer("Signal that killed it."),
    reason=string("Completed, Error, OOMKilled, ..."),
    message=string("Details."),
    startedAt=time("Start."),
    finishedAt=time("End."),
    containerID=string("Container id."),
)
ContainerState = obj(
    CORE + "ContainerState",
    "Exactly one of waiting, running, terminated.",
    waiting=ContainerStateWaiting,
    running=ContainerStateRunning,
    terminated=ContainerStateTerminated,
)
ContainerStatus = obj(
    CORE + "ContainerStatus",
    "What the kubelet reports about one container.",
    name=string("Container name."),
    state=ContainerState,
    lastState=ContainerState.described("The previous termination, after a restart."),
    ready=boolean("Passing its readiness probe."),
    restartCount=integer("Restarts so far."),
    image=string("Image."),
    imageID=string("Image id."),
    containerID=string("Container id."),
    started=boolean("Passed its startup probe."),
    allocatedResources=map_of(quantity(), "Allocated."),
    resources=any_value("Resources."),
    volumeMounts=any_value("Mounts.", shape="array"),
    user=any_value("User."),
    allocatedResourcesStatus=any_value("Resource health.", shape="array"),
    stopSignal=string("Stop signal."),
)
PodCondition = obj(
    CORE + "PodCondition",
    "PodScheduled, Initialized, ContainersReady, Ready, ...",
    required=("type", "status"),
    type=string("Condition type."),
    status=string("True, False or Unknown."),
    lastProbeTime=time("Last probe."),
    lastTransitionTime=time("Last change."),
    reason=string("Reason."),
    message=string("Message."),
    observedGeneration=integer("Generation.", format="int64"),
)
PodIP = obj(CORE + "PodIP", "An address of the pod.", ip=string("Address."))
PodStatus = obj(
    CORE + "PodStatus",
    "The observed state of a pod, written by the scheduler and the kubelet.",
    phase=string(
        "Pending, Running, Succeeded, Failed or Unknown.",
        enum=("Pending", "Running", "Succeeded", "Failed", "Unknown"),
    ),
    conditions=arr(PodCondition, "Conditions.", merge_key="type"),
    message=string("Why the pod is in this state."),
    reason=string("E.g. Evicted."),
    nominatedNodeName=string("Node nominated by preemption."),
    hostIP=string("Node address."),
    hostIPs=arr(obj(CORE + "HostIP", "Address.", ip=string("Address.")), "Node addresses."),
    podIP=string("Pod address."),
    podIPs=arr(PodIP, "Pod addresses.", merge_key="ip"),
    startTime=time("When the kubelet accepted the pod."),
    initContainerStatuses=arr(ContainerStatus, "Init containers."),
    containerStatuses=arr(ContainerStatus, "Containers."),
    ephemeralContainerStatuses=arr(ContainerStatus, "Ephemeral containers."),
    qosClass=string("Guaranteed, Burstable or BestEffort."),
    resize=string("Resize status."),
    resourceClaimStatuses=any_value("Claims.", shape="array"),
    observedGeneration=integer("Generation.", format="int64"),
)

PodTemplateSpec = obj(
    CORE + "PodTemplateSpec",
    "The pods a controller creates: their metadata and spec.",
    metadata=ObjectMeta.described("Labels and annotations of the pods."),
    spec=PodSpec,
)
