"""The cluster-level controllers: endpoints, garbage collection, namespaces, service accounts, CRDs,
HorizontalPodAutoscalers, PodDisruptionBudgets and node leases.

Each does the part of kube-controller-manager (or kube-apiserver's own controllers) that an upgrade
rehearsal can observe: Endpoints and EndpointSlices that follow pod readiness (terminating pods leave the
ready set at once, as they drain), owner-reference garbage collection in the background, foreground and
orphan modes, namespace deletion that empties the namespace before the namespace goes, the ``default``
ServiceAccount and ``kube-root-ca.crt`` in every namespace, CRDs that become ``Established``, HPAs that
hold their target within min/max, and PDB status.
"""

from __future__ import annotations

import hashlib
from datetime import UTC
from typing import TYPE_CHECKING, Any

from kubesim.apiserver.api import RequestOptions
from kubesim.controllers.manager import ALL, Controller, ControllerManager
from kubesim.controllers.workloads import pod_ready
from kubesim.machinery.errors import ApiError
from kubesim.machinery.selectors import match_label_selector_object
from kubesim.store import WatchEvent, clone

if TYPE_CHECKING:
    from kubesim.cluster import SimCluster

Obj = dict[str, Any]
PODS, SERVICES = ("", "pods"), ("", "services")


class ClusterController(Controller):
    def __init__(self, manager: ControllerManager, cluster: SimCluster) -> None:
        super().__init__(manager)
        self.cluster = cluster
        self.api = cluster.api
        self.store = cluster.store

    def resync(self) -> None:
        for gr in self.watches:
            for obj in self.store.items(gr):
                self.enqueue((obj["metadata"].get("namespace", ""), obj["metadata"]["name"]))


def resolve_target_port(service_port: Obj, pod: Obj) -> int | None:
    target = service_port.get("targetPort", service_port.get("port"))
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    for container in pod["spec"]["containers"]:
        for port in container.get("ports") or []:
            if port.get("name") == target:
                return int(port["containerPort"])
    return None


