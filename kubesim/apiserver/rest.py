"""The resource verbs of the simulated API server over HTTP: get, list (tables, paging), create, update,
patch (four content types), delete and deletecollection, the scale and eviction subresources, and the query
parameters (``dryRun``, ``fieldManager``, ``fieldValidation``, ``force``, selectors, ``limit``) checked and
answered as kube-apiserver does. The request semantics themselves live in ``api.Api``.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from kubesim.apiserver import tables
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
        if verb in ("get", "list", "watch") and route.subresource == "scale":
            return self._send_json(200, self._scale(api.get(rt, ns, route.name or "")))
        if verb == "watch":
            return self._watch(route, query)
        if verb == "list":
            if query.get("resourceVersionMatch") and not query.get("resourceVersion"):
                raise errors.invalid_options(
                    "ListOptions",
                    "resourceVersionMatch",
                    "FieldValueForbidden",
                    "Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided",
                )
            result = api.list(
                rt,
                route.namespace,
                query.get("labelSelector"),
                query.get("fieldSelector"),
                _int_param(query.get("limit") or "0"),
                query.get("continue", ""),
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
            payload = self._decode(body, content_type)
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
                route.subresource if route.subresource in ("status",) else "",
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
                current = self._scale(api.get(rt, ns, route.name or ""))
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
                route.subresource if route.subresource == "status" else "",
            )
            return self._send_object(rt, api.present(rt, obj, route.version), 200 if existed else 201)
        if verb == "delete":
            options = _delete_options(payload)
            propagation = options.get("propagationPolicy") or query.get("propagationPolicy")
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
                        "group": rt.group,
                        "kind": rt.plural,
                        "uid": obj["metadata"]["uid"],
                    },
                },
            )
        if verb == "deletecollection":
            result = api.list(rt, route.namespace, query.get("labelSelector"), query.get("fieldSelector"))
            for item in result.items:
                try:
                    api.delete(rt, item["metadata"].get("namespace", ""), item["metadata"]["name"], opts)
                except ApiError as exc:
                    if exc.code != 404:
                        raise
            return self._send_list(rt, route.version, ListResult([], str(api.store.resource_version)))
        raise errors.method_not_allowed(method)

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
            meta["remainingItemCount"] = result.remaining
        head = json.dumps(
            {"kind": rt.list_kind, "apiVersion": rt.api_version(version), "metadata": meta},
            separators=(",", ":"),
        ).encode()
        if rt.custom and version != rt.version:
            items = b",".join(
                json.dumps(api.present(rt, o, version), separators=(",", ":")).encode() for o in result.items
            )
        else:
            items = b",".join(store.json_of(rt.gr, o) for o in result.items)
        self._send(200, head[:-1] + b',"items":[' + items + b"]}")

    # -- scale ---------------------------------------------------------------------------------------------
    def _scale(self, obj: dict[str, Any]) -> dict[str, Any]:
        from kubesim.machinery.selectors import selector_string

        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                k: obj["metadata"][k]
                for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                if k in obj["metadata"]
            },
            "spec": {"replicas": spec.get("replicas", 0)},
            "status": {
                "replicas": status.get("replicas", 0),
                "selector": selector_string(spec.get("selector")),
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
        obj = api.patch(
            route.rt, route.namespace or "", route.name or "", "merge", {"spec": {"replicas": replicas}}, opts
        )
        self._send_json(200, self._scale(obj))

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
