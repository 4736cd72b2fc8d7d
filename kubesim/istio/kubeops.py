"""What the emulated istioctl does to a cluster, written from istioctl's own code rather than shared with the
harness: if the harness's idea of "rolled out" were wrong, the emulator must not be wrong the same way.

- Applying: istioctl applies every rendered object with server-side apply under the field manager
  ``istio-operator``, forcing conflicts (istio/istio 1.24+ ``operator/pkg/install/install.go``; before 1.24
  ``operator/pkg/helmreconciler/apply.go``).
- Waiting: ``operator/pkg/install/wait.go`` (``WaitForResources``) polls until every Deployment has as many
  ready replicas as it wants (counted on its newest ReplicaSet, which status.updatedReplicas and
  status.readyReplicas mirror) and every DaemonSet has ``numberReady`` and ``updatedNumberScheduled`` equal to
  ``desiredNumberScheduled``. It polls (istioctl uses ``wait.PollUntilContextTimeout``, every 2 s); here a
  watch delivers the same states without the interval.
"""

from __future__ import annotations

import time
from typing import Any

from kubernetes import dynamic, watch
from kubernetes.client.exceptions import ApiException

FIELD_MANAGER = "istio-operator"


class NotReady(Exception):
    """A workload was not ready before the deadline; the message says how far it got."""


def apply(client: dynamic.DynamicClient, obj: dict[str, Any], field_manager: str = FIELD_MANAGER) -> None:
    resource = client.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
    resource.server_side_apply(
        body=obj,
        name=obj["metadata"]["name"],
        namespace=obj["metadata"].get("namespace"),
        field_manager=field_manager,
        force_conflicts=True,
    )


def workload_ready(obj: dict[str, Any]) -> bool:
    """istioctl's readiness rule for the Deployments and DaemonSets it installs."""
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    if status.get("observedGeneration", 0) < obj["metadata"].get("generation", 1):
        return False
    if obj["kind"] == "Deployment":
        want = spec.get("replicas", 1)
        return status.get("updatedReplicas", 0) >= want and status.get("readyReplicas", 0) >= want
    if obj["kind"] == "DaemonSet":
        desired = status.get("desiredNumberScheduled", 0)
        return status.get("numberReady", 0) >= desired and status.get("updatedNumberScheduled", 0) >= desired
    return True


def describe(obj: dict[str, Any]) -> str:
    status = obj.get("status") or {}
    if obj["kind"] == "DaemonSet":
        return f"{status.get('numberReady', 0)}/{status.get('desiredNumberScheduled', 0)} ready"
    return f"{status.get('readyReplicas', 0)}/{(obj.get('spec') or {}).get('replicas', 1)} ready"


def wait_ready(client: dynamic.DynamicClient, kind: str, name: str, namespace: str, timeout: float) -> None:
    resource = client.resources.get(api_version="apps/v1", kind=kind)
    deadline = time.monotonic() + timeout
    obj = resource.get(name=name, namespace=namespace).to_dict()
    since = obj["metadata"]["resourceVersion"]
    while not workload_ready(obj):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise NotReady(
                f"{kind}/{namespace}/{name} (container failed to start or is not ready: {describe(obj)})"
            )
        watcher = watch.Watch()
        try:
            for event in client.watch(
                resource,
                namespace=namespace,
                name=name,
                resource_version=since,
                timeout=max(1, int(remaining)),
                watcher=watcher,
            ):
                obj = event["raw_object"]
                since = obj["metadata"]["resourceVersion"]
                if workload_ready(obj):
                    watcher.stop()
                    break
        except ApiException as exc:
            if exc.status != 410:
                raise
            # Too old to watch from (the watch cache no longer holds it): relist, as client-go's reflector
            # does, and watch from the list's resourceVersion, which is current.
            listed = resource.get(namespace=namespace, field_selector=f"metadata.name={name}")
            obj = resource.get(name=name, namespace=namespace).to_dict()
            since = listed.metadata.resourceVersion
