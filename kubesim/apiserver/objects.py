"""Value types and helpers of the simulated API server's request logic (``api.Api`` and its mixins):
request options, list results, timestamps, uids and generated names, the service IP allocator, owner
references, and how a patched object is printed in the patcher's errors.
"""

from __future__ import annotations

import ipaddress
import json
import random
import re
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kubesim.machinery.resources import ResourceType

Obj = dict[str, Any]


# Kinds whose registry strategy sets metadata.generation (PrepareForCreate sets 1), from
# kubernetes/kubernetes pkg/registry/*/*/strategy.go at v1.36; others (Services, Namespaces, ConfigMaps)
# have none.
GENERATION_KINDS = frozenset(
    {
        ("", "pods"),
        ("", "replicationcontrollers"),
        ("apps", "deployments"),
        ("apps", "replicasets"),
        ("apps", "daemonsets"),
        ("apps", "statefulsets"),
        ("batch", "jobs"),
        ("batch", "cronjobs"),
        ("apiextensions.k8s.io", "customresourcedefinitions"),
        ("policy", "poddisruptionbudgets"),
        ("autoscaling", "horizontalpodautoscalers"),
        ("networking.k8s.io", "ingresses"),
        ("networking.k8s.io", "networkpolicies"),
        ("scheduling.k8s.io", "priorityclasses"),
        ("admissionregistration.k8s.io", "validatingwebhookconfigurations"),
        ("admissionregistration.k8s.io", "mutatingwebhookconfigurations"),
    }
)

# (operation, resource type, new object, old object, options) -> mutated object
AdmissionPlugin = Callable[[str, ResourceType, Obj, "Obj | None", "RequestOptions"], Obj]


@dataclass
class RequestOptions:
    dry_run: bool = False
    manager: str = ""
    field_validation: str = "Warn"
    force: bool = False
    user: str = "kubernetes-admin"
    internal: bool = False  # a controller inside the cluster: no field management bookkeeping
    warnings: list[str] = field(default_factory=list)


@dataclass
class ListResult:
    items: list[Obj]
    resource_version: str
    continue_token: str = ""
    remaining: int | None = None


def rfc3339(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


def new_uid() -> str:
    """A random (version 4) UUID; random.getrandbits is much cheaper than os.urandom on small VMs."""
    return str(uuid.UUID(int=random.getrandbits(128), version=4))


def _random_suffix(n: int = 5) -> str:
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    raw = random.getrandbits(128)
    return "".join(alphabet[(raw >> (5 * i)) % len(alphabet)] for i in range(n))


class IPAllocator:
    """Hands out addresses from a CIDR, as the service IP and pod IPAM allocators do."""

    def __init__(self, cidr: str, skip: int = 1) -> None:
        self._net = ipaddress.ip_network(cidr)
        self._next = skip
        self._free: list[str] = []
        self._reserved: set[str] = set()
        self._lock = threading.Lock()

    def allocate(self) -> str:
        with self._lock:
            if self._free:
                return self._free.pop()
            while True:
                self._next += 1
                ip = str(self._net.network_address + self._next)
                if ip not in self._reserved:
                    return ip

    def contains(self, ip: str) -> bool:
        try:
            return ipaddress.ip_address(ip) in self._net
        except ValueError:
            return True  # not an address at all: validation says so

    def reserve(self, ip: str) -> None:
        """An address chosen by the user (``spec.clusterIP``) is never handed out again."""
        with self._lock:
            self._reserved.add(ip)
            if ip in self._free:
                self._free.remove(ip)

    def release(self, ip: str) -> None:
        with self._lock:
            self._free.append(ip)


_REGISTRY_FIELDS: dict[tuple[str, str], tuple[str, ...]] = {
    ("", "pods"): ("serviceAccount", "serviceAccountName", "priority", "preemptionPolicy", "tolerations"),
    ("", "services"): ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"),
    ("", "namespaces"): ("finalizers",),
}


def _without_registry_fields(gr: tuple[str, str], obj: Obj) -> Obj:
    fields = _REGISTRY_FIELDS.get(gr)
    if not fields or not isinstance(obj.get("spec"), dict):
        return dict(obj, metadata=dict(obj["metadata"]))
    out = dict(
        obj, metadata=dict(obj["metadata"]), spec={k: v for k, v in obj["spec"].items() if k not in fields}
    )
    if not out["spec"]:
        del out["spec"]  # a namespace whose only spec is the finalizer the strategy adds
    return out


_OBJECT_META_ORDER = (
    "name generateName namespace selfLink uid resourceVersion generation creationTimestamp deletionTimestamp "
    "deletionGracePeriodSeconds labels annotations ownerReferences finalizers managedFields"
).split()
_MANAGED_FIELDS_ORDER = "manager operation apiVersion time fieldsType fieldsV1 subresource".split()


def _go_patched_json(obj: Obj) -> str:
    """The patched object as the patcher prints it: an unstructured map (sorted keys) whose metadata was
    round-tripped through ObjectMeta (struct field order)."""

    def ordered(value: dict[str, Any], order: list[str]) -> dict[str, Any]:
        return {k: value[k] for k in order if k in value} | {
            k: value[k] for k in sorted(value) if k not in order
        }

    def dump(value: Any) -> str:
        return json.dumps(value, sort_keys=True, separators=(",", ":"))

    parts = []
    for key in sorted(obj):
        value = obj[key]
        if key == "metadata" and isinstance(value, dict):
            meta = ordered(value, _OBJECT_META_ORDER)
            fields = []
            for name, item in meta.items():
                if name == "managedFields" and isinstance(item, list):
                    entries = [
                        "{"
                        + ",".join(
                            f"{json.dumps(k)}:{dump(v)}" for k, v in ordered(m, _MANAGED_FIELDS_ORDER).items()
                        )
                        + "}"
                        if isinstance(m, dict)
                        else dump(m)
                        for m in item
                    ]
                    fields.append(f'"managedFields":[{",".join(entries)}]')
                else:
                    fields.append(f"{json.dumps(name)}:{dump(item)}")
            parts.append('"metadata":{' + ",".join(fields) + "}")
        else:
            parts.append(f"{json.dumps(key)}:{dump(value)}")
    return "{" + ",".join(parts) + "}"


def _version_priority(version: str) -> tuple[int, int, int]:
    """Kubernetes version priority: GA > beta > alpha, higher numbers first."""
    m = re.match(r"^v(\d+)(?:(alpha|beta)(\d+))?$", version)
    if not m:
        return (3, 0, 0)
    major, level, minor = int(m.group(1)), m.group(2), int(m.group(3) or 0)
    rank = {None: 0, "beta": 1, "alpha": 2}[level]
    return (rank, -major, -minor)


def owner_reference(obj: Obj, controller: bool = True) -> Obj:
    return {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "name": obj["metadata"]["name"],
        "uid": obj["metadata"]["uid"],
        "controller": controller,
        "blockOwnerDeletion": True,
    }


def controller_of(obj: Obj) -> Obj | None:
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("controller"):
            return ref
    return None


def _loopback_port_free(port: int) -> bool:
    """Whether 127.0.0.1:``port`` can be listened on now (with SO_REUSEADDR, as the node-port listener)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
