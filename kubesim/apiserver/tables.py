"""Server-side printing (``Accept: application/json;as=Table``), the columns ``kubectl get`` shows.

Pods, Deployments, ReplicaSets, DaemonSets, StatefulSets, Services, Nodes, Namespaces, Events and Jobs
get the columns of the real printers; every other kind gets the generic ``Name``/``Created At`` table,
which is what the API server does for kinds without a printer.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kubesim.apiserver import legacy
from kubesim.apiserver.api import Api, parse_rfc3339
from kubesim.machinery.resources import ResourceType

if TYPE_CHECKING:
    from kubesim.cluster import SimCluster

Obj = dict[str, Any]


def human_duration(seconds: float) -> str:
    """kubectl's duration.HumanDuration."""
    s = int(seconds)
    if s < 0:
        return "<invalid>"
    if s < 120:
        return f"{s}s"
    m = s // 60
    if m < 10:
        return f"{m}m{s % 60}s" if s % 60 else f"{m}m"
    if m < 180:
        return f"{m}m"
    h = m // 60
    if h < 8:
        return f"{h}h{m % 60}m" if m % 60 else f"{h}h"
    if h < 48:
        return f"{h}h"
    d = h // 24
    if h < 24 * 8:
        return f"{d}d{h % 24}h" if h % 24 else f"{d}d"
    if d < 365 * 2:
        return f"{d}d"
    return f"{d // 365}y"


def pod_status(pod: Obj) -> str:
    """The STATUS column of ``kubectl get pods`` (printers.printPod)."""
    status = pod.get("status") or {}
    reason = status.get("reason") or status.get("phase") or "Unknown"
    init_statuses = status.get("initContainerStatuses") or []
    init_specs = {c["name"]: c for c in pod["spec"].get("initContainers") or []}
    initializing = False
    for n, cs in enumerate(init_statuses):
        spec = init_specs.get(cs.get("name"), {})
        state = cs.get("state") or {}
        if spec.get("restartPolicy") == "Always" and state.get("running"):
            continue  # a native sidecar that is running is done initializing
        if "terminated" in state and state["terminated"].get("exitCode") == 0:
            continue
        if "terminated" in state:
            t = state["terminated"]
            reason = "Init:" + (t.get("reason") or f"ExitCode:{t.get('exitCode')}")
        elif "waiting" in state and state["waiting"].get("reason") not in (None, "PodInitializing"):
            reason = "Init:" + state["waiting"]["reason"]
        else:
            reason = f"Init:{n}/{len(init_specs)}"
        initializing = True
        break
    if not initializing:
        has_running = False
        for cs in reversed(status.get("containerStatuses") or []):
            state = cs.get("state") or {}
            if state.get("waiting", {}).get("reason"):
                reason = state["waiting"]["reason"]
            elif state.get("terminated", {}).get("reason"):
                reason = state["terminated"]["reason"]
            elif "terminated" in state:
                reason = f"ExitCode:{state['terminated'].get('exitCode')}"
            elif "running" in state and cs.get("ready"):
                has_running = True
        if reason == "Completed" and has_running:
            reason = "Running"
    if pod["metadata"].get("deletionTimestamp"):
        reason = "Terminating"
    return reason


def _age(obj: Obj, now: float) -> str:
    created = obj["metadata"].get("creationTimestamp")
    return human_duration(now - parse_rfc3339(created)) if created else "<unknown>"


_NAME_DESCRIPTION = (
    "Name must be unique within a namespace. Is required when creating resources, although some resources "
    "may allow a client to request the generation of an appropriate name automatically. Name is primarily "
    "intended for creation idempotence and configuration definition. Cannot be updated. More info: "
    "https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names"
)
_AGE_DESCRIPTION = (
    "CreationTimestamp is a timestamp representing the server time when this object was created. It is "
    "not guaranteed to be set in happens-before order across separate operations. Clients may not set this "
    "value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. "
    "Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"
)


def _col(
    name: str, kind: str = "string", fmt: str = "", priority: int = 0, description: str = ""
) -> dict[str, Any]:
    return {
        "name": name,
        "type": kind,
        "format": fmt,
        "description": description or name,
        "priority": priority,
    }


_SWAGGER = "swagger:"


@functools.cache
def _swagger(reference: str) -> str:
    """A field's description in the published v1.36.2 OpenAPI, which the printers' columns quote
    (pkg/printers/internalversion/printers.go describes columns by the types' SwaggerDoc); read when a
    table is first asked for, not at import."""
    from kubesim.apiserver import openapi

    definition, _, field = reference[len(_SWAGGER) :].rpartition(".")
    definitions = openapi.v2_document().get("definitions") or {}
    properties = (definitions.get(definition) or {}).get("properties") or {}
    return str((properties.get(field) or {}).get("description", ""))


