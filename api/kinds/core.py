"""core/v1 kinds other than Pod: Namespace, Service, Endpoints, Node, Event, ConfigMap,
Secret, ServiceAccount, PersistentVolumeClaim, ReplicationController."""

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

from .meta import META, Condition, top_level
from .pod import CORE, PodSpec, PodStatus, PodTemplateSpec

Pod = top_level(
    CORE + "Pod",
    "A group of containers that share a network namespace and volumes, "
    "scheduled together onto one node.",
    spec=PodSpec.described("What should run."),
    status=PodStatus.described("What is running, as last observed."),
)

Namespace = top_level(
    CORE + "Namespace",
    "A scope for names; deleting it deletes everything in it.",
    spec=obj(
        CORE + "NamespaceSpec",
        "Desired state.",
        finalizers=strings("Must be empty before the namespace is removed."),
    ),
    status=obj(
        CORE + "NamespaceStatus",
        "Observed state.",
        phase=string("Active or Terminating.", enum=("Active", "Terminating")),
        conditions=arr(
            obj(
                CORE + "NamespaceCondition",
                "One aspect of the namespace's state.",
                type=string("Type of the condition."),
                status=string("True, False or Unknown."),
                lastTransitionTime=time("When the status last changed."),
                reason=string("One-word CamelCase reason."),
                message=string("Human-readable details."),
            ),
            "Conditions.",
            merge_key="type",
        ),
    ),
)

ServicePort = obj(
    CORE + "ServicePort",
    "A port the Service exposes.",
    required=("port",),
    name=string("Name; required when there is more than one port."),
    protocol=string("TCP, UDP or SCTP; default TCP.", enum=("TCP", "UDP", "SCTP")),
    appProtocol=string("Application protocol hint."),
    port=integer("The port on the cluster IP."),
    targetPort=int_or_string("Number or name of the port on the pods; default port."),
    nodePort=integer("Port on every node for NodePort and LoadBalancer Services."),
)

Service = top_level(
    CORE + "Service",
    "A stable virtual IP and DNS name in front of the pods a selector picks.",
    spec=obj(
        CORE + "ServiceSpec",
        "Desired state.",
        ports=arr(ServicePort, "The ports.", merge_key="port"),
        selector=string_map("Pods with these labels receive the traffic."),
        clusterIP=string("The virtual IP; allocated when empty, None for headless."),
        clusterIPs=strings("The virtual IPs (first equals clusterIP)."),
        type=string(
            "ClusterIP, NodePort, LoadBalancer or ExternalName.",
            enum=("ClusterIP", "NodePort", "LoadBalancer", "ExternalName"),
        ),
        externalIPs=strings("Extra addresses that route to the Service."),
        sessionAffinity=string("None or ClientIP.", enum=("None", "ClientIP")),
        sessionAffinityConfig=obj(
            CORE + "SessionAffinityConfig",
            "ClientIP timeout.",
            clientIP=obj(
                CORE + "ClientIPConfig",
                "ClientIP affinity.",
                timeoutSeconds=integer("Seconds a client sticks to one endpoint."),
            ),
        ),
        loadBalancerIP=string("Deprecated."),
        loadBalancerSourceRanges=strings("Allowed client ranges."),
        loadBalancerClass=string("Load balancer implementation."),
        externalName=string("DNS name for ExternalName Services."),
        externalTrafficPolicy=string("Cluster or Local."),
        internalTrafficPolicy=string("Cluster or Local."),
        healthCheckNodePort=integer("Health check port."),
        publishNotReadyAddresses=boolean("Publish endpoints of pods that are not ready."),
        ipFamilies=strings("IPv4 and/or IPv6."),
        ipFamilyPolicy=string("SingleStack, PreferDualStack or RequireDualStack."),
        allocateLoadBalancerNodePorts=boolean("Allocate node ports for LoadBalancer."),
        trafficDistribution=string("Traffic distribution preference."),
    ),
    status=obj(
        CORE + "ServiceStatus",
        "Observed state.",
        loadBalancer=obj(
            CORE + "LoadBalancerStatus",
            "Load balancer ingress points.",
            ingress=arr(
                obj(
                    CORE + "LoadBalancerIngress",
                    "One ingress point.",
                    ip=string("IP address."),
                    hostname=string("DNS name."),
                    ipMode=string("VIP or Proxy."),
                    ports=arr(
                        obj(
                            CORE + "PortStatus",
                            "A port's status.",
                            port=integer("Port."),
                            protocol=string("Protocol."),
                            error=string("Why the port failed."),
                        ),
                        "Ports.",
                    ),
                ),
                "Ingress points.",
            ),
        ),
        conditions=arr(Condition, "Conditions.", merge_key="type"),
    ),
)

