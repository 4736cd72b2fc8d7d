"""The simulated pod network: HTTP endpoints addressed by pod IP and port, served in-process.

Pods get addresses in 10.244.0.0/16 like on kind, but nothing listens on those addresses on the host;
what a container serves is registered here by the kubelet, and the API server's pod and service ``proxy``
subresources, the admission webhooks and the ingress gateway reach it through :meth:`PodNetwork.request`.
So traffic never leaves the process unless a component deliberately listens on loopback (the ingress).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field


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
# (request, destination port, deliver-to-the-app) -> response
Interceptor = Callable[[HttpRequest, int, Callable[[HttpRequest], HttpResponse]], HttpResponse]
SIDECAR_PORTS = frozenset({15000, 15001, 15006, 15020, 15021, 15090})  # never redirected (istio-iptables -d)


class ConnectionRefused(Exception):
    """Nothing listens at that pod IP and port."""


class PodNetwork:
    def __init__(self) -> None:
        self._handlers: dict[tuple[str, int], Handler] = {}
        self._interceptors: dict[str, Interceptor] = {}
        self._lock = threading.Lock()

    def intercept(self, ip: str, interceptor: Interceptor | None) -> None:
        """Route inbound traffic to ``ip`` through ``interceptor`` (a sidecar's iptables redirect)."""
        with self._lock:
            if interceptor is None:
                self._interceptors.pop(ip, None)
            else:
                self._interceptors[ip] = interceptor

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
        interceptor = self._interceptors.get(ip)
        if interceptor is not None and port not in SIDECAR_PORTS:
            return interceptor(request, port, lambda r: self._deliver(ip, port, r))
        return self._deliver(ip, port, request)

    def request_in_pod(self, ip: str, port: int, request: HttpRequest) -> HttpResponse:
        """A request from inside the pod (the kubelet's rewritten probes): no sidecar interception."""
        return self._deliver(ip, port, request)

    def _deliver(self, ip: str, port: int, request: HttpRequest) -> HttpResponse:
        handler = self._handlers.get((ip, port))
        if handler is None:
            raise ConnectionRefused(f"dial tcp {ip}:{port}: connect: connection refused")
        return handler(request)
