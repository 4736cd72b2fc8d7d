"""Sending a conformance scenario to a cluster and normalising the answer, the same way for both sides.

A scenario is a few setup requests and one checked request, in a namespace of its own. A request may be a
kubectl command line (run with a fresh discovery cache) or a watch (its events read until the server ends
it); a setup step may wait for a condition on its answer, and later requests may quote ``{uid}``, ``{rv}``
and ``{continue}`` from earlier answers. The checked answer is reduced to what must agree between the real
server and the simulated one: status code, ``reason``, ``message``, the ``Warning`` headers and the returned
object with volatile fields (uid, resourceVersion, timestamps, condition times, continue tokens, the
pod-template-hash, allocated IPs and ports, uids quoted in messages, the scenario's namespace, and each
scenario's own ``volatile`` patterns) replaced by markers; kubectl output has ages as ``<age>`` and its
column padding collapsed. An apply conflict's ``FieldManagerConflict`` causes are compared as a set: the real
server lists them in Go map order.
One known divergence is normalised away and said here rather than hidden: the simulator's managedFields do
not mark owned maps and list items with ``".": {}`` the way structured-merge-diff does, so ``"."`` entries
of ``fieldsV1`` are dropped on both sides (also inside a quoted object). Requests go through the official
client's connection pool and its configuration (TLS, token or client certificates), so the same code talks
to both servers.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
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
    until: Callable[[Any], bool] | None = None  # setup only: resend until the answer's body satisfies it
    kubectl: list[str] | None = None  # run kubectl with these arguments instead (method/path unused)
    watch: bool = False  # a watch: the answer is its events, read until the server ends the stream
    # setup only: answers with these codes count as done (a step that waits for an error, as a 410)
    done_codes: tuple[int, ...] = ()
    # setup only: how long this step may wait (None: the cluster's patience) and what for, said as it waits
    patience: float | None = None
    why: str = ""


def kubectl(*args: str, until: Callable[[Any], bool] | None = None) -> Request:
    """A kubectl command line ({ns} is the scenario's namespace); its exit code and output are compared."""
    return Request("KUBECTL", "", kubectl=list(args), until=until)


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
    # Patterns whose matches differ run to run (generated names, resourceVersions quoted in messages):
    # replaced by "<volatile>" in every string of the answer.
    volatile: tuple[str, ...] = ()


def node_port_for(namespace: str) -> int:
    """A NodePort of the scenario's own (30000-32767 is shared by every run against one server)."""
    return 30000 + sum(namespace.encode()) * 7 % 2700


class Cluster:
    """Raw HTTP to one API server with the credentials of a kubeconfig. ``patience`` bounds how long a
    setup step waits for its condition (a simulated cluster's controllers act at once; a real one's not)."""

    def __init__(self, kubeconfig: dict[str, Any] | str, patience: float = 60) -> None:
        self.patience = patience
        if isinstance(kubeconfig, dict):
            self.api_client = config.new_client_from_config_dict(kubeconfig)
            handle, path = tempfile.mkstemp(prefix="conformance-", suffix=".kubeconfig")
            with os.fdopen(handle, "w") as out:
                yaml.safe_dump(kubeconfig, out)
            self.kubeconfig = path
        else:
            self.api_client = config.new_client_from_config(config_file=kubeconfig)
            self.kubeconfig = kubeconfig
        cfg: client.Configuration = self.api_client.configuration
        self.host = cfg.host
        self.headers: dict[str, str] = {}
        settings: dict[str, Any] = dict(cfg.auth_settings())
        for setting in settings.values():
            if setting.get("in") == "header" and setting.get("value"):
                self.headers[setting["key"]] = setting["value"]

    def kubectl(self, args: list[str], namespace: str, values: dict[str, str]) -> tuple[int, str, list[str]]:
        binary = shutil.which("kubectl", path=str(Path(sys.executable).parent)) or "kubectl"
        # A discovery cache of its own each time: a cached one names groups of earlier scenarios.
        with tempfile.TemporaryDirectory(prefix="conformance-kubectl-") as cache:
            argv = [binary, "--kubeconfig", self.kubeconfig, "--cache-dir", cache]
            argv += [_fill(a, namespace, values) for a in args]
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=60, env=dict(os.environ, NO_COLOR="1")
            )
        return done.returncode, done.stdout + done.stderr, []

    def send(
        self, request: Request, namespace: str, values: dict[str, str] | None = None
    ) -> tuple[int, Any, list[str]]:
        values = values or {}
        if request.kubectl is not None:
            return self.kubectl(request.kubectl, namespace, values)
        path = _fill(request.path, namespace, values)
        query = {k: _fill(v, namespace, values) for k, v in request.query.items()}
        url = self.host + path + ("?" + urllib.parse.urlencode(query) if query else "")
        body = request.body
        if callable(body):
            body = body(namespace)
        if isinstance(body, (dict, list)):
            body = _fill(json.dumps(body), namespace, values).encode()
        elif isinstance(body, str):
            body = _fill(body, namespace, values).encode()
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
        if request.watch:
            events = [json.loads(line) for line in text.splitlines() if line.strip()]
            return response.status, {"events": events}, warnings
        try:
            return response.status, json.loads(text), warnings
        except ValueError:
            return response.status, text, warnings


