"""Types shared by every kind: ObjectMeta, owner references, label selectors, conditions."""

from __future__ import annotations

from api.schema import (
    Schema,
    any_value,
    arr,
    boolean,
    integer,
    obj,
    string,
    string_map,
    strings,
    time,
)

META = "io.k8s.apimachinery.pkg.apis.meta.v1."

OwnerReference = obj(
    META + "OwnerReference",
    "Points at the object that owns this one; owned objects are garbage-collected with it.",
    required=("apiVersion", "kind", "name", "uid"),
    apiVersion=string("API version of the owner."),
    kind=string("Kind of the owner."),
    name=string("Name of the owner."),
    uid=string("UID of the owner."),
    controller=boolean("True when the owner is the managing controller; at most one such owner."),
    blockOwnerDeletion=boolean("With foreground deletion, the owner waits for this object."),
)

ManagedFieldsEntry = obj(
    META + "ManagedFieldsEntry",
    "Which manager set which fields, and with which operation.",
    manager=string("Name of the field manager (for example kubectl)."),
    operation=string("Apply or Update.", enum=("Apply", "Update")),
    apiVersion=string("API version of the fields' schema."),
    time=time("When the fields were last changed."),
    fieldsType=string("Format of fieldsV1; always FieldsV1."),
    fieldsV1=any_value("The set of fields, as a tree of f:, k:, v: and . entries."),
    subresource=string("The subresource the write went through, if any."),
)

ObjectMeta = obj(
    META + "ObjectMeta",
    "Metadata every persisted object has: name, namespace, labels, ownership and bookkeeping.",
    name=string("Unique name within the namespace (or the cluster, for cluster-scoped kinds)."),
    generateName=string("Prefix from which the server generates a unique name when name is empty."),
    namespace=string("The namespace the object lives in; empty for cluster-scoped kinds."),
    uid=string("Unique id the server assigns at creation; never reused."),
    resourceVersion=string("Opaque version of the object, for optimistic concurrency and watch."),
    generation=integer(
        "Sequence number of the desired state (spec); moves when spec changes.", format="int64"
    ),
    creationTimestamp=time("When the server created the object."),
    deletionTimestamp=time("When the object will be (or started to be) deleted."),
    deletionGracePeriodSeconds=integer(
        "Seconds the object has to finish before it is removed.", format="int64"
    ),
    labels=string_map("Key/value pairs to organise and select objects."),
    annotations=string_map("Key/value pairs for tools and people; not used for selection."),
    ownerReferences=arr(OwnerReference, "Objects this one depends on.", merge_key="uid"),
    finalizers=arr(string(), "Must all be removed before the object is deleted.", set_=True),
    managedFields=arr(ManagedFieldsEntry, "Field ownership, maintained by the server."),
    selfLink=string("Deprecated; not set by the server."),
)

ListMeta = obj(
    META + "ListMeta",
    "Metadata of a list: its resourceVersion and the continue token for the next page.",
    resourceVersion=string("The store revision the list was read at."),
    selfLink=string("Deprecated; not set."),
    remainingItemCount=integer("How many items remain after this page.", format="int64"),
    **{"continue": string("Pass as ?continue= to read the next page.")},
)

LabelSelectorRequirement = obj(
    META + "LabelSelectorRequirement",
    "A key, an operator and values.",
    required=("key", "operator"),
    key=string("The label key."),
    operator=string(
        "In, NotIn, Exists or DoesNotExist.", enum=("In", "NotIn", "Exists", "DoesNotExist")
    ),
    values=strings("Values for In and NotIn; empty for Exists and DoesNotExist."),
)

LabelSelector = obj(
    META + "LabelSelector",
    "Selects objects by labels; all requirements must hold. Empty selects everything.",
    matchLabels=string_map("Labels that must be present with exactly these values."),
    matchExpressions=arr(LabelSelectorRequirement, "Set-based requirements."),
)

Condition = obj(
    META + "Condition",
    "One aspect of an object's state.",
    required=("type", "status"),
    type=string("Type of the condition."),
    status=string("True, False or Unknown.", enum=("True", "False", "Unknown")),
    observedGeneration=integer("The generation the condition was computed from.", format="int64"),
    lastTransitionTime=time("When the status last changed."),
    reason=string("One-word CamelCase reason."),
    message=string("Human-readable details."),
)


def top_level(ref: str, description: str, **fields: Schema) -> Schema:
    """A kind as stored and served: apiVersion, kind and metadata, then its own fields."""
    return obj(
        ref,
        description,
        apiVersion=string("The versioned schema of this object, e.g. v1 or apps/v1."),
        kind=string("The kind of this object, e.g. Pod."),
        metadata=ObjectMeta.described("Standard object metadata."),
        **fields,
    )
