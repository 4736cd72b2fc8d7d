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


@dataclass(frozen=True)
class SimRegistry:
    """A registry that exists in the simulated world (``--sim-registry``): ``location`` is a host, optionally
    with a path, that mirrors the public registries under it; with credentials it is private, and pods need a
    matching ``imagePullSecret``. Any other host, like a mistyped one, does not resolve, as on a real node."""

    location: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @classmethod
    def parse(cls, text: str) -> SimRegistry:
        """``HOST[/PATH][=USER:PASSWORD]``; raise :class:`ClusterError` saying what is wrong."""
        location, _, credentials = text.strip().partition("=")
        location = location.strip().rstrip("/")
        host = location.split("/", 1)[0]
        if not host or " " in location or "://" in text:
            raise ClusterError(
                f"--sim-registry {text!r}: expected HOST[/PATH][=USER:PASSWORD], "
                "e.g. registry.example.com/mirror"
            )
        if host.endswith(".invalid"):
            raise ClusterError(
                f"--sim-registry {host}: a .invalid host never resolves (RFC 6761); leave it out"
            )
        if credentials:
            user, sep, password = credentials.partition(":")
            if not user or not sep:
                raise ClusterError(f"--sim-registry {location}=...: credentials must be USER:PASSWORD")
            return cls(location, user, password)
        return cls(location)

    def describe(self) -> str:
        """The registry as the record may show it: never its password."""
        return f"{self.location}={self.username}:***" if self.username else self.location


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
    # Registries of the user's that exist in the simulated world besides the public ones (none by default).
    registries: list[SimRegistry] = field(default_factory=list)
    # The simulated world's date (seconds since 1970, UTC; --sim-date): Istio's registries follow their
    # retirement dates against it. None: no dates are applied.
    calendar: float | None = None

    def provision(self, workdir: Path) -> Cluster:
        sim = SimCluster(
            self.cluster_name,
            k8s_version=self.k8s_version,
            nodes=self.nodes,
            time_scale=self.time_scale,
            faults=self.faults,
            addons=[kubesim.istio.addon],
        )
        for registry in self.registries:
            sim.registry.add_registry(registry.location, registry.username, registry.password)
        if self.calendar is not None:
            sim.set_calendar(self.calendar)
        sim.start()
        kubeconfig = sim.write_kubeconfig(workdir / "kubeconfig")
        return Cluster(
            "sim",
            self.cluster_name,
            kubeconfig,
            sim.context,
            release=sim.stop,
            details={"server": sim.server_url, "registries": [r.describe() for r in self.registries]},
            simulator=SimSimulator(sim),
        )
