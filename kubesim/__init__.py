"""The simulated Kubernetes cluster: the embedded default the harness runs on, and the ground under every
test.

A real HTTPS Kubernetes API on 127.0.0.1 that the official client and a real ``kubectl`` talk to, with
controllers, kubelets, a container registry, a pod network and scriptable faults. Start one with
:class:`SimCluster` (a context manager) or ``python -m kubesim serve``.
"""

from kubesim.clock import SimClock
from kubesim.cluster import DEFAULT_K8S_VERSION, SimCluster
from kubesim.faults import Faults, FaultSpecError
from kubesim.node.images import Image, ImageRegistry

__all__ = [
    "DEFAULT_K8S_VERSION",
    "Faults",
    "FaultSpecError",
    "Image",
    "ImageRegistry",
    "SimClock",
    "SimCluster",
]
