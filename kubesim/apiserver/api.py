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

import base64
import builtins
import ipaddress
import json
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kubesim.apiserver import defaults, schema, validation
from kubesim.clock import SimClock
from kubesim.machinery import errors, ssa
from kubesim.machinery.errors import ApiError
from kubesim.machinery.patch import json_merge_patch, json_patch, strategic_merge_patch
from kubesim.machinery.resources import BUILTIN_TYPES, ResourceType
from kubesim.machinery.selectors import parse_field_selector, parse_label_selector
from kubesim.store import Store, clone

Obj = dict[str, Any]

# Kinds whose registry strategy sets metadata.generation (PrepareForCreate sets 1), from
# kubernetes/kubernetes pkg/registry/*/*/strategy.go at v1.36; others (Services, Namespaces, ConfigMaps)
# have none.
GENERATION_KINDS = frozenset(
    {
        ("", "pods"),
        ("apps", "deployments"),
        ("apps", "replicasets"),
        ("apps", "daemonsets"),
        ("apps", "statefulsets"),
        ("batch", "jobs"),
        ("batch", "cronjobs"),
        ("apiextensions.k8s.io", "customresourcedefinitions"),
        ("policy", "poddisruptionbudgets"),
        ("autoscaling", "horizontalpodautoscalers"),
        ("networking.k8s.io", "ingresses"),
        ("networking.k8s.io", "networkpolicies"),
        ("scheduling.k8s.io", "priorityclasses"),
        ("admissionregistration.k8s.io", "validatingwebhookconfigurations"),
        ("admissionregistration.k8s.io", "mutatingwebhookconfigurations"),
    }
)

# (operation, resource type, new object, old object, options) -> mutated object
AdmissionPlugin = Callable[[str, ResourceType, Obj, "Obj | None", "RequestOptions"], Obj]


@dataclass
class RequestOptions:
    dry_run: bool = False
    manager: str = ""
    field_validation: str = "Warn"
    force: bool = False
    user: str = "kubernetes-admin"
    internal: bool = False  # a controller inside the cluster: no field management bookkeeping
    warnings: list[str] = field(default_factory=list)


@dataclass
class ListResult:
    items: list[Obj]
    resource_version: str
    continue_token: str = ""
    remaining: int | None = None


