"""HTTPS front of the simulated API server: the REST paths, discovery, watch streams, tables, proxies.

It speaks the Kubernetes REST protocol that client-go, kubectl and the official Python client use:
``/api`` and ``/apis`` discovery, resource paths with namespaces and subresources, JSON and YAML bodies,
the four patch content types, ``dryRun``, ``fieldManager``, ``fieldValidation``, ``labelSelector``,
``fieldSelector``, ``limit``/``continue``, chunked watch streams (with ``sendInitialEvents`` and bookmarks),
server-side printing (``as=Table``), and ``Status`` bodies for every error. Nagle is off on every
connection: the standard library's server otherwise adds ~40 ms to each keep-alive request.
"""

from __future__ import annotations

import json
import socket
import ssl
import tempfile
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import yaml

from kubesim.apiserver import tables
from kubesim.apiserver.api import ListResult, RequestOptions
from kubesim.machinery import errors
from kubesim.machinery.errors import ApiError
from kubesim.machinery.resources import ResourceType
from kubesim.machinery.selectors import parse_field_selector, parse_label_selector
from kubesim.network import ConnectionRefused, HttpRequest

if TYPE_CHECKING:
    from kubesim.cluster import SimCluster

_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_PATCH_TYPES = {
    "application/json-patch+json": "json",
    "application/merge-patch+json": "merge",
    "application/strategic-merge-patch+json": "strategic",
    "application/apply-patch+yaml": "apply",
    "application/apply-patch+cbor": "unsupported",
}
WATCH_DEFAULT_TIMEOUT = 1800.0


class Route:
    """A parsed resource path."""

    def __init__(
        self,
        rt: ResourceType,
        version: str,
        namespace: str | None,
        name: str | None,
        subresource: str,
        rest: str,
    ) -> None:
        self.rt, self.version, self.namespace, self.name = rt, version, namespace, name
        self.subresource, self.rest = subresource, rest


class ApiHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, cluster: SimCluster, ssl_context: ssl.SSLContext) -> None:
        self.cluster = cluster
        self.ssl_context = ssl_context
        self.requests_served = 0
        self.request_counts: dict[tuple[str, str, int], int] = {}
        self._count_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = super().get_request()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock, addr

    def finish_request(self, request: Any, client_address: Any) -> None:
        # The TLS handshake happens in the worker thread, so one slow client cannot stall accept().
        try:
            tls = self.ssl_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            try:
                tls.close()
            except OSError:
                pass

    def count(self, verb: str, resource: str, code: int) -> None:
        with self._count_lock:
            self.requests_served += 1
            key = (verb, resource, code)
            self.request_counts[key] = self.request_counts.get(key, 0) + 1

    def metrics_text(self) -> str:
        """``apiserver_request_total`` in Prometheus text format, as kube-apiserver's /metrics has it."""
        lines = [
            "# HELP apiserver_request_total Counter of apiserver requests broken out for each verb, "
            "resource and HTTP response code.",
            "# TYPE apiserver_request_total counter",
        ]
        with self._count_lock:
            for (verb, res, code), n in sorted(self.request_counts.items()):
                lines.append(f'apiserver_request_total{{code="{code}",resource="{res}",verb="{verb}"}} {n}')
        return "\n".join(lines) + "\n"

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # client disconnects mid-stream are normal (watches, kubectl exiting)


