"""The simulated API server's request logic, independent of HTTP.

``Api`` does what kube-apiserver's generic registry does for every request: resolve the resource type,
check the namespace, default, run admission (built-in plugins and mutating/validating webhooks), validate,
enforce optimistic concurrency, bump ``generation`` on spec changes, keep ``status`` and ``spec`` apart for
types with a status subresource, honour finalizers and graceful pod deletion, record field managers, and
serve CustomResourceDefinitions as new resources once they are established. The HTTP layer (``server.py``)
and the in-process controllers both go through it, so a pod created by a ReplicaSet meets the same admission
webhooks as one created by kubectl.
"""

from __future__ import annotations

import builtins
import json
import random
import time
from collections.abc import Callable
from typing import Any

from kubesim.apiserver import defaults, legacy, schema, validation
from kubesim.apiserver.crds import CrdMixin
from kubesim.apiserver.deletion import DeletionMixin
from kubesim.apiserver.objects import (
    GENERATION_KINDS,
    AdmissionPlugin,
    IPAllocator,
    ListResult,
    Obj,
    RequestOptions,
    _go_patched_json,
    _loopback_port_free,
    _random_suffix,
    _version_priority,
    _without_registry_fields,
    controller_of,
    new_uid,
    owner_reference,
    parse_rfc3339,
    rfc3339,
)
from kubesim.apiserver.patching import PatchMixin
from kubesim.apiserver.reads import ReadsMixin
from kubesim.clock import SimClock
from kubesim.machinery import errors, ssa
from kubesim.machinery.errors import ApiError
from kubesim.machinery.resources import BUILTIN_TYPES, ResourceType
from kubesim.store import Store, clone

__all__ = [
    "GENERATION_KINDS",
    "AdmissionPlugin",
    "Api",
    "IPAllocator",
    "ListResult",
    "RequestOptions",
    "_random_suffix",
    "_version_priority",
    "controller_of",
    "new_uid",
    "owner_reference",
    "parse_rfc3339",
    "rfc3339",
]