ObjectReference = obj(
    CORE + "ObjectReference",
    "A reference to an object.",
    kind=string("Kind."),
    namespace=string("Namespace."),
    name=string("Name."),
    uid=string("UID."),
    apiVersion=string("API version."),
    resourceVersion=string("Version."),
    fieldPath=string("Field within the object."),
)
Event = top_level(
    CORE + "Event",
    "Something that happened to an object, for people reading kubectl describe.",
    involvedObject=ObjectReference.described("The object it happened to."),
    reason=string("Short CamelCase reason, e.g. Scheduled."),
    message=string("What happened."),
    source=obj(
        CORE + "EventSource",
        "Who reported it.",
        component=string("Component."),
        host=string("Host."),
    ),
    firstTimestamp=time("First time it happened."),
    lastTimestamp=time("Most recent time."),
    count=integer("How many times."),
    type=string("Normal or Warning."),
    eventTime=time("When it happened (MicroTime)."),
    series=obj(
        CORE + "EventSeries",
        "Repeats.",
        count=integer("How many times."),
        lastObservedTime=time("Last seen (MicroTime)."),
    ),
    action=string("What action was taken."),
    related=ObjectReference.described("A second object involved."),
    reportingComponent=string("Controller that reported it."),
    reportingInstance=string("Instance of that controller."),
)

EndpointAddress = obj(
    CORE + "EndpointAddress",
    "One backend address.",
    required=("ip",),
    ip=string("Address."),
    hostname=string("Hostname."),
    nodeName=string("Node."),
    targetRef=ObjectReference.described("The pod behind the address."),
)
Endpoints = top_level(
    CORE + "Endpoints",
    "The addresses behind a Service, maintained by the endpoints controller.",
    subsets=arr(
        obj(
            CORE + "EndpointSubset",
            "Addresses sharing the same ports.",
            addresses=arr(EndpointAddress, "Ready addresses."),
            notReadyAddresses=arr(EndpointAddress, "Addresses not ready yet."),
            ports=arr(
                obj(
                    CORE + "EndpointPort",
                    "A port.",
                    required=("port",),
                    name=string("Name."),
                    port=integer("Port."),
                    protocol=string("Protocol."),
                    appProtocol=string("App protocol."),
                ),
                "Ports.",
            ),
        ),
        "Groups of addresses and ports.",
    ),
)

Taint = obj(
    CORE + "Taint",
    "Repels pods that do not tolerate it.",
    required=("key", "effect"),
    key=string("Key."),
    value=string("Value."),
    effect=string(
        "NoSchedule, PreferNoSchedule or NoExecute.",
        enum=("NoSchedule", "PreferNoSchedule", "NoExecute"),
    ),
    timeAdded=time("When it was added (NoExecute)."),
)
NodeCondition = obj(
    CORE + "NodeCondition",
    "Ready, MemoryPressure, DiskPressure, ...",
    required=("type", "status"),
    type=string("Type."),
    status=string("True, False or Unknown."),
    lastHeartbeatTime=time("Last heartbeat."),
    lastTransitionTime=time("Last change."),
    reason=string("Reason."),
    message=string("Message."),
)
Node = top_level(
    CORE + "Node",
    "A machine (or lab namespace) that runs pods, registered by its kubelet.",
    spec=obj(
        CORE + "NodeSpec",
        "Desired state.",
        podCIDR=string("Pod address range of this node."),
        podCIDRs=strings("Pod address ranges."),
        providerID=string("Cloud provider id."),
        unschedulable=boolean("Cordoned: no new pods."),
        taints=arr(Taint, "Taints."),
        configSource=any_value("Deprecated."),
        externalID=string("Deprecated."),
    ),
    status=obj(
        CORE + "NodeStatus",
        "Observed state, reported by the kubelet.",
        capacity=map_of(quantity(), "Total resources."),
        allocatable=map_of(quantity(), "Resources available to pods."),
        phase=string("Deprecated."),
        conditions=arr(NodeCondition, "Conditions.", merge_key="type"),
        addresses=arr(
            obj(
                CORE + "NodeAddress",
                "An address.",
                type=string("InternalIP, ..."),
                address=string("Address."),
            ),
            "Addresses.",
            merge_key="type",
        ),
        daemonEndpoints=obj(
            CORE + "NodeDaemonEndpoints",
            "Kubelet endpoint.",
            kubeletEndpoint=obj(
                CORE + "DaemonEndpoint", "The kubelet's port.", Port=integer("Port.")
            ),
        ),
        nodeInfo=obj(
            CORE + "NodeSystemInfo",
            "Versions.",
            machineID=string("Machine id."),
            systemUUID=string("UUID."),
            bootID=string("Boot id."),
            kernelVersion=string("Kernel."),
            osImage=string("OS."),
            containerRuntimeVersion=string("Runtime."),
            kubeletVersion=string("Kubelet."),
            kubeProxyVersion=string("Proxy."),
            operatingSystem=string("OS."),
            architecture=string("Arch."),
            swap=obj(
                CORE + "NodeSwapStatus",
                "Swap.",
                capacity=integer("Bytes of swap.", format="int64"),
            ),
        ),
        images=arr(
            obj(
                CORE + "ContainerImage",
                "An image on the node.",
                names=strings("Names and digests."),
                sizeBytes=integer("Size.", format="int64"),
            ),
            "Images on the node.",
        ),
        volumesInUse=strings("Volumes."),
        volumesAttached=arr(
            obj(
                CORE + "AttachedVolume",
                "An attached volume.",
                name=string("Name."),
                devicePath=string("Device."),
            ),
            "Attached.",
        ),
        config=any_value("Config."),
        runtimeHandlers=any_value("Runtime handlers.", shape="array"),
        features=any_value("Features."),
    ),
)

