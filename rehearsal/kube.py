"""Kubernetes operations the harness performs, through the official client (the same code for every cluster).

Manifests are applied with server-side apply under one field manager; rollouts are awaited with a watch
(with the same completeness rule as ``kubectl rollout status``), bounded by a deadline; a watch the server
cuts or expires is started again from the object as it is. Transient answers are retried underneath every call
(see :mod:`rehearsal.retry`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import urllib3
import yaml
from kubernetes import dynamic, watch
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

FIELD_MANAGER = "istio-upgrade-rehearsal"
# libyaml's loader and dumper where PyYAML was built with it (parsing a rendered Istio manifest in pure Python
# takes most of a second), the pure-Python ones otherwise; both speak the same YAML.
FAST_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
FAST_DUMPER: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class RolloutTimeout(Exception):
    """A workload did not finish rolling out before its deadline."""


def load_manifests(*paths: str | Path) -> list[dict[str, Any]]:
    """YAML documents from files and (non-recursively) directories, in file-name order, empty ones dropped."""
    docs: list[dict[str, Any]] = []
    for path in paths:
        p = Path(path)
        files = sorted(f for f in p.iterdir() if f.suffix in (".yaml", ".yml")) if p.is_dir() else [p]
        for f in files:
            for doc in yaml.load_all(f.read_text(), Loader=FAST_LOADER):
                if isinstance(doc, dict) and doc.get("kind"):
                    if doc["kind"].endswith("List") and "items" in doc:
                        docs += [d for d in doc["items"] if isinstance(d, dict)]
                    else:
                        docs.append(doc)
    return docs


def http_session(api_client: ApiClient) -> Any:
    """A ``requests`` session that reaches the API server as ``api_client`` does (same CA, token or client
    certificate), for raw paths such as service and pod proxies or /metrics. Environment CA bundles are
    ignored: the cluster's own CA decides."""
    import requests

    cfg = api_client.configuration
    session = requests.Session()
    session.trust_env = False
    session.verify = cfg.ssl_ca_cert if cfg.verify_ssl else False
    token = cfg.api_key.get("BearerToken") or cfg.api_key.get("authorization")
    if token:
        session.headers["Authorization"] = token
    if cfg.cert_file and cfg.key_file:
        session.cert = (cfg.cert_file, cfg.key_file)
    return session


def with_registry(docs: list[dict[str, Any]], registry: str | None) -> list[dict[str, Any]]:
    """The same manifests with every container image pulled from ``registry`` (its path kept):
    ``docker.io/mendhak/http-https-echo:37`` -> ``registry.example.com/mirror/mendhak/http-https-echo:37``."""
    if not registry:
        return docs
    import json

    out = json.loads(json.dumps(docs))
    for doc in out:
        spec = ((doc.get("spec") or {}).get("template") or {}).get("spec") or {}
        for container in (spec.get("containers") or []) + (spec.get("initContainers") or []):
            image = container["image"]
            first, _, rest = image.partition("/")
            path = rest if rest and ("." in first or ":" in first or first == "localhost") else image
            container["image"] = f"{registry.rstrip('/')}/{path}"
    return out


@dataclass
class Applied:
    kind: str
    name: str
    namespace: str | None
    api_version: str


