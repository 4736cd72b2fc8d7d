"""The core (``/api/v1``) resources the simulated cluster runs nothing for, served as kube-apiserver v1.36
serves them: bindings, componentstatuses, replicationcontrollers, and the pods/ephemeralcontainers and
pods/resize subresources. ``api.Api`` registers the types; ``rest.ResourceMixin`` hands their special verbs
here.

- ``replicationcontrollers`` (with ``status`` and ``scale``) are stored and served like any generic resource
  (pkg/registry/core/replicationcontroller/storage/storage.go). Nothing acts on them: the simulator runs no
  replication manager (kube-controller-manager's ``replicationcontroller`` controller), so an RC gets no pods.
- ``componentstatuses`` are not stored: the real REST (pkg/registry/core/componentstatus/rest.go) probes the
  scheduler, the controller manager and each etcd server on every get and list, answers ``get`` and ``list``
  only (watch is a 405 naming the kind), leaves the list's metadata empty and warns that v1 ComponentStatus
  is deprecated (pkg/registry/core/rest/storage_core.go). The simulated control plane's components run in
  process and are up, so each answers ``Healthy`` ``ok``, as in a kind cluster where they share the node.
- ``bindings`` accept ``create`` only and bind the pod the Binding names, as ``pods/binding`` does
  (pkg/registry/core/pod/storage/storage.go BindingREST: the same code for both paths).
- ``pods/ephemeralcontainers`` and ``pods/resize`` read the pod and write only their fields: the ephemeral
  containers, or the containers' resources and resize policies (pkg/registry/core/pod/strategy.go,
  podEphemeralContainersStrategy and podResizeStrategy: PrepareForUpdate copies the old pod, takes those).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from kubesim.machinery import errors
from kubesim.machinery.errors import ApiError
from kubesim.machinery.resources import ALL_VERBS, ResourceType

Obj = dict[str, Any]
COMPONENTSTATUSES = ("", "componentstatuses")
BINDINGS = ("", "bindings")
DEPRECATED = "v1 ComponentStatus is deprecated in v1.19+"

TYPES: tuple[ResourceType, ...] = (
    ResourceType("", ("v1",), "Binding", "bindings", True, verbs=("create",)),
    ResourceType(
        "", ("v1",), "ComponentStatus", "componentstatuses", False, short_names=("cs",), verbs=("get", "list")
    ),
    ResourceType(
        "",
        ("v1",),
        "ReplicationController",
        "replicationcontrollers",
        True,
        short_names=("rc",),
        categories=("all",),
        verbs=ALL_VERBS,
        subresources=("scale", "status"),
    ),
)

# Resources whose REST is not the generic registry store: discovery gives them no storageVersionHash
# (apiserver/pkg/endpoints/installer.go sets it only for a storage.StorageVersionProvider).
UNSTORED = {BINDINGS, COMPONENTSTATUSES}
# Subresources that write only part of the pod, as the two pod strategies above do.
POD_FIELD_SUBRESOURCES = ("ephemeralcontainers", "resize")


def with_pod_subresources(rt: ResourceType) -> ResourceType:
    """The pods type with the two subresources v1.36 serves beside the simulator's own."""
    if rt.gr != ("", "pods"):
        return rt
    extra = tuple(s for s in POD_FIELD_SUBRESOURCES if s not in rt.subresources)
    return dataclasses.replace(rt, subresources=rt.subresources + extra)


def check_verb(rt: ResourceType, verb: str, method: str) -> None:
    """A verb these resources do not offer is refused as their REST (which lacks the interface) is."""
    if rt.gr not in UNSTORED or verb in rt.verbs:
        return
    if verb == "watch":
        # apiserver/pkg/endpoints/handlers/watch.go via installer.go: a lister that is not a watcher.
        raise ApiError(
            405,
            "MethodNotAllowed",
            f'watch is not supported on resources of kind "{rt.plural}"',
            {"kind": rt.plural},
        )
    raise errors.method_not_allowed(method)


def component_statuses() -> list[dict[str, Any]]:
    """What the real REST probes: the scheduler, the controller manager and the etcd server, in that order."""
    return [
        {
            "metadata": {"name": name},
            "conditions": [{"type": "Healthy", "status": "True", "message": "ok"}],
        }
        for name in ("scheduler", "controller-manager", "etcd-0")
    ]


def component_status(name: str) -> dict[str, Any]:
    for item in component_statuses():
        if item["metadata"]["name"] == name:
            return {"kind": "ComponentStatus", "apiVersion": "v1", **item}
    # rest.go: errors.NewNotFound(schema.GroupResource{Resource: "componentstatus"}, name)
    raise errors.not_found("componentstatus", "", name)


def component_status_list() -> dict[str, Any]:
    return {"kind": "ComponentStatusList", "apiVersion": "v1", "metadata": {}, "items": component_statuses()}


