"""The ``sim`` provider: the embedded simulated cluster (the default)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..sim import DEFAULT_K8S_VERSION, Faults, SimCluster
from .base import Cluster


@dataclass
class SimProvider:
    name: str = "sim"
    cluster_name: str = "rehearsal"
    k8s_version: str = DEFAULT_K8S_VERSION
    nodes: int = 1
    time_scale: float = 0.0
    faults: Faults = field(default_factory=Faults)
    setup: list[Any] = field(default_factory=list)  # callables run on the SimCluster before use

    def provision(self, workdir: Path) -> Cluster:
        sim = SimCluster(self.cluster_name, k8s_version=self.k8s_version, nodes=self.nodes,
                         time_scale=self.time_scale, faults=self.faults)
        sim.start()
        for step in self.setup:
            step(sim)
        kubeconfig = sim.write_kubeconfig(workdir / "kubeconfig")
        return Cluster("sim", self.cluster_name, kubeconfig, sim.context, release=sim.stop,
                       details={"sim": sim, "server": sim.server_url})
