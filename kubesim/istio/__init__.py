"""Istio in the simulated cluster: manifests, the control plane and data plane programs, and the istioctl
emulator that speaks each version's output, messages and exit codes."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kubesim.cluster import SimCluster

# Istio's own image repositories: they hold exactly the releases Istio published (filled per version by
# ``mesh.register``), so a tag that was never released is "not found" there, unlike an unknown app image.
# docker.io/istio: the default hub up to 1.29 (release-builder release/publish.sh); 1.30 moved it to
# registry.istio.io/release (istio/istio 1.30.0 common/scripts/report_build_info.sh); gcr.io/istio-release is
# the Google registry Istio also publishes releases to (the `hub` of many users' IstioOperators).
ISTIO_REPOSITORIES = ("docker.io/istio", "registry.istio.io/release", "gcr.io/istio-release")


def addon(cluster: SimCluster) -> None:
    """The Istio add-on: ``SimCluster(addons=[kubesim.istio.addon])`` runs Istio's programs and has every
    known release's images in Istio's repositories."""
    from kubesim.istio.mesh import register

    for repository in ISTIO_REPOSITORIES:
        cluster.registry.close(repository)
    register(cluster)
