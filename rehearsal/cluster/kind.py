"""The ``kind`` provider: a throwaway kind cluster, created, reused and deleted with the kind CLI itself.

Any kind from v0.29.0 on is accepted (``kind version`` parsed); the node image is that release's default, by
digest, from the table in :mod:`.kind_world` (with its sources), or ``--kind-image``. The kind binary is taken
from ``--kind-bin`` or PATH, never downloaded at run time.

Why not pytest-kind's ``KindCluster`` (22.11.1, ``pytest_kind/cluster.py``): its ``create`` touches the
kubeconfig file first and then takes any cluster of the same name as its own, so a leftover cluster is reused
with an empty kubeconfig (pykube then fails with a TypeError); it never passes ``--wait``; it would adopt a
cluster someone else made. Its option names are kept (``--kind-bin``, ``--kind-image``, ``--cluster-name``,
``--keep-cluster``; fixtures/plugin.py). Here:

- ``kind create cluster --wait``: kind itself waits for the control plane (kind's ``--wait`` flag,
  ``pkg/cmd/kind/create/cluster/createcluster.go``); pulling the node image happens before and is not counted
  against the harness's node-Ready budget, which starts once kind returns. kind's own lines are passed on as
  progress as they come.
- A leftover cluster of the same name is reused only when the harness created it: after creating a cluster the
  harness writes the ConfigMap ``kube-system/istio-upgrade-rehearsal``; a cluster without it is another's,
  and the error names ``kind delete cluster --name X``. The kubeconfig of a reused cluster comes from
  ``kind get kubeconfig --name X``.
- Images Docker already has locally are loaded into the nodes, best effort (:func:`.kind_world.load_images`):
  a load that fails is a warning, never the end of the cluster.
- ``--kind-registry-mirror``: a local pull-through cache of Docker Hub for the nodes (:mod:`.kind_world`).
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..report import progress
from . import kind_world
from .base import Cluster, ClusterError, wait_until_reachable

#: The kind release the CI matrix installs (rehearsal.matrix); any from kind_world.MIN_KIND_VERSION runs.
KIND_VERSION = "v0.29.0"
KIND_NODE_IMAGE = kind_world.NODE_IMAGES[KIND_VERSION]
MARKER_NAMESPACE = "kube-system"
MARKER_NAME = "istio-upgrade-rehearsal"


def _say(text: str) -> None:
    progress.note(f"[kind] {text}")


@dataclass
class KindProvider:
    cluster_name: str = "istio-rehearsal"
    node_image: str | None = None  # None: the kind release's default from kind_world.NODE_IMAGES
    kind_path: str | None = None
    docker_path: str | None = None
    keep: bool = False
    name: str = "kind"
    # Budgets for a real machine: creating a cluster includes pulling a ~1 GB node image.
    create_timeout: float = 900.0
    ready_timeout: float = 300.0
    preload_images: Sequence[str] = ()
    registry_mirror: bool = False
    say: Callable[[str], None] = field(default=_say, repr=False)
    kind_version: tuple[int, int, int] | None = None  # found by check()
    warnings: list[str] = field(default_factory=list)

    def _kind(self) -> Path:
        found = self.kind_path or shutil.which("kind")
        if not found or not Path(found).exists():
            where = f" at {self.kind_path}" if self.kind_path else " on PATH"
            raise ClusterError(
                f"kind was not found{where}; install kind {kind_world.MIN_KIND_VERSION} or newer "
                "(https://kind.sigs.k8s.io/docs/user/quick-start/#installation) or pass its path "
                "with --kind-bin"
            )
        return Path(found)

    def _run(self, kind: Path, *args: str, timeout: float = 120.0, stream: bool = False) -> str:
        """Run kind; with ``stream``, each line it prints is passed on as progress as it comes."""
        if stream:
            return self._stream(kind, *args, timeout=timeout)
        try:
            result = subprocess.run(
                [str(kind), *args],
                capture_output=True,
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
            detail = (result.stderr or result.stdout or "").strip().splitlines()[-1:]
            raise ClusterError(
                f"kind {' '.join(args[:2])} failed with exit code {result.returncode}"
                + (f": {detail[0][:300]}" if detail else "")
            )
        return result.stdout or ""

    def _stream(self, kind: Path, *args: str, timeout: float) -> str:
        try:
            proc = subprocess.Popen(
                [str(kind), *args],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                text=True,
            )
        except OSError as exc:
            raise ClusterError(f"cannot run {kind}: {exc.strerror}") from None
        lines: list[str] = []

        def relay() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                if line.strip():
                    lines.append(line.rstrip())
                    self.say("  " + line.strip())

        # A reader of its own: the command's end, not the pipe's (a helper it leaves may hold it), ends this.
        reader = threading.Thread(target=relay, daemon=True)
        reader.start()
        from ..waits import WaitStatus, tell

        # A long wait like any other: a live line on a terminal, a plain line every 15 s off one (kind is
        # silent for minutes while it pulls the node image).
        what, began = f"kind {' '.join(args[:2])} {self.cluster_name}", time.monotonic()
        code: int | None = None
        while code is None:
            try:
                code = proc.wait(1.0)
            except subprocess.TimeoutExpired:
                elapsed = time.monotonic() - began
                if elapsed >= timeout:
                    proc.kill()
                    proc.wait()
                    code = -9
                else:
                    tell(WaitStatus(what, elapsed, timeout))
        tell(WaitStatus(what, time.monotonic() - began, timeout, done=True))
        reader.join(0.5)
        if code < 0:
            raise ClusterError(
                f"kind {' '.join(args[:2])} did not finish within {timeout:.0f}s; is Docker running and able "
                "to pull images?"
            )
        if code != 0:
            raise ClusterError(
                f"kind {' '.join(args[:2])} failed with exit code {code}"
                + (f": {lines[-1][:300]}" if lines else "; is Docker running?")
            )
        return "\n".join(lines)

    def check(self) -> Path:
        """Fail early, before anything is created: kind missing, or older than the oldest accepted."""
        kind = self._kind()
        printed = self._run(kind, "version", timeout=30).strip()
        version = kind_world.parse_version(printed)
        if version is None:
            raise ClusterError(f"{kind} does not look like kind (kind version printed {printed[:80]!r})")
        if version < kind_world.version_tuple(kind_world.MIN_KIND_VERSION):
            raise ClusterError(
                f"{kind} is kind v{'.'.join(map(str, version))}, older than kind "
                f"{kind_world.MIN_KIND_VERSION}, the oldest the rehearsal runs with; install a newer kind "
                "(https://kind.sigs.k8s.io/docs/user/quick-start/#installation) or pass one with --kind-bin"
            )
        self.kind_version = version
        return kind

    def image(self) -> str | None:
        """The node image to create with: --kind-image, else the release's default (None: kind's own)."""
        if self.node_image:
            return self.node_image
        assert self.kind_version is not None
        return kind_world.default_node_image(self.kind_version)

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
                    "name (--cluster-name)"
                )
            self.say(f"reusing kind cluster {self.cluster_name}, which an earlier rehearsal created")
            cluster.details["reused"] = True
        else:
            image = self.image()
            shown = (
                image.split("@")[0] if image else "its default node image (newer than the harness's table)"
            )
            self.say(
                f"creating kind cluster {self.cluster_name} with {shown} (pulling the node image can take "
                "minutes the first time)..."
            )
            extra = [f"--image={image}"] if image else []
            if self.registry_mirror and self._mirror_started():
                extra.append(f"--config={kind_world.mirror_config(workdir / 'kind-config.yaml')}")
            self._run(
                kind,
                "create",
                "cluster",
                f"--name={self.cluster_name}",
                *extra,
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
        except ClusterError:
            cluster.release()
            raise
        if self.registry_mirror and not self.warnings:
            self._warn_if(
                kind_world.connect_mirror(str(kind), self._docker() or "docker", self.cluster_name, self.say),
                "the registry mirror is not in use",
            )
        # Best effort: a failed load is a warning (the nodes pull instead), never the end of the cluster.
        cluster.details["loaded images"] = self.load_local_images(kind, workdir)
        if self.warnings:
            cluster.details["warnings"] = list(self.warnings)
        if self.kind_version is not None:
            cluster.details["kind_version"] = "v" + ".".join(map(str, self.kind_version))
        cluster.details["create_seconds"] = round(time.monotonic() - started, 1)
        return cluster

    def _docker(self) -> str | None:
        return self.docker_path or shutil.which("docker")

    def _warn_if(self, problem: str | None, consequence: str) -> bool:
        if problem:
            self.warnings.append(f"{consequence}: {problem}")
            self.say(f"warning: {consequence}: {problem}")
        return not problem

    def _mirror_started(self) -> bool:
        docker = self._docker()
        if not docker:
            return self._warn_if("docker was not found on PATH", "the registry mirror is not in use")
        return self._warn_if(kind_world.start_mirror(docker, self.say), "the registry mirror is not in use")

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
            details={"kind": str(kind), "node_image": self.image() or "kind's default"},
        )

    def load_local_images(self, kind: Path, workdir: Path) -> list[str]:
        """The wanted images Docker already has, loaded into the nodes (no pull from the registry)."""
        docker = self._docker()
        if not docker or not self.preload_images:
            return []
        loaded, warnings = kind_world.load_images(
            str(kind), docker, self.cluster_name, self.preload_images, self.say, workdir
        )
        self.warnings += warnings
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
