"""Long-lived answers of the simulated API server: watch streams (chunked JSON events, resume from a
resourceVersion, bookmarks, initial events), pod logs (with ``follow``) and the pods/services proxy.
"""

from __future__ import annotations

import json
import ssl
import time
import urllib.parse
from typing import Any

from kubesim.apiserver.http_base import HandlerBase, Route
from kubesim.machinery import errors
from kubesim.machinery.errors import ApiError
from kubesim.machinery.selectors import parse_field_selector, parse_label_selector
from kubesim.network import ConnectionRefused, HttpRequest

WATCH_DEFAULT_TIMEOUT = 1800.0
# cacher.go defaultBookmarkFrequency; cache_watcher.go nextBookmarkTime also sends one 2 s before the
# watch's deadline, so that a client resuming after the timeout starts from a recent resourceVersion.
BOOKMARK_FREQUENCY = 60.0
BOOKMARK_BEFORE_DEADLINE = 2.0


class StreamMixin(HandlerBase):
    # -- watch ---------------------------------------------------------------------------------------------
    def _watch(self, route: Route, query: dict[str, str]) -> None:
        api, store = self.cluster.api, self.cluster.store
        rt = route.rt
        match_labels = parse_label_selector(query.get("labelSelector"))
        match_fields = parse_field_selector(query.get("fieldSelector"), None if rt.custom else rt.gr)
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

        timeout_text = query.get("timeoutSeconds") or ""
        if timeout_text and not timeout_text.lstrip("-").isdigit():
            raise errors.bad_request(f'strconv.ParseInt: parsing "{timeout_text}": invalid syntax')
        timeout = float(timeout_text or WATCH_DEFAULT_TIMEOUT)
        deadline = time.monotonic() + timeout
        bookmarks = query.get("allowWatchBookmarks") == "true"
        send_initial = query.get("sendInitialEvents") == "true"
        rv_param = query.get("resourceVersion", "")
        if rv_param and not rv_param.isdigit():
            # Checked before the stream starts; kube-apiserver v1.36 answers this one with a reasonless 500.
            raise errors.ApiError(
                500,
                "",
                f'resourceVersion: Invalid value: "{rv_param}": strconv.ParseUint: parsing '
                f'"{rv_param}": invalid syntax',
            )

        next_beat = api.clock.now() + BOOKMARK_FREQUENCY  # read before the client can see the stream start
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
                too_old = store.watch_too_old(rt.gr, last)
                if too_old is not None:
                    # The watch cache's answer (cacher.go Watch -> getAllEventsSinceLocked): a 200 stream
                    # whose one event is the 410 Status; a client relists (client-go's reflector does).
                    emit_raw("ERROR", errors.gone(too_old).status())
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
            # Bookmarks to a watcher that allows them: every simulated minute (the watch cache's window is
            # simulated time), and once just before the deadline (the client's timeout is wall time). Each
            # carries the revision the watcher has seen everything up to, as the cacher's do.
            pre_deadline = deadline - BOOKMARK_BEFORE_DEADLINE
            pre_sent = not bookmarks or timeout < BOOKMARK_BEFORE_DEADLINE
            while time.monotonic() < deadline and not store.closed:
                events = store.events_since(last)
                if events is None:
                    # The watcher fell behind the kept history: the cacher ends such a watch (its cache
                    # interval is invalidated); the client watches again from its last resourceVersion.
                    break
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
                beat = bookmarks and api.clock.now() >= next_beat
                if not pre_sent and time.monotonic() >= pre_deadline:
                    beat = pre_sent = True
                if beat:
                    emit_raw(
                        "BOOKMARK",
                        {
                            "kind": rt.kind,
                            "apiVersion": rt.api_version(route.version),
                            "metadata": {"resourceVersion": str(last)},
                        },
                    )
                    next_beat = api.clock.now() + BOOKMARK_FREQUENCY
                if sent or beat:
                    self.wfile.flush()
                until = deadline if pre_sent else pre_deadline
                with store.changed:
                    if store.resource_version == last and not store.closed:
                        store.changed.wait(min(5.0, max(0.0, until - time.monotonic())))
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
        tail_text = query.get("tailLines") or ""
        if tail_text and not tail_text.lstrip("-").isdigit():
            raise errors.bad_request(f'strconv.ParseInt: parsing "{tail_text}": invalid syntax')
        tail = int(tail_text) if tail_text else None
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
        # only with UseLocationHost (k8s.io/apimachinery/pkg/util/proxy/upgradeaware.go), which kube-apiserver
        # does not set for service and pod proxies (pkg/registry/core/service/proxy.go).
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

    def _pod_session(self, route: Route) -> None:
        """pods/exec, attach and portforward. The real server hands these to the kubelet as SPDY or
        WebSocket streams; the simulated one has no container to stream from, so after the checks the real
        server makes (the pod exists and has a node) it answers as a kubelet answers a request it cannot
        upgrade."""
        pod = self.cluster.api.get(route.rt, route.namespace or "", route.name or "")
        if not pod["spec"].get("nodeName"):
            raise errors.bad_request(f"pod {route.name} does not have a host assigned")
        raise errors.bad_request(
            f"Upgrade request required: the simulated cluster does not stream {route.subresource} sessions"
        )

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
