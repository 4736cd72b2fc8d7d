"""The default scheduler of the simulated cluster: binds pending pods to a node.

A node fits when it is Ready and schedulable, its labels meet the pod's ``nodeSelector`` and required node
affinity, the pod tolerates its ``NoSchedule``/``NoExecute`` taints, and the pod's requests fit what the
node's ``allocatable`` leaves after the requests of the pods already bound there (kube-scheduler's
NodeResourcesFit filter, kubernetes/kubernetes ``pkg/scheduler/framework/plugins/noderesources/fit.go`` at
v1.33.1: ``Insufficient cpu``, ``Insufficient memory``, ``Too many pods``; a pod's request is the larger of
its containers' sum and its largest init container, ``k8s.io/component-helpers/resource`` PodRequests);
among those, the one with the fewest pods placed so far. A pod that fits nowhere gets ``PodScheduled=False``
(``Unschedulable``) and a ``FailedScheduling`` event with kube-scheduler's message: the reasons counted over
the nodes, sorted (``pkg/scheduler/framework/types.go`` FitError.Error), then what preemption found
(``pkg/scheduler/framework/preemption/preemption.go``: ``preemption: 0/1 nodes are available: 1 No preemption
victims found for incoming pod.``; the simulator has no priorities, so there is never a victim). It reads
objects, writes pods and emits events through the narrow callables it is given, not through the cluster.
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
        all_nodes = self.store.items(("", "nodes"))
        nodes = [n for n in all_nodes if self.fits(pod, n)]
        short: dict[str, list[str]] = {}
        if nodes:
            placed = self._bound_pods()
            for n in nodes:
                missing = insufficient(pod, n, placed.get(n["metadata"]["name"], []))
                if missing:
                    short[n["metadata"]["name"]] = missing
            nodes = [n for n in nodes if n["metadata"]["name"] not in short]
        if not nodes:
            self._unschedulable(pod, fit_error(len(all_nodes), list(short.values())))
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

    def _bound_pods(self) -> dict[str, list[Obj]]:
        """Node -> the pods bound there that still hold their requests (not Succeeded or Failed)."""
        out: dict[str, list[Obj]] = {}
        for p in self.store.items(PODS):
            node = p["spec"].get("nodeName")
            if node and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
                out.setdefault(node, []).append(p)
        return out

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


_SUFFIX = {
    "": 1.0,
    "m": 1e-3,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "Ki": 2.0**10,
    "Mi": 2.0**20,
    "Gi": 2.0**30,
    "Ti": 2.0**40,
}


def quantity(value: Any) -> float:
    """A resource quantity's value (``500m`` = 0.5, ``2Gi``); an unreadable one counts as 0."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    text = str(value or "").strip()
    number = text.rstrip("kKMGTimu")
    try:
        return float(number) * _SUFFIX.get(text[len(number) :], 0.0)
    except ValueError:
        return 0.0


def pod_requests(pod: Obj) -> dict[str, float]:
    """What the pod asks of a node: its containers' requests (sidecar init containers included) summed, or its
    largest plain init container's, whichever is more, per resource (k8s.io/component-helpers/resource
    PodRequests), plus its overhead."""
    spec = pod.get("spec") or {}

    def requests(c: Obj) -> dict[str, float]:
        return {k: quantity(v) for k, v in ((c.get("resources") or {}).get("requests") or {}).items()}

    total: dict[str, float] = {}
    inits = spec.get("initContainers") or []
    for c in list(spec.get("containers") or []) + [i for i in inits if i.get("restartPolicy") == "Always"]:
        for k, v in requests(c).items():
            total[k] = total.get(k, 0.0) + v
    for c in inits:
        if c.get("restartPolicy") == "Always":
            continue
        for k, v in requests(c).items():
            total[k] = max(total.get(k, 0.0), v)
    for k, v in (spec.get("overhead") or {}).items():
        total[k] = total.get(k, 0.0) + quantity(v)
    return total


def insufficient(pod: Obj, node: Obj, bound: list[Obj]) -> list[str]:
    """NodeResourcesFit's reasons ``pod`` does not fit ``node`` with ``bound`` there, or []."""
    allocatable = {k: quantity(v) for k, v in ((node.get("status") or {}).get("allocatable") or {}).items()}
    reasons = []
    if "pods" in allocatable and len(bound) + 1 > allocatable["pods"]:
        reasons.append("Too many pods")
    wanted = pod_requests(pod)
    used: dict[str, float] = {}
    for other in bound:
        for k, v in pod_requests(other).items():
            used[k] = used.get(k, 0.0) + v
    for name in sorted(wanted):
        if wanted[name] <= 0 or name not in allocatable:
            continue
        if wanted[name] > allocatable[name] - used.get(name, 0.0):
            reasons.append(f"Insufficient {name}")
    return reasons


def fit_error(total: int, short: list[list[str]]) -> str:
    """kube-scheduler's FailedScheduling message: each reason with the number of nodes it applies to, sorted;
    nodes that failed other filters (affinity, taints, not ready) under the affinity/selector reason; then
    preemption's answer (resources might be freed by preemption, other filters not)."""
    counts: dict[str, int] = {}
    for reasons in short:
        for reason in reasons:
            counts[reason] = counts.get(reason, 0) + 1
    others = total - len(short)
    if others:
        counts["node(s) didn't match Pod's node affinity/selector"] = others
    text = ", ".join(f"{n} {reason}" for reason, n in sorted(counts.items()))
    message = f"0/{total} nodes are available: {text}."
    if not short:
        return message
    parts = [f"{len(short)} No preemption victims found for incoming pod"]
    if others:
        parts.append(f"{others} Preemption is not helpful for scheduling")
    return message + f" preemption: 0/{total} nodes are available: {', '.join(sorted(parts))}."