class Kube:
    """A thin layer over the DynamicClient for one cluster."""

    def __init__(self, api_client: ApiClient, discovery_cache: str | Path | None = None) -> None:
        self.api_client = api_client
        self.dynamic = dynamic.DynamicClient(
            api_client, cache_file=str(discovery_cache) if discovery_cache else None
        )

    def resource(self, api_version: str, kind: str) -> Any:
        return self.dynamic.resources.get(api_version=api_version, kind=kind)

    def invalidate_discovery(self) -> None:
        self.dynamic.resources.invalidate_cache()

    def get_text(self, path: str, query: Iterable[tuple[str, str]] = ()) -> str:
        """GET a path that answers text rather than an object (a pod's log, a port reached through the API
        server's pod proxy). Through the dynamic client rather than the typed ``CoreV1Api``, whose import
        builds every core model class (most of a second of a rehearsal)."""
        response = self.dynamic.request(
            "GET", path, query_params=list(query), header_params={"Accept": "*/*"}, serialize=False
        )
        return bytes(response.data).decode("utf-8", "replace")

    def apply(
        self,
        docs: Iterable[dict[str, Any]],
        *,
        dry_run: bool = False,
        force: bool = True,
        default_namespace: str = "default",
        field_manager: str = FIELD_MANAGER,
    ) -> list[Applied]:
        applied = []
        for doc in docs:
            resource = self.resource(doc["apiVersion"], doc["kind"])
            namespace = (
                (doc["metadata"].get("namespace") or default_namespace) if resource.namespaced else None
            )
            kwargs: dict[str, Any] = {"field_manager": field_manager, "force_conflicts": force}
            if dry_run:
                kwargs["dry_run"] = "All"
            resource.server_side_apply(body=doc, name=doc["metadata"]["name"], namespace=namespace, **kwargs)
            applied.append(Applied(doc["kind"], doc["metadata"]["name"], namespace, doc["apiVersion"]))
        return applied

    def wait_rollout(self, kind: str, name: str, namespace: str, timeout: float) -> dict[str, Any]:
        """Watch a Deployment, DaemonSet or StatefulSet until it is fully rolled out."""
        resource = self.resource("apps/v1", kind)
        deadline = time.monotonic() + timeout
        obj = resource.get(name=name, namespace=namespace).to_dict()
        since = obj["metadata"]["resourceVersion"]
        while not rollout_complete(obj):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RolloutTimeout(
                    f"{kind.lower()} {namespace}/{name} did not finish rolling out within "
                    f"{timeout:.0f}s: {rollout_message(obj)}"
                )
            w = watch.Watch()
            try:
                for event in self.dynamic.watch(
                    resource,
                    namespace=namespace,
                    name=name,
                    resource_version=since,
                    timeout=max(1, int(remaining)),
                    watcher=w,
                ):
                    if event.get("type") == "ERROR":  # e.g. 410 Gone: the version is too old to watch from
                        break
                    obj = event["raw_object"]
                    since = obj["metadata"]["resourceVersion"]
                    if rollout_complete(obj):
                        w.stop()
                        break
            except (ApiException, urllib3.exceptions.HTTPError) as exc:
                # A watch the server cut or expired: start again from the object as it is now.
                if isinstance(exc, ApiException) and exc.status not in (410, 429, 500, 502, 503, 504):
                    raise
                if isinstance(exc, ApiException) and exc.status == 410:
                    # Too old to watch from (the watch cache no longer holds it): relist, as client-go's
                    # reflector does, and watch from the list's resourceVersion, which is current.
                    listed = resource.get(namespace=namespace, field_selector=f"metadata.name={name}")
                    obj = resource.get(name=name, namespace=namespace).to_dict()
                    since = listed.metadata.resourceVersion
                    continue
            obj = resource.get(name=name, namespace=namespace).to_dict()
        return obj


def rollout_complete(obj: dict[str, Any]) -> bool:
    """The rule of ``kubectl rollout status`` for Deployments, DaemonSets and StatefulSets."""
    spec, status, meta = obj.get("spec") or {}, obj.get("status") or {}, obj["metadata"]
    if status.get("observedGeneration", 0) < meta.get("generation", 1):
        return False
    kind = obj.get("kind")
    if kind == "Deployment":
        want = spec.get("replicas", 1)
        return (
            status.get("updatedReplicas", 0) >= want
            and status.get("replicas", 0) <= status.get("updatedReplicas", 0)
            and status.get("availableReplicas", 0) >= status.get("updatedReplicas", 0)
        )
    if kind == "DaemonSet":
        return status.get("updatedNumberScheduled", 0) >= status.get(
            "desiredNumberScheduled", 0
        ) and status.get("numberAvailable", 0) >= status.get("desiredNumberScheduled", 0)
    if kind == "StatefulSet":
        want = spec.get("replicas", 1)
        return status.get("readyReplicas", 0) >= want and status.get("updatedReplicas", 0) >= want
    return True


def rollout_message(obj: dict[str, Any]) -> str:
    status = obj.get("status") or {}
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Progressing" and condition.get("status") == "False":
            return condition.get("message", "")
    return (
        f"{status.get('updatedReplicas', 0)} updated, {status.get('availableReplicas', 0)} available of "
        f"{(obj.get('spec') or {}).get('replicas', 1)} wanted"
    )
