"""The simulated pod network: HTTP endpoints addressed by pod IP and port, served in-process.

Pods get addresses in 10.244.0.0/16 like on kind, but nothing listens on those addresses on the host;
what a container serves is registered here by the kubelet, and the API server's pod and service ``proxy``
subresources, the admission webhooks and the ingress gateway reach it through :meth:`PodNetwork.request`.
So traffic never leaves the process unless a component deliberately listens on loopback (the ingress).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable


@dataclass
class HttpRequest:
    method: str
    path: str  # path plus query string
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass
class HttpResponse:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[HttpRequest], HttpResponse]


class ConnectionRefused(Exception):
    """Nothing listens at that pod IP and port."""


class PodNetwork:
    def __init__(self) -> None:
        self._handlers: dict[tuple[str, int], Handler] = {}
        self._lock = threading.Lock()

    def listen(self, ip: str, port: int, handler: Handler) -> None:
        with self._lock:
            self._handlers[(ip, port)] = handler

    def close(self, ip: str, port: int | None = None) -> None:
        with self._lock:
            for key in [k for k in self._handlers if k[0] == ip and (port is None or k[1] == port)]:
                del self._handlers[key]

    def listening(self, ip: str, port: int) -> bool:
        return (ip, port) in self._handlers

    def request(self, ip: str, port: int, request: HttpRequest) -> HttpResponse:
        handler = self._handlers.get((ip, port))
        if handler is None:
            raise ConnectionRefused(f"dial tcp {ip}:{port}: connect: connection refused")
        return handler(request)
