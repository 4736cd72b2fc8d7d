"""HTTPS front of the simulated API server: the listener, TLS, metrics, and the request handler's top level.

It speaks the Kubernetes REST protocol that client-go, kubectl and the official Python client use:
``/api`` and ``/apis`` discovery, resource paths with namespaces and subresources, JSON and YAML bodies,
the four patch content types, ``dryRun``, ``fieldManager``, ``fieldValidation``, ``labelSelector``,
``fieldSelector``, ``limit``/``continue``, chunked watch streams (with ``sendInitialEvents`` and bookmarks),
server-side printing (``as=Table``), and ``Status`` bodies for every error. Nagle is off on every
connection: the standard library's server otherwise adds ~40 ms to each keep-alive request. The handler is
assembled from parts: ``http_base`` (bodies, replies), ``streams`` (watch, logs, proxy), ``rest`` (verbs).
"""

from __future__ import annotations

import json
import logging
import socket
import ssl
import tempfile
import threading
import urllib.parse
from http import HTTPStatus
from http.server import ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from kubesim.apiserver.http_base import Route
from kubesim.apiserver.rest import ResourceMixin
from kubesim.apiserver.streams import WATCH_DEFAULT_TIMEOUT
from kubesim.machinery import errors
from kubesim.machinery.errors import ApiError

if TYPE_CHECKING:
    from kubesim.cluster import SimCluster

__all__ = ["WATCH_DEFAULT_TIMEOUT", "ApiHTTPServer", "Handler", "Route", "make_ssl_context"]


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
        self._connections: set[ssl.SSLSocket] = set()
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
        with self._count_lock:
            self._connections.add(tls)
        try:
            self.RequestHandlerClass(tls, client_address, self)  # type: ignore[arg-type]  # typeshed wants Self
        finally:
            with self._count_lock:
                self._connections.discard(tls)
            try:
                tls.close()
            except OSError:
                pass

    def server_close(self) -> None:
        """Stop listening and end every open connection, as a stopping kube-apiserver does: a client's idle
        keep-alive connection must not keep a handler thread waiting in a process that goes on running (the
        harness, a test session)."""
        super().server_close()
        with self._count_lock:
            open_now = list(self._connections)
        for tls in open_now:
            try:
                tls.shutdown(socket.SHUT_RDWR)
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


log = logging.getLogger("kubesim.apiserver")
INTERNAL_MESSAGE = "the simulated API server failed on this request; its log has the details"


class Handler(ResourceMixin):
    """One connection's requests: health, metrics, version, OpenAPI, discovery, then resources (``rest``)."""

    _warnings: list[str] = []  # replaced per request in _dispatch; read-only here, for send_error

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The standard library's own refusals (an unknown method, a malformed request line, headers too
        large) as ``Status`` bodies instead of its HTML page. A method kube-apiserver does not route (OPTIONS,
        TRACE, any other) is 405 MethodNotAllowed there, so it is here."""
        if code == HTTPStatus.NOT_IMPLEMENTED:
            error = errors.method_not_allowed(self.command or "")
        else:
            reason = {400: "BadRequest", 413: "RequestEntityTooLarge", 414: "RequestURITooLong"}.get(code, "")
            error = ApiError(code, reason, message or HTTPStatus(code).phrase)
        self.close_connection = True
        if self.request_version == "HTTP/0.9":  # an unparsed request line: answer as Go's server does
            self.request_version = "HTTP/1.1"
        try:
            self._send(
                error.code,
                json.dumps(error.status(), separators=(",", ":")).encode(),
                headers={"Connection": "close"},
            )
        except OSError:
            pass

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
            # Read whatever body came, whatever the method: a GET's body left unread would be taken for the
            # start of the next request on this keep-alive connection.
            body = self._read_body()
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
        except Exception:
            # A failure nobody foresaw (a bug in the simulator): the traceback goes to the server's log, the
            # client gets a well-formed 500 Status that names no Python detail, as kube-apiserver's
            # InternalError does; mid-stream (headers already sent) the connection is closed instead.
            log.exception("%s %s failed", method, self.path)
            if self._status_code:
                self.close_connection = True
                return
            self._send_error(errors.internal_error(INTERNAL_MESSAGE))

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

        if path == "/openapi/v2":
            return self._send_json(200, openapi.v2_document())
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
        if len(parts) == 1 and "as=APIGroupDiscoveryList" in (self.headers.get("Accept") or ""):
            if "v=v2;" in self.headers.get("Accept", "") or self.headers.get("Accept", "").endswith("v=v2"):
                doc = discovery.aggregated(api, core=parts[0] == "api")
                body = json.dumps(doc, separators=(",", ":")).encode()
                return self._send(200, body, discovery.AGGREGATED, {"Vary": "Accept"})
        if parts[0] == "api":
            if len(parts) == 1:
                return self._send_json(200, discovery.core_versions())
            group, version, rest = "", parts[1], parts[2:]
        else:
            if len(parts) == 1:
                return self._send_json(200, discovery.group_list(api))
            group_doc = discovery.group(api, parts[1])
            if group_doc is None:
                # A group nobody serves falls through to the mux's NotFound handler: plain text, no Status.
                return self._send(404, b"404 page not found\n", "text/plain; charset=utf-8")
            if len(parts) == 2:
                return self._send_json(200, group_doc)
            group, version, rest = parts[1], parts[2], parts[3:]
        if not rest:
            resources = discovery.resource_list(api, group, version)
            if resources is None:
                raise errors.resource_not_found()
            return self._send_json(200, resources)
        watch_prefix = rest[0] == "watch"
        if watch_prefix:
            rest = rest[1:]
        route = self._route(group, version, rest)
        if watch_prefix:
            query["watch"] = "true"
        self._resource(method, route, query, body)