def _fill(text: str, namespace: str, values: dict[str, str]) -> str:
    """``{ns}`` and the values captured from earlier answers (``{uid}``, ``{rv}``, ``{continue}``)."""
    text = text.replace("{ns}", namespace)
    for key, value in values.items():
        text = text.replace("{" + key + "}", value)
    return text


def _capture(body: Any, values: dict[str, str]) -> None:
    """What a later request may quote from an answer: the object's uid and resourceVersion, a list's
    continue token."""
    if not isinstance(body, dict):
        return
    meta = body.get("metadata") or {}
    for key, name in (("uid", "uid"), ("resourceVersion", "rv"), ("continue", "continue")):
        if isinstance(meta.get(key), str) and meta[key]:
            values[name] = meta[key]


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_AGE = re.compile(r"(?<![\w.-])\d+(?:d\d*h?|h\d*m?|m\d*s?|s)(?![\w.-])")
_VOLATILE_META = (
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "generation_",
    "deletionTimestamp",
    "lastUpdateTime",
    "lastTransitionTime",
    "lastHeartbeatTime",
    "continue",
)
_IP = re.compile(r"^\d+\.\d+\.\d+\.\d+$")


def _scrub(value: Any, namespace: str, volatile: tuple[str, ...] = ()) -> Any:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key in _VOLATILE_META or key == "time" and isinstance(item, str):
                out[key] = "<volatile>"
            elif key == "pod-template-hash" and isinstance(item, str):
                out[key] = "<generated>"
            elif key in ("clusterIP", "nodePort") and item not in (None, "None", ""):
                out[key] = "<allocated>"
            elif key == "." and item == {}:
                continue
            elif key == "clusterIPs" and isinstance(item, list):
                out[key] = ["<allocated>" if i != "None" else i for i in item]
            else:
                out[key] = _scrub(item, namespace, volatile)
        return out
    if isinstance(value, list):
        return [_scrub(v, namespace, volatile) for v in value]
    if isinstance(value, str):
        for pattern in volatile:
            value = re.sub(pattern, "<volatile>", value)
        value = _UUID.sub("<uid>", value)
        # The same divergence inside a quoted object (a patch error quotes the patched object).
        value = value.replace('\\".\\":{},', "").replace('{\\".\\":{}}', "{}")
        if not namespace:
            return value
        return value.replace(namespace, "{ns}").replace(str(node_port_for(namespace)), "<node-port>")
    return value


def _kubectl_text(text: str, namespace: str, volatile: tuple[str, ...]) -> str:
    """kubectl's output with ages (``5s``, ``2m3s``) as ``<age>`` and column padding as single spaces
    (kubectl pads columns itself; the server only sends the cells)."""
    lines = []
    for line in _scrub(text, namespace, volatile).splitlines():
        lines.append(re.sub(r"[ \t]+", " ", _AGE.sub("<age>", line)).rstrip())
    return "\n".join(lines)