def make_ssl_context(cert_pem: bytes, key_pem: bytes) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.NamedTemporaryFile("wb", delete=True) as cert, tempfile.NamedTemporaryFile("wb") as key:
        cert.write(cert_pem)
        cert.flush()
        key.write(key_pem)
        key.flush()
        ctx.load_cert_chain(cert.name, key.name)
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: ApiHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # -- plumbing -----------------------------------------------------------------------------------------
    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    @property
    def cluster(self) -> SimCluster:
        return self.server.cluster

    def _send(
        self,
        code: int,
        body: bytes,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        self._status_code = code
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache, private")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        for warning in self._warnings:
            self.send_header("Warning", f'299 - "{warning}"')
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(self, code: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        self._send(code, json.dumps(obj, separators=(",", ":")).encode(), headers=headers)

    def _send_error(self, exc: ApiError) -> None:
        headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else None
        self._send_json(exc.code, exc.status(), headers)

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            return self.rfile.read(length)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        return b""

    def _decode(self, raw: bytes, content_type: str) -> Any:
        if not raw:
            return None
        try:
            if "yaml" in content_type:
                return yaml.load(raw, Loader=_YAML_LOADER)
            return json.loads(raw)
        except (ValueError, yaml.YAMLError) as exc:
            raise errors.bad_request(f"couldn't get version/kind; json parse error: {exc}") from None

    def _dispatch(self, method: str) -> None:
        self._warnings: list[str] = []
        self._status_code = 0
        self._metric = ("", "")
        try:
            self._serve(method)
        finally:
            self.server.count(self._metric[0] or method, self._metric[1], self._status_code)

    def _serve(self, method: str) -> None:
        parsed = urllib.parse.urlsplit(self.path)
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(parsed.query, keep_blank_values=True).items()}
        path = parsed.path.rstrip("/") or "/"
        try:
            body = self._read_body() if method in ("POST", "PUT", "PATCH", "DELETE") else b""
            if path in ("/healthz", "/livez", "/readyz"):
                return self._health(path, query)
            self._authenticate()
            if path == "/metrics":
                return self._send(200, self.server.metrics_text().encode(), "text/plain; version=0.0.4")
            if path == "/version":
                return self._send_json(200, self.cluster.version_info())
            if path.startswith("/openapi/"):
                return self._openapi(path, query)
            if path in ("/api", "/apis") or path.startswith(("/api/", "/apis/")):
                return self._api(method, path, query, body)
            raise errors.resource_not_found()
        except ApiError as exc:
            self._send_error(exc)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            self.close_connection = True

    def _authenticate(self) -> None:
        expected = f"Bearer {self.cluster.token}"
        if self.headers.get("Authorization") != expected:
            raise errors.unauthorized()

    def _health(self, path: str, query: dict[str, str]) -> None:
        checks = [
            "ping",
            "log",
            "etcd",
            "informer-sync",
            "poststarthook/start-apiextensions-controllers",
            "poststarthook/crd-informer-synced",
            "shutdown",
        ]
        if "verbose" in query:
            lines = [f"[+]{c} ok" for c in checks]
            name = path.strip("/")
            text = "\n".join(lines) + f"\n{name} check passed\n"
            return self._send(200, text.encode(), "text/plain; charset=utf-8")
        self._send(200, b"ok", "text/plain; charset=utf-8")

    # -- openapi --------------------------------------------------------------------------------------------
    def _openapi(self, path: str, query: dict[str, str]) -> None:
        from kubesim.apiserver import openapi

        if path == "/openapi/v3":
            return self._send_json(200, openapi.v3_index(self.cluster.api))
        if path.startswith("/openapi/v3/"):
            doc = openapi.v3_document(self.cluster.api, path[len("/openapi/v3/") :])
            if doc is None:
                raise errors.resource_not_found()
            return self._send_json(
                200, doc, {"Cache-Control": "public, immutable"} if "hash" in query else None
            )
        raise errors.resource_not_found()

    # -- discovery and resources -------------------------------------------------------------------------
    def _api(self, method: str, path: str, query: dict[str, str], body: bytes) -> None:
        from kubesim.apiserver import discovery

        api = self.cluster.api
        parts = [urllib.parse.unquote(part) for part in path.strip("/").split("/")]
        if parts[0] == "api":
            if len(parts) == 1:
                return self._send_json(200, discovery.core_versions())
            group, version, rest = "", parts[1], parts[2:]
        else:
            if len(parts) == 1:
                return self._send_json(200, discovery.group_list(api))
            if len(parts) == 2:
                group_doc = discovery.group(api, parts[1])
                if group_doc is None:
                    raise errors.resource_not_found()
                return self._send_json(200, group_doc)
            group, version, rest = parts[1], parts[2], parts[3:]
        if not rest:
            doc = discovery.resource_list(api, group, version)
            if doc is None:
                raise errors.resource_not_found()
            return self._send_json(200, doc)
        watch_prefix = rest[0] == "watch"
        if watch_prefix:
            rest = rest[1:]
        route = self._route(group, version, rest)
        if watch_prefix:
            query["watch"] = "true"
        self._resource(method, route, query, body)

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
        validation = query.get("fieldValidation") or "Warn"
        if validation not in ("Ignore", "Warn", "Strict"):
            raise errors.bad_request(f"fieldValidation parameter unsupported: {validation}")
        dry_run = query.get("dryRun", "")
        if dry_run and dry_run != "All":
            raise errors.bad_request(f"Invalid dry run value: {dry_run}")
        force = query.get("force", "false").lower() == "true"
        if force and verb != "apply":
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
        if verb in ("get", "list", "watch") and route.subresource == "scale":
            return self._send_json(200, self._scale(api.get(rt, ns, route.name or "")))
        if verb == "watch":
            return self._watch(route, query)
        if verb == "list":
            result = api.list(
                rt,
                route.namespace,
                query.get("labelSelector"),
                query.get("fieldSelector"),
                int(query.get("limit") or 0),
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
        if content_type == "application/vnd.kubernetes.protobuf":
            raise ApiError(
                415,
                "UnsupportedMediaType",
                "the simulated API server does not decode protobuf request "
                "bodies (kubectl's imperative create commands send them); use kubectl apply -f or "
                "kubectl create -f with a manifest instead",
                {},
            )
        if verb in ("create", "update", "patch", "apply") and content_type not in _PATCH_TYPES | {
            "application/json": "",
            "application/yaml": "",
        }:
            raise errors.unsupported_media_type(content_type)
        payload = self._decode(body, content_type)
        opts = self._options(query, verb)
        if verb == "create":
            if rt.gr == ("authorization.k8s.io", "selfsubjectaccessreviews"):
                return self._send_json(
                    201, dict(payload or {}, status={"allowed": True, "reason": "rehearsal-sim: admin"})
                )
            if route.name and route.subresource == "eviction":
                return self._evict(route, opts)
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
            options = payload or {}
            propagation = options.get("propagationPolicy") or query.get("propagationPolicy")
            grace = options.get("gracePeriodSeconds", query.get("gracePeriodSeconds"))
            preconditions = options.get("preconditions") or {}
            if (options.get("dryRun") or []) == ["All"]:
                opts.dry_run = True
            obj = api.delete(
                rt,
                ns,
                route.name or "",
                opts,
                propagation,
                int(grace) if grace not in (None, "") else None,
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

    def _evict(self, route: Route, opts: RequestOptions) -> None:
        self.cluster.api.delete(route.rt, route.namespace or "", route.name or "", opts)
        self._send_json(
            201, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}
        )

    # -- watch ---------------------------------------------------------------------------------------------
    def _watch(self, route: Route, query: dict[str, str]) -> None:
        api, store = self.cluster.api, self.cluster.store
        rt = route.rt
        match_labels = parse_label_selector(query.get("labelSelector"))
        match_fields = parse_field_selector(query.get("fieldSelector"))
        if route.name:
            by_name = parse_field_selector(f"metadata.name={route.name}")
            previous = match_fields
            match_fields = lambda o: by_name(o) and previous(o)  # noqa: E731
        namespace = route.namespace if rt.namespaced else None

        def matches(obj: dict[str, Any] | None) -> bool:
            if obj is None:
                return False
            if namespace is not None and obj["metadata"].get("namespace") != namespace:
                return False
            return match_labels(obj["metadata"].get("labels") or {}) and match_fields(obj)

        timeout = float(query.get("timeoutSeconds") or WATCH_DEFAULT_TIMEOUT)
        deadline = time.monotonic() + timeout
        bookmarks = query.get("allowWatchBookmarks") == "true"
        send_initial = query.get("sendInitialEvents") == "true"
        rv_param = query.get("resourceVersion", "")

        self._status_code = 200
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()

        def emit(kind: str, obj: dict[str, Any]) -> None:
            data = (
                b'{"type":"'
                + kind.encode()
                + b'","object":'
                + (
                    store.json_of(rt.gr, obj)
                    if not rt.custom or route.version == rt.version
                    else json.dumps(api.present(rt, obj, route.version)).encode()
                )
                + b"}\n"
            )
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

        def emit_raw(kind: str, obj: dict[str, Any]) -> None:
            data = json.dumps({"type": kind, "object": obj}, separators=(",", ":")).encode() + b"\n"
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

        try:
            with store.lock:
                current = store.resource_version
                initial = (
                    [o for o in store.items(rt.gr, namespace) if matches(o)]
                    if send_initial or rv_param in ("", "0")
                    else []
                )
            if rv_param not in ("", "0") and not send_initial:
                last = int(rv_param)
                if store.events_since(last) is None:
                    emit_raw("ERROR", errors.gone(f"too old resource version: {last} ({current})").status())
                    return self._end_chunks()
            else:
                last = current
            for obj in initial:
                emit("ADDED", obj)
            if send_initial and bookmarks:
                emit_raw(
                    "BOOKMARK",
                    {
                        "kind": rt.kind,
                        "apiVersion": rt.api_version(route.version),
                        "metadata": {
                            "resourceVersion": str(current),
                            "annotations": {"k8s.io/initial-events-end": "true"},
                        },
                    },
                )
            self.wfile.flush()
            while time.monotonic() < deadline and not store.closed:
                events = store.events_since(last) or []
                sent = False
                for event in events:
                    last = event.rv
                    if event.gr != rt.gr:
                        continue
                    now_matches, was_matching = matches(event.obj), matches(event.old)
                    if event.type == "DELETED":
                        if was_matching or now_matches:
                            emit("DELETED", event.obj)
                            sent = True
                    elif now_matches and (was_matching or event.type == "ADDED"):
                        emit(event.type, event.obj)
                        sent = True
                    elif now_matches:
                        emit("ADDED", event.obj)
                        sent = True
                    elif was_matching:
                        emit("DELETED", event.obj)
                        sent = True
                if sent:
                    self.wfile.flush()
                with store.changed:
                    if store.resource_version == last and not store.closed:
                        store.changed.wait(min(5.0, max(0.0, deadline - time.monotonic())))
            self._end_chunks()
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            self.close_connection = True

    def _end_chunks(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    # -- logs and proxies ----------------------------------------------------------------------------------
    def _logs(self, route: Route, query: dict[str, str]) -> None:
        api = self.cluster.api
        pod = api.get(route.rt, route.namespace or "", route.name or "")
        containers = [
            c["name"] for c in (pod["spec"].get("initContainers") or []) + pod["spec"]["containers"]
        ]
        container = query.get("container")
        if not container:
            if len(pod["spec"]["containers"]) == 1:
                container = pod["spec"]["containers"][0]["name"]
            else:
                default = (pod["metadata"].get("annotations") or {}).get(
                    "kubectl.kubernetes.io/default-container"
                )
                if default:
                    container = default
                else:
                    raise errors.bad_request(
                        f"a container name must be specified for pod {route.name}, choose one "
                        f"of: [{' '.join(c['name'] for c in pod['spec']['containers'])}]"
                    )
        if container not in containers:
            raise errors.bad_request(f"container {container} is not valid for pod {route.name}")
        logs = self.cluster.kubelet.logs
        key = (route.namespace or "", route.name or "", container)
        previous = query.get("previous") == "true"
        if not logs.started(key, pod["metadata"]["uid"], previous):
            waiting = self.cluster.kubelet.waiting_reason(pod, container)
            raise errors.bad_request(
                f'container "{container}" in pod "{route.name}" is waiting to start: {waiting}'
                if waiting
                else f'previous terminated container "{container}" in pod "{route.name}" not found'
            )
        timestamps = query.get("timestamps") == "true"
        tail = int(query["tailLines"]) if query.get("tailLines") else None
        lines = logs.read(key, previous=previous, timestamps=timestamps, tail=tail)
        if query.get("follow") != "true":
            return self._send(200, "".join(lines).encode(), "text/plain")
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for chunk in logs.follow(key, lines, timestamps, self.cluster.store):
                data = chunk.encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()
            self._end_chunks()
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            self.close_connection = True

    def _proxy(self, method: str, route: Route, query: dict[str, str], body: bytes) -> None:
        api = self.cluster.api
        name, _, port_text = (route.name or "").partition(":")
        if port_text.count(":") == 1:
            # scheme:name:port is accepted as by the real server; in-process, http and https are the same.
            name, port_text = port_text.split(":")
        obj = api.get(route.rt, route.namespace or "", name)
        raw_query = urllib.parse.urlsplit(self.path).query
        path = "/" + route.rest + (f"?{raw_query}" if raw_query else "")
        if route.rt.plural == "pods":
            ip = (obj.get("status") or {}).get("podIP")
            port = self._pod_port(obj, port_text)
            if not ip:
                raise ApiError(503, "ServiceUnavailable", f"pod {name} does not have a host assigned", {})
        else:
            ip, port = self.cluster.endpoints_for(obj, port_text)
            if ip is None:
                raise ApiError(503, "ServiceUnavailable", f'no endpoints available for service "{name}"', {})
        # The client's Host header goes on to the backend: the service proxy's UpgradeAwareHandler rewrites it
        # only with UseLocationHost, which kube-apiserver sets for aggregated APIs, not for service and pod
        # proxies (k8s.io/apimachinery/pkg/util/proxy/upgradeaware.go; pkg/registry/core/service/proxy.go).
        headers = {k: v for k, v in self.headers.items() if k.lower() != "authorization"}
        try:
            response = self.cluster.network.request(ip, port, HttpRequest(method, path, headers, body))
        except ConnectionRefused as exc:
            raise ApiError(503, "ServiceUnavailable", f"error trying to reach service: {exc}", {}) from None
        content_type = response.headers.get("Content-Type", "text/plain; charset=utf-8")
        extra = {
            k: v for k, v in response.headers.items() if k.lower() not in ("content-type", "content-length")
        }
        self._send(response.status, response.body, content_type, extra)

    @staticmethod
    def _pod_port(pod: dict[str, Any], port_text: str) -> int:
        if port_text.isdigit():
            return int(port_text)
        for container in pod["spec"]["containers"]:
            for port in container.get("ports") or []:
                if port_text and port.get("name") == port_text:
                    return int(port["containerPort"])
        if port_text:
            raise errors.bad_request(f"no such port: {port_text}")
        return 80
