"""The simulated Istio data plane's view of endpoints (EDS), with istiod's push delay, and Envoy's retries.

A real proxy does not see a pod become ready, or start terminating, when the API server does: the endpoint
change reaches istiod, which debounces it (``PILOT_DEBOUNCE_AFTER``, 100 ms of quiet after the last event,
at most ``PILOT_DEBOUNCE_MAX``, 10 s after the first: istio/istio pilot/pkg/features/tuning.go; EDS debounce
on by default, ``PILOT_ENABLE_EDS_DEBOUNCE``) and then pushes the new endpoints to every proxy. Until then a
proxy routes to the endpoints of the last push: a pod that is already shutting down still gets requests, and
a new ready pod gets none. When no endpoint is left, the route answers ``503 no healthy upstream`` (UH).

:class:`EndpointView` keeps the pushed state: which pods were eligible (ready, not terminating, with an IP) at
the last push. Every eligibility change arms the debounce on the simulated clock; the push happens once the
changes settle. :data:`DEFAULT_RETRIES` is the route retry policy Istio gives every HTTP route without its
own: 2 retries on connect-failure, refused-stream, unavailable, cancelled and 503, on another host than the
ones already tried (istio/istio pilot/pkg/networking/core/route/retry/retry.go, ``DefaultPolicy``), which is
why a rolling restart with a spare ready replica drops no request while a lone replica does.
"""

from __future__ import annotations

import itertools
import threading
from typing import TYPE_CHECKING, Any

from kubesim.controllers.core import resolve_target_port
from kubesim.controllers.workloads import pod_ready
from kubesim.store import WatchEvent

if TYPE_CHECKING:
    from kubesim.cluster import SimCluster

DEBOUNCE_AFTER = 0.1  # PILOT_DEBOUNCE_AFTER default
DEBOUNCE_MAX = 10.0  # PILOT_DEBOUNCE_MAX default
DEFAULT_RETRIES = 2  # retry.DefaultPolicy NumRetries
PODS = ("", "pods")
Obj = dict[str, Any]


def eligible(pod: Obj) -> bool:
    """An endpoint istiod sends: the pod is ready, not being deleted, and has an IP."""
    return bool(
        pod_ready(pod)
        and not pod["metadata"].get("deletionTimestamp")
        and (pod.get("status") or {}).get("podIP")
    )


class EndpointView:
    """The endpoints of the last EDS push, shared by every simulated proxy of a cluster."""

    def __init__(self, cluster: SimCluster) -> None:
        self.cluster = cluster
        self.lock = threading.Lock()
        self.live: dict[tuple[str, str], Obj] = {}  # eligible pods as the API server has them now
        self.pushed: dict[tuple[str, str], Obj] = {}  # ... as the proxies last received them
        self.first: float | None = None  # the debounce window: first and last event since the last push
        self.last: float | None = None
        self.pushes = 0
        self._next = itertools.count()
        with cluster.store.lock:
            for pod in cluster.store.items(PODS):
                if eligible(pod):
                    self.live[(pod["metadata"]["namespace"], pod["metadata"]["name"])] = pod
            cluster.store.subscribe(self._on_event)
        self.pushed = dict(self.live)

    def _on_event(self, event: WatchEvent) -> None:
        if event.gr != PODS:
            return
        key = (event.namespace, event.name)
        now_eligible = event.type != "DELETED" and eligible(event.obj)
        with self.lock:
            if now_eligible == (key in self.live):
                if now_eligible:
                    self.live[key] = event.obj
                return
            if now_eligible:
                self.live[key] = event.obj
            else:
                self.live.pop(key, None)
            now = self.cluster.clock.now()
            arm = self.first is None
            if arm:
                self.first = now
            self.last = now
        if arm:
            self.cluster.manager.after(DEBOUNCE_AFTER, self._debounce)

    def _debounce(self) -> None:
        with self.lock:
            if self.first is None or self.last is None:
                return
            now = self.cluster.clock.now()
            quiet = now - self.last
            if quiet >= DEBOUNCE_AFTER - 1e-5 or now - self.first >= DEBOUNCE_MAX - 1e-5:
                self.pushed = dict(self.live)
                self.first = self.last = None
                self.pushes += 1
                return
            wait = min(DEBOUNCE_AFTER - quiet, self.first + DEBOUNCE_MAX - now)
        self.cluster.manager.after(max(wait, 0.001), self._debounce)

    def endpoints(self, service: Obj, port_text: str) -> list[tuple[str, int]]:
        """(pod IP, target port) of ``service``'s pods as last pushed, in a stable order."""
        ports = service["spec"].get("ports") or []
        port = next(
            (
                p
                for p in ports
                if port_text and (str(p.get("port")) == port_text or p.get("name") == port_text)
            ),
            ports[0] if ports else None,
        )
        selector = service["spec"].get("selector") or {}
        if port is None or not selector:
            return []
        namespace = service["metadata"]["namespace"]
        with self.lock:
            pods = [p for (ns, _), p in sorted(self.pushed.items()) if ns == namespace]
        found = []
        for pod in pods:
            labels = pod["metadata"].get("labels") or {}
            if all(labels.get(k) == v for k, v in selector.items()):
                target = resolve_target_port(port, pod)
                if target is not None:
                    found.append((str(pod["status"]["podIP"]), int(target)))
        return found

    def attempts(self, service: Obj, port_text: str) -> list[tuple[str, int]]:
        """The hosts one request tries in order: round robin over the pushed endpoints for the first attempt,
        then up to :data:`DEFAULT_RETRIES` others not yet tried (Envoy's previous_hosts predicate); with
        fewer endpoints than attempts, the same ones again."""
        hosts = self.endpoints(service, port_text)
        if not hosts:
            return []
        start = next(self._next) % len(hosts)
        ordered = hosts[start:] + hosts[:start]
        return [ordered[i % len(ordered)] for i in range(DEFAULT_RETRIES + 1)]


_CREATE = threading.Lock()


def view_of(cluster: SimCluster) -> EndpointView:
    with _CREATE:
        view = cluster.extensions.get("istio-eds")
        if view is None:
            view = cluster.extensions["istio-eds"] = EndpointView(cluster)
    return view  # type: ignore[no-any-return]
