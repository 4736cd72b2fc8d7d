"""Label and field selectors, parsed the way the API server parses ``labelSelector``/``fieldSelector``.

Label selectors support equality (``=``, ``==``, ``!=``), set (``in``, ``notin``), existence (``key``,
``!key``); field selectors support ``=``, ``==`` and ``!=`` on the fields the API server indexes
(``metadata.name``, ``metadata.namespace``, ``spec.nodeName``, ``status.phase``, ``involvedObject.*``, ...).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from kubesim.machinery.errors import bad_request

Predicate = Callable[[dict[str, Any]], bool]

_SET_RE = re.compile(r"^\s*([^\s!=]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")


def _split_terms(selector: str) -> list[str]:
    terms, depth, current = [], 0, []
    for ch in selector:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            terms.append("".join(current))
            current = []
        else:
            current.append(ch)
    if current:
        terms.append("".join(current))
    return [t.strip() for t in terms if t.strip()]


def parse_label_selector(selector: str | None) -> Predicate:
    """Compile a label selector string into a predicate over an object's labels."""
    if not selector:
        return lambda labels: True
    checks: list[Predicate] = []
    for term in _split_terms(selector):
        m = _SET_RE.match(term)
        if m:
            key, op, values = m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",") if v.strip()}
            if op == "in":
                checks.append(lambda lb, k=key, vs=values: lb.get(k) in vs)
            else:
                checks.append(lambda lb, k=key, vs=values: lb.get(k) not in vs)
            continue
        for op in ("!=", "==", "="):
            if op in term:
                key, value = (p.strip() for p in term.split(op, 1))
                if not key:
                    raise bad_request(f"unable to parse requirement: found '{op}', expected: identifier")
                if op == "!=":
                    checks.append(lambda lb, k=key, v=value: lb.get(k) != v)
                else:
                    checks.append(lambda lb, k=key, v=value: lb.get(k) == v)
                break
        else:
            if term.startswith("!"):
                checks.append(lambda lb, k=term[1:].strip(): k not in lb)
            elif re.match(r"^[A-Za-z0-9][-A-Za-z0-9_./]*$", term):
                checks.append(lambda lb, k=term: k in lb)
            elif len(term.split()) > 1:
                raise bad_request(
                    f"unable to parse requirement: found '{term.split()[1]}', "
                    "expected: in, notin, =, ==, !=, gt, lt"
                )
            else:
                raise bad_request(f'unable to parse requirement: invalid label key "{term}"')
    return lambda labels: all(c(labels) for c in checks)


def match_label_selector_object(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """Match a ``metav1.LabelSelector`` (matchLabels + matchExpressions). An empty selector matches all."""
    if selector is None:
        return False
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def selector_string(selector: dict[str, Any] | None) -> str:
    """Render a ``metav1.LabelSelector`` as the string form (used by scale status and kubectl)."""
    if not selector:
        return ""
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        op, key, values = expr.get("operator"), expr.get("key"), ",".join(sorted(expr.get("values") or []))
        parts.append(
            {
                "In": f"{key} in ({values})",
                "NotIn": f"{key} notin ({values})",
                "Exists": key,
                "DoesNotExist": f"!{key}",
            }.get(op, key)
        )
    return ",".join(parts)


def _field(obj: dict[str, Any], path: str) -> str:
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return ""
        cur = cur.get(part)
    if cur is None:
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)


# Field labels each kind supports beyond metadata.name/namespace, from the AddFieldLabelConversionFunc calls
# of kubernetes/kubernetes pkg/apis/{core,apps,batch}/v1/conversion.go (v1.36). Kinds listed here answer an
# unsupported label with "field label not supported: X"; the others with "... is not a known field selector".
_META = ("metadata.name", "metadata.namespace")
FIELD_LABELS: dict[tuple[str, str], tuple[str, ...]] = {
    ("", "pods"): _META
    + (
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.podIPs",
        "status.nominatedNodeName",
    ),
    ("", "nodes"): ("metadata.name", "spec.unschedulable"),
    ("", "events"): _META
    + tuple(
        f"involvedObject.{f}"
        for f in ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")
    )
    + ("reason", "reportingComponent", "source", "type"),
    ("", "namespaces"): ("status.phase", "metadata.name"),
    ("", "secrets"): ("type",) + _META,
    ("", "services"): _META + ("spec.clusterIP", "spec.type"),
    ("", "replicationcontrollers"): _META + ("status.replicas",),
    ("apps", "replicasets"): _META + ("status.replicas",),
    ("batch", "jobs"): _META + ("status.successful",),
}


def _check_field_label(gr: tuple[str, str] | None, path: str) -> None:
    if gr is None:
        return
    supported = FIELD_LABELS.get(gr)
    if supported is None:
        if path not in _META:
            raise bad_request(
                f'"{path}" is not a known field selector: only "metadata.name", "metadata.namespace"'
            )
    elif path not in supported:
        raise bad_request(f"field label not supported: {path}")


def parse_field_selector(selector: str | None, gr: tuple[str, str] | None = None) -> Predicate:
    """Compile a field selector into a predicate over the whole object; with ``gr``, reject the field
    labels that kind does not support, as the API server does."""
    if not selector:
        return lambda obj: True
    checks: list[Predicate] = []
    for term in _split_terms(selector):
        for op in ("!=", "==", "="):
            if op in term:
                path, value = (p.strip() for p in term.split(op, 1))
                _check_field_label(gr, path)
                if op == "!=":
                    checks.append(lambda o, p=path, v=value: _field(o, p) != v)
                else:
                    checks.append(lambda o, p=path, v=value: _field(o, p) == v)
                break
        else:
            raise bad_request(f"invalid selector: '{selector}'; can't understand '{term}'")
    return lambda obj: all(c(obj) for c in checks)
