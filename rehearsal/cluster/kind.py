"""The ``kind`` provider: a throwaway kind cluster, created, reused and deleted with the kind CLI itself.

Pinned to kind v0.29.0 and its Kubernetes 1.33.1 node image (by digest), which Istio 1.26 to 1.29 support; any
other kind version is refused before anything is created (a node image is built for the kind release that
publishes it). The kind binary is taken from PATH or given explicitly, never downloaded at run time.

Why not pytest-kind's ``KindCluster`` (22.11.1, ``pytest_kind/cluster.py``): its ``create`` touches the
kubeconfig file first and then takes any cluster of the same name as its own, so a leftover cluster is reused
with an empty kubeconfig (pykube then fails with a TypeError); it never passes ``--wait``; it would adopt a
cluster someone else made. Here:

- ``kind create cluster --wait``: kind itself waits for the control plane (kind's ``--wait`` flag,
  ``pkg/cmd/kind/create/cluster/createcluster.go``); pulling the node image happens before and is not counted
  against the harness's node-Ready budget, which starts once kind returns.
- A leftover cluster of the same name is reused only when the harness created it: after creating a cluster the
  harness writes the ConfigMap ``kube-system/istio-upgrade-rehearsal``; a cluster without it is another's,
  and the error names ``kind delete cluster --name X``. The kubeconfig of a reused cluster comes from
  ``kind get kubeconfig --name X``.
- Images Docker already has locally (``docker image inspect``) are loaded into the nodes with
  ``kind load docker-image``, so a run does not pull them again from a rate-limited registry.
- Progress is printed as it happens: creating a cluster takes minutes.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .base import Cluster, ClusterError, wait_until_reachable

KIND_VERSION = "v0.29.0"
KIND_NODE_IMAGE = (
    "kindest/node:v1.33.1@sha256:050072256b9a903bd914c0b2866828150cb229cea0efe5892e2b644d5dd3b34f"
)
MARKER_NAMESPACE = "kube-system"
MARKER_NAME = "istio-upgrade-rehearsal"


def _say(text: str) -> None:
    sys.stderr.write(f"[kind] {text}\n")
    sys.stderr.flush()


@dataclass
class KindProvider:
    cluster_name: str = "istio-rehearsal"
    node_image: str = KIND_NODE_IMAGE
    kind_path: str | None = None
    docker_path: str | None = None
    keep: bool = False
    name: str = "kind"
    # Budgets for a real machine: creating a cluster includes pulling a ~1 GB node image.
    create_timeout: float = 900.0
    ready_timeout: float = 300.0
    preload_images: Sequence[str] = ()
    say: Callable[[str], None] = field(default=_say, repr=False)

    def _kind(self) -> Path:
        found = self.kind_path or shutil.which("kind")
        if not found or not Path(found).exists():
            where = f" at {self.kind_path}" if self.kind_path else " on PATH"
            raise ClusterError(
                f"kind was not found{where}; install kind {KIND_VERSION} "
                "(https://kind.sigs.k8s.io/docs/user/quick-start/#installation) or pass its path"
            )
        return Path(found)

    def _run(self, kind: Path, *args: str, timeout: float = 120.0, stream: bool = False) -> str:
        try:
            result = subprocess.run(
                [str(kind), *args],
                stdout=None if stream else subprocess.PIPE,
                stderr=None if stream else subprocess.PIPE,
                stdin=subprocess.DEVNULL,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            raise ClusterError(
                f"kind {' '.join(args[:2])} did not finish within {timeout:.0f}s; is Docker running and able "
                "to pull images?"
            ) from None
        except OSError as exc:
            raise ClusterError(f"cannot run {kind}: {exc.strerror}") from None
        if result.returncode != 0:
            detail = (result.stderr or result.stdout or "").strip().splitlines()[-1:] if not stream else []
            raise ClusterError(
                f"kind {' '.join(args[:2])} failed with exit code {result.returncode}"
                + (f": {detail[0][:300]}" if detail else "; see kind's output above (is Docker running?)")
            )
        return result.stdout or ""

    def check(self) -> Path:
        """Fail early, before anything is created: kind missing, or not the pinned version."""
        kind = self._kind()
        printed = self._run(kind, "version", timeout=30).strip()
        match = re.match(r"kind (v\d+\.\d+\.\d+\S*)", printed)
        if not match:
            raise ClusterError(f"{kind} does not look like kind (kind version printed {printed[:80]!r})")
        if match.group(1) != KIND_VERSION:
            raise ClusterError(
                f"{kind} is kind {match.group(1)}, but the rehearsal is pinned to kind {KIND_VERSION} "
                "(its node "
                f"image is built for that release); install kind {KIND_VERSION} or pass its path"
            )
        return kind

    def provision(self, workdir: Path) -> Cluster:
        kind = self.check()
        started = time.monotonic()
        kubeconfig = workdir / "kubeconfig"
        workdir.mkdir(parents=True, exist_ok=True)
        existing = self._run(kind, "get", "clusters").split()
        context = f"kind-{self.cluster_name}"
        if self.cluster_name in existing:
            kubeconfig.write_text(self._run(kind, "get", "kubeconfig", "--name", self.cluster_name))
            kubeconfig.chmod(0o600)
            cluster = self._cluster(kind, kubeconfig, context)
            wait_until_reachable(cluster, 60)
            if not _marked(cluster):
                raise ClusterError(
                    f"a kind cluster named {self.cluster_name} already exists and the rehearsal did not "
                    "create "
                    f"it; delete it with `kind delete cluster --name {self.cluster_name}` or choose another "
                    "name (--kind-name)"
                )
            self.say(f"reusing kind cluster {self.cluster_name}, which an earlier rehearsal created")
            cluster.details["reused"] = True
        else:
            self.say(
                f"creating kind cluster {self.cluster_name} with {self.node_image.split('@')[0]} "
                "(pulling the "
                "node image can take minutes the first time)..."
            )
            self._run(
                kind,
                "create",
                "cluster",
                f"--name={self.cluster_name}",
                f"--image={self.node_image}",
                f"--kubeconfig={kubeconfig}",
                f"--wait={int(self.ready_timeout)}s",
                timeout=self.create_timeout,
                stream=True,
            )
            kubeconfig.chmod(0o600)
            cluster = self._cluster(kind, kubeconfig, context)
            try:
                wait_until_reachable(cluster, self.ready_timeout)
                _mark(cluster)
            except ClusterError:
                cluster.release()
                raise
        try:
            cluster.details["version"] = cluster.server_version()
            wait_nodes_ready(cluster, self.ready_timeout)
            cluster.details["loaded images"] = self.load_local_images(kind)
        except ClusterError:
            cluster.release()
            raise
        cluster.details["create_seconds"] = round(time.monotonic() - started, 1)
        return cluster

    def _cluster(self, kind: Path, kubeconfig: Path, context: str) -> Cluster:
        def release() -> None:
            if not self.keep:
                self.say(f"deleting kind cluster {self.cluster_name}")
                self._run(kind, "delete", "cluster", "--name", self.cluster_name, timeout=300)

        return Cluster(
            "kind",
            self.cluster_name,
            kubeconfig,
            context,
            release=release,
            details={"kind": str(kind), "node_image": self.node_image},
        )

    def load_local_images(self, kind: Path) -> list[str]:
        """``kind load docker-image`` for each wanted image Docker already has (no pull from the registry)."""
        docker = self.docker_path or shutil.which("docker")
        if not docker or not self.preload_images:
            return []
        loaded = []
        for image in self.preload_images:
            try:
                present = (
                    subprocess.run(
                        [docker, "image", "inspect", image],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                        stdin=subprocess.DEVNULL,
                        timeout=60,
                    ).returncode
                    == 0
                )
            except (OSError, subprocess.TimeoutExpired):
                present = False
            if present:
                self.say(f"loading {image} from the local Docker into the nodes")
                self._run(kind, "load", "docker-image", "--name", self.cluster_name, image, timeout=600)
                loaded.append(image)
        return loaded


def _marked(cluster: Cluster) -> bool:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    try:
        client.CoreV1Api(cluster.api_client()).read_namespaced_config_map(MARKER_NAME, MARKER_NAMESPACE)
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


def _mark(cluster: Cluster) -> None:
    """Note in the cluster that the rehearsal created it (so a later run may reuse it, and only it)."""
    from kubernetes import client

    body: dict[str, Any] = {
        "metadata": {
            "name": MARKER_NAME,
            "labels": {"app.kubernetes.io/managed-by": "istio-upgrade-rehearsal"},
        },
        "data": {"created-by": "istio-upgrade-rehearsal", "kind-cluster": cluster.name},
    }
    try:
        core = client.CoreV1Api(cluster.api_client())
        core.create_namespaced_config_map(MARKER_NAMESPACE, body)  # type: ignore[arg-type]
    except Exception as exc:
        if getattr(exc, "status", None) != 409:
            raise


def wait_nodes_ready(cluster: Cluster, timeout: float) -> None:
    """Watch nodes until every one reports Ready (its own budget, counted after kind returned)."""
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
    state: dict[str, Any] = {str(getattr(n.metadata, "name", "")): n for n in nodes.items}
    while time.monotonic() < deadline:
        w = watch.Watch()
        for event in w.stream(
            core.list_node,
            resource_version=getattr(nodes.metadata, "resource_version", None),
            timeout_seconds=max(1, int(deadline - time.monotonic())),
        ):
            state[event["object"].metadata.name] = event["object"]
            if all_ready(list(state.values())):
                w.stop()
                return
    raise ClusterError(f"the nodes of kind cluster {cluster.name} did not become Ready within {timeout:.0f}s")