def _described_col(name: str, definition: str, field: str, kind: str = "string") -> dict[str, Any]:
    return _col(name, kind, description=f"{_SWAGGER}{definition}.{field}")


def _name_col() -> dict[str, Any]:
    return _col("Name", fmt="name", description=_NAME_DESCRIPTION)


def _age_col() -> dict[str, Any]:
    return _col("Age", description=_AGE_DESCRIPTION)


def _pod_row(pod: Obj, now: float) -> list[Any]:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    ready = sum(1 for s in statuses if s.get("ready"))
    native = [c for c in pod["spec"].get("initContainers") or [] if c.get("restartPolicy") == "Always"]
    total = len(pod["spec"]["containers"]) + len(native)
    ready += sum(
        1
        for s in (pod.get("status") or {}).get("initContainerStatuses") or []
        if s.get("ready") and any(c["name"] == s.get("name") for c in native)
    )
    restarts = sum(s.get("restartCount", 0) for s in statuses)
    status = pod.get("status") or {}
    return [
        pod["metadata"]["name"],
        f"{ready}/{total}",
        pod_status(pod),
        restarts,
        _age(pod, now),
        status.get("podIP") or "<none>",
        pod["spec"].get("nodeName") or "<none>",
        "<none>",
        "<none>",
    ]


def _images(spec: Obj) -> tuple[str, str]:
    containers = spec.get("containers") or []
    return ",".join(c["name"] for c in containers), ",".join(c.get("image", "") for c in containers)


def _selector(spec: Obj) -> str:
    from kubesim.machinery.selectors import selector_string

    return selector_string(spec.get("selector")) or "<none>"


def _ports(svc: Obj) -> str:
    out = []
    for p in svc["spec"].get("ports") or []:
        text = str(p.get("port"))
        if p.get("nodePort"):
            text += f":{p['nodePort']}"
        out.append(f"{text}/{p.get('protocol', 'TCP')}")
    return ",".join(out) or "<none>"


def _external_ip(svc: Obj) -> str:
    spec = svc["spec"]
    if spec.get("type") == "LoadBalancer":
        ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        return ",".join(i.get("ip") or i.get("hostname", "") for i in ingress) or "<pending>"
    if spec.get("type") == "ExternalName":
        return spec.get("externalName", "")
    return ",".join(spec.get("externalIPs") or []) or "<none>"


def _node_row(node: Obj, now: float) -> list[Any]:
    conditions = {c["type"]: c["status"] for c in (node.get("status") or {}).get("conditions") or []}
    status = "Ready" if conditions.get("Ready") == "True" else "NotReady"
    if node["spec"].get("unschedulable"):
        status += ",SchedulingDisabled"
    roles = sorted(
        k.split("/", 1)[1]
        for k in node["metadata"].get("labels") or {}
        if k.startswith("node-role.kubernetes.io/")
    ) or ["<none>"]
    info = (node.get("status") or {}).get("nodeInfo") or {}
    address = next(
        (
            a["address"]
            for a in (node.get("status") or {}).get("addresses") or []
            if a["type"] == "InternalIP"
        ),
        "<none>",
    )
    return [
        node["metadata"]["name"],
        status,
        ",".join(roles),
        _age(node, now),
        info.get("kubeletVersion", ""),
        address,
        "<none>",
        info.get("osImage", ""),
        info.get("kernelVersion", ""),
        info.get("containerRuntimeVersion", ""),
    ]


def _event_row(ev: Obj, now: float) -> list[Any]:
    last = ev.get("lastTimestamp") or ev.get("eventTime") or ev["metadata"].get("creationTimestamp")
    involved = ev.get("involvedObject") or {}
    return [
        human_duration(now - parse_rfc3339(last[:19] + "Z")) if last else "<unknown>",
        ev.get("type", ""),
        ev.get("reason", ""),
        f"{(involved.get('kind') or '').lower()}/{involved.get('name', '')}",
        ev.get("message", "").strip(),
    ]


def _endpoint_list(ep: Obj) -> str:
    pairs = [
        f"{a['ip']}:{p['port']}"
        for s in ep.get("subsets") or []
        for a in s.get("addresses") or []
        for p in s.get("ports") or []
    ]
    if not pairs:
        return "<none>"
    return ",".join(pairs[:3]) + (f" + {len(pairs) - 3} more..." if len(pairs) > 3 else "")


