"""The protocol every cluster provider implements, and the cluster handle it returns."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

USER_AGENT = "istio-upgrade-rehearsal"


class ClusterError(Exception):
    """A cluster could not be provided; the message says what is wrong and how to fix it."""


@runtime_checkable
class Simulator(Protocol):
    """What a simulated cluster offers beyond a kubeconfig. Only the ``sim`` provider hands one out;
    everything else in the harness treats the cluster as any cluster, through its kubeconfig and the real
    CLIs."""

    def istioctl(self, version: str, directory: Path) -> Path:
        """An executable that behaves as istioctl ``version`` does against this cluster."""
        ...

    def arm_faults(self, path: Path) -> None:
        """Arm the faults described in ``path`` (a faults file) from now on."""
        ...

    def clock_now(self) -> float:
        """The simulated cluster's time (simulated seconds since the epoch)."""
        ...

    def ticker(self) -> Callable[[float, Callable[[float], None]], Callable[[], None]] | None:
        """``add(period, callback)`` calling back at every ``period`` of simulated time however fast it
        passes (returning how to stop), when simulated time moves by jumps; None when it flows with wall
        time."""
        ...


@dataclass
class Cluster:
    """A reachable cluster: its kubeconfig and context, and how to let it go."""

    provider: str
    name: str
    kubeconfig: Path
    context: str | None = None
    release: Callable[[], None] = field(default=lambda: None, repr=False)
    details: dict[str, Any] = field(default_factory=dict)
    simulator: Simulator | None = field(default=None, repr=False)
    # Told of every retried API call (the run records them as evidence of the step in flight).
    retry_listeners: list[Callable[[dict[str, Any]], None]] = field(default_factory=list, repr=False)
    retry_budget: float = 300.0

    @property
    def stable_name(self) -> str:
        """A name that is the same across runs (for report IDs), unlike a generated cluster name."""
        return f"{self.provider}:{self.context or self.name}"

    def api_client(self) -> Any:
        """A client of this cluster that names itself and retries transient failures (see rehearsal.retry)."""
        import urllib3
        from kubernetes import client as kube_client
        from kubernetes import config

        from .. import __version__, retry

        configuration = kube_client.Configuration()
        config.load_kube_config(
            config_file=str(self.kubeconfig), context=self.context, client_configuration=configuration
        )
        # No silent retries underneath (urllib3 would retry some 429/503 itself): each retry is the harness's,
        # within its deadline, and recorded.
        configuration.retries = urllib3.Retry(total=False)
        client = kube_client.ApiClient(configuration)
        client.user_agent = f"{USER_AGENT}/{__version__}"
        return retry.install(client, self.retry_listeners, retry.Backoff(budget=self.retry_budget))

    def server_version(self) -> str:
        from kubernetes import client

        info = client.VersionApi(self.api_client()).get_code()
        return str(info.git_version).lstrip("v")

    def close(self) -> None:
        self.release()


@runtime_checkable
class ClusterProvider(Protocol):
    name: str

    def provision(self, workdir: Path) -> Cluster:
        """Create or connect to the cluster; raise :class:`ClusterError` saying why when impossible."""
        ...


def wait_until_reachable(cluster: Cluster, timeout: float) -> str:
    """Deadline-bound poll of ``/version``: the API server of a fresh cluster needs a moment."""
    deadline = time.monotonic() + timeout
    delay = 0.2
    while True:
        try:
            return cluster.server_version()
        except Exception as exc:
            if time.monotonic() + delay > deadline:
                raise ClusterError(
                    f"cannot reach the Kubernetes API of {cluster.stable_name}: {_reason(exc)}; "
                    "check that the cluster is running and the kubeconfig points at it"
                ) from None
            time.sleep(delay)
            delay = min(delay * 2, 2.0)


def _reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:300]
