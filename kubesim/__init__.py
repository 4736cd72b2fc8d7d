"""The simulated Kubernetes cluster: the embedded default the harness runs on, and the ground under every
test.

A real HTTPS Kubernetes API on 127.0.0.1 that the official client and a real ``kubectl`` talk to, with
controllers, kubelets, a container registry, a pod network and scriptable faults. Start one with
:class:`SimCluster` (a context manager) or ``python -m kubesim serve``.

The names below are loaded on first use: the istioctl emulator (``kubesim.istio.istioctl``), started as a
program for every istioctl command a rehearsal runs, needs none of the cluster.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kubesim.clock import SimClock
    from kubesim.cluster import DEFAULT_K8S_VERSION, SimCluster
    from kubesim.faults import Faults, FaultSpecError
    from kubesim.node.images import Image, ImageRegistry

_WHERE = {
    "DEFAULT_K8S_VERSION": "kubesim.cluster",
    "SimCluster": "kubesim.cluster",
    "SimClock": "kubesim.clock",
    "Faults": "kubesim.faults",
    "FaultSpecError": "kubesim.faults",
    "Image": "kubesim.node.images",
    "ImageRegistry": "kubesim.node.images",
}

__all__ = [
    "DEFAULT_K8S_VERSION",
    "Faults",
    "FaultSpecError",
    "Image",
    "ImageRegistry",
    "SimClock",
    "SimCluster",
]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'kubesim' has no attribute {name!r}")
