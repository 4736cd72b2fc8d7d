"""The default scheduler of the simulated cluster: binds pending pods to a node.

A node fits when it is Ready and schedulable, its labels meet the pod's ``nodeSelector`` and required node
affinity, and the pod tolerates its ``NoSchedule``/``NoExecute`` taints; among those, the one with the fewest
pods placed so far. A pod that fits nowhere gets ``PodScheduled=False`` (``Unschedulable``) and a
``FailedScheduling`` event with the scheduler's message. It reads objects, writes pods and emits events
through the narrow callables it is given, not through the cluster.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kubesim.machinery.selectors import match_label_selector_object
from kubesim.store import Store

Obj = dict[str, Any]
PODS = ("", "pods")


class Scheduler:
    def __init__(
        self,
        store: Store,
        mutate: Callable[[tuple[str, str], Obj, Callable[[Obj], Any]], Obj | None],
        event: Callable[..., None],
        now: Callable[[], str],
        pods_on: dict[str, int],
    ) -> None:
        self.store = store
        self.mutate = mutate  # read-modify-write of a stored object
        self.event = event  # record a core/v1 Event
        self.now = now  # the API server's clock, RFC 3339
        self.pods_on = pods_on  # node -> pods placed there (shared with the kubelet, which releases them)

    def schedule(self, pod: Obj) -> None:
        nodes = [n for n in self.store.items(("", "nodes")) if self.fits(pod, n)]
        if not nodes:
            total = len(self.store.items(("", "nodes")))
            message = (
                f"0/{total} nodes are available: {total} node(s) didn't match Pod's node affinity/selector."
            )
            self._unschedulable(pod, message)
            return
        node = min((n["metadata"]["name"] for n in nodes), key=lambda n: (self.pods_on.get(n, 0), n))

        def bind(p: Obj) -> None:
            p["spec"]["nodeName"] = node
            conditions = [c for c in p["status"].get("conditions") or [] if c["type"] != "PodScheduled"]
            conditions.append(
                {
                    "type": "PodScheduled",
                    "status": "True",
                    "lastProbeTime": None,
                    "lastTransitionTime": self.now(),
                }
            )
            p["status"]["conditions"] = conditions

        bound = self.mutate(PODS, pod, bind)
        if bound is not None:
            self.event(
                bound,
                "Normal",
                "Scheduled",
                f"Successfully assigned {pod['metadata']['namespace']}/{pod['metadata']['name']} to {node}",
                "default-scheduler",
            )

    def _unschedulable(self, pod: Obj, message: str) -> None:
        current = [c for c in pod["status"].get("conditions") or [] if c["type"] == "PodScheduled"]
        if current and current[0].get("message") == message:
            return

        def mark(p: Obj) -> None:
            p["status"]["conditions"] = [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "lastProbeTime": None,
                    "lastTransitionTime": self.now(),
                    "reason": "Unschedulable",
                    "message": message,
                }
            ]

        updated = self.mutate(PODS, pod, mark)
        if updated is not None:
            self.event(updated, "Warning", "FailedScheduling", message, "default-scheduler")

    def fits(self, pod: Obj, node: Obj) -> bool:
        if node["spec"].get("unschedulable"):
            return False
        ready = any(
            c["type"] == "Ready" and c["status"] == "True" for c in node["status"].get("conditions") or []
        )
        if not ready:
            return False
        labels = node["metadata"].get("labels") or {}
        for k, v in (pod["spec"].get("nodeSelector") or {}).items():
            if labels.get(k) != v:
                return False
        tolerations = pod["spec"].get("tolerations") or []
        for taint in node["spec"].get("taints") or []:
            if taint.get("effect") not in ("NoSchedule", "NoExecute"):
                continue
            if not any(tolerates(t, taint) for t in tolerations):
                return False
        affinity = ((pod["spec"].get("affinity") or {}).get("nodeAffinity") or {}).get(
            "requiredDuringSchedulingIgnoredDuringExecution"
        )
        if affinity:
            fields = {"metadata.name": node["metadata"]["name"]}
            if not any(
                _node_term_matches(term, labels, fields) for term in affinity.get("nodeSelectorTerms") or []
            ):
                return False
        return True


def tolerates(toleration: Obj, taint: Obj) -> bool:
    if toleration.get("effect") and toleration["effect"] != taint.get("effect"):
        return False
    if toleration.get("operator") == "Exists":
        return not toleration.get("key") or toleration["key"] == taint.get("key")
    return toleration.get("key") == taint.get("key") and toleration.get("value", "") == taint.get("value", "")


def _node_term_matches(term: Obj, labels: dict[str, str], fields: dict[str, str]) -> bool:
    for expr in term.get("matchExpressions") or []:
        if not match_label_selector_object({"matchExpressions": [expr]}, labels):
            return False
    for expr in term.get("matchFields") or []:
        if not match_label_selector_object({"matchExpressions": [expr]}, fields):
            return False
    return True
