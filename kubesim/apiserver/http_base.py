"""The plumbing every request of the simulated API server shares: reading and decoding bodies, sending JSON
and ``Status`` bodies with ``Warning`` headers, and the parsed resource path (:class:`Route`).

``server.py`` assembles the request handler from this base, ``streams.py`` (watches, logs, proxies) and
``rest.py`` (the resource verbs); each part is a mixin over ``BaseHTTPRequestHandler``.
"""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any

import yaml

from kubesim.machinery import errors
from kubesim.machinery.errors import ApiError
from kubesim.machinery.resources import ResourceType

if TYPE_CHECKING:
    from kubesim.apiserver.server import ApiHTTPServer
    from kubesim.cluster import SimCluster

_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


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


class HandlerBase(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: ApiHTTPServer
    _warnings: list[str]
    _status_code: int

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # -- plumbing -----------------------------------------------------------------------------------------
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
            escaped = warning.replace("\\", "\\\\").replace('"', '\\"')
            self.send_header("Warning", f'299 - "{escaped}"')
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(self, code: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        self._send(code, json.dumps(obj, separators=(",", ":")).encode(), headers=headers)

    def _send_error(self, exc: ApiError) -> None:
        headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else None
        self._send_json(exc.code, exc.status(), headers)

    def _read_body(self) -> bytes:
        text = self.headers.get("Content-Length") or "0"
        if not text.isdigit():
            self.close_connection = True  # where this body ends is unknown
            raise errors.bad_request(f"bad Content-Length {text!r}")
        length = int(text)
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

    def _content_type(self) -> str:
        return (self.headers.get("Content-Type") or "application/json").split(";")[0].strip()