def only_subresource_fields(subresource: str, old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The stored pod with just the fields ``subresource`` writes taken from ``new``."""
    from kubesim.store import clone

    obj = clone(old)
    spec, new_spec = obj.setdefault("spec", {}), new.get("spec") or {}
    if subresource == "ephemeralcontainers":
        if new_spec.get("ephemeralContainers"):
            spec["ephemeralContainers"] = clone(new_spec["ephemeralContainers"])
        else:
            spec.pop("ephemeralContainers", None)
        return obj
    for key in ("containers", "initContainers"):
        given = {c.get("name"): c for c in new_spec.get(key) or [] if isinstance(c, dict)}
        for container in spec.get(key) or []:
            change = given.get(container.get("name"))
            if change is None:
                continue
            for field in ("resources", "resizePolicy"):
                if field in change:
                    container[field] = clone(change[field])
                else:
                    container.pop(field, None)
    return obj


_NAME = (
    "Name must be unique within a namespace. Is required when creating resources, although some resources "
    "may allow a client to request the generation of an appropriate name automatically. Name is primarily "
    "intended for creation idempotence and configuration definition. Cannot be updated. More info: "
    "https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names"
)
_RC_DOCS = "https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller"
_AGE = (
    "CreationTimestamp is a timestamp representing the server time when this object was created. It is not "
    "guaranteed to be set in happens-before order across separate operations. Clients may not set this "
    "value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for "
    "lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md"
    "#metadata"
)


def _column(name: str, description: str, kind: str = "string", fmt: str = "", priority: int = 0) -> Obj:
    return {"name": name, "type": kind, "format": fmt, "description": description, "priority": priority}


def _component_row(obj: Obj, now: float) -> list[Any]:
    """printers.go printComponentStatus: Healthy conditions make the status, their messages and errors."""
    status, messages, errors_ = "Unknown", [], []
    for condition in obj.get("conditions") or []:
        if condition.get("type") == "Healthy":
            status = "Healthy" if condition.get("status") == "True" else "Unhealthy"
            messages.append(condition.get("message", ""))
            errors_.append(condition.get("error", ""))
    return [obj["metadata"]["name"], status, ",".join(messages), ",".join(errors_)]


def _rc_row(obj: Obj, now: float) -> list[Any]:
    """printers.go printReplicationController."""
    from kubesim.apiserver.objects import parse_rfc3339
    from kubesim.apiserver.tables import human_duration

    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
    created = obj["metadata"].get("creationTimestamp")
    age = human_duration(now - parse_rfc3339(created)) if created else "<unknown>"
    selector = ",".join(f"{k}={v}" for k, v in sorted((spec.get("selector") or {}).items()))
    return [
        obj["metadata"]["name"],
        spec.get("replicas", 1),
        status.get("replicas", 0),
        status.get("readyReplicas", 0),
        age,
        ",".join(c.get("name", "") for c in containers),
        ",".join(c.get("image", "") for c in containers),
        selector,
    ]


# pkg/printers/internalversion/printers.go: componentStatusColumnDefinitions and
# replicationControllerColumnDefinitions, with the descriptions v1.36.2 serves.
PRINTERS: dict[tuple[str, str], tuple[list[Obj], Callable[[Obj, float], list[Any]]]] = {
    COMPONENTSTATUSES: (
        [
            _column("Name", _NAME, fmt="name"),
            _column("Status", "Status of the component conditions"),
            _column("Message", "Message of the component conditions"),
            _column("Error", "Error of the component conditions"),
        ],
        _component_row,
    ),
    ("", "replicationcontrollers"): (
        [
            _column("Name", _NAME, fmt="name"),
            _column(
                "Desired",
                "Replicas is the number of desired replicas. This is a pointer to distinguish between "
                "explicit zero and unspecified. Defaults to 1. More info: "
                + _RC_DOCS
                + "#what-is-a-replicationcontroller",
                "integer",
            ),
            _column(
                "Current",
                "Replicas is the most recently observed number of replicas. More info: "
                + _RC_DOCS
                + "#what-is-a-replicationcontroller",
                "integer",
            ),
            _column("Ready", "The number of ready replicas for this replication controller.", "integer"),
            _column("Age", _AGE),
            _column("Containers", "Names of each container in the template.", priority=1),
            _column("Images", "Images referenced by each container in the template.", priority=1),
            _column(
                "Selector",
                "Selector is a label query over pods that should match the Replicas count. If Selector is "
                "empty, it is defaulted to the labels present on the Pod template. Label keys and values "
                "that must match in order to be controlled by this replication controller, if empty "
                "defaulted to labels on Pod template. More info: "
                "https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors",
                priority=1,
            ),
        ],
        _rc_row,
    ),
}