PRINTERS: dict[tuple[str, str], tuple[list[dict[str, Any]], Callable[[Obj, float], list[Any]]]] = {
    ("", "pods"): (
        [
            _col("Name", fmt="name"),
            _col("Ready"),
            _col("Status"),
            _col("Restarts", "string"),
            _col("Age"),
            _col("IP", priority=1),
            _col("Node", priority=1),
            _col("Nominated Node", priority=1),
            _col("Readiness Gates", priority=1),
        ],
        _pod_row,
    ),
    ("apps", "deployments"): (
        [
            _col("Name", fmt="name"),
            _col("Ready"),
            _col("Up-to-date", "integer"),
            _col("Available", "integer"),
            _col("Age"),
            _col("Containers", priority=1),
            _col("Images", priority=1),
            _col("Selector", priority=1),
        ],
        lambda d, now: [
            d["metadata"]["name"],
            f"{(d.get('status') or {}).get('readyReplicas', 0)}/{d['spec'].get('replicas', 0)}",
            (d.get("status") or {}).get("updatedReplicas", 0),
            (d.get("status") or {}).get("availableReplicas", 0),
            _age(d, now),
            *_images(d["spec"]["template"]["spec"]),
            _selector(d["spec"]),
        ],
    ),
    ("apps", "replicasets"): (
        [
            _col("Name", fmt="name"),
            _col("Desired", "integer"),
            _col("Current", "integer"),
            _col("Ready", "integer"),
            _col("Age"),
            _col("Containers", priority=1),
            _col("Images", priority=1),
            _col("Selector", priority=1),
        ],
        lambda r, now: [
            r["metadata"]["name"],
            r["spec"].get("replicas", 0),
            (r.get("status") or {}).get("replicas", 0),
            (r.get("status") or {}).get("readyReplicas", 0),
            _age(r, now),
            *_images(r["spec"]["template"]["spec"]),
            _selector(r["spec"]),
        ],
    ),
    ("apps", "daemonsets"): (
        [
            _col("Name", fmt="name"),
            _col("Desired", "integer"),
            _col("Current", "integer"),
            _col("Ready", "integer"),
            _col("Up-to-date", "integer"),
            _col("Available", "integer"),
            _col("Node Selector"),
            _col("Age"),
        ],
        lambda d, now: [
            d["metadata"]["name"],
            *(
                (d.get("status") or {}).get(k, 0)
                for k in (
                    "desiredNumberScheduled",
                    "currentNumberScheduled",
                    "numberReady",
                    "updatedNumberScheduled",
                    "numberAvailable",
                )
            ),
            ",".join(f"{k}={v}" for k, v in (d["spec"]["template"]["spec"].get("nodeSelector") or {}).items())
            or "<none>",
            _age(d, now),
        ],
    ),
    ("apps", "statefulsets"): (
        [_col("Name", fmt="name"), _col("Ready"), _col("Age")],
        lambda s, now: [
            s["metadata"]["name"],
            f"{(s.get('status') or {}).get('readyReplicas', 0)}/{s['spec'].get('replicas', 0)}",
            _age(s, now),
        ],
    ),
    ("batch", "jobs"): (
        [_col("Name", fmt="name"), _col("Status"), _col("Completions"), _col("Duration"), _col("Age")],
        lambda j, now: [
            j["metadata"]["name"],
            "Complete"
            if any(
                c["type"] == "Complete" and c["status"] == "True"
                for c in (j.get("status") or {}).get("conditions") or []
            )
            else "Running",
            f"{(j.get('status') or {}).get('succeeded', 0)}/{j['spec'].get('completions', 1)}",
            "",
            _age(j, now),
        ],
    ),
    ("", "services"): (
        [
            _col("Name", fmt="name"),
            _col("Type"),
            _col("Cluster-IP"),
            _col("External-IP"),
            _col("Port(s)"),
            _col("Age"),
            _col("Selector", priority=1),
        ],
        lambda s, now: [
            s["metadata"]["name"],
            s["spec"].get("type", "ClusterIP"),
            s["spec"].get("clusterIP") or "<none>",
            _external_ip(s),
            _ports(s),
            _age(s, now),
            ",".join(f"{k}={v}" for k, v in (s["spec"].get("selector") or {}).items()) or "<none>",
        ],
    ),
    ("", "nodes"): (
        [
            _col("Name", fmt="name"),
            _col("Status"),
            _col("Roles"),
            _col("Age"),
            _col("Version"),
            _col("Internal-IP", priority=1),
            _col("External-IP", priority=1),
            _col("OS-Image", priority=1),
            _col("Kernel-Version", priority=1),
            _col("Container-Runtime", priority=1),
        ],
        _node_row,
    ),
    ("", "endpoints"): (
        [_col("Name", fmt="name"), _col("Endpoints"), _col("Age")],
        lambda e, now: [e["metadata"]["name"], _endpoint_list(e), _age(e, now)],
    ),
    ("", "namespaces"): (
        [_col("Name", fmt="name"), _col("Status"), _col("Age")],
        lambda n, now: [n["metadata"]["name"], (n.get("status") or {}).get("phase", "Active"), _age(n, now)],
    ),
    # printers.go v1.36: configMapColumnDefinitions, secretColumnDefinitions, serviceAccountColumnDefinitions.
    ("", "configmaps"): (
        [_name_col(), _described_col("Data", "io.k8s.api.core.v1.ConfigMap", "data"), _age_col()],
        lambda c, now: [
            c["metadata"]["name"],
            len(c.get("data") or {}) + len(c.get("binaryData") or {}),
            _age(c, now),
        ],
    ),
    ("", "secrets"): (
        [
            _name_col(),
            _described_col("Type", "io.k8s.api.core.v1.Secret", "type"),
            _described_col("Data", "io.k8s.api.core.v1.Secret", "data"),
            _age_col(),
        ],
        lambda s, now: [
            s["metadata"]["name"],
            s.get("type", "Opaque"),
            len(s.get("data") or {}),
            _age(s, now),
        ],
    ),
    ("", "serviceaccounts"): (
        [_name_col(), _described_col("Secrets", "io.k8s.api.core.v1.ServiceAccount", "secrets"), _age_col()],
        lambda a, now: [a["metadata"]["name"], len(a.get("secrets") or []), _age(a, now)],
    ),
    ("", "events"): (
        [_col("Last Seen"), _col("Type"), _col("Reason"), _col("Object"), _col("Message")],
        _event_row,
    ),
}


