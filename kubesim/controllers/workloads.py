"""Workload controllers: Deployment, ReplicaSet, DaemonSet, StatefulSet and Job.

They follow kube-controller-manager's algorithms closely enough that ``kubectl rollout status`` and
``kubectl wait`` read them as they read a real cluster: a Deployment hashes its pod template into a
``pod-template-hash``, scales its new ReplicaSet up within ``maxSurge`` and the old ones down within
``maxUnavailable`` (so ``maxUnavailable: 0`` never dips below the desired ready count), writes
``observedGeneration``, the replica counters and the ``Available``/``Progressing`` conditions, and gives up
with ``ProgressDeadlineExceeded`` when a rollout stalls. A ``restartedAt`` annotation is just a template
change, so ``kubectl rollout restart`` starts a new rollout here as it does everywhere.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from typing import TYPE_CHECKING, Any

from kubesim.apiserver.api import RequestOptions, controller_of, owner_reference, parse_rfc3339
from kubesim.controllers.manager import Controller, ControllerManager
from kubesim.machinery.errors import ApiError
from kubesim.machinery.selectors import match_label_selector_object
from kubesim.store import WatchEvent, clone

if TYPE_CHECKING:
    from kubesim.cluster import SimCluster

Obj = dict[str, Any]
PODS, RS, DEPLOY = ("", "pods"), ("apps", "replicasets"), ("apps", "deployments")
DS, STS, JOBS = ("apps", "daemonsets"), ("apps", "statefulsets"), ("batch", "jobs")
_SAFE = "bcdfghjklmnpqrstvwxz2456789"


def template_hash(template: Obj, collisions: int = 0) -> str:
    """A stable, DNS-safe hash of a pod template (like controller.ComputeHash)."""
    body = clone(template)
    (body.get("metadata") or {}).get("labels", {}).pop("pod-template-hash", None)
    digest = hashlib.sha256((json.dumps(body, sort_keys=True) + str(collisions)).encode()).digest()
    return "".join(_SAFE[b % len(_SAFE)] for b in digest[:10])


def _int_or_percent(value: Any, total: int, round_up: bool) -> int:
    if isinstance(value, str) and value.endswith("%"):
        exact = int(value[:-1]) * total / 100
        return math.ceil(exact) if round_up else math.floor(exact)
    return int(value or 0)


def pod_ready(pod: Obj) -> bool:
    return any(
        c["type"] == "Ready" and c["status"] == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


def pod_available(pod: Obj, min_ready: int, now: float) -> bool:
    if not pod_ready(pod):
        return False
    if min_ready <= 0:
        return True
    since = next(c["lastTransitionTime"] for c in pod["status"]["conditions"] if c["type"] == "Ready")
    return now - parse_rfc3339(since) >= min_ready


def _active(pod: Obj) -> bool:
    return not pod["metadata"].get("deletionTimestamp") and pod["status"].get("phase") not in (
        "Succeeded",
        "Failed",
    )


class OwnedController(Controller):
    """A controller that also reconciles the owner when an owned object changes."""

    owned: tuple[str, str] = PODS
    owner_kind = ""

    def __init__(self, manager: ControllerManager, cluster: SimCluster) -> None:
        super().__init__(manager)
        self.cluster = cluster
        self.api = cluster.api
        self.store = cluster.store

    def on_event(self, event: WatchEvent) -> None:
        if event.gr == self.owned:
            ref = controller_of(event.obj)
            if ref and ref.get("kind") == self.owner_kind:
                self.enqueue((event.namespace, ref["name"]))
            return
        self.enqueue((event.namespace, event.name))

    def resync(self) -> None:
        for gr in self.watches:
            if gr != self.owned:
                for obj in self.store.items(gr):
                    self.enqueue((obj["metadata"].get("namespace", ""), obj["metadata"]["name"]))

    def children(self, owner: Obj, gr: tuple[str, str]) -> list[Obj]:
        uid = owner["metadata"]["uid"]
        return [
            o
            for o in self.store.items(gr, owner["metadata"]["namespace"])
            if (controller_of(o) or {}).get("uid") == uid
        ]

    def create_pod(
        self,
        owner: Obj,
        template: Obj,
        name: str | None = None,
        extra_labels: dict | None = None,
        node: str | None = None,
    ) -> Obj | None:
        meta = clone(template.get("metadata") or {})
        meta["labels"] = dict(meta.get("labels") or {}, **(extra_labels or {}))
        if name:
            meta["name"] = name
        else:
            meta["generateName"] = owner["metadata"]["name"] + "-"
        meta["namespace"] = owner["metadata"]["namespace"]
        meta["ownerReferences"] = [owner_reference(owner)]
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": clone(template.get("spec") or {})}
        if node:
            pod["spec"]["affinity"] = dict(
                pod["spec"].get("affinity") or {},
                nodeAffinity={
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [
                            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}
                        ]
                    }
                },
            )
        try:
            created = self.api.create(
                self.api.type_of(*PODS),
                pod,
                owner["metadata"]["namespace"],
                RequestOptions(manager="kube-controller-manager"),
            )
        except ApiError as exc:
            self.cluster.event(
                owner, "Warning", "FailedCreate", f"Error creating: {exc.message}", self.component
            )
            key = (owner["metadata"]["namespace"], owner["metadata"]["name"])
            self.manager.after(5.0, lambda: self.enqueue(key), repeat=True)
            return None
        self.cluster.event(
            owner, "Normal", "SuccessfulCreate", f"Created pod: {created['metadata']['name']}", self.component
        )
        return created

    def delete_pod(self, owner: Obj, pod: Obj) -> None:
        try:
            self.api.delete(
                self.api.type_of(*PODS),
                pod["metadata"]["namespace"],
                pod["metadata"]["name"],
                RequestOptions(internal=True),
            )
        except ApiError:
            return
        self.cluster.event(
            owner, "Normal", "SuccessfulDelete", f"Deleted pod: {pod['metadata']['name']}", self.component
        )

    component = "controller-manager"


class ReplicaSetController(OwnedController):
    name = "replicaset"
    watches = (RS, PODS)
    owner_kind = "ReplicaSet"
    component = "replicaset-controller"

    def reconcile(self, key: tuple[str, str]) -> None:
        rs = self.store.get(RS, *key)
        if rs is None or rs["metadata"].get("deletionTimestamp"):
            return
        pods = self.children(rs, PODS)
        active = [p for p in pods if _active(p)]
        want = rs["spec"].get("replicas", 1)
        if len(active) < want:
            for _ in range(want - len(active)):
                if self.create_pod(rs, rs["spec"]["template"]) is None:
                    break
        elif len(active) > want:
            # Delete the least useful pods first: unscheduled, not ready, then the youngest.
            ranked = sorted(
                active,
                key=lambda p: (
                    bool(p["spec"].get("nodeName")),
                    pod_ready(p),
                    -parse_rfc3339(p["metadata"]["creationTimestamp"]),
                ),
            )
            for pod in ranked[: len(active) - want]:
                self.delete_pod(rs, pod)
        pods = [p for p in self.children(rs, PODS) if _active(p)]
        now = self.api.clock.now()
        min_ready = rs["spec"].get("minReadySeconds", 0)
        labels_sel = rs["spec"].get("selector")
        status = {
            "replicas": len(pods),
            "fullyLabeledReplicas": sum(
                1 for p in pods if match_label_selector_object(labels_sel, p["metadata"].get("labels") or {})
            ),
            "readyReplicas": sum(1 for p in pods if pod_ready(p)),
            "availableReplicas": sum(1 for p in pods if pod_available(p, min_ready, now)),
            "observedGeneration": rs["metadata"].get("generation", 1),
        }
        status["terminatingReplicas"] = sum(
            1 for p in self.children(rs, PODS) if p["metadata"].get("deletionTimestamp")
        )
        # ReplicaSetStatus (k8s.io/api/apps/v1 types.go, v1.36): these counts are omitempty, so a zero is
        # absent; replicas is always written, terminatingReplicas is a pointer (a zero is present).
        for count in ("fullyLabeledReplicas", "readyReplicas", "availableReplicas"):
            if status[count] == 0:
                status.pop(count)
        if min_ready > 0 and status.get("readyReplicas", 0) > status.get("availableReplicas", 0):
            self.manager.after(min_ready, lambda: self.enqueue(key))
        self.cluster.set_status(RS, rs, status)


class DeploymentController(OwnedController):
    name = "deployment"
    watches = (DEPLOY, RS)
    owned = RS
    owner_kind = "Deployment"
    component = "deployment-controller"

    def reconcile(self, key: tuple[str, str]) -> None:
        deploy = self.store.get(DEPLOY, *key)
        if deploy is None or deploy["metadata"].get("deletionTimestamp"):
            return
        spec = deploy["spec"]
        replicas = spec.get("replicas", 1)
        rss = sorted(
            self.children(deploy, RS), key=lambda r: parse_rfc3339(r["metadata"]["creationTimestamp"])
        )
        collisions = (deploy.get("status") or {}).get("collisionCount", 0)
        template = clone(spec["template"])
        digest = template_hash(template, collisions)
        new_rs = next(
            (r for r in rss if (r["metadata"].get("labels") or {}).get("pod-template-hash") == digest), None
        )
        old_rss = [r for r in rss if r is not new_rs]
        revision = max(
            [
                int((r["metadata"].get("annotations") or {}).get("deployment.kubernetes.io/revision", 0))
                for r in rss
            ]
            + [0]
        )
        created_new = False
        if spec.get("paused"):
            self._status(deploy, new_rs, rss, created_new=False)
            return
        if new_rs is None:
            new_rs = self._create_rs(deploy, template, digest, revision + 1, old_rss, replicas)
            if new_rs is None:
                return
            created_new = True
            rss = rss + [new_rs]
        elif (new_rs["metadata"].get("annotations") or {}).get("deployment.kubernetes.io/revision") != str(
            revision
        ) and old_rss:
            # Rolling back to an older template makes its ReplicaSet the newest revision again.
            self._annotate(new_rs, revision + 1, deploy)
            new_rs = self.store.get(RS, key[0], new_rs["metadata"]["name"]) or new_rs
        deploy = self._set_revision(deploy, new_rs)
        if (spec.get("strategy") or {}).get("type") == "Recreate":
            self._recreate(deploy, new_rs, old_rss, replicas)
        else:
            self._rolling(deploy, new_rs, old_rss, replicas)
        self._cleanup(deploy, old_rss)
        self._status(
            deploy,
            self.store.get(RS, *key[:1], new_rs["metadata"]["name"]) or new_rs,
            self.children(deploy, RS),
            created_new,
        )

    def _create_rs(
        self, deploy: Obj, template: Obj, digest: str, revision: int, old_rss: list[Obj], replicas: int
    ) -> Obj | None:
        template.setdefault("metadata", {}).setdefault("labels", {})["pod-template-hash"] = digest
        selector = clone(deploy["spec"]["selector"])
        selector.setdefault("matchLabels", {})["pod-template-hash"] = digest
        surge = self._surge(deploy, replicas)
        start = replicas if not old_rss else 0
        if (deploy["spec"].get("strategy") or {}).get("type") != "Recreate" and old_rss:
            total = sum(r["spec"].get("replicas", 0) for r in old_rss)
            start = max(0, min(replicas, replicas + surge - total))
        rs = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": f"{deploy['metadata']['name']}-{digest}",
                "namespace": deploy["metadata"]["namespace"],
                "labels": dict(template["metadata"]["labels"]),
                "annotations": {
                    "deployment.kubernetes.io/desired-replicas": str(replicas),
                    "deployment.kubernetes.io/max-replicas": str(replicas + surge),
                    "deployment.kubernetes.io/revision": str(revision),
                },
                "ownerReferences": [owner_reference(deploy)],
            },
            "spec": {
                "replicas": start,
                "minReadySeconds": deploy["spec"].get("minReadySeconds", 0),
                "selector": selector,
                "template": template,
            },
        }
        try:
            created = self.api.create(
                self.api.type_of(*RS),
                rs,
                deploy["metadata"]["namespace"],
                RequestOptions(manager="kube-controller-manager"),
            )
        except ApiError as exc:
            if exc.code == 409:
                self.cluster.set_status(
                    DEPLOY,
                    deploy,
                    dict(
                        deploy.get("status") or {},
                        collisionCount=((deploy.get("status") or {}).get("collisionCount", 0) + 1),
                    ),
                )
            return None
        if start:
            self._scaled_event(deploy, created, 0, start)
        return created

    def _set_revision(self, deploy: Obj, new_rs: Obj) -> Obj:
        """The Deployment carries its new ReplicaSet's ``deployment.kubernetes.io/revision``, as
        SetDeploymentRevision does (kubernetes pkg/controller/deployment/util); ``kubectl rollout undo``
        replaces that annotation in its JSON patch, so it must exist."""
        revision = (new_rs["metadata"].get("annotations") or {}).get("deployment.kubernetes.io/revision")
        annotations = deploy["metadata"].get("annotations") or {}
        if not revision or annotations.get("deployment.kubernetes.io/revision") == revision:
            return deploy
        updated = self.cluster.mutate(
            DEPLOY,
            deploy,
            lambda d: (
                d["metadata"]
                .setdefault("annotations", {})
                .update({"deployment.kubernetes.io/revision": revision})
            ),
        )
        return updated or deploy

    def _annotate(self, rs: Obj, revision: int, deploy: Obj) -> None:
        self.cluster.mutate(
            RS,
            rs,
            lambda r: (
                r["metadata"]
                .setdefault("annotations", {})
                .update({"deployment.kubernetes.io/revision": str(revision)})
            ),
        )

    def _surge(self, deploy: Obj, replicas: int) -> int:
        rolling = (deploy["spec"].get("strategy") or {}).get("rollingUpdate") or {}
        surge = _int_or_percent(rolling.get("maxSurge", "25%"), replicas, True)
        unavailable = _int_or_percent(rolling.get("maxUnavailable", "25%"), replicas, False)
        return 1 if surge == 0 and unavailable == 0 else surge

    def _max_unavailable(self, deploy: Obj, replicas: int) -> int:
        rolling = (deploy["spec"].get("strategy") or {}).get("rollingUpdate") or {}
        surge = _int_or_percent(rolling.get("maxSurge", "25%"), replicas, True)
        unavailable = _int_or_percent(rolling.get("maxUnavailable", "25%"), replicas, False)
        if surge == 0 and unavailable == 0:
            return 1
        return min(unavailable, replicas)

    def _scale(self, deploy: Obj, rs: Obj, replicas: int) -> Obj:
        before = rs["spec"].get("replicas", 0)
        if before == replicas:
            return rs

        def set_replicas(r: Obj) -> None:
            r["spec"]["replicas"] = replicas
            r["metadata"].setdefault("annotations", {})["deployment.kubernetes.io/desired-replicas"] = str(
                deploy["spec"].get("replicas", 1)
            )
            r["metadata"]["generation"] = r["metadata"].get("generation", 1) + 1

        updated = self.cluster.mutate(RS, rs, set_replicas)
        if updated is not None:
            self._scaled_event(deploy, updated, before, replicas)
            return updated
        return rs

    def _scaled_event(self, deploy: Obj, rs: Obj, before: int, after: int) -> None:
        direction = "up" if after > before else "down"
        self.cluster.event(
            deploy,
            "Normal",
            "ScalingReplicaSet",
            f"Scaled {direction} replica set {rs['metadata']['name']} from {before} to {after}",
            self.component,
        )

    def _rolling(self, deploy: Obj, new_rs: Obj, old_rss: list[Obj], replicas: int) -> None:
        surge = self._surge(deploy, replicas)
        max_unavailable = self._max_unavailable(deploy, replicas)
        all_rss = [new_rs] + old_rss
        # Scale up the new ReplicaSet within maxSurge.
        current_total = sum(r["spec"].get("replicas", 0) for r in all_rss)
        new_replicas = new_rs["spec"].get("replicas", 0)
        if new_replicas > replicas:
            new_rs = self._scale(deploy, new_rs, replicas)
        elif new_replicas < replicas and current_total < replicas + surge:
            step = min(replicas + surge - current_total, replicas - new_replicas)
            new_rs = self._scale(deploy, new_rs, new_replicas + step)
        # Scale down old ReplicaSets within maxUnavailable.
        all_rss = [new_rs] + old_rss
        total = sum(r["spec"].get("replicas", 0) for r in all_rss)
        min_available = replicas - max_unavailable
        new_status = new_rs.get("status") or {}
        new_unavailable = new_rs["spec"].get("replicas", 0) - new_status.get("availableReplicas", 0)
        budget = total - min_available - new_unavailable
        if budget <= 0:
            return
        cleaned = 0
        for rs in old_rss:  # first, old pods that are not even available
            if cleaned >= budget:
                break
            spec_replicas = rs["spec"].get("replicas", 0)
            unhealthy = spec_replicas - (rs.get("status") or {}).get("availableReplicas", 0)
            if spec_replicas == 0 or unhealthy <= 0:
                continue
            cut = min(unhealthy, budget - cleaned)
            self._scale(deploy, rs, spec_replicas - cut)
            cleaned += cut
        old_rss = [
            self.store.get(RS, r["metadata"]["namespace"], r["metadata"]["name"]) or r for r in old_rss
        ]
        available = sum((r.get("status") or {}).get("availableReplicas", 0) for r in [new_rs] + old_rss)
        available = min(available, sum(r["spec"].get("replicas", 0) for r in [new_rs] + old_rss))
        if available <= min_available:
            return
        remaining = available - min_available
        for rs in old_rss:
            if remaining <= 0:
                break
            spec_replicas = rs["spec"].get("replicas", 0)
            cut = min(spec_replicas, remaining)
            if cut:
                self._scale(deploy, rs, spec_replicas - cut)
                remaining -= cut

    def _recreate(self, deploy: Obj, new_rs: Obj, old_rss: list[Obj], replicas: int) -> None:
        for rs in old_rss:
            self._scale(deploy, rs, 0)
        if any(self.children(rs, PODS) for rs in old_rss):
            return
        self._scale(deploy, new_rs, replicas)

    def _cleanup(self, deploy: Obj, old_rss: list[Obj]) -> None:
        limit = deploy["spec"].get("revisionHistoryLimit", 10)
        idle = [
            r
            for r in old_rss
            if r["spec"].get("replicas", 0) == 0 and not (r.get("status") or {}).get("replicas")
        ]
        for rs in idle[: max(0, len(idle) - limit)]:
            try:
                self.api.delete(
                    self.api.type_of(*RS),
                    rs["metadata"]["namespace"],
                    rs["metadata"]["name"],
                    RequestOptions(internal=True),
                )
            except ApiError:
                pass

    def _status(self, deploy: Obj, new_rs: Obj | None, rss: list[Obj], created_new: bool) -> None:
        spec = deploy["spec"]
        replicas = spec.get("replicas", 1)
        statuses = [r.get("status") or {} for r in rss]
        available = sum(s.get("availableReplicas", 0) for s in statuses)
        updated = (new_rs.get("status") or {}).get("replicas", 0) if new_rs else 0
        total = sum(s.get("replicas", 0) for s in statuses)
        status: Obj = {
            "observedGeneration": deploy["metadata"].get("generation", 1),
            "replicas": total,
            "updatedReplicas": updated,
            "readyReplicas": sum(s.get("readyReplicas", 0) for s in statuses),
            "availableReplicas": available,
            "unavailableReplicas": max(0, replicas - available),
        }
        # A pointer in DeploymentStatus (v1.36, DeploymentReplicaSetTerminatingReplicas on by default): the
        # controller writes it, zero included (pkg/controller/deployment/sync.go calculateStatus).
        status["terminatingReplicas"] = sum(s.get("terminatingReplicas", 0) for s in statuses)
        old = deploy.get("status") or {}
        if old.get("collisionCount"):
            status["collisionCount"] = old["collisionCount"]
        for key in (
            "readyReplicas",
            "availableReplicas",
            "unavailableReplicas",
            "updatedReplicas",
            "replicas",
        ):
            if status.get(key) == 0:
                status.pop(key)
        now = self.api.now()
        conditions = {c["type"]: c for c in old.get("conditions") or []}
        max_unavailable = (
            self._max_unavailable(deploy, replicas)
            if (spec.get("strategy") or {}).get("type") != "Recreate"
            else replicas
        )
        is_available = available >= replicas - max_unavailable
        conditions["Available"] = _condition(
            "Available",
            conditions.get("Available"),
            "True" if is_available else "False",
            "MinimumReplicasAvailable" if is_available else "MinimumReplicasUnavailable",
            "Deployment has minimum availability."
            if is_available
            else "Deployment does not have minimum availability.",
            now,
        )
        rs_name = new_rs["metadata"]["name"] if new_rs else ""
        complete = (
            new_rs is not None
            and updated == replicas
            and total == replicas
            and available >= replicas
            and (new_rs.get("status") or {}).get("observedGeneration", 0)
            >= new_rs["metadata"].get("generation", 1)
        )
        progressing = conditions.get("Progressing")
        if spec.get("paused"):
            conditions["Progressing"] = _condition(
                "Progressing", progressing, "Unknown", "DeploymentPaused", "Deployment is paused", now
            )
        elif complete:
            conditions["Progressing"] = _condition(
                "Progressing",
                progressing,
                "True",
                "NewReplicaSetAvailable",
                f'ReplicaSet "{rs_name}" has successfully progressed.',
                now,
            )
        elif created_new:
            conditions["Progressing"] = _condition(
                "Progressing",
                progressing,
                "True",
                "NewReplicaSetCreated",
                f'Created new replica set "{rs_name}"',
                now,
                force_update=True,
            )
        else:
            old_counts = (
                old.get("updatedReplicas", 0),
                old.get("availableReplicas", 0),
                old.get("readyReplicas", 0),
                old.get("replicas", 0),
            )
            new_counts = (
                status.get("updatedReplicas", 0),
                status.get("availableReplicas", 0),
                status.get("readyReplicas", 0),
                status.get("replicas", 0),
            )
            deadline = spec.get("progressDeadlineSeconds", 600)
            last = parse_rfc3339(progressing["lastUpdateTime"]) if progressing else self.api.clock.now()
            if (
                new_counts != old_counts
                or progressing is None
                or progressing.get("reason") == "NewReplicaSetAvailable"
            ):
                conditions["Progressing"] = _condition(
                    "Progressing",
                    progressing,
                    "True",
                    "ReplicaSetUpdated",
                    f'ReplicaSet "{rs_name}" is progressing.',
                    now,
                    force_update=True,
                )
                self.manager.after(
                    deadline + 1,
                    functools.partial(
                        self.enqueue, (deploy["metadata"]["namespace"], deploy["metadata"]["name"])
                    ),
                    repeat=True,
                )
            elif (
                self.api.clock.now() - last >= deadline
                and progressing.get("reason") != "ProgressDeadlineExceeded"
            ):
                conditions["Progressing"] = _condition(
                    "Progressing",
                    progressing,
                    "False",
                    "ProgressDeadlineExceeded",
                    f'ReplicaSet "{rs_name}" has timed out progressing.',
                    now,
                )
                self.cluster.event(
                    deploy,
                    "Warning",
                    "ProgressDeadlineExceeded",
                    f'Deployment "{deploy["metadata"]["name"]}" has timed out progressing.',
                    self.component,
                )
        status["conditions"] = [conditions[k] for k in ("Available", "Progressing") if k in conditions]
        self.cluster.set_status(DEPLOY, deploy, status)


def _condition(
    kind: str, old: Obj | None, status: str, reason: str, message: str, now: str, force_update: bool = False
) -> Obj:
    if old and old.get("status") == status and old.get("reason") == reason and not force_update:
        return dict(old, message=message)
    transition = old["lastTransitionTime"] if old and old.get("status") == status else now
    return {
        "type": kind,
        "status": status,
        "lastUpdateTime": now,
        "lastTransitionTime": transition,
        "reason": reason,
        "message": message,
    }


class DaemonSetController(OwnedController):
    name = "daemonset"
    watches = (DS, PODS, ("", "nodes"))
    owner_kind = "DaemonSet"
    component = "daemonset-controller"

    def on_event(self, event: WatchEvent) -> None:
        if event.gr == ("", "nodes"):
            for ds in self.store.items(DS):
                self.enqueue((ds["metadata"]["namespace"], ds["metadata"]["name"]))
            return
        super().on_event(event)

    def reconcile(self, key: tuple[str, str]) -> None:
        ds = self.store.get(DS, *key)
        if ds is None or ds["metadata"].get("deletionTimestamp"):
            return
        template = ds["spec"]["template"]
        digest = template_hash(template)[:10]
        nodes = [n for n in self.store.items(("", "nodes")) if self._eligible(template, n)]
        pods = self.children(ds, PODS)
        by_node: dict[str, list[Obj]] = {}
        for pod in pods:
            by_node.setdefault(_pinned_node(pod), []).append(pod)
        rolling = ds["spec"].get("updateStrategy") or {}
        max_unavailable = (
            _int_or_percent(
                ((rolling.get("rollingUpdate") or {}).get("maxUnavailable", 1)), len(nodes), False
            )
            or 1
        )
        unavailable = sum(
            1
            for n in nodes
            if not any(pod_ready(p) and _active(p) for p in by_node.get(n["metadata"]["name"], []))
        )
        for node in nodes:
            name = node["metadata"]["name"]
            current = [p for p in by_node.get(name, []) if _active(p)]
            if not current and not any(p["metadata"].get("deletionTimestamp") for p in by_node.get(name, [])):
                self.create_pod(
                    ds,
                    template,
                    extra_labels={
                        "controller-revision-hash": digest,
                        "pod-template-generation": str(ds["metadata"].get("generation", 1)),
                    },
                    node=name,
                )
                continue
            outdated = [
                p
                for p in current
                if (p["metadata"].get("labels") or {}).get("controller-revision-hash") != digest
            ]
            if outdated and rolling.get("type", "RollingUpdate") == "RollingUpdate":
                if not all(pod_ready(p) for p in current):
                    continue  # already counted as unavailable; replace it when budget allows below
                if unavailable < max_unavailable:
                    for pod in outdated:
                        self.delete_pod(ds, pod)
                    unavailable += 1
        for node_name, node_pods in by_node.items():
            if node_name not in {n["metadata"]["name"] for n in nodes}:
                for pod in node_pods:
                    if _active(pod):
                        self.delete_pod(ds, pod)
        # Outdated pods that are not ready are replaced without waiting.
        for pod in pods:
            if (
                _active(pod)
                and not pod_ready(pod)
                and (pod["metadata"].get("labels") or {}).get("controller-revision-hash") != digest
            ):
                self.delete_pod(ds, pod)
        pods = [p for p in self.children(ds, PODS) if _active(p)]
        node_names = {n["metadata"]["name"] for n in nodes}
        scheduled = {_pinned_node(p) for p in pods} & node_names
        status = {
            "desiredNumberScheduled": len(nodes),
            "currentNumberScheduled": len(scheduled),
            "numberMisscheduled": 0,
            "numberReady": sum(1 for p in pods if pod_ready(p)),
            "updatedNumberScheduled": sum(
                1
                for p in pods
                if (p["metadata"].get("labels") or {}).get("controller-revision-hash") == digest
            ),
            "numberAvailable": sum(1 for p in pods if pod_ready(p)),
            "observedGeneration": ds["metadata"].get("generation", 1),
        }
        status["numberUnavailable"] = max(0, len(nodes) - status["numberAvailable"])
        for k in ("numberAvailable", "numberUnavailable", "updatedNumberScheduled"):
            if status[k] == 0:
                status.pop(k)
        self.cluster.set_status(DS, ds, status)

    def _eligible(self, template: Obj, node: Obj) -> bool:
        labels = node["metadata"].get("labels") or {}
        for k, v in (template["spec"].get("nodeSelector") or {}).items():
            if labels.get(k) != v:
                return False
        tolerations = template["spec"].get("tolerations") or []
        from kubesim.node.scheduler import tolerates as _tolerates

        for taint in node["spec"].get("taints") or []:
            if taint.get("effect") == "NoSchedule" and not any(_tolerates(t, taint) for t in tolerations):
                return False
        return True


def _pinned_node(pod: Obj) -> str:
    if pod["spec"].get("nodeName"):
        return str(pod["spec"]["nodeName"])
    terms = (
        ((pod["spec"].get("affinity") or {}).get("nodeAffinity") or {}).get(
            "requiredDuringSchedulingIgnoredDuringExecution"
        )
        or {}
    ).get("nodeSelectorTerms") or []
    for term in terms:
        for expr in term.get("matchFields") or []:
            if expr.get("key") == "metadata.name" and expr.get("values"):
                return str(expr["values"][0])
    return ""


class StatefulSetController(OwnedController):
    name = "statefulset"
    watches = (STS, PODS)
    owner_kind = "StatefulSet"
    component = "statefulset-controller"

    def reconcile(self, key: tuple[str, str]) -> None:
        sts = self.store.get(STS, *key)
        if sts is None or sts["metadata"].get("deletionTimestamp"):
            return
        name = sts["metadata"]["name"]
        replicas = sts["spec"].get("replicas", 1)
        revision = f"{name}-{template_hash(sts['spec']['template'])[:10]}"
        pods = {p["metadata"]["name"]: p for p in self.children(sts, PODS)}
        ordered = sts["spec"].get("podManagementPolicy", "OrderedReady") == "OrderedReady"
        for ordinal in range(replicas):
            pod_name = f"{name}-{ordinal}"
            pod = pods.get(pod_name)
            if pod is None:
                self.create_pod(
                    sts,
                    sts["spec"]["template"],
                    name=pod_name,
                    extra_labels={
                        "statefulset.kubernetes.io/pod-name": pod_name,
                        "apps.kubernetes.io/pod-index": str(ordinal),
                        "controller-revision-hash": revision,
                    },
                )
                if ordered:
                    break
                continue
            if ordered and (not pod_ready(pod) or pod["metadata"].get("deletionTimestamp")):
                break
        for pod_name, pod in pods.items():
            ordinal = int(pod_name.rsplit("-", 1)[1]) if pod_name.rsplit("-", 1)[1].isdigit() else -1
            if ordinal >= replicas and _active(pod):
                self.delete_pod(sts, pod)
        # Rolling update: highest ordinal first, one at a time, only when every pod is ready.
        partition = ((sts["spec"].get("updateStrategy") or {}).get("rollingUpdate") or {}).get("partition", 0)
        if (sts["spec"].get("updateStrategy") or {}).get("type", "RollingUpdate") == "RollingUpdate":
            current = [pods.get(f"{name}-{i}") for i in range(replicas)]
            if all(p is not None and pod_ready(p) and _active(p) for p in current):
                for ordinal in reversed(range(partition, replicas)):
                    pod = current[ordinal]
                    assert pod is not None
                    if (pod["metadata"].get("labels") or {}).get("controller-revision-hash") != revision:
                        self.delete_pod(sts, pod)
                        break
        pods_now = [p for p in self.children(sts, PODS) if _active(p)]
        updated = sum(
            1
            for p in pods_now
            if (p["metadata"].get("labels") or {}).get("controller-revision-hash") == revision
        )
        old = sts.get("status") or {}
        status = {
            "observedGeneration": sts["metadata"].get("generation", 1),
            "replicas": len(pods_now),
            "readyReplicas": sum(1 for p in pods_now if pod_ready(p)),
            "availableReplicas": sum(1 for p in pods_now if pod_ready(p)),
            "updatedReplicas": updated,
            "currentReplicas": updated if updated == len(pods_now) else len(pods_now) - updated,
            "currentRevision": revision
            if updated == len(pods_now) == replicas
            else old.get("currentRevision", revision),
            "updateRevision": revision,
            "collisionCount": 0,
        }
        self.cluster.set_status(STS, sts, status)


class JobController(OwnedController):
    name = "job"
    watches = (JOBS, PODS)
    owner_kind = "Job"
    component = "job-controller"

    def reconcile(self, key: tuple[str, str]) -> None:
        job = self.store.get(JOBS, *key)
        if job is None or job["metadata"].get("deletionTimestamp"):
            return
        spec = job["spec"]
        status = dict(job.get("status") or {})
        if any(
            c["type"] in ("Complete", "Failed") and c["status"] == "True"
            for c in status.get("conditions") or []
        ):
            return
        pods = self.children(job, PODS)
        succeeded = sum(1 for p in pods if p["status"].get("phase") == "Succeeded")
        failed = sum(1 for p in pods if p["status"].get("phase") == "Failed")
        active = [p for p in pods if _active(p)]
        completions = spec.get("completions", 1)
        now = self.api.now()
        status.setdefault("startTime", now)
        if spec.get("suspend"):
            for pod in active:
                self.delete_pod(job, pod)
        elif failed > spec.get("backoffLimit", 6):
            for pod in active:
                self.delete_pod(job, pod)
            status["conditions"] = [
                {
                    "type": "FailureTarget",
                    "status": "True",
                    "reason": "BackoffLimitExceeded",
                    "message": "Job has reached the specified backoff limit",
                    "lastProbeTime": now,
                    "lastTransitionTime": now,
                },
                {
                    "type": "Failed",
                    "status": "True",
                    "reason": "BackoffLimitExceeded",
                    "message": "Job has reached the specified backoff limit",
                    "lastProbeTime": now,
                    "lastTransitionTime": now,
                },
            ]
            self.cluster.event(
                job,
                "Warning",
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit",
                self.component,
            )
        elif succeeded >= completions:
            status["completionTime"] = now
            status["conditions"] = [
                {
                    "type": "SuccessCriteriaMet",
                    "status": "True",
                    "reason": "CompletionsReached",
                    "message": "Reached expected number of succeeded pods",
                    "lastProbeTime": now,
                    "lastTransitionTime": now,
                },
                {
                    "type": "Complete",
                    "status": "True",
                    "reason": "CompletionsReached",
                    "message": "Reached expected number of succeeded pods",
                    "lastProbeTime": now,
                    "lastTransitionTime": now,
                },
            ]
            self.cluster.event(job, "Normal", "Completed", "Job completed", self.component)
        else:
            want = min(spec.get("parallelism", 1), completions - succeeded) - len(active)
            for _ in range(max(0, want)):
                if self.create_pod(job, spec["template"]) is None:
                    break
        active = [p for p in self.children(job, PODS) if _active(p)]
        status.update(
            {
                "active": len(active),
                "succeeded": succeeded,
                "failed": failed,
                "ready": sum(1 for p in active if pod_ready(p)),
                "terminating": 0,
                "uncountedTerminatedPods": {},
            }
        )
        for k in ("active", "succeeded", "failed"):
            if status[k] == 0:
                status.pop(k)
        self.cluster.set_status(JOBS, job, status)
