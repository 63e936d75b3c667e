"""discovery.k8s.io/v1 EndpointSlice, coordination.k8s.io/v1 Lease, events.k8s.io/v1 Event."""

from __future__ import annotations

from api.schema import any_value, arr, boolean, integer, obj, string, strings, time

from .core import ObjectReference
from .meta import top_level

DISCOVERY = "io.k8s.api.discovery.v1."
EndpointSlice = top_level(
    DISCOVERY + "EndpointSlice",
    "A slice of the endpoints behind a Service.",
    addressType=string("IPv4, IPv6 or FQDN.", enum=("IPv4", "IPv6", "FQDN")),
    endpoints=arr(
        obj(
            DISCOVERY + "Endpoint",
            "One backend.",
            required=("addresses",),
            addresses=strings("Its addresses."),
            conditions=obj(
                DISCOVERY + "EndpointConditions",
                "Its state.",
                ready=boolean("Ready to receive traffic."),
                serving=boolean("Serving, even while terminating."),
                terminating=boolean("Being deleted."),
            ),
            hostname=string("Hostname."),
            targetRef=ObjectReference,
            nodeName=string("Node."),
            zone=string("Zone."),
            hints=any_value("Topology hints."),
            deprecatedTopology=any_value("Deprecated."),
        ),
        "The endpoints.",
    ),
    ports=arr(
        obj(
            DISCOVERY + "EndpointPort",
            "A port.",
            name=string("Name."),
            protocol=string("Protocol."),
            port=integer("Port."),
            appProtocol=string("Application protocol."),
        ),
        "The ports.",
    ),
)

Lease = top_level(
    "io.k8s.api.coordination.v1.Lease",
    "A lease: node heartbeats and leader election.",
    spec=obj(
        "io.k8s.api.coordination.v1.LeaseSpec",
        "The lease.",
        holderIdentity=string("Who holds it."),
        leaseDurationSeconds=integer("How long a holder may go without renewing."),
        acquireTime=time("When it was acquired (MicroTime)."),
        renewTime=time("When it was last renewed (MicroTime)."),
        leaseTransitions=integer("How many times it changed hands."),
        strategy=string("Coordinated leader election strategy."),
        preferredHolder=string("Preferred holder."),
    ),
)

EVENTS = "io.k8s.api.events.v1."
NewEvent = top_level(
    EVENTS + "Event",
    "Something that happened, in the events.k8s.io form.",
    eventTime=time("When it happened (MicroTime)."),
    series=obj(
        EVENTS + "EventSeries",
        "Repeats.",
        count=integer("Count."),
        lastObservedTime=time("Last seen."),
    ),
    reportingController=string("Controller that reported it."),
    reportingInstance=string("Its instance."),
    action=string("What was done."),
    reason=string("Why."),
    regarding=ObjectReference.described("The object it is about."),
    related=ObjectReference.described("A second object."),
    note=string("Human-readable description."),
    type=string("Normal or Warning."),
    deprecatedSource=any_value("Old source."),
    deprecatedFirstTimestamp=time("Old firstTimestamp."),
    deprecatedLastTimestamp=time("Old lastTimestamp."),
    deprecatedCount=integer("Old count."),
)

APIREG = "io.k8s.kube-aggregator.pkg.apis.apiregistration.v1."
APIService = top_level(
    APIREG + "APIService",
    "A group-version the API serves: locally, or (on Kubernetes) behind a Service.",
    spec=obj(
        APIREG + "APIServiceSpec",
        "Which group-version, served by whom, in which order.",
        service=obj(
            APIREG + "ServiceReference",
            "The Service behind an aggregated API; empty for a local one.",
            namespace=string("Namespace of the service."),
            name=string("Name of the service."),
            port=integer("Port of the service."),
        ),
        group=string("The API group."),
        version=string("The API version."),
        insecureSkipTLSVerify=boolean("Skip verifying the serving certificate."),
        caBundle=string("PEM CA bundle for the serving certificate.", format="byte"),
        groupPriorityMinimum=integer("Priority of the group among groups."),
        versionPriority=integer("Priority of the version within its group."),
    ),
    status=obj(
        APIREG + "APIServiceStatus",
        "Whether the group-version is available.",
        conditions=arr(
            obj(
                APIREG + "APIServiceCondition",
                "A condition of the APIService.",
                type=string("Available."),
                status=string("True, False or Unknown."),
                lastTransitionTime=time("When it last changed."),
                reason=string("Why, in one word."),
                message=string("Why, for people."),
            ),
            "Conditions.",
            merge_key="type",
        ),
    ),
)
