"""What a simulated container runs, chosen by its image (``Image.program``).

A program is started by the kubelet when the container starts and stopped when it stops. It may serve
HTTP on the pod network, write log lines, decide whether it is ready, or exit by itself (a Job's pod,
a shell with ``exit 1``). ``PROGRAMS`` is open: the Istio simulation registers istiod and the proxy.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kubesim.network import HttpRequest, HttpResponse, PodNetwork


@dataclass
class ContainerContext:
    pod: dict[str, Any]
    container: dict[str, Any]
    pod_ip: str
    network: PodNetwork
    log: Callable[[str], None]
    image_port: int | None = None
    services: Any = None  # the SimCluster, for programs that talk to the cluster (istiod, proxies)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ports(self) -> list[int]:
        ports = [p["containerPort"] for p in self.container.get("ports") or [] if "containerPort" in p]
        if not ports and self.image_port:
            ports = [self.image_port]
        return ports

    def env(self, name: str, default: str = "") -> str:
        for entry in self.container.get("env") or []:
            if entry.get("name") == name and "value" in entry:
                return str(entry["value"])
        return default


class Program:
    """A container process. Subclasses override what they need."""

    def __init__(self, ctx: ContainerContext) -> None:
        self.ctx = ctx

    def start(self) -> None:
        """Called when the container starts."""

    def stop(self) -> None:
        """Called when the container stops (exit, kill, pod deletion)."""

    def exited(self) -> None:
        """The process has just exited on a signal (SIGTERM or SIGKILL), in simulated time. Its listening
        sockets stay up for the kubelet's short drain (``stop`` comes later); what the process held open
        to others, such as an xDS stream, ends now, so nothing observed depends on how fast the drain's
        wall-clock timer fires."""

    def ready(self) -> bool:
        """Readiness when the probe is not an HTTP probe this program answers."""
        return True

    def exit_after(self) -> tuple[float, int] | None:
        """``(seconds, exit code)`` if the process ends by itself."""
        return None

    def on_sigterm(self) -> float | None:
        """SIGTERM arrived (the pod is shutting down): seconds until the process exits, or None when it
        ignores the signal and runs until SIGKILL at the end of the grace period. Default: exits at once."""
        return 0.0


class Pause(Program):
    pass


class Shell(Program):
    """A shell image (busybox, curl): does what its command line says, roughly as sh would."""

    def _script(self) -> str:
        parts = list(self.ctx.container.get("command") or []) + list(self.ctx.container.get("args") or [])
        return " ".join(parts)

    def start(self) -> None:
        for match in re.finditer(r"echo\s+(\"[^\"]*\"|'[^']*'|[^;&|]+)", self._script()):
            text = match.group(1).strip()
            try:
                text = " ".join(shlex.split(text))
            except ValueError:
                pass
            self.ctx.log(text)

    def exit_after(self) -> tuple[float, int] | None:
        script = self._script()
        if re.search(r"sleep\s+(inf|infinity|\d{4,})\b", script) or "tail -f" in script:
            return None
        code = re.search(r"exit\s+(\d+)", script)
        seconds = sum(float(s) for s in re.findall(r"sleep\s+(\d+(?:\.\d+)?)", script))
        return (max(seconds, 0.5), int(code.group(1)) if code else 0)

    def on_sigterm(self) -> float | None:
        # A shell or `sleep` running as PID 1 has no handler for SIGTERM and the kernel does not apply the
        # default action to PID 1: it ignores the signal for the whole grace period, unless the script traps
        # it (which is why Istio's curl sample sets terminationGracePeriodSeconds: 0).
        script = self._script()
        return 0.0 if re.search(r"\btrap\b.*\b(TERM|SIGTERM|15)\b", script) else None


class HttpEcho(Program):
    """An HTTP server that answers every request with a JSON echo of it."""

    def start(self) -> None:
        for port in self.ctx.ports:
            self.ctx.network.listen(self.ctx.pod_ip, port, self.handle)
        self.ctx.log(f"Listening on ports {', '.join(str(p) for p in self.ctx.ports)}")

    def stop(self) -> None:
        for port in self.ctx.ports:
            self.ctx.network.close(self.ctx.pod_ip, port)

    def handle(self, request: HttpRequest) -> HttpResponse:
        meta = self.ctx.pod["metadata"]
        body = {
            "method": request.method,
            "path": request.path.split("?", 1)[0],
            "query": request.path.split("?", 1)[1] if "?" in request.path else "",
            "headers": request.headers,
            "pod": meta["name"],
            "os": {"hostname": meta["name"]},  # as mendhak/http-https-echo: os.hostname() = the pod name
            "namespace": meta.get("namespace"),
            "ip": self.ctx.pod_ip,
            "body": request.body.decode(errors="replace"),
        }
        self.ctx.log(f"{request.method} {request.path} 200")
        return HttpResponse(200, json.dumps(body).encode(), {"Content-Type": "application/json"})


SHELLS = frozenset({"sh", "bash", "ash", "dash", "sleep", "echo", "true", "false", "tail"})


class Generic(HttpEcho):
    """An image the simulator has no model of (a user's ``traefik/whoami``, a chart's exporter).

    It stands for an app that works: it serves HTTP (an echo, status 200) on every TCP port the container
    declares and on every port its probes name, so HTTP, TCP and exec probes pass as they would for a healthy
    app. When its command line is a shell command (``sh -c ...``, ``sleep 3600``), it runs it as
    :class:`Shell` does: logs what it echoes and exits as the script would.
    """

    def __init__(self, ctx: ContainerContext) -> None:
        super().__init__(ctx)
        command = list(ctx.container.get("command") or [])
        first = command[0].rsplit("/", 1)[-1] if command else ""
        self.shell = Shell(ctx) if first in SHELLS else None
        self.serving = self._ports()

    def _ports(self) -> list[int]:
        ports = [
            int(p["containerPort"])
            for p in self.ctx.container.get("ports") or []
            if "containerPort" in p and p.get("protocol", "TCP") == "TCP"
        ]
        named = {p.get("name"): p.get("containerPort") for p in self.ctx.container.get("ports") or []}
        for kind in ("readinessProbe", "livenessProbe", "startupProbe"):
            probe = self.ctx.container.get(kind) or {}
            action = probe.get("httpGet") or probe.get("tcpSocket") or {}
            port = action.get("port")
            port = named.get(port) if isinstance(port, str) and not port.isdigit() else port
            if port is not None and int(port) not in ports:
                ports.append(int(port))
        return ports

    def start(self) -> None:
        if self.shell is not None:
            self.shell.start()
        for port in self.serving:
            self.ctx.network.listen(self.ctx.pod_ip, port, self.handle)
        if self.serving:
            self.ctx.log(f"Listening on ports {', '.join(str(p) for p in self.serving)}")

    def stop(self) -> None:
        for port in self.serving:
            self.ctx.network.close(self.ctx.pod_ip, port)

    def exit_after(self) -> tuple[float, int] | None:
        return self.shell.exit_after() if self.shell is not None else None

    def on_sigterm(self) -> float | None:
        return self.shell.on_sigterm() if self.shell is not None else 0.0


PROGRAMS: dict[str, type[Program]] = {
    "pause": Pause,
    "sleep": Pause,
    "shell": Shell,
    "http-echo": HttpEcho,
    "generic": Generic,
}
