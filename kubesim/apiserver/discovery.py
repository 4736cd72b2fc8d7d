"""Discovery documents (``/api``, ``/apis``, ``/apis/<group>``, ``/apis/<group>/<version>``).

These are the legacy (non-aggregated) discovery formats; kubectl and client-go fall back to them when the
server does not answer with aggregated discovery, exactly as they do against older API servers.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from kubesim.apiserver import legacy
from kubesim.apiserver.api import Api, _version_priority


def core_versions() -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"}],
    }


def _groups(api: Api) -> dict[str, list[str]]:
    groups: dict[str, set[str]] = {}
    for rt in api.types():
        if rt.group:
            groups.setdefault(rt.group, set()).update(rt.versions)
    return {g: sorted(vs, key=_version_priority) for g, vs in groups.items()}


def _group_doc(name: str, versions: list[str]) -> dict[str, Any]:
    entries = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": entries, "preferredVersion": entries[0]}


def group_list(api: Api) -> dict[str, Any]:
    groups = _groups(api)
    # Built-in groups first in their usual order, then custom groups alphabetically, like the real server.
    builtin_order = [
        "apps",
        "events.k8s.io",
        "authentication.k8s.io",
        "authorization.k8s.io",
        "autoscaling",
        "batch",
        "certificates.k8s.io",
        "networking.k8s.io",
        "policy",
        "rbac.authorization.k8s.io",
        "storage.k8s.io",
        "admissionregistration.k8s.io",
        "apiextensions.k8s.io",
        "scheduling.k8s.io",
        "coordination.k8s.io",
        "node.k8s.io",
        "discovery.k8s.io",
    ]
    names = sorted(
        groups, key=lambda g: (builtin_order.index(g) if g in builtin_order else len(builtin_order), g)
    )
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [_group_doc(n, groups[n]) for n in names]}


def group(api: Api, name: str) -> dict[str, Any] | None:
    versions = _groups(api).get(name)
    if not versions:
        return None
    return dict(_group_doc(name, versions), kind="APIGroup", apiVersion="v1")


_CUSTOM_VERBS = ("delete", "deletecollection", "get", "list", "patch", "create", "update", "watch")


def storage_version_hash(group: str, version: str, kind: str) -> str:
    """apiserver/pkg/endpoints/discovery/storageversionhash.go: the first 8 bytes of the SHA-256 of
    "group/version/kind" of the storage version, base64."""
    digest = hashlib.sha256(f"{group}/{version}/{kind}".encode()).digest()
    return base64.b64encode(digest[:8]).decode()


def resource_list(api: Api, group_name: str, version: str) -> dict[str, Any] | None:
    resources: list[dict[str, Any]] = []
    for rt in sorted(api.types(), key=lambda t: t.plural):
        if rt.group != group_name or version not in rt.versions:
            continue
        entry: dict[str, Any] = {
            "name": rt.plural,
            "singularName": rt.singular_name,
            "namespaced": rt.namespaced,
            "kind": rt.kind,
            # The CRD discovery controller lists a custom resource's verbs in its own order.
            "verbs": list(_CUSTOM_VERBS if rt.custom else rt.verbs),
        }
        if rt.short_names:
            entry["shortNames"] = list(rt.short_names)
        if rt.categories:
            entry["categories"] = list(rt.categories)
        if rt.gr not in legacy.UNSTORED and rt.verbs != ("create",):
            entry["storageVersionHash"] = storage_version_hash(rt.group, rt.version, rt.kind)
        resources.append(entry)
        for sub in rt.subresources:
            sub_entry: dict[str, Any] = {
                "name": f"{rt.plural}/{sub}",
                "singularName": "",
                "namespaced": rt.namespaced,
                "kind": rt.kind,
            }
            if sub == "scale":
                sub_entry.update(
                    group="autoscaling", version="v1", kind="Scale", verbs=["get", "patch", "update"]
                )
            elif sub in ("status", *legacy.POD_FIELD_SUBRESOURCES):
                sub_entry["verbs"] = ["get", "patch", "update"]
            elif sub == "log":
                sub_entry.update(kind="Pod", verbs=["get"])
            elif sub == "proxy":
                sub_entry.update(
                    kind=f"{rt.kind}ProxyOptions", verbs=["create", "delete", "get", "patch", "update"]
                )
            elif sub == "eviction":
                sub_entry.update(group="policy", version="v1", kind="Eviction", verbs=["create"])
            elif sub == "finalize":
                sub_entry["verbs"] = ["update"]
            elif sub in ("exec", "attach", "portforward"):
                kind = {
                    "exec": "PodExecOptions",
                    "attach": "PodAttachOptions",
                    "portforward": "PodPortForwardOptions",
                }
                sub_entry.update(kind=kind[sub], verbs=["create", "get"])
            elif sub == "binding":
                sub_entry.update(kind="Binding", verbs=["create"])
            elif sub == "token":
                sub_entry.update(
                    group="authentication.k8s.io", version="v1", kind="TokenRequest", verbs=["create"]
                )
            elif sub == "approval":
                sub_entry["verbs"] = ["get", "patch", "update"]
            resources.append(sub_entry)
    if not resources:
        return None
    if not any(rt.custom for rt in api.types() if rt.group == group_name):
        # Built-in groups: the installer registers paths in sorted order. The CRD discovery controller lists
        # a resource, then its status, then its scale.
        resources.sort(key=lambda r: r["name"])
    if not group_name:
        return {
            "kind": "APIResourceList",
            "groupVersion": version,
            "resources": resources,
        }  # /api/v1: no apiVersion
    gv = f"{group_name}/{version}"
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}


AGGREGATED = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"


def _aggregated_version(api: Api, group_name: str, version: str) -> dict[str, Any]:
    """One version of a group in aggregated discovery (apidiscovery.k8s.io/v2), built from the same
    resource list the legacy endpoints serve: subresources nest under their resource."""
    legacy = resource_list(api, group_name, version) or {"resources": []}
    resources: list[dict[str, Any]] = []
    by_name: dict[str, dict[str, Any]] = {}
    for entry in legacy["resources"]:
        name, _, sub = entry["name"].partition("/")
        kind = {"group": entry.get("group", ""), "version": entry.get("version", ""), "kind": entry["kind"]}
        if sub:
            parent = by_name.get(name)
            if parent is not None:
                parent.setdefault("subresources", []).append(
                    {"subresource": sub, "responseKind": kind, "verbs": entry.get("verbs", [])}
                )
            continue
        item: dict[str, Any] = {
            "resource": name,
            "responseKind": kind,
            "scope": "Namespaced" if entry["namespaced"] else "Cluster",
            "singularResource": entry["singularName"],
            "verbs": entry["verbs"],
        }
        for key in ("shortNames", "categories"):
            if entry.get(key):
                item[key] = entry[key]
        by_name[name] = item
        resources.append(item)
    return {"version": version, "resources": resources, "freshness": "Current"}


def aggregated(api: Api, core: bool) -> dict[str, Any]:
    """``/api`` or ``/apis`` as an APIGroupDiscoveryList, which kubectl asks for first (one request
    instead of one per group-version)."""
    items: list[dict[str, Any]]
    if core:
        items = [{"metadata": {}, "versions": [_aggregated_version(api, "", "v1")]}]
    else:
        items = [
            {
                "metadata": {"name": doc["name"]},
                "versions": [_aggregated_version(api, doc["name"], v["version"]) for v in doc["versions"]],
            }
            for doc in group_list(api)["groups"]
        ]
    return {
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    }