def outcome(
    code: int,
    body: Any,
    warnings: list[str],
    namespace: str,
    compare_object: bool,
    compare: str = "",
    volatile: tuple[str, ...] = (),
    kubectl: bool = False,
) -> dict[str, Any]:
    """What must agree: code, reason, message, warnings and (for objects) the normalised object."""
    result: dict[str, Any] = {"code": code, "warnings": [_scrub(w, namespace, volatile) for w in warnings]}
    if kubectl:
        result["text"] = _kubectl_text(body, namespace, volatile)
    elif isinstance(body, dict) and body.get("kind") == "Status":
        result["reason"] = body.get("reason", "")
        result["message"] = _scrub(body.get("message", ""), namespace, volatile)
        details = _scrub(body.get("details"), namespace, volatile)
        causes = details.get("causes") if isinstance(details, dict) else None
        if isinstance(causes, list) and all(c.get("reason") == "FieldManagerConflict" for c in causes):
            # kube-apiserver lists an apply conflict's causes in Go map order (structured-merge-diff's
            # ConflictsFromManagers; only the message is sorted, by manager): compared as a set.
            details["causes"] = sorted(causes, key=lambda c: json.dumps(c, sort_keys=True))
        result["details"] = details
    elif isinstance(body, dict) and "events" in body and "kind" not in body:
        result["events"] = _scrub(body["events"], namespace, volatile)
    elif isinstance(body, dict):
        result["kind"] = body.get("kind")
        if compare_object:
            picked: Any = body
            for part in compare.split(".") if compare else []:
                if isinstance(picked, list) and part.isdigit():
                    picked = picked[int(part)] if int(part) < len(picked) else None
                else:
                    picked = picked.get(part) if isinstance(picked, dict) else None
            result["object"] = _scrub(picked, namespace, volatile)
    else:
        result["text"] = _scrub(body, namespace, volatile)[:500]
    return result


def _failed(step: Request, code: int) -> bool:
    if code in step.done_codes:
        return False
    return code >= 300 if step.kubectl is None else code != 0


def _waiting(step: Request, code: int, body: Any) -> bool:
    """Whether a setup step is still to be resent: its condition not met yet, or (``until_ok``) failing."""
    if step.until is not None:
        return not step.until(body)
    return step.until_ok and _failed(step, code)


def _quiet(_: str) -> None:
    pass


def run(
    cluster: Cluster, scenario: Scenario, namespace: str, say: Callable[[str], None] = _quiet
) -> dict[str, Any]:
    """Set the scenario up, send its check and normalise the answer. ``say`` hears a line when a setup
    step has waited 5 s, and every 30 s after, naming what it waits for and how long of its patience."""
    if scenario.namespaced:
        ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
        cluster.send(Request("POST", "/api/v1/namespaces", ns), namespace)
    values: dict[str, str] = {}
    for step in scenario.setup:
        code, body, _ = cluster.send(step, namespace, values)
        started = time.monotonic()
        patience = cluster.patience if step.patience is None else step.patience
        deadline, said = started + patience, started
        while _waiting(step, code, body) and time.monotonic() < deadline:
            time.sleep(0.2 if time.monotonic() - started < 5 else 2)
            code, body, _ = cluster.send(step, namespace, values)
            now = time.monotonic()
            if now - started >= 5 and (said == started or now - said >= 30):
                said = now
                what = step.why or f"{step.method} {step.path or ' '.join(step.kubectl or [])}"
                say(f"{scenario.name}: waiting for {what} ({now - started:.0f} s of {patience:.0f} s)")
        if _waiting(step, code, body) or _failed(step, code):
            raise AssertionError(f"{scenario.name}: setup {step.method} {step.path} answered {code}: {body}")
        _capture(body, values)
    code, body, warnings = cluster.send(scenario.check, namespace, values)
    for step in scenario.cleanup:
        cluster.send(step, namespace, values)
    if scenario.namespaced:
        cluster.send(Request("DELETE", f"/api/v1/namespaces/{namespace}"), namespace)
    return outcome(
        code,
        body,
        warnings,
        namespace,
        scenario.compare_object,
        scenario.compare,
        scenario.volatile,
        scenario.check.kubectl is not None,
    )
