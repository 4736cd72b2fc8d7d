"""Sending a conformance scenario to a cluster and normalising the answer, the same way for both sides.

A scenario is a few setup requests and one checked request, in a namespace of its own. The checked answer
is reduced to what must agree between the real server and the simulated one: status code, ``reason``,
``message``, the ``Warning`` headers and the returned object with volatile fields (uid, resourceVersion,
timestamps, managedFields times, allocated IPs and ports, the scenario's namespace) replaced by markers.
One known divergence is normalised away and said here rather than hidden: the simulator's managedFields do
not mark owned maps and list items with ``".": {}`` the way structured-merge-diff does, so ``"."`` entries
of ``fieldsV1`` are dropped on both sides. Requests go through the official client's connection pool and
its configuration (TLS, token or client certificates), so the same code talks to both servers.
"""

from __future__ import annotations

import json
import re
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client, config

_WARNING = re.compile(r'^299 - "((?:[^"\\]|\\.)*)"')


@dataclass
class Request:
    method: str
    path: str  # "{ns}" is the scenario's namespace
    body: Any = None  # dict/list (sent as JSON), str or bytes (sent as is), or namespace -> bytes
    content_type: str = "application/json"
    query: dict[str, str] = field(default_factory=dict)
    accept: str = "application/json"
    until_ok: bool = False  # setup only: resend until it succeeds (a CRD's resource becoming served)


@dataclass
class Scenario:
    name: str
    check: Request
    setup: list[Request] = field(default_factory=list)
    namespaced: bool = True  # create the scenario's namespace first
    compare_object: bool = True
    compare: str = ""  # compare only this top-level field of the returned object (e.g. "spec")
    cleanup: list[Request] = field(
        default_factory=list
    )  # cluster-scoped leftovers (the namespace goes anyway)


def node_port_for(namespace: str) -> int:
    """A NodePort of the scenario's own (30000-32767 is shared by every run against one server)."""
    return 30000 + sum(namespace.encode()) * 7 % 2700


class Cluster:
    """Raw HTTP to one API server with the credentials of a kubeconfig."""

    def __init__(self, kubeconfig: dict[str, Any] | str) -> None:
        if isinstance(kubeconfig, dict):
            self.api_client = config.new_client_from_config_dict(kubeconfig)
        else:
            self.api_client = config.new_client_from_config(config_file=kubeconfig)
        cfg: client.Configuration = self.api_client.configuration
        self.host = cfg.host
        self.headers: dict[str, str] = {}
        settings: dict[str, Any] = dict(cfg.auth_settings())
        for setting in settings.values():
            if setting.get("in") == "header" and setting.get("value"):
                self.headers[setting["key"]] = setting["value"]

    def send(self, request: Request, namespace: str) -> tuple[int, dict[str, Any] | str, list[str]]:
        path = request.path.replace("{ns}", namespace)
        query = {k: v.replace("{ns}", namespace) for k, v in request.query.items()}
        url = self.host + path + ("?" + urllib.parse.urlencode(query) if query else "")
        body = request.body
        if callable(body):
            body = body(namespace)
        if isinstance(body, (dict, list)):
            body = json.dumps(body).replace("{ns}", namespace).encode()
        elif isinstance(body, str):
            body = body.replace("{ns}", namespace).encode()
        headers = dict(self.headers, Accept=request.accept, **{"User-Agent": "conformance/1.0"})
        if body is not None:
            headers["Content-Type"] = request.content_type
        response = self.api_client.rest_client.pool_manager.request(
            request.method, url, body=body, headers=headers, preload_content=True, timeout=30
        )
        warnings = [
            json.loads('"' + m.group(1) + '"')
            for value in response.headers.get_all("Warning") or []
            for m in [_WARNING.match(value)]
            if m
        ]
        text = response.data.decode(errors="replace")
        try:
            return response.status, json.loads(text), warnings
        except ValueError:
            return response.status, text, warnings


_VOLATILE_META = ("uid", "resourceVersion", "creationTimestamp", "generation_", "deletionTimestamp")
_IP = re.compile(r"^\d+\.\d+\.\d+\.\d+$")


def _scrub(value: Any, namespace: str) -> Any:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key in _VOLATILE_META or key == "time" and isinstance(item, str):
                out[key] = "<volatile>"
            elif key in ("clusterIP", "nodePort") and item not in (None, "None", ""):
                out[key] = "<allocated>"
            elif key == "." and item == {}:
                continue
            elif key == "clusterIPs" and isinstance(item, list):
                out[key] = ["<allocated>" if i != "None" else i for i in item]
            else:
                out[key] = _scrub(item, namespace)
        return out
    if isinstance(value, list):
        return [_scrub(v, namespace) for v in value]
    if isinstance(value, str):
        if not namespace:
            return value
        return value.replace(namespace, "{ns}").replace(str(node_port_for(namespace)), "<node-port>")
    return value


def outcome(
    code: int, body: Any, warnings: list[str], namespace: str, compare_object: bool, compare: str = ""
) -> dict[str, Any]:
    """What must agree: code, reason, message, warnings and (for objects) the normalised object."""
    result: dict[str, Any] = {"code": code, "warnings": [_scrub(w, namespace) for w in warnings]}
    if isinstance(body, dict) and body.get("kind") == "Status":
        result["reason"] = body.get("reason", "")
        result["message"] = _scrub(body.get("message", ""), namespace)
        result["details"] = _scrub(body.get("details"), namespace)
    elif isinstance(body, dict):
        result["kind"] = body.get("kind")
        if compare_object:
            result["object"] = _scrub(body.get(compare) if compare else body, namespace)
    else:
        result["text"] = _scrub(body, namespace)[:500]
    return result


def run(cluster: Cluster, scenario: Scenario, namespace: str) -> dict[str, Any]:
    if scenario.namespaced:
        ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
        cluster.send(Request("POST", "/api/v1/namespaces", ns), namespace)
    for step in scenario.setup:
        code, body, _ = cluster.send(step, namespace)
        deadline = time.monotonic() + 30
        while step.until_ok and code >= 300 and time.monotonic() < deadline:
            time.sleep(0.2)
            code, body, _ = cluster.send(step, namespace)
        if code >= 300:
            raise AssertionError(f"{scenario.name}: setup {step.method} {step.path} answered {code}: {body}")
    code, body, warnings = cluster.send(scenario.check, namespace)
    for step in scenario.cleanup:
        cluster.send(step, namespace)
    if scenario.namespaced:
        cluster.send(Request("DELETE", f"/api/v1/namespaces/{namespace}"), namespace)
    return outcome(code, body, warnings, namespace, scenario.compare_object, scenario.compare)
