"""NodePort and LoadBalancer Services reachable from the host, on 127.0.0.1:<nodePort>.

kind users map node ports to the host with ``extraPortMappings``; the simulated cluster does the same for
every NodePort (and LoadBalancer) Service: a real HTTP listener on loopback forwards each request to a ready
endpoint of the Service through the pod network. Nagle is off, as on the API server.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from kubesim.controllers.manager import Controller, ControllerManager
from kubesim.network import ConnectionRefused, HttpRequest

if TYPE_CHECKING:
    from kubesim.cluster import SimCluster


class _Forwarder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _PortServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def version_string(self) -> str:
        return getattr(self, "_upstream_server", "") or "rehearsal-sim"

    def _forward(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        cluster, namespace, name, port = self.server.target
        svc = cluster.store.get(("", "services"), namespace, name)
        status, payload, headers = 503, b"no healthy upstream", {}
        if svc is not None:
            ip, target = cluster.endpoints_for(svc, str(port))
            if ip is not None:
                try:
                    response = cluster.network.request(
                        ip, target, HttpRequest(self.command, self.path, dict(self.headers.items()), body)
                    )
                    status, payload, headers = response.status, response.body, response.headers
                except ConnectionRefused:
                    status, payload = 503, b"upstream connect error or disconnect/reset before headers"
        self._upstream_server = next((v for k, v in headers.items() if k.lower() == "server"), "")
        self.send_response(status)
        for key, value in headers.items():
            if key.lower() not in ("content-length", "connection", "transfer-encoding", "server"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _forward


class _PortServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], target: tuple[Any, str, str, int]) -> None:
        self.target = target
        super().__init__(address, _Forwarder)


class NodePortController(Controller):
    name = "node-ports"
    watches = (("", "services"),)

    def __init__(self, manager: ControllerManager, cluster: SimCluster) -> None:
        super().__init__(manager)
        self.cluster = cluster
        self.listeners: dict[tuple[str, str, int], _PortServer] = {}
        self.unavailable: set[int] = set()

    def reconcile(self, key: tuple[str, str]) -> None:
        svc = self.cluster.store.get(("", "services"), *key)
        wanted: dict[tuple[str, str, int], int] = {}
        if svc is not None and svc["spec"].get("type") in ("NodePort", "LoadBalancer"):
            for port in svc["spec"].get("ports") or []:
                if port.get("nodePort"):
                    wanted[(key[0], key[1], port["nodePort"])] = port["port"]
        for listener_key in [k for k in self.listeners if k[:2] == key and k not in wanted]:
            server = self.listeners.pop(listener_key)
            threading.Thread(target=server.shutdown, daemon=True).start()
        for listener_key, port in wanted.items():
            if listener_key in self.listeners or listener_key[2] in self.unavailable:
                continue
            try:
                server = _PortServer(("127.0.0.1", listener_key[2]), (self.cluster, key[0], key[1], port))
            except OSError:
                self.unavailable.add(listener_key[2])  # the port is taken on this host: not reachable
                continue
            self.listeners[listener_key] = server
            threading.Thread(
                target=server.serve_forever, name=f"nodeport-{listener_key[2]}", daemon=True
            ).start()

    def url(self, namespace: str, name: str, port_name_or_number: str) -> str | None:
        svc = self.cluster.store.get(("", "services"), namespace, name)
        for port in (svc or {}).get("spec", {}).get("ports") or []:
            if (
                port_name_or_number in (port.get("name"), str(port.get("port")))
                and (namespace, name, port.get("nodePort")) in self.listeners
            ):
                return f"http://127.0.0.1:{port['nodePort']}"
        return None

    def stop(self) -> None:
        for server in self.listeners.values():
            server.shutdown()
            server.server_close()
        self.listeners.clear()
