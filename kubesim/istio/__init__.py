"""Istio in the simulated cluster: manifests, the control plane and data plane programs, and the istioctl
emulator that speaks each version's output, messages and exit codes."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kubesim.cluster import SimCluster


def addon(cluster: SimCluster) -> None:
    """The Istio add-on: ``SimCluster(addons=[kubesim.istio.addon])`` runs Istio's programs and has every known
    release's images in its registry."""
    from kubesim.istio.mesh import register

    register(cluster)