class EndpointsController(ClusterController):
    name = "endpoints"
    watches = (SERVICES, PODS)

    def on_event(self, event: WatchEvent) -> None:
        if event.gr == SERVICES:
            self.enqueue((event.namespace, event.name))
            return
        labels = [(o["metadata"].get("labels") or {}) for o in (event.obj, event.old) if o]
        for svc in self.store.items(SERVICES, event.namespace):
            selector = svc["spec"].get("selector")
            if selector and any(all(lb.get(k) == v for k, v in selector.items()) for lb in labels):
                self.enqueue((event.namespace, svc["metadata"]["name"]))

    def reconcile(self, key: tuple[str, str]) -> None:
        namespace, name = key
        svc = self.store.get(SERVICES, namespace, name)
        ep_rt = self.api.type_of("", "endpoints")
        slice_rt = self.api.type_of("discovery.k8s.io", "endpointslices")
        slices = [
            s
            for s in self.store.items(slice_rt.gr, namespace)
            if (s["metadata"].get("labels") or {}).get("kubernetes.io/service-name") == name
        ]
        if svc is None or not svc["spec"].get("selector"):
            if svc is None:
                for obj, rt in [(self.store.get(ep_rt.gr, namespace, name), ep_rt)] + [
                    (s, slice_rt) for s in slices
                ]:
                    if obj is not None:
                        self._delete(rt, obj)
            return
        selector = svc["spec"]["selector"]
        pods = [
            p
            for p in self.store.items(PODS, namespace)
            if all((p["metadata"].get("labels") or {}).get(k) == v for k, v in selector.items())
            and p["status"].get("podIP")
            and p["status"].get("phase") not in ("Succeeded", "Failed")
        ]
        pods.sort(key=lambda p: p["metadata"]["name"])
        ports = svc["spec"].get("ports") or []
        ready, not_ready, slice_endpoints = [], [], []
        for pod in pods:
            terminating = bool(pod["metadata"].get("deletionTimestamp"))
            is_ready = pod_ready(pod) and not terminating
            address = {
                "ip": pod["status"]["podIP"],
                "nodeName": pod["spec"].get("nodeName"),
                "targetRef": {
                    "kind": "Pod",
                    "namespace": namespace,
                    "name": pod["metadata"]["name"],
                    "uid": pod["metadata"]["uid"],
                },
            }
            if is_ready:
                ready.append(address)
            elif not terminating or svc["spec"].get("publishNotReadyAddresses"):
                not_ready.append(address)
            slice_endpoints.append(
                {
                    "addresses": [pod["status"]["podIP"]],
                    "conditions": {"ready": is_ready, "serving": pod_ready(pod), "terminating": terminating},
                    "nodeName": pod["spec"].get("nodeName"),
                    "targetRef": address["targetRef"],
                }
            )
        first = pods[0] if pods else None
        ep_ports = []
        for port in ports:
            number = resolve_target_port(port, first) if first else port.get("targetPort", port.get("port"))
            entry = {
                "port": number if isinstance(number, int) else port.get("port"),
                "protocol": port.get("protocol", "TCP"),
            }
            if port.get("name"):
                entry["name"] = port["name"]
            ep_ports.append(entry)
        subsets = []
        if ready or not_ready:
            subset: Obj = {"ports": ep_ports}
            if ready:
                subset["addresses"] = ready
            if not_ready:
                subset["notReadyAddresses"] = not_ready
            subsets.append(subset)
        endpoints: Obj = {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": dict(svc["metadata"].get("labels") or {}),
            },
        }
        if subsets:
            endpoints["subsets"] = subsets
        self._upsert(ep_rt, endpoints, svc)
        slice_name = (
            slices[0]["metadata"]["name"]
            if slices
            else f"{name}-{hashlib.sha256(svc['metadata']['uid'].encode()).hexdigest()[:5]}"
        )
        endpoint_slice = {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "addressType": "IPv4",
            "metadata": {
                "name": slice_name,
                "namespace": namespace,
                "labels": dict(
                    svc["metadata"].get("labels") or {},
                    **{
                        "kubernetes.io/service-name": name,
                        "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
                    },
                ),
                "generateName": f"{name}-",
            },
            "endpoints": slice_endpoints,
            "ports": ep_ports,
        }
        self._upsert(slice_rt, endpoint_slice, svc)

    def _upsert(self, rt: Any, desired: Obj, owner: Obj) -> None:
        meta = desired["metadata"]
        current = self.store.get(rt.gr, meta["namespace"], meta["name"])
        if current is None:
            meta["ownerReferences"] = (
                [
                    {
                        "apiVersion": "v1",
                        "kind": "Service",
                        "name": owner["metadata"]["name"],
                        "uid": owner["metadata"]["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ]
                if rt.group
                else None
            )
            if meta["ownerReferences"] is None:
                meta.pop("ownerReferences")
            try:
                self.api.create(rt, desired, meta["namespace"], RequestOptions(internal=True))
            except ApiError:
                pass
            return
        body = {k: v for k, v in desired.items() if k not in ("metadata", "apiVersion", "kind")}
        existing = {k: v for k, v in current.items() if k not in ("metadata", "apiVersion", "kind")}
        if body == existing and (current["metadata"].get("labels") or {}) == meta.get("labels", {}):
            return
        new = clone(current)
        for k in list(existing):
            new.pop(k, None)
        new.update(clone(body))
        new["metadata"]["labels"] = meta.get("labels", {})
        self.api.write(rt, new)

    def _delete(self, rt: Any, obj: Obj) -> None:
        try:
            self.api.delete(
                rt, obj["metadata"]["namespace"], obj["metadata"]["name"], RequestOptions(internal=True)
            )
        except ApiError:
            pass


class GarbageCollector(ClusterController):
    """Owner-reference garbage collection (background, foreground and orphan)."""

    name = "garbage-collector"
    watches = (ALL,)

    def __init__(self, manager: ControllerManager, cluster: SimCluster) -> None:
        super().__init__(manager, cluster)
        self.dependents: dict[str, set[tuple[tuple[str, str], str, str]]] = {}
        self.owners: dict[tuple[tuple[str, str], str, str], set[str]] = {}
        self.uids: dict[str, tuple[tuple[str, str], str, str]] = {}

    def on_event(self, event: WatchEvent) -> None:
        ident = (event.gr, event.namespace, event.name)
        previous_owners = set(self.owners.get(ident, set()))
        uid = event.obj["metadata"].get("uid", "")
        if event.type == "DELETED":
            self.uids.pop(uid, None)
        else:
            self.uids[uid] = ident
        for uid in self.owners.pop(ident, set()):
            self.dependents.get(uid, set()).discard(ident)
        if event.type != "DELETED":
            refs = {r["uid"] for r in event.obj["metadata"].get("ownerReferences") or [] if r.get("uid")}
            if refs:
                self.owners[ident] = refs
                for uid in refs:
                    self.dependents.setdefault(uid, set()).add(ident)
            finalizers = event.obj["metadata"].get("finalizers") or []
            if event.obj["metadata"].get("deletionTimestamp") and (
                "foregroundDeletion" in finalizers or "orphan" in finalizers
            ):
                self.enqueue(("owner:" + "/".join(event.gr), f"{event.namespace}/{event.name}"))
        else:
            self.enqueue(("deleted", event.obj["metadata"]["uid"]))
        for owner_uid in previous_owners | self.owners.get(ident, set()):
            # A dependent changed or went: an owner waiting in foreground deletion may now be done.
            self.enqueue(("uid", owner_uid))

    def resync(self) -> None:
        return None

    def reconcile(self, key: tuple[str, str]) -> None:
        kind, ident = key
        if kind == "deleted":
            self._collect(ident)
        elif kind.startswith("owner:"):
            group, plural = kind[len("owner:") :].split("/", 1)
            namespace, name = ident.split("/", 1)
            obj = self.store.get((group, plural), namespace, name)
            if obj is not None:
                self._finish_owner((group, plural), obj)
        elif kind == "uid" and ident in self.uids:
            gr, namespace, name = self.uids[ident]
            obj = self.store.get(gr, namespace, name)
            if obj is not None and obj["metadata"].get("deletionTimestamp"):
                self._finish_owner(gr, obj)

    def _alive_dependents(self, uid: str) -> list[tuple[tuple[str, str], Obj]]:
        found = []
        for gr, namespace, name in list(self.dependents.get(uid, ())):
            obj = self.store.get(gr, namespace, name)
            if obj is not None and any(
                r.get("uid") == uid for r in obj["metadata"].get("ownerReferences") or []
            ):
                found.append((gr, obj))
        return found

    def _collect(self, uid: str) -> None:
        """An owner is gone: delete dependents whose every owner is gone."""
        for gr, obj in self._alive_dependents(uid):
            others = [r for r in obj["metadata"].get("ownerReferences") or [] if r.get("uid") != uid]
            if others and any(self._exists(r["uid"]) for r in others):
                self.cluster.mutate(
                    gr,
                    obj,
                    lambda o: o["metadata"].__setitem__(
                        "ownerReferences",
                        [r for r in o["metadata"]["ownerReferences"] if r.get("uid") != uid],
                    ),
                )
                continue
            self._delete(gr, obj, "Background")

    def _finish_owner(self, gr: tuple[str, str], owner: Obj) -> None:
        uid = owner["metadata"]["uid"]
        finalizers = owner["metadata"].get("finalizers") or []
        dependents = self._alive_dependents(uid)
        rt = self.api.type_of(*gr)
        if "orphan" in finalizers:
            for dep_gr, dep in dependents:
                self.cluster.mutate(
                    dep_gr,
                    dep,
                    lambda o: o["metadata"].__setitem__(
                        "ownerReferences",
                        [r for r in o["metadata"]["ownerReferences"] if r.get("uid") != uid],
                    ),
                )
            self.api.remove_finalizer(rt, owner, "orphan")
            return
        if "foregroundDeletion" in finalizers:
            for dep_gr, dep in dependents:
                if not dep["metadata"].get("deletionTimestamp"):
                    self._delete(dep_gr, dep, "Foreground")
            if not dependents:
                self.api.remove_finalizer(rt, owner, "foregroundDeletion")

    def _exists(self, uid: str) -> bool:
        return uid in self.uids

    def _delete(self, gr: tuple[str, str], obj: Obj, propagation: str) -> None:
        try:
            self.api.delete(
                self.api.type_of(*gr),
                obj["metadata"].get("namespace", ""),
                obj["metadata"]["name"],
                RequestOptions(internal=True),
                propagation=propagation,
            )
        except (ApiError, KeyError):
            pass


class NamespaceController(ClusterController):
    """Namespace lifecycle: defaults in new namespaces, and deletion of everything in a deleted one."""

    name = "namespace"
    watches = (("", "namespaces"),)

    def on_event(self, event: WatchEvent) -> None:
        self.enqueue(("", event.name))

    def reconcile(self, key: tuple[str, str]) -> None:
        name = key[1]
        ns = self.store.get(("", "namespaces"), "", name)
        if ns is None:
            return
        if not ns["metadata"].get("deletionTimestamp"):
            self._ensure_defaults(name)
            return
        remaining = 0
        for rt in self.api.types():
            if not rt.namespaced:
                continue
            for obj in self.store.items(rt.gr, name):
                remaining += 1
                if not obj["metadata"].get("deletionTimestamp"):
                    try:
                        self.api.delete(
                            rt,
                            name,
                            obj["metadata"]["name"],
                            RequestOptions(internal=True),
                            propagation="Background",
                        )
                    except ApiError:
                        pass
        if remaining:
            self._report_remaining(ns)
            self.manager.after(1.0, lambda: self.enqueue(key))
            return
        self.store.remove(("", "namespaces"), "", name)

    def _report_remaining(self, ns: Any) -> None:
        """The conditions the namespace controller writes while content remains (kubernetes
        pkg/controller/namespace/deletion/namespaced_resources_deleter.go, v1.36)."""
        resources: dict[str, int] = {}
        finalizers: dict[str, int] = {}
        for rt in self.api.types():
            if not rt.namespaced:
                continue
            for obj in self.store.items(rt.gr, ns["metadata"]["name"]):
                label = f"{rt.plural}.{rt.group}"
                resources[label] = resources.get(label, 0) + 1
                for finalizer in obj["metadata"].get("finalizers") or []:
                    finalizers[finalizer] = finalizers.get(finalizer, 0) + 1
        wanted = [
            (
                "NamespaceDeletionDiscoveryFailure",
                "False",
                "ResourcesDiscovered",
                "All resources successfully discovered",
            ),
            (
                "NamespaceDeletionGroupVersionParsingFailure",
                "False",
                "ParsedGroupVersions",
                "All legacy kube types successfully parsed",
            ),
            (
                "NamespaceDeletionContentFailure",
                "False",
                "ContentDeleted",
                "All content successfully deleted, may be waiting on finalization",
            ),
            (
                (
                    "NamespaceContentRemaining",
                    "True",
                    "SomeResourcesRemain",
                    "Some resources are remaining: "
                    + ", ".join(f"{k} has {v} resource instances" for k, v in sorted(resources.items())),
                )
                if resources
                else (
                    "NamespaceContentRemaining",
                    "False",
                    "ContentRemoved",
                    "All content successfully removed",
                )
            ),
            (
                (
                    "NamespaceFinalizersRemaining",
                    "True",
                    "SomeFinalizersRemain",
                    "Some content in the namespace has finalizers remaining: "
                    + ", ".join(f"{k} in {v} resource instances" for k, v in sorted(finalizers.items())),
                )
                if finalizers
                else (
                    "NamespaceFinalizersRemaining",
                    "False",
                    "ContentHasNoFinalizers",
                    "All content-preserving finalizers finished",
                )
            ),
        ]
        status = dict(ns.get("status") or {})
        previous = {c["type"]: c for c in status.get("conditions") or []}
        conditions = []
        for kind, state, reason, message in wanted:
            before = previous.get(kind)
            same = before is not None and before.get("status") == state
            conditions.append(
                {
                    "type": kind,
                    "status": state,
                    "lastTransitionTime": before["lastTransitionTime"] if same and before else self.api.now(),
                    "reason": reason,
                    "message": message,
                }
            )
        if [dict(c, lastTransitionTime="") for c in conditions] != [
            dict(c, lastTransitionTime="") for c in status.get("conditions") or []
        ]:
            self.cluster.set_status(("", "namespaces"), ns, dict(status, conditions=conditions))

    def _ensure_defaults(self, namespace: str) -> None:
        sa_rt = self.api.type_of("", "serviceaccounts")
        if self.store.get(sa_rt.gr, namespace, "default") is None:
            try:
                self.api.create(
                    sa_rt, {"metadata": {"name": "default"}}, namespace, RequestOptions(internal=True)
                )
            except ApiError:
                pass
        cm_rt = self.api.type_of("", "configmaps")
        if self.store.get(cm_rt.gr, namespace, "kube-root-ca.crt") is None:
            try:
                self.api.create(
                    cm_rt,
                    {
                        "metadata": {
                            "name": "kube-root-ca.crt",
                            "annotations": {
                                "kubernetes.io/description": "Contains a CA bundle that can be used to "
                                "verify the kube-apiserver when using internal endpoints such as the "
                                "internal service IP or kubernetes.default.svc. No other usage is "
                                "guaranteed across distributions of Kubernetes "
                                "clusters."
                            },
                        },
                        "data": {"ca.crt": self.cluster.ca_pem.decode()},
                    },
                    namespace,
                    RequestOptions(internal=True),
                )
            except ApiError:
                pass


class CRDController(ClusterController):
    """Marks CRDs NamesAccepted and Established (the API server then serves them)."""

    name = "crd"
    watches = (("apiextensions.k8s.io", "customresourcedefinitions"),)

    def reconcile(self, key: tuple[str, str]) -> None:
        crd = self.store.get(("apiextensions.k8s.io", "customresourcedefinitions"), "", key[1])
        if crd is None:
            return
        now = self.api.now()
        names = clone(crd["spec"].get("names") or {})
        conditions = [
            {
                "type": "NamesAccepted",
                "status": "True",
                "reason": "NoConflicts",
                "message": "no conflicts found",
                "lastTransitionTime": now,
            },
            {
                "type": "Established",
                "status": "True",
                "reason": "InitialNamesAccepted",
                "message": "the initial names have been accepted",
                "lastTransitionTime": now,
            },
        ]
        old = crd.get("status") or {}
        if old.get("acceptedNames") == names and len(old.get("conditions") or []) == 2:
            return
        stored = [v["name"] for v in crd["spec"].get("versions") or [] if v.get("storage")]
        self.cluster.set_status(
            ("apiextensions.k8s.io", "customresourcedefinitions"),
            crd,
            {
                "acceptedNames": names,
                "conditions": conditions,
                "storedVersions": sorted(set(old.get("storedVersions") or []) | set(stored)),
            },
        )


class HPAController(ClusterController):
    """Keeps each HPA's target within minReplicas..maxReplicas (there is no metrics server)."""

    name = "hpa"
    watches = (("autoscaling", "horizontalpodautoscalers"), ("apps", "deployments"))

    def on_event(self, event: WatchEvent) -> None:
        if event.gr == ("apps", "deployments"):
            for hpa in self.store.items(("autoscaling", "horizontalpodautoscalers"), event.namespace):
                if (hpa["spec"].get("scaleTargetRef") or {}).get("name") == event.name:
                    self.enqueue((event.namespace, hpa["metadata"]["name"]))
            return
        self.enqueue((event.namespace, event.name))

    def reconcile(self, key: tuple[str, str]) -> None:
        hpa = self.store.get(("autoscaling", "horizontalpodautoscalers"), *key)
        if hpa is None:
            return
        ref = hpa["spec"].get("scaleTargetRef") or {}
        target_gr = ("apps", "deployments") if ref.get("kind") == "Deployment" else None
        now = self.api.now()
        target = self.store.get(target_gr, key[0], ref.get("name", "")) if target_gr else None
        lo, hi = hpa["spec"].get("minReplicas", 1), hpa["spec"]["maxReplicas"]
        if target is None:
            status = {
                "currentReplicas": 0,
                "desiredReplicas": 0,
                "conditions": [
                    {
                        "type": "AbleToScale",
                        "status": "False",
                        "reason": "FailedGetScale",
                        "lastTransitionTime": now,
                        "message": f"the HPA controller was unable to get the target's current scale: "
                        f'{(ref.get("kind") or "").lower()}s.apps "{ref.get("name")}" not found',
                    }
                ],
            }
        else:
            current = target["spec"].get("replicas", 1)
            desired = min(max(current, lo), hi)
            if desired != current and target_gr is not None:
                self.cluster.mutate(target_gr, target, lambda d: d["spec"].__setitem__("replicas", desired))
                self.cluster.event(
                    hpa,
                    "Normal",
                    "SuccessfulRescale",
                    f"New size: {desired}; reason: Current number of replicas "
                    + ("below Spec.MinReplicas" if current < lo else "above Spec.MaxReplicas"),
                    "horizontal-pod-autoscaler",
                )
            status = {
                "currentReplicas": current,
                "desiredReplicas": desired,
                "conditions": [
                    {
                        "type": "AbleToScale",
                        "status": "True",
                        "reason": "SucceededGetScale",
                        "lastTransitionTime": now,
                        "message": "the HPA controller was able to get the target's current scale",
                    },
                    {
                        "type": "ScalingActive",
                        "status": "False",
                        "reason": "FailedGetResourceMetric",
                        "lastTransitionTime": now,
                        "message": "the HPA was unable to compute the replica count: failed to "
                        "get cpu utilization: unable to get metrics for resource cpu: unable to fetch "
                        "metrics from resource metrics API: the server could not find the requested "
                        "resource (get pods.metrics.k8s.io)",
                    },
                ],
            }
        old = hpa.get("status") or {}
        if (old.get("currentReplicas"), old.get("desiredReplicas")) == (
            status["currentReplicas"],
            status["desiredReplicas"],
        ) and old.get("conditions"):
            return
        self.cluster.set_status(("autoscaling", "horizontalpodautoscalers"), hpa, status)


class PDBController(ClusterController):
    name = "disruption"
    watches = (("policy", "poddisruptionbudgets"), PODS)

    def on_event(self, event: WatchEvent) -> None:
        if event.gr == PODS:
            labels = [(o["metadata"].get("labels") or {}) for o in (event.obj, event.old) if o]
            for pdb in self.store.items(("policy", "poddisruptionbudgets"), event.namespace):
                if any(match_label_selector_object(pdb["spec"].get("selector"), lb) for lb in labels):
                    self.enqueue((event.namespace, pdb["metadata"]["name"]))
            return
        self.enqueue((event.namespace, event.name))

    def reconcile(self, key: tuple[str, str]) -> None:
        pdb = self.store.get(("policy", "poddisruptionbudgets"), *key)
        if pdb is None:
            return
        pods = [
            p
            for p in self.store.items(PODS, key[0])
            if match_label_selector_object(pdb["spec"].get("selector"), p["metadata"].get("labels") or {})
            and not p["metadata"].get("deletionTimestamp")
        ]
        healthy = sum(1 for p in pods if pod_ready(p))
        spec = pdb["spec"]
        if "minAvailable" in spec:
            value = spec["minAvailable"]
            desired = (
                -(-int(str(value)[:-1]) * len(pods) // 100)
                if isinstance(value, str) and value.endswith("%")
                else int(value)
            )
        else:
            value = spec.get("maxUnavailable", 0)
            unavailable = (
                int(str(value)[:-1]) * len(pods) // 100
                if isinstance(value, str) and str(value).endswith("%")
                else int(value)
            )
            desired = max(0, len(pods) - unavailable)
        allowed = max(0, healthy - desired)
        now = self.api.now()
        status = {
            "observedGeneration": pdb["metadata"].get("generation", 1),
            "expectedPods": len(pods),
            "currentHealthy": healthy,
            "desiredHealthy": desired,
            "disruptionsAllowed": allowed,
            "conditions": [
                {
                    "type": "DisruptionAllowed",
                    "status": "True" if allowed else "False",
                    "reason": "SufficientPods" if allowed else "InsufficientPods",
                    "message": "",
                    "observedGeneration": pdb["metadata"].get("generation", 1),
                    "lastTransitionTime": now,
                }
            ],
        }
        old = dict(pdb.get("status") or {})
        if {k: v for k, v in old.items() if k != "conditions"} == {
            k: v for k, v in status.items() if k != "conditions"
        }:
            return
        self.cluster.set_status(("policy", "poddisruptionbudgets"), pdb, status)


class NodeLeaseController(ClusterController):
    """Renews each node's Lease in kube-node-lease, the kubelet heartbeat."""

    name = "node-lease"
    RENEW = 10.0

    def resync(self) -> None:
        self.manager.after(self.RENEW, self.renew, repeat=True)

    def renew(self) -> None:
        rt = self.api.type_of("coordination.k8s.io", "leases")
        now = self.api.clock.now()
        from datetime import datetime

        stamp = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        for name in self.cluster.node_names:
            lease = self.store.get(rt.gr, "kube-node-lease", name)
            if lease is not None:
                self.cluster.mutate(rt.gr, lease, lambda o: o["spec"].__setitem__("renewTime", stamp))
        self.manager.after(self.RENEW, self.renew, repeat=True)

    def reconcile(self, key: tuple[str, str]) -> None:
        return None
