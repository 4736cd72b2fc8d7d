"""The resource verbs of the simulated API server over HTTP: get, list (tables, paging), create, update,
patch (four content types), delete and deletecollection, the scale and eviction subresources, and the query
parameters (``dryRun``, ``fieldManager``, ``fieldValidation``, ``force``, selectors, ``limit``) checked and
answered as kube-apiserver does. The request semantics themselves live in ``api.Api``.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from kubesim.apiserver import legacy, tables
from kubesim.apiserver.api import ListResult, RequestOptions, rfc3339
from kubesim.apiserver.http_base import Route
from kubesim.apiserver.streams import StreamMixin
from kubesim.machinery import errors, protobuf
from kubesim.machinery.errors import ApiError
from kubesim.machinery.resources import ResourceType

_PATCH_TYPES = {
    "application/json-patch+json": "json",
    "application/merge-patch+json": "merge",
    "application/strategic-merge-patch+json": "strategic",
    "application/apply-patch+yaml": "apply",
    "application/apply-patch+cbor": "unsupported",
}


# Subresources an update or patch writes through (the rest of the object stays as stored).
_WRITTEN_SUBRESOURCES = ("status", *legacy.POD_FIELD_SUBRESOURCES)

_REPRESENTATIONS = ("application/json", "application/yaml", "application/vnd.kubernetes.protobuf")
_STREAMS = ("application/json;stream=watch", "application/vnd.kubernetes.protobuf;stream=watch")


def _acceptable(accept: str) -> bool:
    """Whether one of the media ranges of an Accept header is served (JSON, YAML, protobuf, wildcards)."""
    for item in (accept or "*/*").split(","):
        media = item.split(";")[0].strip().lower()
        if media in ("", "*/*", "application/*") or media in _REPRESENTATIONS:
            return True
    return False


def _go_type_of(value: Any) -> str:
    """How encoding/json names a JSON value in ``cannot unmarshal X into Go value``."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return "string" if isinstance(value, str) else "null"


def _at_path(obj: Any, path: str) -> Any:
    """The value at a CRD scale path (``.spec.replicas``), None when absent."""
    for part in path.strip(".").split("."):
        obj = obj.get(part) if isinstance(obj, dict) else None
    return obj


def _int_param(text: str) -> int:
    """An integer query parameter, rejected with Go's strconv message as the server does."""
    try:
        return int(text)
    except ValueError:
        raise errors.bad_request(f'strconv.ParseInt: parsing "{text}": invalid syntax') from None


def _go_kind(value: Any) -> str:
    """The JSON kind Go's encoding/json names in "cannot unmarshal <kind> into ..." errors."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    names: dict[type, str] = {str: "string", list: "array", dict: "object"}
    return names.get(type(value), "null")


#: DeleteOptions fields and the Go types kube-apiserver names when a body gives one the wrong JSON type
#: (apimachinery pkg/apis/meta/v1 types.go).
_DELETE_FIELDS: dict[str, tuple[type | tuple[type, ...], str]] = {
    "gracePeriodSeconds": (int, "int64"),
    "preconditions": (dict, "v1.Preconditions"),
    "orphanDependents": (bool, "bool"),
    "propagationPolicy": (str, "v1.DeletionPropagation"),
    "dryRun": (list, "[]string"),
}


def _delete_options(payload: Any) -> dict[str, Any]:
    """A DELETE body as DeleteOptions, refused in kube-apiserver's words (v1.36) when it is not one."""
    if payload is None:
        return {}
    if not isinstance(payload, dict):
        raise errors.bad_request(
            "couldn't get version/kind; json parse error: json: cannot unmarshal "
            f"{_go_kind(payload)} into Go "
            'value of type struct { APIVersion string "json:\\"apiVersion,omitempty\\""; Kind string '
            '"json:\\"kind,omitempty\\"" }'
        )
    for field, (python_type, go_type) in _DELETE_FIELDS.items():
        value = payload.get(field)
        wrong = not isinstance(value, python_type) or (python_type is int and isinstance(value, bool))
        if value is not None and wrong:
            raise errors.bad_request(
                f"json: cannot unmarshal {_go_kind(value)} into Go struct field DeleteOptions.{field} "
                f"of type {go_type}"
            )
    return payload