ConfigMap = top_level(
    CORE + "ConfigMap",
    "Configuration data for pods, as key/value pairs.",
    data=string_map("UTF-8 values."),
    binaryData=string_map("Base64-encoded binary values."),
    immutable=boolean("When true, data cannot change."),
)

Secret = top_level(
    CORE + "Secret",
    "Sensitive data for pods, base64-encoded.",
    data=string_map("Base64-encoded values."),
    stringData=string_map("Plain values, merged into data on write."),
    type=string("Opaque, kubernetes.io/tls, kubernetes.io/dockerconfigjson, ..."),
    immutable=boolean("When true, data cannot change."),
)

ServiceAccount = top_level(
    CORE + "ServiceAccount",
    "An identity for processes that run in pods.",
    secrets=arr(ObjectReference, "Secrets for this account.", merge_key="name"),
    imagePullSecrets=arr(
        obj(CORE + "LocalObjectReference", "By name.", name=string("Name.")),
        "Pull secrets for pods of this account.",
    ),
    automountServiceAccountToken=boolean("Mount the token into pods."),
)

Binding = top_level(
    CORE + "Binding",
    "Binds a pod to a node; what the scheduler posts.",
    target=ObjectReference.described("The node."),
)

DeleteOptions = obj(
    META + "DeleteOptions",
    "Options for a delete.",
    apiVersion=string("v1"),
    kind=string("DeleteOptions"),
    gracePeriodSeconds=integer("Seconds before the object is deleted.", format="int64"),
    preconditions=obj(
        META + "Preconditions",
        "Must hold for the delete.",
        uid=string("UID."),
        resourceVersion=string("Version."),
    ),
    propagationPolicy=string("Orphan, Background or Foreground."),
    orphanDependents=boolean("Deprecated."),
    dryRun=strings("All."),
)


# -- PersistentVolumeClaim (stored; binding to volumes is not skiff's yet) ----------

PersistentVolumeClaim = top_level(
    CORE + "PersistentVolumeClaim",
    "A request for storage by a user; StatefulSets make one per pod from their templates.",
    spec=obj(
        CORE + "PersistentVolumeClaimSpec",
        "What storage is asked for.",
        accessModes=arr(
            string(enum=("ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod")),
            "ReadWriteOnce, ReadOnlyMany, ReadWriteMany or ReadWriteOncePod.",
        ),
        selector=any_value("Volumes to consider, by label."),
        resources=obj(
            CORE + "VolumeResourceRequirements",
            "How much storage.",
            limits=map_of(quantity(), "Most storage."),
            requests=map_of(quantity(), "Storage asked for, e.g. storage: 1Gi."),
        ),
        volumeName=string("The bound PersistentVolume."),
        storageClassName=string("Storage class; unset means the default class."),
        volumeMode=string("Filesystem or Block; default Filesystem.", enum=("Filesystem", "Block")),
        dataSource=any_value("Populate from this object."),
        dataSourceRef=any_value("Populate from this object."),
        volumeAttributesClassName=string("Volume attributes class."),
    ),
    status=obj(
        CORE + "PersistentVolumeClaimStatus",
        "Observed state.",
        phase=string("Pending, Bound or Lost.", enum=("Pending", "Bound", "Lost")),
        accessModes=strings("Access modes of the bound volume."),
        capacity=map_of(quantity(), "Capacity of the bound volume."),
        conditions=any_value("Conditions."),
        allocatedResources=map_of(quantity(), "Allocated."),
        allocatedResourceStatuses=string_map("Resize status."),
        currentVolumeAttributesClassName=string("Current attributes class."),
        modifyVolumeStatus=any_value("Modify status."),
    ),
)

# -- ReplicationController: the ReplicaSet's predecessor, still in old manifests -----

ReplicationController = top_level(
    CORE + "ReplicationController",
    "Keeps a number of identical pods running; selects them by equality of labels.",
    spec=obj(
        CORE + "ReplicationControllerSpec",
        "Desired state.",
        replicas=integer("Desired number of pods; default 1."),
        minReadySeconds=integer("Seconds a pod must be ready to count as available."),
        selector=string_map("Labels the pods must have; default the template's labels."),
        template=PodTemplateSpec.described("The pods to create."),
    ),
    status=obj(
        CORE + "ReplicationControllerStatus",
        "Observed state.",
        replicas=integer("Current pods."),
        fullyLabeledReplicas=integer("Pods whose labels match the template's."),
        readyReplicas=integer("Ready pods."),
        availableReplicas=integer("Available pods."),
        observedGeneration=integer("Generation acted on.", format="int64"),
        conditions=any_value("Conditions."),
    ),
)