class Api(ReadsMixin, PatchMixin, DeletionMixin, CrdMixin):
    """Request semantics of kube-apiserver over a :class:`Store`."""

    def __init__(self, store: Store, clock: SimClock, *, k8s_version: str = "1.33.1") -> None:
        self.store = store
        self.clock = clock
        self.k8s_version = k8s_version
        self._types: dict[tuple[str, str], ResourceType] = {}
        self.mutating: list[AdmissionPlugin] = []
        self.validating: list[AdmissionPlugin] = []
        self.service_ips = IPAllocator("10.96.0.0/16", skip=0)
        self._node_ports_used: set[int] = set()
        self._lock = store.lock
        for rt in (*BUILTIN_TYPES, *legacy.TYPES):
            self._types[rt.gr] = legacy.with_pod_subresources(rt)
            store.start_watch_cache(rt.gr)  # the server starts a watch cache per built-in resource
        store.attach_clock(clock.now)  # the compactor and the watch caches age by the simulated clock
        self.discovery_changed: list[Callable[[], None]] = []

    # -- types -------------------------------------------------------------------------------------------
    def types(self) -> list[ResourceType]:
        return list(self._types.values())

    def resolve(self, group: str, version: str, plural: str) -> ResourceType:
        rt = self._types.get((group, plural))
        if rt is None or version not in rt.versions:
            raise errors.resource_not_found()
        return rt

    def type_of(self, group: str, plural: str) -> ResourceType:
        return self._types[(group, plural)]

    def type_for_kind(self, api_version: str, kind: str) -> ResourceType | None:
        group, _, version = api_version.rpartition("/")
        for rt in self._types.values():
            if rt.group == group and rt.kind == kind and version in rt.versions:
                return rt
        return None

    def now(self) -> str:
        return rfc3339(self.clock.now())

    # -- writes ------------------------------------------------------------------------------------------
    def decode(self, rt: ResourceType, obj: Obj, opts: RequestOptions, version: str = "") -> None:
        """Decode a client's body into the kind's Go types as the real server does (see ``schema``): a wrong
        type is a 400; unknown fields are an error, warnings or nothing by ``fieldValidation``."""
        if opts.internal or rt.custom:
            return
        version = version or rt.version
        node = schema.root(rt.group, version, rt.kind)
        if node is None:
            return
        prefix = f'{rt.kind} in version "{version}" cannot be handled as a {rt.kind}: '
        try:
            unknown = schema.decode(obj, node)
            if rt.gr == ("", "secrets"):
                for value in (obj.get("data") or {}).values():
                    problem = _base64_error(value) if isinstance(value, str) else None
                    if problem is not None:
                        raise schema.DecodeError(problem)
        except schema.DecodeError as exc:
            raise errors.bad_request(prefix + str(exc)) from None
        if not unknown or opts.field_validation == "Ignore":
            return
        if opts.field_validation == "Strict":
            listed = ", ".join(f'unknown field "{u}"' for u in unknown)
            raise errors.bad_request(f"{prefix}strict decoding error: {listed}")
        opts.warnings += [f'unknown field "{u}"' for u in unknown]

    def _decode_patched(self, rt: ResourceType, patched: Obj, opts: RequestOptions) -> None:
        """A patched object is decoded like a body; its errors are reported on the ``patch`` as the real
        server's patcher reports them (422, the patched object quoted, then the decoding error)."""
        if opts.internal or rt.custom or schema.root(rt.group, rt.version, rt.kind) is None:
            return
        strict = RequestOptions(field_validation="Strict")
        try:
            self.decode(rt, clone(patched), strict)
        except ApiError as exc:
            problem = exc.message.split(": ", 1)[1] if ": " in exc.message else exc.message
            if problem.startswith("strict decoding error: "):
                if opts.field_validation == "Ignore":
                    self.decode(rt, patched, RequestOptions(field_validation="Ignore"))
                    return
                if opts.field_validation == "Warn":
                    self.decode(rt, patched, opts)
                    return
            quoted = json.dumps(_go_patched_json(patched))
            raise errors.invalid(
                "", "", "", [("FieldValueInvalid", "patch", f"Invalid value: {quoted}: {problem}")]
            )
        self.decode(rt, patched, opts)

    def _check_namespace(
        self, rt: ResourceType, namespace: str, creating: bool, admitted_as: str = ""
    ) -> None:
        """The NamespaceLifecycle admission plugin: no new content in a namespace being terminated, the
        object named as admission.NewForbidden names it (its name, else its generateName)."""
        if not rt.namespaced:
            return
        ns = self.store.get(("", "namespaces"), "", namespace)
        if ns is None:
            raise errors.not_found("namespaces", "", namespace)
        if creating and ns["metadata"].get("deletionTimestamp"):
            resource = f"{rt.plural}.{rt.group}" if rt.group else rt.plural
            raise ApiError(
                403,
                "Forbidden",
                f'{resource} "{admitted_as}" is forbidden: unable to create new content in '
                f"namespace {namespace} because it is being terminated",
                {
                    **({"name": admitted_as} if admitted_as else {}),
                    **({"group": rt.group} if rt.group else {}),
                    "kind": rt.plural,
                    "causes": [
                        {
                            "reason": "NamespaceTerminating",
                            "message": f"namespace {namespace} is being terminated",
                            "field": "metadata.namespace",
                        }
                    ],
                },
            )

    def _check_service_account(self, pod: Obj, namespace: str, admitted_as: str) -> None:
        """The ServiceAccount admission plugin: a pod may only name a ServiceAccount that exists
        (kubernetes plugin/pkg/admission/serviceaccount/admission.go, v1.36: "error looking up service
        account"; the ReplicaSet controller then reports it as a FailedCreate event and tries again).

        The ``default`` account of a namespace just created may not exist yet (a controller makes it): the
        real plugin looks it up ten times, 100-200 ms apart, before refusing; so does this one, outside the
        server's lock so that the controller can create it meanwhile."""
        spec = pod.get("spec") or {}
        account = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
        annotations = pod["metadata"].get("annotations") or {}
        if "kubernetes.io/config.mirror" in annotations:
            return  # mirror pods of static pods are exempt
        attempts = 10 if account == "default" else 1
        for attempt in range(attempts):
            if self.store.get(("", "serviceaccounts"), namespace, account) is not None:
                return
            if attempt + 1 < attempts:
                time.sleep(0.1 + random.random() * 0.1)
        raise ApiError(
            403,
            "Forbidden",
            f'pods "{admitted_as}" is forbidden: error looking up service account {namespace}/{account}: '
            f'serviceaccount "{account}" not found',
            {"name": admitted_as, "kind": "pods"},
        )

    def _admit(
        self, operation: str, rt: ResourceType, obj: Obj, old: Obj | None, opts: RequestOptions
    ) -> Obj:
        # Defaults first (webhooks see a defaulted object), and again after them, because what a webhook
        # adds (an injected container, say) is decoded and defaulted like anything else.
        defaults.apply_defaults(rt.gr, obj)
        if self.mutating:
            for plugin in self.mutating:
                obj = plugin(operation, rt, obj, old, opts)
            defaults.apply_defaults(rt.gr, obj)
        return obj

    def _validate(
        self, operation: str, rt: ResourceType, obj: Obj, old: Obj | None, opts: RequestOptions
    ) -> Obj:
        name = obj["metadata"].get("name", "")
        generate_name = obj["metadata"].get("generateName", "")
        causes = validation.validate_name(rt.gr, name, generate_name) if operation == "CREATE" else []
        if rt.custom:
            obj, more = self._validate_custom(rt, obj, opts)
            causes += more
        else:
            causes += validation.validate(rt.gr, obj)
        if old is not None and rt.gr == ("", "secrets"):
            # ValidateSecretUpdate checks the update's rules before the new Secret's own.
            causes = validation.validate_update(rt.gr, old, obj) + causes
        elif old is not None:
            causes += validation.validate_update(rt.gr, old, obj)
        if causes:
            raise errors.invalid(rt.kind, rt.group, name, causes)
        for plugin in self.validating:
            plugin(operation, rt, obj, old, opts)
        return obj

    def _validate_custom(
        self, rt: ResourceType, obj: Obj, opts: RequestOptions
    ) -> tuple[Obj, builtins.list[Any]]:
        version = obj.get("apiVersion", "").rpartition("/")[2] or rt.version
        schema = rt.schemas.get(version) or {}
        if not schema:
            return obj, []
        unknown: list[str] = []
        body = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")}
        root = dict(
            schema,
            properties={
                k: v
                for k, v in (schema.get("properties") or {}).items()
                if k not in ("apiVersion", "kind", "metadata")
            },
        )
        checked, causes = validation.validate_schema(
            body, root, "", opts.field_validation == "Strict", unknown
        )
        unknown = [u.lstrip(".") for u in unknown]
        if unknown:
            if opts.field_validation == "Strict":
                listed = ", ".join(f'unknown field "{u}"' for u in unknown)
                raise errors.bad_request(
                    f'{rt.kind} in version "{version}" cannot be handled as a {rt.kind}: '
                    f"strict decoding error: {listed}"
                )
            if opts.field_validation == "Warn":
                opts.warnings += [f'unknown field "{u}"' for u in unknown]
        causes = [(r, f.lstrip("."), m) for r, f, m in causes]
        result = {k: obj[k] for k in ("apiVersion", "kind", "metadata") if k in obj}
        result.update(checked)
        return result, causes

    def _strip_status(self, rt: ResourceType, obj: Obj, old: Obj | None) -> None:
        """On the main resource of a type with a status subresource, status cannot be written."""
        if "status" not in rt.subresources:
            return
        if old is not None:
            if "status" in old:
                obj["status"] = clone(old["status"])
            else:
                obj.pop("status", None)
        elif rt.custom:
            obj.pop("status", None)

    def _bump_generation(self, rt: ResourceType, obj: Obj, old: Obj) -> None:
        ignored = ("metadata", "status") if "status" in rt.subresources else ("metadata",)
        before = {k: v for k, v in old.items() if k not in ignored}
        after = {k: v for k, v in obj.items() if k not in ignored}
        if "generation" not in old["metadata"]:
            return  # kinds whose strategy keeps no generation (ConfigMaps, Services...) never get one
        generation = old["metadata"]["generation"]
        obj["metadata"]["generation"] = generation + 1 if before != after else generation

    def create(
        self, rt: ResourceType, obj: Obj, namespace: str = "", opts: RequestOptions | None = None
    ) -> Obj:
        opts = opts or RequestOptions()
        if not isinstance(obj, dict) or not isinstance(obj.get("metadata", {}), dict):
            raise errors.bad_request("the object provided is unrecognized: expected an object")
        obj = clone(obj)
        self.decode(rt, obj, opts)
        meta = obj.setdefault("metadata", {})
        namespace = namespace or meta.get("namespace") or ("default" if rt.namespaced else "")
        if rt.namespaced:
            if meta.get("namespace") and meta["namespace"] != namespace:
                raise errors.bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        obj["apiVersion"] = obj.get("apiVersion") or rt.api_version()
        obj["kind"] = obj.get("kind") or rt.kind
        # Admission sees the object before its name is generated, so its errors quote the generateName.
        admitted_as = meta.get("name") or meta.get("generateName") or ""
        if not meta.get("name"):
            if meta.get("generateName"):
                meta["name"] = meta["generateName"] + _random_suffix()
            else:
                raise errors.invalid(
                    rt.kind,
                    rt.group,
                    "",
                    [
                        (
                            "FieldValueRequired",
                            "metadata.name",
                            "Required value: name or generateName is required",
                        )
                    ],
                )
        if rt.gr == ("", "pods") and not opts.internal:
            # Admission in the real order: the namespace's lifecycle first, then the ServiceAccount.
            self._check_namespace(rt, namespace, creating=True, admitted_as=admitted_as)
            self._check_service_account(obj, namespace, admitted_as)
        with self._lock:
            self._check_namespace(rt, namespace, creating=True, admitted_as=admitted_as)
            if self.store.get(rt.gr, meta.get("namespace", ""), meta["name"]) is not None:
                raise errors.already_exists(rt.plural, rt.group, meta["name"])
            for key in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds"):
                meta.pop(key, None)
            meta["uid"] = new_uid()
            meta["creationTimestamp"] = self.now()
            if rt.custom or rt.gr in GENERATION_KINDS:
                meta["generation"] = 1
            self._strip_status(rt, obj, None)
            obj = self._admit("CREATE", rt, obj, None, opts)
            obj = self._validate("CREATE", rt, obj, None, opts)
            self._allocate(rt, obj, opts.dry_run)
            if not opts.internal and opts.manager:
                if meta.get("managedFields") is None or not any(
                    m.get("operation") == "Apply" for m in meta.get("managedFields") or []
                ):
                    recorded = _without_registry_fields(rt.gr, obj)
                    ssa.record_update(None, recorded, opts.manager, obj["apiVersion"], self.now())
                    if recorded["metadata"].get("managedFields"):
                        meta["managedFields"] = recorded["metadata"]["managedFields"]
            return self._commit(rt, obj, "ADDED", opts)

    def _allocate(self, rt: ResourceType, obj: Obj, dry_run: bool = False, old: Obj | None = None) -> None:
        """A Service's cluster IP and node ports; a dry run checks and shows them but keeps nothing."""
        if rt.gr != ("", "services"):
            return
        spec = obj["spec"]
        if spec.get("type") == "ExternalName":
            return
        wanted_ip = spec.get("clusterIP")
        if wanted_ip and wanted_ip != "None" and not self.service_ips.contains(wanted_ip):
            # The service IP allocator (pkg/registry/core/service/ipallocator, v1.36) refuses an address
            # outside the service CIDR.
            raise errors.invalid(
                rt.kind,
                rt.group,
                obj["metadata"]["name"],
                [
                    (
                        "FieldValueInvalid",
                        "spec.clusterIPs",
                        f'Invalid value: ["{wanted_ip}"]: failed to allocate IP {wanted_ip}: the provided '
                        "network does not match the current range",
                    )
                ],
            )
        if not spec.get("clusterIP"):
            spec["clusterIP"] = self.service_ips.allocate()
            if dry_run:
                self.service_ips.release(spec["clusterIP"])
        elif spec["clusterIP"] != "None" and not dry_run:
            self.service_ips.reserve(spec["clusterIP"])
        spec.setdefault("clusterIPs", [spec["clusterIP"]])
        old_spec = (old or {}).get("spec") or {}
        old_ports = (
            old_spec.get("ports") or [] if old_spec.get("type") in ("NodePort", "LoadBalancer") else []
        )
        if spec.get("type") in ("NodePort", "LoadBalancer"):
            owned = {p.get("nodePort") for p in old_ports}
            # An update that omits a port's nodePort keeps the one allocated to the old port of the same name,
            # unless the new spec gives that number to another port (kubernetes v1.36.2
            # pkg/registry/core/service/storage/storage.go patchAllocatedValues; checked against
            # kube-apiserver v1.36.2: a PUT without nodePort keeps it; a renamed port gets a new one, and the
            # old number is free again).
            given = {p.get("nodePort") for p in spec.get("ports") or [] if p.get("nodePort")}
            by_name = {p.get("name"): p.get("nodePort") for p in old_ports}
            for port in spec.get("ports") or []:
                previous = by_name.get(port.get("name"))
                if not port.get("nodePort") and previous and previous not in given:
                    port["nodePort"] = previous
                    given.add(previous)
            for n, port in enumerate(spec.get("ports") or []):
                wanted = port.get("nodePort")
                if wanted and not 30000 <= wanted <= 32767 and not dry_run:
                    # A dry run allocates nothing, so the range is not checked (v1.36 answers 201).
                    raise errors.invalid(
                        rt.kind,
                        rt.group,
                        obj["metadata"]["name"],
                        [
                            (
                                "FieldValueInvalid",
                                f"spec.ports[{n}].nodePort",
                                f"Invalid value: {wanted}: provided port is not in the valid range. "
                                "The range of valid ports is 30000-32767",
                            )
                        ],
                    )
                if wanted and wanted in self._node_ports_used and wanted not in owned:
                    raise errors.invalid(
                        rt.kind,
                        rt.group,
                        obj["metadata"]["name"],
                        [
                            (
                                "FieldValueInvalid",
                                f"spec.ports[{n}].nodePort",
                                f"Invalid value: {wanted}: provided port is already allocated",
                            )
                        ],
                    )
                if wanted:
                    if not dry_run:
                        self._node_ports_used.add(wanted)
                else:
                    port["nodePort"] = self._allocate_node_port()
                    if dry_run:
                        self._node_ports_used.discard(port["nodePort"])
        if not dry_run:
            # Ports the old spec held and the new one does not are released (the allocator's transaction).
            kept = (
                {p.get("nodePort") for p in spec.get("ports") or []}
                if spec.get("type")
                in (
                    "NodePort",
                    "LoadBalancer",
                )
                else set()
            )
            for port in old_ports:
                if port.get("nodePort") and port["nodePort"] not in kept:
                    self._node_ports_used.discard(port["nodePort"])

    def _allocate_node_port(self) -> int:
        """A free port of 30000-32767 picked at random, as kube-apiserver's allocator does. Every node port of
        this cluster is also a listener on the host's loopback (``NodePortController``), and other clusters
        (other test workers, a demo) may run on the same host: a port the host already has in use is skipped,
        or the Service would be unreachable, which no single real cluster does to its own node ports."""
        while True:
            candidate = random.randrange(30000, 32768)
            if candidate not in self._node_ports_used and _loopback_port_free(candidate):
                self._node_ports_used.add(candidate)
                return candidate

    def _commit(self, rt: ResourceType, obj: Obj, event: str, opts: RequestOptions) -> Obj:
        if opts.dry_run:
            # Nothing is written: a created object has no resourceVersion yet, an updated one keeps its own.
            return obj
        obj["metadata"]["resourceVersion"] = str(self.store.next_rv())
        stored = self.store.put(rt.gr, obj, event)
        if rt.gr == ("apiextensions.k8s.io", "customresourcedefinitions"):
            self._crd_changed(stored)
        return stored

    def update(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        obj: Obj,
        opts: RequestOptions | None = None,
        subresource: str = "",
    ) -> Obj:
        opts = opts or RequestOptions()
        if not isinstance(obj, dict):
            raise errors.bad_request("the object provided is unrecognized: expected an object")
        obj = clone(obj)
        self.decode(rt, obj, opts)
        meta = obj.setdefault("metadata", {})
        if meta.get("name") and meta["name"] != name:
            raise errors.bad_request(
                f"the name of the object ({meta['name']}) does not match the name on the URL ({name})"
            )
        with self._lock:
            old = self.store.get(rt.gr, namespace if rt.namespaced else "", name)
            if old is None:
                raise errors.not_found(rt.plural, rt.group, name)
            expected = meta.get("resourceVersion")
            if expected and expected != old["metadata"]["resourceVersion"]:
                raise errors.conflict(rt.plural, rt.group, name, errors.STALE)
            return self._replace(rt, old, obj, opts, subresource)

    def _replace(self, rt: ResourceType, old: Obj, obj: Obj, opts: RequestOptions, subresource: str) -> Obj:
        # A merge patch may share the stored object's metadata: changes to it must not reach the store.
        meta = obj["metadata"] = dict(obj.get("metadata") or {})
        old_meta = old["metadata"]
        for key in (
            "uid",
            "creationTimestamp",
            "namespace",
            "name",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
        ):
            if key in old_meta:
                meta[key] = old_meta[key]
            else:
                meta.pop(key, None)
        obj["apiVersion"] = obj.get("apiVersion") or old["apiVersion"]
        obj["kind"] = old["kind"]
        if subresource == "status":
            status = obj.get("status")
            obj = clone(old)
            if status is None:
                obj.pop("status", None)
            else:
                obj["status"] = status
        elif subresource in legacy.POD_FIELD_SUBRESOURCES:
            obj = legacy.only_subresource_fields(subresource, old, obj)
        else:
            self._strip_status(rt, obj, old)
        if not opts.internal:
            obj = self._admit("UPDATE", rt, obj, old, opts)
            obj = self._validate("UPDATE", rt, obj, old, opts)
            given = meta.get("managedFields")
            if isinstance(given, list) and given != old_meta.get("managedFields") and subresource != "apply":
                # A client that rewrites managedFields gets them as written (kubectl's client-side to
                # server-side apply migration does so), as the real field manager allows.
                if not any(given):
                    meta.pop("managedFields", None)
            elif opts.manager and subresource != "apply":
                ssa.record_update(old, obj, opts.manager, obj["apiVersion"], self.now(), subresource)
        else:
            defaults.apply_defaults(rt.gr, obj)
        if rt.gr == ("", "services"):
            spec, old_spec = obj.get("spec") or {}, old.get("spec") or {}
            if spec.get("type") == "ExternalName":
                # Changing to ExternalName releases the cluster IP (the service REST storage does so).
                spec.pop("clusterIP", None)
                spec.pop("clusterIPs", None)
            else:
                spec.setdefault("clusterIP", old_spec.get("clusterIP"))
                spec.setdefault("clusterIPs", old_spec.get("clusterIPs"))
            self._allocate(rt, obj, opts.dry_run, old)
        self._bump_generation(rt, obj, old)
        if old_meta.get("deletionTimestamp") and not meta.get("finalizers"):
            if opts.dry_run:
                return obj
            return self._finalize(rt, old)
        if obj == old:
            return old  # a no-op update does not change resourceVersion, as on a real server
        meta.pop("resourceVersion", None)
        if opts.dry_run:
            meta["resourceVersion"] = old_meta["resourceVersion"]  # nothing was written
        return self._commit(rt, obj, "MODIFIED", opts)

    # -- internal writes by controllers ------------------------------------------------------------------
    def write(self, rt: ResourceType, obj: Obj) -> Obj | None:
        """Store a controller's change (status or spec) with a new resourceVersion; no admission.

        Returns None when the object was deleted or replaced meanwhile (the controller will see the event).
        """
        with self._lock:
            meta = obj["metadata"]
            current = self.store.get(rt.gr, meta.get("namespace", ""), meta["name"])
            if current is None or current["metadata"]["uid"] != meta["uid"]:
                return None
            if current == obj:
                return current
            new = dict(obj, metadata=dict(meta, resourceVersion=str(self.store.next_rv())))
            return self.store.put(rt.gr, new, "MODIFIED")


_BASE64 = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")


def _base64_error(text: str) -> str | None:
    """Go's base64.StdEncoding error for a Secret's ``data`` value ([]byte fields are base64 in JSON), or
    None when it decodes: the offset of the first byte that cannot be, as encoding/base64 reports it."""
    data = text.replace("\r", "").replace("\n", "")
    for index, char in enumerate(data):
        if char == "=":
            quantum = index % 4
            rest = data[index:]
            if quantum < 2 or rest != "=" * (4 - quantum):
                return f"illegal base64 data at input byte {index if quantum < 2 else index + len(rest)}"
            return None
        if char not in _BASE64:
            return f"illegal base64 data at input byte {index}"
    if len(data) % 4:
        # An unpadded tail: encoding/base64 stops at the end of the input (offset not recorded yet).
        return f"illegal base64 data at input byte {len(data)}"
    return None