class ResourceMixin(StreamMixin):
    def _route(self, group: str, version: str, rest: list[str]) -> Route:
        api = self.cluster.api
        namespace: str | None = None
        if rest[0] == "namespaces" and len(rest) >= 3:
            candidate = next(
                (rt for rt in api.types() if rt.group == group and rt.plural == rest[2] and rt.namespaced),
                None,
            )
            if candidate is not None:
                namespace, rest = rest[1], rest[2:]
        rt = api.resolve(group, version, rest[0])
        if rt.namespaced is False and namespace is not None:
            raise errors.resource_not_found()
        name = rest[1] if len(rest) > 1 else None
        subresource = rest[2] if len(rest) > 2 else ""
        if subresource and subresource not in rt.subresources:
            raise errors.resource_not_found()
        return Route(rt, version, namespace, name, subresource, "/".join(rest[3:]))

    def _options(self, query: dict[str, str], verb: str) -> RequestOptions:
        agent = (self.headers.get("User-Agent") or "unknown").split("/")[0]
        manager = query.get("fieldManager") or ("" if verb == "apply" else agent)
        options_kind = {"create": "CreateOptions", "update": "UpdateOptions", "delete": "DeleteOptions"}.get(
            verb, "PatchOptions"
        )
        validation = query.get("fieldValidation") or "Warn"
        if validation not in ("Ignore", "Warn", "Strict"):
            raise errors.invalid_options(
                options_kind,
                "fieldValidation",
                "FieldValueNotSupported",
                f'Unsupported value: "{validation}": supported values: "", "Ignore", "Strict", "Warn"',
            )
        dry_run = query.get("dryRun", "")
        if dry_run and dry_run != "All":
            raise errors.invalid_options(
                options_kind,
                "dryRun",
                "FieldValueNotSupported",
                f'Unsupported value: ["{dry_run}"]: supported values: "All"',
            )
        force = query.get("force", "false").lower() == "true"
        if force and verb == "patch":
            raise errors.bad_request("force flag must only be set for apply patches")
        return RequestOptions(
            dry_run=dry_run == "All",
            manager=manager,
            field_validation=validation,
            force=force,
            warnings=self._warnings,
        )

    def _verb(self, method: str, route: Route, query: dict[str, str]) -> str:
        # A collection takes no PUT or PATCH, a named object no POST (but its subresources may).
        if (
            method in ("PUT", "PATCH")
            and not route.name
            or method == "POST"
            and route.name
            and not route.subresource
        ):
            raise errors.method_not_allowed(method)
        if method == "GET":
            if query.get("watch") in ("true", "1"):
                return "watch"
            return "get" if route.name else "list"
        if method == "PATCH" and _PATCH_TYPES.get(self._content_type()) == "apply":
            return "apply"
        return {
            "POST": "create",
            "PUT": "update",
            "PATCH": "patch",
            "DELETE": "delete" if route.name else "deletecollection",
        }[method]

    def _content_type(self) -> str:
        return (self.headers.get("Content-Type") or "application/json").split(";")[0].strip()

    def _resource(self, method: str, route: Route, query: dict[str, str], body: bytes) -> None:
        api = self.cluster.api
        rt = route.rt
        verb = self._verb(method, route, query)
        self._metric = (
            ("APPLY" if verb == "apply" else verb.upper()),
            rt.plural + ("/" + route.subresource if route.subresource else ""),
        )
        fault = self.cluster.faults.api_fault(
            "patch" if verb == "apply" else verb,
            rt,
            route.namespace or "",
            route.name or "",
            self.headers.get("User-Agent") or "",
        )
        if fault is not None:
            raise fault
        if route.subresource == "log":
            return self._logs(route, query)
        if route.subresource == "proxy":
            return self._proxy(method, route, query, body)
        ns = route.namespace or ""
        if route.subresource in ("exec", "attach", "portforward"):
            return self._pod_session(route)
        if verb in ("get", "list", "watch") and not _acceptable(self.headers.get("Accept") or ""):
            offered = _REPRESENTATIONS + (_STREAMS if verb != "get" else ())
            raise ApiError(
                406,
                "NotAcceptable",
                "406: Not Acceptable\n\nAvailable representations: " + ", ".join(offered),
                {},
            )
        if rt.gr == legacy.COMPONENTSTATUSES:
            self._warnings.append(legacy.DEPRECATED)
        legacy.check_verb(rt, verb, method)
        if verb in ("get", "list", "watch"):
            self._check_resource_version(verb, query)
        if rt.gr == legacy.COMPONENTSTATUSES and verb == "get":
            return self._send_json(200, legacy.component_status(route.name or ""))
        if rt.gr == legacy.COMPONENTSTATUSES and verb == "list":
            if self._wants_table():
                statuses = legacy.component_statuses()
                shown = tables.table(
                    api, rt, statuses, "", query.get("includeObject", "Metadata"), self.cluster
                )
                return self._send_json(200, dict(shown, metadata={}))
            return self._send_json(200, legacy.component_status_list())
        if verb in ("get", "list", "watch") and route.subresource == "scale":
            return self._send_json(200, self._scale(api.get(rt, ns, route.name or ""), rt))
        if verb == "watch":
            return self._watch(route, query)
        if verb == "list":
            match = query.get("resourceVersionMatch", "")
            if match not in ("", "Exact", "NotOlderThan"):
                raise errors.invalid_options(
                    "ListOptions",
                    "resourceVersionMatch",
                    "FieldValueNotSupported",
                    f'Unsupported value: "{match}": supported values: "Exact", "NotOlderThan", ""',
                )
            if match == "Exact" and query.get("resourceVersion") == "0":
                raise errors.invalid_options(
                    "ListOptions",
                    "resourceVersionMatch",
                    "FieldValueForbidden",
                    'Forbidden: resourceVersionMatch "exact" is forbidden for resourceVersion "0"',
                )
            if query.get("resourceVersionMatch") and not query.get("resourceVersion"):
                raise errors.invalid_options(
                    "ListOptions",
                    "resourceVersionMatch",
                    "FieldValueForbidden",
                    "Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided",
                )
            limit = _int_param(query.get("limit") or "0")
            asked = query.get("resourceVersion") or ""
            # An Exact list, or the legacy exact one (a limit with a resourceVersion and no match), reads
            # etcd at that revision (apiserver/pkg/storage/cacher/delegator.go shouldDelegateList).
            exact = not query.get("continue") and (
                match == "Exact" or (limit > 0 and not match and asked not in ("", "0"))
            )
            result = api.list(
                rt,
                route.namespace,
                query.get("labelSelector"),
                query.get("fieldSelector"),
                limit,
                query.get("continue", ""),
                int(asked) if exact and asked.isdigit() else None,
            )
            if self._wants_table():
                return self._send_json(
                    200,
                    tables.table(
                        api,
                        rt,
                        result.items,
                        result.resource_version,
                        query.get("includeObject", "Metadata"),
                        self.cluster,
                    ),
                )
            return self._send_list(rt, route.version, result)
        if verb == "get":
            obj = api.present(rt, api.get(rt, ns, route.name or ""), route.version)
            if self._wants_table():
                return self._send_json(
                    200,
                    tables.table(
                        api,
                        rt,
                        [obj],
                        obj["metadata"]["resourceVersion"],
                        query.get("includeObject", "Metadata"),
                        self.cluster,
                    ),
                )
            return self._send_object(rt, obj)
        content_type = self._content_type()
        if verb in ("patch", "apply") and content_type not in _PATCH_TYPES:
            raise ApiError(415, "UnsupportedMediaType", "415: Unsupported Media Type", {})
        protobuf_body = content_type == "application/vnd.kubernetes.protobuf"
        payload: Any = None
        if protobuf_body and verb in ("delete", "deletecollection"):
            try:
                payload = protobuf.decode_delete_options(body) if body else None
            except protobuf.ProtobufError as exc:
                raise errors.bad_request(str(exc)) from None
        elif protobuf_body and verb in ("create", "update"):
            try:
                payload = protobuf.decode(body)
            except protobuf.UnsupportedKind as exc:
                raise ApiError(
                    415,
                    "UnsupportedMediaType",
                    "the simulated API server decodes protobuf bodies of Namespaces, ConfigMaps, Secrets, "
                    f"ServiceAccounts and TokenRequests only, not of {exc}; send JSON (kubectl apply -f, "
                    "kubectl create -f)",
                ) from None
            except protobuf.ProtobufError as exc:
                raise errors.bad_request(str(exc)) from None
            content_type = "application/json"
        elif verb in ("create", "update", "patch", "apply") and content_type not in _PATCH_TYPES | {
            "application/json": "",
            "application/yaml": "",
        }:
            raise errors.unsupported_media_type(content_type, patch=verb in ("patch", "apply"))
        else:
            payload = self._decode_body(body, content_type, verb, rt)
        opts = self._options(query, verb)
        if verb == "create":
            if rt.gr == ("authorization.k8s.io", "selfsubjectaccessreviews"):
                return self._send_json(
                    201, dict(payload or {}, status={"allowed": True, "reason": "rehearsal-sim: admin"})
                )
            if rt.gr[0] == "authentication.k8s.io":
                return self._send_json(201, self._authentication_review(rt, payload))
            if route.name and route.subresource == "eviction":
                return self._evict(route, opts)
            if route.name and route.subresource == "token":
                return self._send_json(201, self._token_request(route, payload))
            if route.name and route.subresource == "binding":
                return self._bind(route, payload)
            if rt.gr == legacy.BINDINGS:
                name = ((payload or {}).get("metadata") or {}).get("name") or ""
                pods = api.resolve("", route.version, "pods")
                return self._bind(Route(pods, route.version, ns, name, "binding", ""), payload)
            if payload is None:
                raise errors.bad_request("the body of the request was empty")
            obj = api.create(rt, payload, ns, opts)
            return self._send_object(rt, api.present(rt, obj, route.version), 201)
        if verb == "update":
            if route.subresource == "scale":
                return self._update_scale(route, payload, opts)
            obj = api.update(
                rt,
                ns,
                route.name or "",
                payload,
                opts,
                route.subresource if route.subresource in _WRITTEN_SUBRESOURCES else "",
            )
            return self._send_object(rt, api.present(rt, obj, route.version))
        if verb in ("patch", "apply"):
            if payload is None:
                raise errors.bad_request("the body of the request was empty")
            kind = _PATCH_TYPES.get(content_type, "")
            if kind == "unsupported":
                raise errors.unsupported_media_type(content_type)
            if kind == "json" and isinstance(payload, list):
                for op in payload:
                    if not isinstance(op, dict):
                        raise errors.bad_request(
                            f"error decoding patch: json: cannot unmarshal {_go_kind(op)} into Go value of "
                            "type handlers.jsonPatchOp"
                        )
            if route.subresource == "scale":
                current = self._scale(api.get(rt, ns, route.name or ""), rt)
                from kubesim.machinery.patch import json_merge_patch

                return self._update_scale(route, json_merge_patch(current, payload), opts)
            existed = api.store.get(rt.gr, ns if rt.namespaced else "", route.name or "") is not None
            obj = api.patch(
                rt,
                ns,
                route.name or "",
                kind,
                payload,
                opts,
                route.subresource if route.subresource in _WRITTEN_SUBRESOURCES else "",
            )
            return self._send_object(rt, api.present(rt, obj, route.version), 200 if existed else 201)
        if verb in ("delete", "deletecollection"):
            options = _delete_options(payload)
            propagation = options.get("propagationPolicy") or query.get("propagationPolicy")
            if propagation not in (None, "", "Foreground", "Background", "Orphan"):
                raise errors.invalid_options(
                    "DeleteOptions",
                    "propagationPolicy",
                    "FieldValueNotSupported",
                    f'Unsupported value: "{propagation}": supported values: "Foreground", "Background", '
                    '"Orphan", "nil"',
                )
        if verb == "delete":
            grace = options.get("gracePeriodSeconds", query.get("gracePeriodSeconds"))
            if isinstance(grace, str) and grace:
                grace = _int_param(grace)
            preconditions = options.get("preconditions") or {}
            if (options.get("dryRun") or []) == ["All"]:
                opts.dry_run = True
            obj = api.delete(
                rt,
                ns,
                route.name or "",
                opts,
                propagation,
                int(str(grace)) if grace not in (None, "") else None,
                preconditions.get("uid"),
                preconditions.get("resourceVersion"),
            )
            if rt.gr == ("", "pods") or obj["metadata"].get("deletionTimestamp"):
                return self._send_object(rt, api.present(rt, obj, route.version))
            return self._send_json(
                200,
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Success",
                    "details": {
                        "name": route.name,
                        **({"group": rt.group} if rt.group else {}),
                        "kind": rt.plural,
                        "uid": obj["metadata"]["uid"],
                    },
                },
            )
        if verb == "deletecollection":
            # The answer lists what was deleted, as each delete left it (gone, or marked for deletion).
            result = api.list(rt, route.namespace, query.get("labelSelector"), query.get("fieldSelector"))
            deleted = []
            for item in result.items:
                try:
                    deleted.append(
                        api.delete(rt, item["metadata"].get("namespace", ""), item["metadata"]["name"], opts)
                    )
                except ApiError as exc:
                    if exc.code != 404:
                        raise
            return self._send_list(rt, route.version, ListResult(deleted, str(api.store.resource_version)))
        raise errors.method_not_allowed(method)

    def _check_resource_version(self, verb: str, query: dict[str, str]) -> None:
        """A resourceVersion that is no number: a list says so as a 400; a get and a watch pass the storage's
        error through as a 500 without a reason (apiserver/pkg/storage/etcd3, v1.36)."""
        text = query.get("resourceVersion", "")
        if not text or text.isdigit():
            return
        problem = (
            f'resourceVersion: Invalid value: "{text}": strconv.ParseUint: parsing "{text}": invalid syntax'
        )
        if verb == "list":
            raise errors.bad_request(f"invalid resource version: {problem}")
        raise ApiError(500, "", problem)

    def _decode_body(self, body: bytes, content_type: str, verb: str, rt: ResourceType) -> Any:
        """The request body, refused with the real server's messages: a patch "error decoding patch: ..."
        (Go's json errors, a JSON patch that is not an array), an object "the object provided is
        unrecognized (must be of type Kind): ... (body)"."""
        from kubesim.machinery.gojson import summarize, syntax_error

        if "yaml" in content_type or not body:
            return self._decode(body, content_type)
        try:
            payload = json.loads(body)
        except ValueError:
            problem = syntax_error(body.decode(errors="replace"))
            if verb in ("patch", "apply"):
                raise errors.bad_request(f"error decoding patch: {problem}") from None
            raise errors.bad_request(
                f"the object provided is unrecognized (must be of type {rt.kind}): couldn't get "
                f"version/kind; json parse error: {problem} ({summarize(body)})"
            ) from None
        kind = _PATCH_TYPES.get(content_type, "")
        if verb == "patch" and kind == "json" and not isinstance(payload, list):
            raise errors.bad_request(
                f"error decoding patch: json: cannot unmarshal {_go_type_of(payload)} into Go value of type "
                "[]handlers.jsonPatchOp"
            )
        if verb == "patch" and kind in ("merge", "strategic") and not isinstance(payload, dict):
            raise errors.bad_request(
                f"error decoding patch: json: cannot unmarshal {_go_type_of(payload)} into Go value of type "
                "map[string]interface {}"
            )
        return payload

    def _wants_table(self) -> bool:
        accept = self.headers.get("Accept") or ""
        return "as=Table" in accept

    def _send_object(self, rt: ResourceType, obj: dict[str, Any], code: int = 200) -> None:
        self._send(code, self.cluster.store.json_of(rt.gr, obj))

    def _send_list(self, rt: ResourceType, version: str, result: Any) -> None:
        api, store = self.cluster.api, self.cluster.store
        meta: dict[str, Any] = {"resourceVersion": result.resource_version}
        if result.continue_token:
            meta["continue"] = result.continue_token
            if result.remaining is not None:
                meta["remainingItemCount"] = result.remaining
        head = json.dumps(
            {"kind": rt.list_kind, "apiVersion": rt.api_version(version), "metadata": meta},
            separators=(",", ":"),
        ).encode()
        if rt.custom:
            # Custom resources are unstructured: each item keeps its apiVersion and kind.
            items = b",".join(
                json.dumps(api.present(rt, o, version), separators=(",", ":")).encode() for o in result.items
            )
        else:
            # A built-in list is encoded from typed items, which carry no apiVersion/kind of their own.
            items = b",".join(store.json_of(rt.gr, o, item=True) for o in result.items)
        self._send(200, head[:-1] + b',"items":[' + items + b"]}")

    # -- scale ---------------------------------------------------------------------------------------------
    def _scale(self, obj: dict[str, Any], rt: ResourceType | None = None) -> dict[str, Any]:
        from kubesim.machinery.selectors import selector_string

        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        if rt is not None and rt.scale_paths:
            # A custom resource's scale reads the CRD's paths (apiextensions-apiserver
            # pkg/registry/customresource/etcd.go scaleFromCustomResource): no selector without a path.
            spec_path, status_path, selector_path = rt.scale_paths
            scale_status: dict[str, Any] = {"replicas": _at_path(obj, status_path) or 0}
            selector = _at_path(obj, selector_path) if selector_path else None
            if selector:
                scale_status["selector"] = selector
            return {
                "kind": "Scale",
                "apiVersion": "autoscaling/v1",
                "metadata": {
                    k: obj["metadata"][k]
                    for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                    if k in obj["metadata"]
                },
                "spec": {"replicas": wanted} if (wanted := _at_path(obj, spec_path)) else {},
                "status": scale_status,
            }
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                k: obj["metadata"][k]
                for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                if k in obj["metadata"]
            },
            # autoscaling/v1 ScaleSpec.Replicas is omitempty: a zero count is left out.
            "spec": {"replicas": spec["replicas"]} if spec.get("replicas") else {},
            "status": {
                "replicas": status.get("replicas", 0),
                "selector": selector_string(
                    # A ReplicationController's selector is a plain map (the RC scale REST,
                    # pkg/registry/core/replicationcontroller/storage/storage.go, formats it as labels).
                    {"matchLabels": spec.get("selector")}
                    if rt is not None and rt.kind == "ReplicationController"
                    else spec.get("selector")
                ),
            },
        }

    def _update_scale(self, route: Route, payload: Any, opts: RequestOptions) -> None:
        api = self.cluster.api
        replicas = ((payload or {}).get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or replicas < 0:
            raise errors.invalid(
                "Scale",
                "autoscaling",
                route.name or "",
                [
                    (
                        "FieldValueInvalid",
                        "spec.replicas",
                        f"Invalid value: {replicas}: must be greater than or equal to 0",
                    )
                ],
            )
        change: dict[str, Any] = {"spec": {"replicas": replicas}}
        if route.rt.scale_paths:
            change = {}
            target = change
            parts = route.rt.scale_paths[0].strip(".").split(".")
            for part in parts[:-1]:
                target = target.setdefault(part, {})
            target[parts[-1]] = replicas
        obj = api.patch(route.rt, route.namespace or "", route.name or "", "merge", change, opts)
        self._send_json(200, self._scale(obj, route.rt))

    def _authentication_review(self, rt: ResourceType, payload: Any) -> dict[str, Any]:
        """SelfSubjectReview and TokenReview: the simulated cluster has one user, its admin."""
        admin = {"username": "kubernetes-admin", "groups": ["system:masters", "system:authenticated"]}
        body = dict(payload or {}, apiVersion="authentication.k8s.io/v1", kind=rt.kind)
        body["metadata"] = {"creationTimestamp": self.cluster.api.now()}
        if rt.kind == "SelfSubjectReview":
            body["status"] = {"userInfo": admin}
        else:
            token = ((payload or {}).get("spec") or {}).get("token")
            body["status"] = (
                {
                    "authenticated": True,
                    "user": admin,
                    "audiences": ["https://kubernetes.default.svc.cluster.local"],
                }
                if token == self.cluster.token
                else {"user": {}, "error": "invalid bearer token"}
            )
        return body

    def _token_request(self, route: Route, payload: Any) -> dict[str, Any]:
        """A TokenRequest for a service account that exists: an unsigned JWT naming it (the simulated API
        server authenticates with its own bearer token and never verifies service-account tokens)."""
        api = self.cluster.api
        account = api.get(route.rt, route.namespace or "", route.name or "")
        spec = dict((payload or {}).get("spec") or {})
        spec.setdefault("audiences", ["https://kubernetes.default.svc.cluster.local"])
        spec.setdefault("expirationSeconds", 3600)
        issued = api.clock.now()
        claims = {
            "aud": spec["audiences"],
            "exp": int(issued + spec["expirationSeconds"]),
            "iat": int(issued),
            "iss": "https://kubernetes.default.svc.cluster.local",
            "sub": f"system:serviceaccount:{route.namespace}:{route.name}",
        }

        def part(data: dict[str, Any]) -> str:
            return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

        return {
            "kind": "TokenRequest",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {
                "name": route.name,
                "namespace": route.namespace,
                "uid": account["metadata"]["uid"],
                "creationTimestamp": api.now(),
            },
            "spec": spec,
            "status": {
                "token": f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}.",
                "expirationTimestamp": rfc3339(issued + spec["expirationSeconds"]),
            },
        }

    def _bind(self, route: Route, payload: Any) -> None:
        """pods/binding, as a scheduler uses it: set spec.nodeName once."""
        api = self.cluster.api
        pod = api.get(route.rt, route.namespace or "", route.name or "")
        node = ((payload or {}).get("target") or {}).get("name", "")
        if pod["spec"].get("nodeName"):
            raise errors.conflict(
                "pods/binding",
                "",
                route.name or "",
                f'pod {route.name} is already assigned to node "{pod["spec"]["nodeName"]}"',
            )
        self.cluster.mutate(route.rt.gr, pod, lambda p: p["spec"].update(nodeName=node))
        self._send_json(
            201, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}
        )

    def _evict(self, route: Route, opts: RequestOptions) -> None:
        self.cluster.api.delete(route.rt, route.namespace or "", route.name or "", opts)
        self._send_json(
            201, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}
        )
