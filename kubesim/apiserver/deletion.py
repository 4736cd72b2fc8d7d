"""Deletion in the simulated API server's request logic: preconditions, propagation policies, finalizers,
graceful pod deletion and namespaces that terminate.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kubesim.apiserver.objects import Obj, RequestOptions, rfc3339
from kubesim.machinery import errors
from kubesim.machinery.resources import ResourceType
from kubesim.store import clone

if TYPE_CHECKING:
    from kubesim.apiserver.api import Api


class DeletionMixin:
    """delete and finalization; mixed into ``api.Api``.

    Methods take ``self: Api`` so that they see all of ``Api`` (mypy calls a mixin's self type a
    ``misc`` error, hence the ignores)."""

    def delete(  # type: ignore[misc]
        self: Api,
        rt: ResourceType,
        namespace: str,
        name: str,
        opts: RequestOptions | None = None,
        propagation: str | None = None,
        grace_seconds: int | None = None,
        precondition_uid: str | None = None,
        precondition_rv: str | None = None,
    ) -> Obj:
        opts = opts or RequestOptions()
        ns = namespace if rt.namespaced else ""
        with self._lock:
            obj = self.store.get(rt.gr, ns, name)
            if obj is None:
                raise errors.not_found(rt.plural, rt.group, name)
            # The registry's precondition check (apiserver/pkg/storage/interfaces.go, v1.36) names the kind
            # and nothing else in its Conflict.
            if precondition_uid and precondition_uid != obj["metadata"]["uid"]:
                raise errors.ApiError(
                    409,
                    "Conflict",
                    f'Operation cannot be fulfilled on {rt.kind} "{name}": the UID in the precondition '
                    f"({precondition_uid}) does not match the UID in record ({obj['metadata']['uid']}). "
                    "The object might have been deleted and then recreated",
                    {"name": name, "kind": rt.kind},
                )
            if precondition_rv and precondition_rv != obj["metadata"]["resourceVersion"]:
                raise errors.ApiError(
                    409,
                    "Conflict",
                    f'Operation cannot be fulfilled on {rt.kind} "{name}": the ResourceVersion in the '
                    f"precondition ({precondition_rv}) does not match the ResourceVersion in record "
                    f"({obj['metadata']['resourceVersion']}). The object might have been modified",
                    {"name": name, "kind": rt.kind},
                )
            for plugin in self.validating:
                plugin("DELETE", rt, obj, obj, opts)
            if opts.dry_run:
                return obj
            finalizers = list(obj["metadata"].get("finalizers") or [])
            if propagation == "Foreground" and "foregroundDeletion" not in finalizers:
                finalizers.append("foregroundDeletion")
            elif propagation == "Orphan" and "orphan" not in finalizers:
                finalizers.append("orphan")
            graceful = (
                rt.gr == ("", "pods")
                and obj.get("spec", {}).get("nodeName")
                and obj.get("status", {}).get("phase") not in ("Succeeded", "Failed")
            )
            if grace_seconds is None:
                grace_seconds = (
                    obj.get("spec", {}).get("terminationGracePeriodSeconds", 30) if graceful else 0
                )
            if rt.gr == ("", "namespaces"):
                finalizers = finalizers or []
                if obj["metadata"].get("deletionTimestamp"):
                    return obj
                new = clone(obj)
                new["metadata"]["deletionTimestamp"] = self.now()
                new["status"] = {"phase": "Terminating"}
                return self._commit(rt, new, "MODIFIED", opts)
            if finalizers or (graceful and grace_seconds > 0):
                if obj["metadata"].get("deletionTimestamp"):
                    if graceful and grace_seconds == 0:
                        if not finalizers:
                            return self._finalize(rt, obj)
                        if obj["metadata"].get("deletionGracePeriodSeconds"):
                            # The kubelet is done; the object goes as soon as its finalizers are.
                            new = clone(obj)
                            new["metadata"]["deletionGracePeriodSeconds"] = 0
                            return self._commit(rt, new, "MODIFIED", opts)
                    return obj
                new = clone(obj)
                new["metadata"]["finalizers"] = finalizers or None
                if not finalizers:
                    new["metadata"].pop("finalizers")
                new["metadata"]["deletionTimestamp"] = rfc3339(self.clock.now() + (grace_seconds or 0))
                new["metadata"]["deletionGracePeriodSeconds"] = grace_seconds or 0
                return self._commit(rt, new, "MODIFIED", opts)
            return self._finalize(rt, obj)

    def _finalize(self: Api, rt: ResourceType, obj: Obj) -> Obj:  # type: ignore[misc]
        meta = obj["metadata"]
        gone = self.store.remove(rt.gr, meta.get("namespace", ""), meta["name"])
        if rt.gr == ("", "services") and (obj.get("spec") or {}).get("clusterIP") not in (None, "None"):
            self.service_ips.release(obj["spec"]["clusterIP"])
        if rt.gr == ("", "services"):
            for port in (obj.get("spec") or {}).get("ports") or []:
                self._node_ports_used.discard(port.get("nodePort"))
        if rt.gr == ("apiextensions.k8s.io", "customresourcedefinitions"):
            self._crd_removed(obj)
        return gone or obj

    def remove_finalizer(self: Api, rt: ResourceType, obj: Obj, finalizer: str) -> None:  # type: ignore[misc]
        """Used by controllers: drop one finalizer, which deletes the object if it was the last."""
        with self._lock:
            current = self.store.get(rt.gr, obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
            if current is None or current["metadata"]["uid"] != obj["metadata"]["uid"]:
                return
            new = clone(current)
            new["metadata"]["finalizers"] = [
                f for f in current["metadata"].get("finalizers") or [] if f != finalizer
            ]
            if not new["metadata"]["finalizers"]:
                new["metadata"].pop("finalizers")
                # A pod still shutting down gracefully stays until the kubelet has finished with it.
                if new["metadata"].get("deletionTimestamp") and not new["metadata"].get(
                    "deletionGracePeriodSeconds"
                ):
                    self._finalize(rt, current)
                    return
            self._commit(rt, new, "MODIFIED", RequestOptions(internal=True))
