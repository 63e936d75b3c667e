"""apiextensions.k8s.io/v1 CustomResourceDefinition: a kind a user adds to the API.

The version schemas (`openAPIV3Schema`) are JSON Schema documents that skiff
reads as data (api/crd.py), so they are described here as opaque objects.
"""

from __future__ import annotations

from api.schema import Schema, any_value, arr, boolean, integer, obj, string, strings, time

from .meta import top_level

EXT = "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1."

Names = obj(
    EXT + "CustomResourceDefinitionNames",
    "The names the custom resource is served under.",
    required=("plural", "kind"),
    plural=string("The plural name, used in URLs: /apis/<group>/<version>/<plural>."),
    singular=string("The singular name; defaults to the lowercased kind."),
    kind=string("The kind, in CamelCase, as objects of it carry in `kind`."),
    listKind=string("The kind of its lists; defaults to `<kind>List`."),
    shortNames=strings("Short names kubectl accepts, e.g. `ct`."),
    categories=strings("Groups of resources this one belongs to, e.g. `all`."),
)

# Built directly: one of its fields is called `description`, as obj()'s argument is.
PrinterColumn = Schema(
    "object",
    "A column `kubectl get` shows for the custom resource.",
    required=("name", "type", "jsonPath"),
    ref=EXT + "CustomResourceColumnDefinition",
    fields=dict(
        name=string("The column's header."),
        type=string(
            "integer, number, string, boolean or date.",
            enum=("integer", "number", "string", "boolean", "date"),
        ),
        format=string("An optional OpenAPI format, e.g. name."),
        description=string("What the column shows."),
        priority=integer("0: always shown; above 0: only with -o wide."),
        jsonPath=string("A simple JSONPath into each object, e.g. .spec.replicas."),
    ),
)

Scale = obj(
    EXT + "CustomResourceSubresourceScale",
    "Where the scale subresource finds replicas and the selector.",
    required=("specReplicasPath", "statusReplicasPath"),
    specReplicasPath=string("JSON path of the desired replicas, e.g. .spec.replicas."),
    statusReplicasPath=string("JSON path of the observed replicas, e.g. .status.replicas."),
    labelSelectorPath=string("JSON path of the label selector, as a string, in status."),
)

Version = obj(
    EXT + "CustomResourceDefinitionVersion",
    "One version of the custom resource.",
    required=("name", "served", "storage"),
    name=string("The version's name, e.g. v1alpha1."),
    served=boolean("Whether the version is served."),
    storage=boolean("Whether objects are stored in this version; exactly one is."),
    deprecated=boolean("Whether requests to this version get a deprecation warning."),
    deprecationWarning=string("The warning's text."),
    schema=obj(
        EXT + "CustomResourceValidation",
        "The version's schema.",
        openAPIV3Schema=any_value("A structural OpenAPI v3 schema of the objects."),
    ),
    subresources=obj(
        EXT + "CustomResourceSubresources",
        "The version's status and scale subresources.",
        status=any_value("Present (as {}) to serve /status."),
        scale=Scale,
    ),
    additionalPrinterColumns=arr(PrinterColumn, "Columns for `kubectl get`."),
    selectableFields=any_value("Fields usable in field selectors.", shape="array"),
)

Condition = obj(
    EXT + "CustomResourceDefinitionCondition",
    "A condition of the definition: NamesAccepted, Established, Terminating.",
    required=("type", "status"),
    type=string("The condition's type."),
    status=string("True, False or Unknown."),
    lastTransitionTime=time("When the status last changed."),
    reason=string("Why, in one CamelCase word."),
    message=string("Why, for a human."),
)

CustomResourceDefinition = top_level(
    EXT + "CustomResourceDefinition",
    "Adds a kind to the API, served under its own group and versions.",
    spec=obj(
        EXT + "CustomResourceDefinitionSpec",
        "What the kind is called, its scope and its versions.",
        required=("group", "names", "scope", "versions"),
        group=string("The API group, a domain name, e.g. stable.example.com."),
        names=Names,
        scope=string("Namespaced or Cluster.", enum=("Namespaced", "Cluster")),
        versions=arr(Version, "The versions served."),
        conversion=obj(
            EXT + "CustomResourceConversion",
            "How objects move between versions.",
            strategy=string("None (only apiVersion changes) or Webhook."),
            webhook=any_value("The conversion webhook."),
        ),
        preserveUnknownFields=boolean("Must be false: unknown fields are pruned."),
    ),
    status=obj(
        EXT + "CustomResourceDefinitionStatus",
        "Whether the definition is served, and the names it was given.",
        conditions=arr(Condition, "NamesAccepted, Established, Terminating."),
        acceptedNames=Names,
        storedVersions=strings("Every version objects were ever stored in."),
    ),
)
