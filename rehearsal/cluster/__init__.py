"""Cluster providers: where a rehearsal runs.

Three providers hand out a :class:`Cluster` behind one protocol: ``sim`` (the embedded simulated cluster,
the default), ``kubeconfig`` (an existing cluster chosen by kubeconfig and context; never deleted) and
``kind`` (a kind cluster created and deleted through pytest-kind's ``KindCluster``). Everything above this
layer talks to the cluster only through its kubeconfig, with the official client and the real CLIs.
"""

from .base import Cluster, ClusterError, ClusterProvider
from .kind import KIND_NODE_IMAGE, KIND_VERSION, KindProvider
from .kubeconfig import KubeconfigProvider
from .sim import SimProvider, SimRegistry

PROVIDERS = ("sim", "kind", "kubeconfig")

__all__ = [
    "Cluster",
    "ClusterError",
    "ClusterProvider",
    "KIND_NODE_IMAGE",
    "KIND_VERSION",
    "KindProvider",
    "KubeconfigProvider",
    "PROVIDERS",
    "SimProvider",
    "SimRegistry",
]