def rfc3339(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


def new_uid() -> str:
    """A random (version 4) UUID; random.getrandbits is much cheaper than os.urandom on small VMs."""
    return str(uuid.UUID(int=random.getrandbits(128), version=4))


def _random_suffix(n: int = 5) -> str:
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    raw = random.getrandbits(128)
    return "".join(alphabet[(raw >> (5 * i)) % len(alphabet)] for i in range(n))


class IPAllocator:
    """Hands out addresses from a CIDR, as the service IP and pod IPAM allocators do."""

    def __init__(self, cidr: str, skip: int = 1) -> None:
        self._net = ipaddress.ip_network(cidr)
        self._next = skip
        self._free: list[str] = []
        self._reserved: set[str] = set()
        self._lock = threading.Lock()

    def allocate(self) -> str:
        with self._lock:
            if self._free:
                return self._free.pop()
            while True:
                self._next += 1
                ip = str(self._net.network_address + self._next)
                if ip not in self._reserved:
                    return ip

    def reserve(self, ip: str) -> None:
        """An address chosen by the user (``spec.clusterIP``) is never handed out again."""
        with self._lock:
            self._reserved.add(ip)
            if ip in self._free:
                self._free.remove(ip)

    def release(self, ip: str) -> None:
        with self._lock:
            self._free.append(ip)


class Api:
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
        for rt in BUILTIN_TYPES:
            self._types[rt.gr] = rt
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

    # -- reads -------------------------------------------------------------------------------------------
    def present(self, rt: ResourceType, obj: Obj, version: str | None = None) -> Obj:
        """The object as served at ``version`` (custom resources convert with strategy None)."""
        if version and version != rt.version and rt.custom:
            obj = dict(obj, apiVersion=rt.api_version(version))
        return obj

    def get(self, rt: ResourceType, namespace: str, name: str) -> Obj:
        obj = self.store.get(rt.gr, namespace if rt.namespaced else "", name)
        if obj is None:
            raise errors.not_found(rt.plural, rt.group, name)
        return obj

    def list(
        self,
        rt: ResourceType,
        namespace: str | None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int = 0,
        continue_token: str = "",
    ) -> ListResult:
        match_labels = parse_label_selector(label_selector)
        match_fields = parse_field_selector(field_selector, None if rt.custom else rt.gr)
        with self.store.lock:
            rv = str(self.store.resource_version)
            items = self.store.items(rt.gr, namespace if rt.namespaced else None)
        selected = [o for o in items if match_labels(o["metadata"].get("labels") or {}) and match_fields(o)]
        selected.sort(key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
        start = ""
        if continue_token:
            try:
                token = json.loads(base64.urlsafe_b64decode(continue_token.encode()))
                start, rv = token["start"], token["rv"]
            except (ValueError, KeyError):
                raise errors.bad_request("continue key is not valid: illegal base64 data") from None
            selected = [
                o
                for o in selected
                if (o["metadata"].get("namespace", "") + "/" + o["metadata"]["name"]) > start
            ]
        if limit and len(selected) > limit:
            page, rest = selected[:limit], selected[limit:]
            last = page[-1]["metadata"]
            token = {"rv": rv, "start": last.get("namespace", "") + "/" + last["name"]}
            return ListResult(
                page, rv, base64.urlsafe_b64encode(json.dumps(token).encode()).decode(), len(rest)
            )
        return ListResult(selected, rv)

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

    def _check_namespace(self, rt: ResourceType, namespace: str, creating: bool) -> None:
        if not rt.namespaced:
            return
        ns = self.store.get(("", "namespaces"), "", namespace)
        if ns is None:
            raise errors.not_found("namespaces", "", namespace)
        if creating and ns["metadata"].get("deletionTimestamp"):
            raise ApiError(
                403,
                "Forbidden",
                f'{rt.kind} "" is forbidden: unable to create new content in '
                f"namespace {namespace} because it is being terminated",
                {
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
        causes = validation.validate_name(rt.gr, name) if operation == "CREATE" else []
        if rt.custom:
            obj, more = self._validate_custom(rt, obj, opts)
            causes += more
        else:
            causes += validation.validate(rt.gr, obj)
        if old is not None:
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
            self._check_namespace(rt, namespace, creating=True)
            self._check_service_account(obj, namespace, admitted_as)
        with self._lock:
            self._check_namespace(rt, namespace, creating=True)
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
        meta = obj.setdefault("metadata", {})
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

    def patch(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        patch_type: str,
        body: Any,
        opts: RequestOptions | None = None,
        subresource: str = "",
    ) -> Obj:
        opts = opts or RequestOptions()
        ns = namespace if rt.namespaced else ""
        with self._lock:
            old = self.store.get(rt.gr, ns, name)
            if patch_type == "apply":
                return self._apply(rt, ns, name, old, body, opts, subresource)
            if old is None:
                raise errors.not_found(rt.plural, rt.group, name)
            if patch_type == "merge":
                new = json_merge_patch(old, body)
            elif patch_type == "strategic":
                if rt.custom:
                    raise ApiError(
                        415,
                        "UnsupportedMediaType",
                        "the body of the request was in an unknown "
                        "format - accepted media types include: application/json-patch+json, "
                        "application/merge-patch+json, application/apply-patch+yaml",
                        {},
                    )
                new = strategic_merge_patch(old, body)
            elif patch_type == "json":
                if not isinstance(body, list):
                    raise errors.bad_request(
                        "json: cannot unmarshal object into Go value of type jsonpatch.Patch"
                    )
                new = json_patch(old, body)
            else:
                raise errors.unsupported_media_type(patch_type)
            if not isinstance(new, dict):
                raise errors.bad_request("the patch produced an object that is not a JSON object")
            expected = (new.get("metadata") or {}).get("resourceVersion")
            if expected and expected != old["metadata"]["resourceVersion"]:
                raise errors.conflict(rt.plural, rt.group, name, errors.STALE)
            self._decode_patched(rt, new, opts)
            return self._replace(rt, old, new, opts, subresource)

    def _apply(
        self,
        rt: ResourceType,
        ns: str,
        name: str,
        old: Obj | None,
        body: Any,
        opts: RequestOptions,
        subresource: str,
    ) -> Obj:
        if not isinstance(body, dict):
            raise errors.bad_request("error decoding YAML: the apply configuration must be an object")
        node = None if rt.custom else schema.root(rt.group, rt.version, rt.kind)
        undeclared = schema.apply_schema_error(body, node) if node is not None else None
        if undeclared:
            body_ns = (body.get("metadata") or {}).get("namespace", "")
            raise ApiError(
                500,
                "",
                f"failed to create typed patch object ({body_ns}/{name}; "
                f"{rt.group}/{rt.version}, Kind={rt.kind}): " + undeclared,
            )
        if not opts.manager:
            raise ApiError(
                422,
                "Invalid",
                'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required '
                "value: is required for apply patch",
                {
                    "kind": "PatchOptions",
                    "group": "meta.k8s.io",
                    "causes": [
                        {
                            "reason": "FieldValueRequired",
                            "message": "Required value: is required for apply patch",
                            "field": "fieldManager",
                        }
                    ],
                },
            )
        for key in ("apiVersion", "kind"):
            if not body.get(key):
                raise errors.bad_request(
                    f"{key} must be set in an apply configuration"
                    if key == "kind"
                    else "invalid object type: /, Kind="
                )
        body_meta = body.get("metadata") or {}
        if body_meta.get("name") and body_meta["name"] != name:
            raise errors.bad_request(
                f"the name of the object ({body_meta['name']}) does not match the name on the URL ({name})"
            )
        applied = clone(body)
        applied.setdefault("metadata", {})["name"] = name
        if rt.namespaced:
            applied["metadata"]["namespace"] = ns
        expected = body_meta.get("resourceVersion")
        if expected and (old is None or expected != old["metadata"]["resourceVersion"]):
            raise errors.conflict(rt.plural, rt.group, name, errors.STALE)
        result = ssa.apply(
            old, applied, opts.manager, body["apiVersion"], opts.force, self.now(), subresource
        )
        annotations = (result.get("metadata") or {}).get("annotations") or {}
        if opts.manager == "kubectl" and ssa.LAST_APPLIED in annotations:
            # lastAppliedUpdater: kubectl's server-side apply keeps a client-side apply annotation in step.
            last = clone(body)
            last_annotations = (last.get("metadata") or {}).get("annotations") or {}
            last_annotations.pop(ssa.LAST_APPLIED, None)
            if not last_annotations:
                (last.get("metadata") or {}).pop("annotations", None)
            annotations = dict(annotations)
            annotations[ssa.LAST_APPLIED] = json.dumps(last, sort_keys=True, separators=(",", ":")) + "\n"
            result["metadata"]["annotations"] = annotations
        if old is None:
            created = self.create(
                rt,
                result,
                ns,
                RequestOptions(
                    opts.dry_run, "", opts.field_validation, user=opts.user, warnings=opts.warnings
                ),
            )
            return created
        return self._replace(rt, old, result, opts, "apply" if not subresource else subresource)

    # -- delete -------------------------------------------------------------------------------------------
    def delete(
        self,
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
            if precondition_uid and precondition_uid != obj["metadata"]["uid"]:
                raise errors.conflict(
                    rt.plural,
                    rt.group,
                    name,
                    f"Precondition failed: UID in precondition: "
                    f"{precondition_uid}, UID in object meta: {obj['metadata']['uid']}",
                )
            if precondition_rv and precondition_rv != obj["metadata"]["resourceVersion"]:
                raise errors.conflict(
                    rt.plural,
                    rt.group,
                    name,
                    "Precondition failed: ResourceVersion in "
                    f"precondition: {precondition_rv}, ResourceVersion in object meta: "
                    f"{obj['metadata']['resourceVersion']}",
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

    def _finalize(self, rt: ResourceType, obj: Obj) -> Obj:
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

    def remove_finalizer(self, rt: ResourceType, obj: Obj, finalizer: str) -> None:
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

    # -- CRDs ----------------------------------------------------------------------------------------------
    def _crd_changed(self, crd: Obj) -> None:
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        served = [v for v in spec.get("versions") or [] if v.get("served", True)]
        if not served or crd["metadata"].get("deletionTimestamp"):
            return
        storage = next((v for v in served if v.get("storage")), served[0])
        ordered = [storage["name"]] + [v["name"] for v in served if v is not storage]
        # kubectl and the dynamic client prefer the newest stable version, as discovery sorts them.
        ordered.sort(key=_version_priority)
        subresources = served[0].get("subresources") or {}
        scale = subresources.get("scale")
        rt = ResourceType(
            group=spec.get("group", ""),
            versions=tuple(ordered),
            kind=names.get("kind", ""),
            plural=names.get("plural", ""),
            namespaced=spec.get("scope", "Namespaced") == "Namespaced",
            short_names=tuple(names.get("shortNames") or ()),
            categories=tuple(names.get("categories") or ()),
            subresources=tuple(k for k in ("status", "scale") if k in subresources),
            singular=names.get("singular", ""),
            schemas={v["name"]: (v.get("schema") or {}).get("openAPIV3Schema") or {} for v in served},
            scale_paths=(
                scale["specReplicasPath"],
                scale["statusReplicasPath"],
                scale.get("labelSelectorPath", ""),
            )
            if scale
            else None,
            custom=True,
            columns=tuple(served[0].get("additionalPrinterColumns") or ()),
        )
        with self._lock:
            self._types[rt.gr] = rt
        self._notify_discovery()

    def _crd_removed(self, crd: Obj) -> None:
        spec = crd.get("spec") or {}
        gr = (spec.get("group", ""), (spec.get("names") or {}).get("plural", ""))
        with self._lock:
            rt = self._types.get(gr)
            if rt is not None and rt.custom:
                del self._types[gr]
                self.store.drop_resource(gr)
        self._notify_discovery()

    def _notify_discovery(self) -> None:
        for listener in self.discovery_changed:
            listener()


# Fields the real server sets after it has recorded the creating manager's fields: by admission plugins
# (ServiceAccount, Priority, DefaultTolerationSeconds), the registry strategy (a namespace's finalizer) or the
# REST storage (a Service's IPs and families). The manager does not own them, so they are left out of its set.
_REGISTRY_FIELDS: dict[tuple[str, str], tuple[str, ...]] = {
    ("", "pods"): ("serviceAccount", "serviceAccountName", "priority", "preemptionPolicy", "tolerations"),
    ("", "services"): ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"),
    ("", "namespaces"): ("finalizers",),
}


def _without_registry_fields(gr: tuple[str, str], obj: Obj) -> Obj:
    fields = _REGISTRY_FIELDS.get(gr)
    if not fields or not isinstance(obj.get("spec"), dict):
        return dict(obj, metadata=dict(obj["metadata"]))
    out = dict(
        obj, metadata=dict(obj["metadata"]), spec={k: v for k, v in obj["spec"].items() if k not in fields}
    )
    if not out["spec"]:
        del out["spec"]  # a namespace whose only spec is the finalizer the strategy adds
    return out


_OBJECT_META_ORDER = (
    "name generateName namespace selfLink uid resourceVersion generation creationTimestamp deletionTimestamp "
    "deletionGracePeriodSeconds labels annotations ownerReferences finalizers managedFields"
).split()
_MANAGED_FIELDS_ORDER = "manager operation apiVersion time fieldsType fieldsV1 subresource".split()


def _go_patched_json(obj: Obj) -> str:
    """The patched object as the patcher prints it: an unstructured map (sorted keys) whose metadata was
    round-tripped through ObjectMeta (struct field order)."""

    def ordered(value: dict[str, Any], order: list[str]) -> dict[str, Any]:
        return {k: value[k] for k in order if k in value} | {
            k: value[k] for k in sorted(value) if k not in order
        }

    def dump(value: Any) -> str:
        return json.dumps(value, sort_keys=True, separators=(",", ":"))

    parts = []
    for key in sorted(obj):
        value = obj[key]
        if key == "metadata" and isinstance(value, dict):
            meta = ordered(value, _OBJECT_META_ORDER)
            fields = []
            for name, item in meta.items():
                if name == "managedFields" and isinstance(item, list):
                    entries = [
                        "{"
                        + ",".join(
                            f"{json.dumps(k)}:{dump(v)}" for k, v in ordered(m, _MANAGED_FIELDS_ORDER).items()
                        )
                        + "}"
                        if isinstance(m, dict)
                        else dump(m)
                        for m in item
                    ]
                    fields.append(f'"managedFields":[{",".join(entries)}]')
                else:
                    fields.append(f"{json.dumps(name)}:{dump(item)}")
            parts.append('"metadata":{' + ",".join(fields) + "}")
        else:
            parts.append(f"{json.dumps(key)}:{dump(value)}")
    return "{" + ",".join(parts) + "}"


def _version_priority(version: str) -> tuple[int, int, int]:
    """Kubernetes version priority: GA > beta > alpha, higher numbers first."""
    import re

    m = re.match(r"^v(\d+)(?:(alpha|beta)(\d+))?$", version)
    if not m:
        return (3, 0, 0)
    major, level, minor = int(m.group(1)), m.group(2), int(m.group(3) or 0)
    rank = {None: 0, "beta": 1, "alpha": 2}[level]
    return (rank, -major, -minor)


def owner_reference(obj: Obj, controller: bool = True) -> Obj:
    return {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "name": obj["metadata"]["name"],
        "uid": obj["metadata"]["uid"],
        "controller": controller,
        "blockOwnerDeletion": True,
    }


def controller_of(obj: Obj) -> Obj | None:
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("controller"):
            return ref
    return None


def _loopback_port_free(port: int) -> bool:
    """Whether 127.0.0.1:``port`` can be listened on now (with SO_REUSEADDR, as the node-port listener)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
