"""The Node objects of the simulated cluster, as kind's nodes show them (labels, capacity, conditions)."""

from __future__ import annotations

import uuid
from typing import Any

Obj = dict[str, Any]


def new_node(name: str, ip: str, k8s_version: str, control_plane: bool, cluster: str) -> Obj:
    labels = {
        "beta.kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubesim.io/simulated": "true",
    }
    if control_plane:
        labels["node-role.kubernetes.io/control-plane"] = ""
        labels["node.kubernetes.io/exclude-from-external-load-balancers"] = ""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": {
                "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true",
            },
        },
        "spec": {"podCIDR": "", "providerID": f"kind://docker/{cluster}/{name}"},
        "status": {},
    }


def node_status(ip: str, name: str, k8s_version: str, now: str) -> Obj:
    condition = {"lastHeartbeatTime": now, "lastTransitionTime": now}
    return {
        "capacity": {
            "cpu": "2",
            "memory": "24581208Ki",
            "pods": "110",
            "ephemeral-storage": "263174212Ki",
            "hugepages-2Mi": "0",
        },
        "allocatable": {
            "cpu": "2",
            "memory": "24581208Ki",
            "pods": "110",
            "ephemeral-storage": "263174212Ki",
            "hugepages-2Mi": "0",
        },
        "conditions": [
            dict(
                condition,
                type="MemoryPressure",
                status="False",
                reason="KubeletHasSufficientMemory",
                message="kubelet has sufficient memory available",
            ),
            dict(
                condition,
                type="DiskPressure",
                status="False",
                reason="KubeletHasNoDiskPressure",
                message="kubelet has no disk pressure",
            ),
            dict(
                condition,
                type="PIDPressure",
                status="False",
                reason="KubeletHasSufficientPID",
                message="kubelet has sufficient PID available",
            ),
            dict(
                condition,
                type="Ready",
                status="True",
                reason="KubeletReady",
                message="kubelet is posting ready status",
            ),
        ],
        "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        "nodeInfo": {
            "machineID": uuid.uuid5(uuid.NAMESPACE_DNS, name).hex,
            "systemUUID": str(uuid.uuid5(uuid.NAMESPACE_URL, name)),
            "bootID": str(uuid.uuid5(uuid.NAMESPACE_OID, name)),
            "kernelVersion": "6.8.0-rehearsal-sim",
            "osImage": "Debian GNU/Linux 12 (bookworm)",
            "containerRuntimeVersion": "containerd://2.1.1",
            "kubeletVersion": f"v{k8s_version}",
            "kubeProxyVersion": f"v{k8s_version}",
            "operatingSystem": "linux",
            "architecture": "amd64",
        },
        "images": [],
    }