_JSONPATH_STEP = re.compile(r"\.([^.\[]+)|\[(\d+)\]")


def _jsonpath(obj: Any, path: str) -> Any:
    """The simple JSONPath of a printer column (``.spec.replicas``, ``.spec.tags[0]``); None when absent."""
    for name, index in _JSONPATH_STEP.findall(path):
        if name:
            obj = obj.get(name) if isinstance(obj, dict) else None
        else:
            obj = obj[int(index)] if isinstance(obj, list) and int(index) < len(obj) else None
        if obj is None:
            return None
    return obj


def _custom_printer(rt: ResourceType) -> tuple[list[dict[str, Any]], Callable[[Obj, float], list[Any]]]:
    """A CRD's additionalPrinterColumns (or the default Age column), as the CRD table convertor builds them
    (apiextensions-apiserver pkg/registry/customresource/tableconvertor)."""
    name = {
        "name": "Name",
        "type": "string",
        "format": "name",
        "description": _NAME_DESCRIPTION,
        "priority": 0,
    }
    specs = list(rt.columns) or [
        {
            "name": "Age",
            "type": "date",
            "jsonPath": ".metadata.creationTimestamp",
            "description": _AGE_DESCRIPTION,
        }
    ]
    columns = [name] + [
        {
            "name": c["name"],
            "type": c.get("type", "string"),
            "format": c.get("format", ""),
            "description": c.get("description")
            or f"Custom resource definition column (in JSONPath format): {c['jsonPath']}",
            "priority": c.get("priority", 0),
        }
        for c in specs
    ]

    def cell(obj: Obj, spec: dict[str, Any], now: float) -> Any:
        value = _jsonpath(obj, spec["jsonPath"])
        if spec.get("type") == "date" and value is not None:
            # The CRD table convertor prints dates as durations (HumanDuration), "<unknown>" if unparsable.
            try:
                return human_duration(now - parse_rfc3339(str(value)))
            except ValueError:
                return "<unknown>"
        return value

    return columns, lambda o, now: [o["metadata"]["name"]] + [cell(o, c, now) for c in specs]


def table(api: Api, rt: ResourceType, items: list[Obj], rv: str, include: str, cluster: SimCluster) -> Obj:
    now = api.clock.now()
    columns, row = (
        _custom_printer(rt)
        if rt.custom
        else PRINTERS.get(rt.gr)
        or legacy.PRINTERS.get(
            rt.gr,
            (
                [_col("Name", fmt="name"), _col("Created At", "date")],
                lambda o, _: [o["metadata"]["name"], o["metadata"].get("creationTimestamp")],
            ),
        )
    )
    columns = [
        dict(c, description=_swagger(c["description"])) if c["description"].startswith(_SWAGGER) else c
        for c in columns
    ]
    rows = []
    for obj in items:
        entry: dict[str, Any] = {"cells": row(obj, now)}
        if include == "Object":
            entry["object"] = obj
        elif include == "None":
            entry["object"] = None
        else:
            entry["object"] = {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": obj["metadata"],
            }
        rows.append(entry)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": rv},
        "columnDefinitions": columns,
        "rows": rows,
    }
