"""The ``sim`` provider: the embedded simulated cluster (the default), and the only bridge between the harness
and the simulator package ``kubesim``. What the simulator offers beyond a kubeconfig reaches the harness
through :class:`~rehearsal.cluster.base.Simulator`: the istioctl emulator of each version and faults to
arm."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import kubesim.istio
from kubesim import DEFAULT_K8S_VERSION, Faults, FaultSpecError, SimCluster
from kubesim.istio.istioctl import write_executable

from .base import Cluster, ClusterError


def check_faults_file(path: str | Path) -> None:
    """Raise :class:`ClusterError` naming what is wrong with a faults file (before anything starts)."""
    try:
        Faults.from_file(path)
    except FaultSpecError as exc:
        raise ClusterError(str(exc)) from None


@dataclass
class SimSimulator:
    """The :class:`Simulator` of one running simulated cluster."""

    cluster: SimCluster

    def istioctl(self, version: str, directory: Path) -> Path:
        try:
            return write_executable(version, directory)
        except ValueError as exc:
            raise ClusterError(f"the simulated cluster cannot emulate istioctl {version}: {exc}") from None

    def arm_faults(self, path: Path) -> None:
        self.cluster.faults.extend(Faults.from_file(path))


@dataclass
class SimProvider:
    name: str = "sim"
    cluster_name: str = "rehearsal"
    k8s_version: str = DEFAULT_K8S_VERSION
    nodes: int = 1
    time_scale: float = 0.0
    faults: Faults = field(default_factory=Faults)
    # Registries that exist in the simulated world as mirrors: (prefix, upstream prefixes); "" = whole
    # references.
    mirrors: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)

    def provision(self, workdir: Path) -> Cluster:
        sim = SimCluster(
            self.cluster_name,
            k8s_version=self.k8s_version,
            nodes=self.nodes,
            time_scale=self.time_scale,
            faults=self.faults,
            addons=[kubesim.istio.addon],
        )
        sim.start()
        for prefix, upstreams in self.mirrors:
            sim.registry.add_mirror(prefix, upstreams)
        kubeconfig = sim.write_kubeconfig(workdir / "kubeconfig")
        return Cluster(
            "sim",
            self.cluster_name,
            kubeconfig,
            sim.context,
            release=sim.stop,
            details={"server": sim.server_url},
            simulator=SimSimulator(sim),
        )
