"""The resource types the simulated API server serves, as discovery describes them.

One :class:`ResourceType` per group/resource. Built-in kinds are listed here; CustomResourceDefinitions add
their own types at run time (see ``api.Api``). Everything that discovery, kubectl's RESTMapper and the
DynamicClient need (kind, plural, namespaced, verbs, short names, categories, subresources) lives here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class ResourceType:
    group: str
    versions: tuple[str, ...]  # served versions; the first is the preferred (and storage) version
    kind: str
    plural: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    subresources: tuple[str, ...] = ()
    singular: str = ""
    # For custom resources: the CRD's openAPIV3Schema per version, and the scale subresource paths.
    schemas: dict[str, dict] = field(default_factory=dict, compare=False, hash=False)
    scale_paths: tuple[str, str, str] | None = (
        None  # (specReplicasPath, statusReplicasPath, labelSelectorPath)
    )
    custom: bool = False
    # For custom resources: the CRD's additionalPrinterColumns (of its first served version).
    columns: tuple[dict, ...] = field(default=(), compare=False, hash=False)

    @property
    def gr(self) -> tuple[str, str]:
        return (self.group, self.plural)

    @property
    def version(self) -> str:
        return self.versions[0]

    def api_version(self, version: str | None = None) -> str:
        v = version or self.version
        return f"{self.group}/{v}" if self.group else v

    @property
    def list_kind(self) -> str:
        return self.kind + "List"

    @property
    def singular_name(self) -> str:
        return self.singular or self.kind.lower()

    @property
    def qualified(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural


def _rt(group: str, version: str, kind: str, plural: str, namespaced: bool, **kw: object) -> ResourceType:
    return ResourceType(group, (version,), kind, plural, namespaced, **kw)  # type: ignore[arg-type]


BUILTIN_TYPES: tuple[ResourceType, ...] = (
    _rt(
        "",
        "v1",
        "Namespace",
        "namespaces",
        False,
        short_names=("ns",),
        subresources=("status", "finalize"),
        verbs=("create", "delete", "get", "list", "patch", "update", "watch"),
    ),
    _rt("", "v1", "Node", "nodes", False, short_names=("no",), subresources=("status", "proxy")),
    _rt(
        "",
        "v1",
        "Pod",
        "pods",
        True,
        short_names=("po",),
        categories=("all",),
        subresources=("status", "log", "proxy", "eviction", "exec", "attach", "portforward", "binding"),
    ),
    _rt(
        "",
        "v1",
        "Service",
        "services",
        True,
        short_names=("svc",),
        categories=("all",),
        subresources=("status", "proxy"),
        verbs=("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"),
    ),
    _rt("", "v1", "Endpoints", "endpoints", True, short_names=("ep",), singular="endpoints"),
    _rt("", "v1", "ConfigMap", "configmaps", True, short_names=("cm",)),
    _rt("", "v1", "Secret", "secrets", True),
    _rt("", "v1", "ServiceAccount", "serviceaccounts", True, short_names=("sa",), subresources=("token",)),
    _rt(
        "",
        "v1",
        "PersistentVolume",
        "persistentvolumes",
        False,
        short_names=("pv",),
        subresources=("status",),
    ),
    _rt(
        "",
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        True,
        short_names=("pvc",),
        subresources=("status",),
    ),
    _rt("", "v1", "LimitRange", "limitranges", True, short_names=("limits",)),
    _rt("", "v1", "PodTemplate", "podtemplates", True),
    _rt("", "v1", "Event", "events", True, short_names=("ev",)),
    _rt("", "v1", "ResourceQuota", "resourcequotas", True, short_names=("quota",), subresources=("status",)),
    _rt(
        "apps",
        "v1",
        "Deployment",
        "deployments",
        True,
        short_names=("deploy",),
        categories=("all",),
        subresources=("status", "scale"),
    ),
    _rt(
        "apps",
        "v1",
        "ReplicaSet",
        "replicasets",
        True,
        short_names=("rs",),
        categories=("all",),
        subresources=("status", "scale"),
    ),
    _rt(
        "apps",
        "v1",
        "DaemonSet",
        "daemonsets",
        True,
        short_names=("ds",),
        categories=("all",),
        subresources=("status",),
    ),
    _rt(
        "apps",
        "v1",
        "StatefulSet",
        "statefulsets",
        True,
        short_names=("sts",),
        categories=("all",),
        subresources=("status", "scale"),
    ),
    _rt("apps", "v1", "ControllerRevision", "controllerrevisions", True),
    _rt("batch", "v1", "Job", "jobs", True, categories=("all",), subresources=("status",)),
    _rt(
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        False,
        short_names=("crd", "crds"),
        subresources=("status",),
    ),
    _rt(
        "admissionregistration.k8s.io",
        "v1",
        "MutatingWebhookConfiguration",
        "mutatingwebhookconfigurations",
        False,
    ),
    _rt(
        "admissionregistration.k8s.io",
        "v1",
        "ValidatingWebhookConfiguration",
        "validatingwebhookconfigurations",
        False,
    ),
    _rt("rbac.authorization.k8s.io", "v1", "Role", "roles", True),
    _rt("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", True),
    _rt("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", False),
    _rt("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", False),
    _rt(
        "autoscaling",
        "v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        True,
        short_names=("hpa",),
        categories=("all",),
        subresources=("status",),
    ),
    _rt(
        "policy",
        "v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        True,
        short_names=("pdb",),
        subresources=("status",),
    ),
    _rt("coordination.k8s.io", "v1", "Lease", "leases", True),
    _rt(
        "batch",
        "v1",
        "CronJob",
        "cronjobs",
        True,
        short_names=("cj",),
        categories=("all",),
        subresources=("status",),
    ),
    _rt("events.k8s.io", "v1", "Event", "events", True, short_names=("ev",)),
    _rt(
        "networking.k8s.io",
        "v1",
        "Ingress",
        "ingresses",
        True,
        short_names=("ing",),
        subresources=("status",),
    ),
    _rt("networking.k8s.io", "v1", "IngressClass", "ingressclasses", False),
    _rt("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", True, short_names=("netpol",)),
    _rt("storage.k8s.io", "v1", "StorageClass", "storageclasses", False, short_names=("sc",)),
    _rt("storage.k8s.io", "v1", "CSIDriver", "csidrivers", False),
    _rt("storage.k8s.io", "v1", "CSINode", "csinodes", False),
    _rt("storage.k8s.io", "v1", "VolumeAttachment", "volumeattachments", False, subresources=("status",)),
    _rt("scheduling.k8s.io", "v1", "PriorityClass", "priorityclasses", False, short_names=("pc",)),
    _rt("node.k8s.io", "v1", "RuntimeClass", "runtimeclasses", False),
    _rt(
        "certificates.k8s.io",
        "v1",
        "CertificateSigningRequest",
        "certificatesigningrequests",
        False,
        short_names=("csr",),
        subresources=("approval", "status"),
    ),
    _rt("authentication.k8s.io", "v1", "TokenReview", "tokenreviews", False, verbs=("create",)),
    _rt("authentication.k8s.io", "v1", "SelfSubjectReview", "selfsubjectreviews", False, verbs=("create",)),
    _rt("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", True),
    _rt(
        "authorization.k8s.io",
        "v1",
        "SelfSubjectAccessReview",
        "selfsubjectaccessreviews",
        False,
        verbs=("create",),
    ),
)
