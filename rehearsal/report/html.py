"""``report.html``: the run record as one self-contained page an auditor can read (harness library).

Rendered from ``rehearsal.json`` data only, with our own template (``template.html`` beside this module,
shipped as package data): no external requests, no JavaScript. Every text that comes from the run or the
cluster goes through :func:`html.escape` (object names, annotations, logs and error messages can carry
markup); long outputs are trimmed with a visible marker and a relative link to the full text.
"""

from __future__ import annotations

import html
import json
import os
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

from ..record.verdict import MEANING
from . import availability, manifest

E = html.escape
TRIM = 4000
COLOURS = {
    "upgraded": "#1a7f37",
    "rolled-back": "#9a6700",
    "failed": "#cf222e",
    "rollback-failed": "#82071e",
    "downgraded": "#9a6700",
    "downgrade-failed": "#82071e",
    None: "#57606a",
}
OUTCOME_COLOURS = {
    "passed": "#2da44e",
    "not-needed": "#8c959f",
    "failed": "#cf222e",
    "running": "#bf8700",
    "skipped": "#8c959f",
}


def trimmed(text: str, full_link: str | None, limit: int = TRIM, total: int | None = None) -> str:
    """``<pre>`` of ``text``'s tail, with a visible marker (and the link to the whole) when it is cut.
    ``total`` is the length of the whole when ``text`` is already a tail of it (the record keeps tails)."""
    text = str(text)
    total = max(total or 0, len(text))
    if total <= limit:
        return f"<pre>{E(text)}</pre>"
    shown = text[-limit:]
    marker = f"[trimmed: the last {len(shown)} of {total} characters"
    marker += "; " if full_link else "]"
    link = f'<a href="{E(full_link)}">full text</a>]' if full_link else ""
    return f'<p class="trim">{E(marker)}{link}</p><pre>{E(shown)}</pre>'


def _json(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=True, default=str)


def _kv(rows: list[tuple[str, Any]]) -> str:
    body = "".join(f"<tr><th>{E(k)}</th><td>{E(str(v))}</td></tr>" for k, v in rows if v not in (None, ""))
    return f"<table class='kv'>{body}</table>"


def _seconds(start: str, run_start: str) -> float:
    from datetime import datetime

    try:
        return (datetime.fromisoformat(start) - datetime.fromisoformat(run_start)).total_seconds()
    except (TypeError, ValueError):
        return 0.0


def timeline(record: dict[str, Any]) -> str:
    """The steps and the validations in the order they ran, as inline SVG: a row each, a bar from start to
    end, coloured by outcome (validations recorded without times, from older records, are left out)."""
    steps = sorted(record.get("steps") or [], key=lambda s: s["started"])
    checks = [
        {
            "name": sentence(v["name"]),
            "started": v["started"],
            "ended": v.get("ended"),
            "duration_seconds": float(v.get("duration_seconds") or 0.0),
            "outcome": v["outcome"],
            "reason": v.get("reason") or "",
            "check": v["name"],
        }
        for v in record.get("validations") or []
        if v.get("started") and v.get("outcome") != "skipped"
    ]
    rows_in_order = sorted([*steps, *checks], key=lambda s: s["started"])
    if not rows_in_order:
        return "<p>No step ran.</p>"
    start = record["started"]
    ends = [_seconds(s["ended"] or s["started"], start) for s in rows_in_order]
    total = max([*ends, float(record.get("duration_seconds") or 0), 0.001])
    label_w, bar_w, row_h = 300, 520, 24
    height = row_h * len(rows_in_order) + 30
    rows = []
    for i, step in enumerate(rows_in_order):
        y = 10 + i * row_h
        x0 = _seconds(step["started"], start)
        width = max(2.0, bar_w * step["duration_seconds"] / total)
        x = label_w + bar_w * x0 / total
        colour = OUTCOME_COLOURS.get(step["outcome"], "#57606a")
        failed = step["outcome"] in ("failed", "error")
        stroke = " stroke='#82071e' stroke-width='2'" if failed else ""
        mark = (
            f"<text x='{x + width + 4:.1f}' y='{y + 15}' class='fail-mark' fill='#cf222e'>"
            "&#x2717; failed</text>"
            if failed
            else ""
        )
        is_check = "check" in step
        group = (
            f"<g class='check' data-check='{E(step['check'])}' data-outcome='{E(step['outcome'])}'>"
            if is_check
            else f"<g class='step' data-step='{E(step['name'])}' data-outcome='{E(step['outcome'])}'>"
        )
        label = step["name"] if len(step["name"]) <= 44 else step["name"][:43] + "\u2026"
        italic = " font-style='italic'" if is_check else ""
        rows.append(
            group + f"<title>{'check: ' if is_check else ''}{E(step['name'])}: {E(step['outcome'])}, "
            f"{step['duration_seconds']:.2f}s"
            f"{' - ' + E(step['reason'][:300]) if step['reason'] else ''}</title>"
            f"<text x='4' y='{y + 15}'{italic}>{E(label)}</text>"
            f"<rect x='{x:.1f}' y='{y + 3}' width='{width:.1f}' height='{row_h - 8}' fill='{colour}'"
            f"{stroke}/>"
            f"<text x='{label_w + bar_w + 60}' y='{y + 15}' class='dur'>"
            f"{step['duration_seconds']:.2f}s</text>"
            f"{mark}</g>"
        )
    axis = f"<text x='{label_w}' y='{height - 4}' class='dur'>0s</text>" + (
        f"<text x='{label_w + bar_w - 40}' y='{height - 4}' class='dur'>{total:.1f}s</text>"
    )
    return (
        f"<svg id='timeline' xmlns='http://www.w3.org/2000/svg' width='{label_w + bar_w + 140}' "
        f"height='{height}' role='img' aria-label='timeline of the steps and checks'>"
        f"{''.join(rows)}{axis}</svg>"
    )


def _output(item: dict[str, Any], stream: str) -> str:
    """A command's output; when the record kept only its tail, the marker line the record added is dropped
    and the whole length and the artifact with the full text are named instead."""
    text = str(item.get(stream) or "")
    artifact = item.get(f"{stream}_artifact")
    if artifact and text.startswith("[trimmed:"):
        text = text.split("\n", 1)[1] if "\n" in text else ""
    return trimmed(text, artifact, total=item.get(f"{stream}_length"))


def _evidence(item: dict[str, Any]) -> str:
    kind = item.get("type")
    if kind == "command":
        argv = " ".join(item.get("argv") or [])
        return (
            f"<details><summary><code>{E(argv)}</code> &mdash; exit {E(str(item.get('exit_code')))} "
            f"({float(item.get('duration') or 0):.2f}s)</summary>"
            f"<p>stdout</p>{_output(item, 'stdout')}"
            + (f"<p>stderr</p>{_output(item, 'stderr')}" if item.get("stderr") else "")
            + "</details>"
        )
    if kind == "data":
        return (
            f"<details><summary>{E(str(item.get('title')))}</summary>"
            f"{trimmed(_json(item.get('data')), 'rehearsal.json')}</details>"
        )
    if kind == "traceback":
        text = trimmed(item.get("text") or "", "rehearsal.json")
        return f"<details><summary>traceback</summary>{text}</details>"
    return ""


def _cause(record: dict[str, Any]) -> str:
    cause = record.get("cause")
    if not cause:
        return ""
    failing = next(
        (s for s in record.get("steps") or [] if s["outcome"] == "failed" and s["name"] == cause.get("step")),
        None,
    )
    said = ""
    if failing:
        for item in failing["evidence"]:
            if item.get("type") == "data" and item.get("title") == "what the cluster said":
                said = _cluster_said(item["data"])
    return (
        "<section id='cause'><h2>Cause</h2>"
        f"<p class='cause-text'>{E(cause['summary'])}</p>"
        + _kv(
            [
                ("step", cause.get("step")),
                ("object", cause.get("object")),
                ("reason", cause.get("reason")),
                ("message", cause.get("message")),
            ]
        )
        + said
        + "</section>"
    )


def _state(state: Any) -> str:
    """A container state in words: ``waiting: CrashLoopBackOff (back-off 10s ...)``."""
    if not isinstance(state, dict) or not state:
        return "unknown"
    phase, detail = next(iter(state.items()))
    detail = detail if isinstance(detail, dict) else {}
    words = [str(detail.get("reason") or "")]
    if detail.get("exitCode") is not None:
        words.append(f"exit code {detail['exitCode']}")
    if detail.get("message"):
        words.append(f"({detail['message']})")
    return f"{phase}: {' '.join(w for w in words if w)}".rstrip(": ")


def _cluster_said(data: dict[str, Any]) -> str:
    events = "".join(
        f"<tr><td>{E(str(e.get('last')))}</td><td>{E(str(e.get('type')))}</td><td>{E(str(e.get('object')))}</td>"
        f"<td>{E(str(e.get('reason')))}</td><td>{E(str(e.get('message')))}</td><td>{E(str(e.get('count')))}</td></tr>"
        for e in data.get("events") or []
    )
    containers = "".join(
        f"<tr><td>{E(str(c.get('pod')))}</td><td>{E(str(c.get('container')))}</td><td>{E(str(c.get('image')))}</td>"
        f"<td>{E(_state(c.get('state')))}</td><td>{E(str(c.get('restarts')))}</td></tr>"
        for c in data.get("containers") or []
    )
    logs = "".join(
        f"<p>last log lines of <code>{E(k)}</code></p>{trimmed(v, 'rehearsal.json')}"
        for k, v in (data.get("logs") or {}).items()
    )
    return (
        "<h3>What the cluster said at that moment</h3>"
        + _kv(
            [
                ("declared at (cluster clock)", data.get("declared_at")),
                ("waited", f"{data.get('waited_seconds')}s of a {data.get('deadline_seconds')}s deadline"),
            ]
        )
        + (
            "<table class='grid'><tr><th>last seen</th><th>type</th><th>object</th><th>reason</th>"
            f"<th>message</th><th>count</th></tr>{events}</table>"
            if events
            else ""
        )
        + (
            "<table class='grid'><tr><th>pod</th><th>container</th><th>image</th><th>state</th>"
            f"<th>restarts</th></tr>{containers}</table>"
            if containers
            else ""
        )
        + logs
    )


def _plan(record: dict[str, Any]) -> str:
    plan = record.get("plan") or {}
    sets = "".join(f"<li><code>--set {E(s)}</code></li>" for s in plan.get("sets") or [])
    content = (
        f"<p>plan file <code>{E(str(plan.get('plan_file')))}</code></p>{trimmed(plan['plan_content'], None)}"
        if plan.get("plan_content")
        else "<p>No plan file: the istioctl default profile plus the values below.</p>"
    )
    return (
        "<section id='plan'><h2>The plan</h2>"
        + _kv(
            [
                ("from", plan.get("from")),
                ("to", plan.get("to")),
                ("strategy", plan.get("strategy")),
                ("rollback", plan.get("rollback")),
                ("cluster", plan.get("cluster")),
            ]
        )
        + content
        + (f"<ul class='sets'>{sets}</ul>" if sets else "<p>No --set values.</p>")
        + _moves(record)
        + "<details><summary>install spec for the target, as resolved</summary>"
        + trimmed(_json(plan.get("install_spec_to")), "rehearsal.json")
        + "</details></section>"
    )


def _moves(record: dict[str, Any]) -> str:
    """The strategy's plan and the moves it made, in order (record schema 1.1)."""
    moves = record.get("moves") or []
    if not moves and not record.get("strategy_plan"):
        return ""
    items = "".join(
        f"<li>{E(str(m.get('at')))} <b>{E(str(m.get('move')))}</b> "
        f"{E(', '.join(f'{k}: {v}' for k, v in m.items() if k not in ('move', 'at')))}</li>"
        for m in moves
    )
    return (
        f"<h3>Strategy {E(str(record.get('strategy')))}: its moves</h3>"
        + (f"<ol class='moves'>{items}</ol>" if items else "<p>No move made.</p>")
        + "<details><summary>the strategy's plan</summary>"
        + trimmed(_json(record.get("strategy_plan") or {}), "rehearsal.json")
        + "</details>"
    )


def _versions(record: dict[str, Any]) -> str:
    versions = record.get("versions") or {}
    columns = [("before", "before"), ("after", "after the upgrade"), ("after_rollback", "after the rollback")]

    def cell(data: Any, getter: str, key: str | None = None) -> str:
        if not data:
            return "&ndash;"
        value = data.get(getter)
        if key is not None:
            value = (value or {}).get(key)
        if isinstance(value, list):
            value = ", ".join(str(v) for v in value)
        return E(str(value)) if value not in (None, "") else "&ndash;"

    rows: list[tuple[str, str, str | None]] = [("control plane", "control_plane", None)]
    proxies: set[str] = set()
    for col, _ in columns:
        proxies |= set(((versions.get(col) or {}).get("data_plane") or {}).keys())
    head = "".join(f"<th>{E(title)}</th>" for _, title in columns)
    body = "".join(
        f"<tr><th>{E(label)}</th>"
        + "".join(f"<td>{cell(versions.get(c), g, k)}</td>" for c, _ in columns)
        + "</tr>"
        for label, g, k in rows
    )
    # One row per workload (its pods come and go across the restarts, so a row per pod would never line up
    # before and after): the versions its proxies ran in each column, with how many pods ran each.
    workloads: dict[str, dict[str, dict[str, int]]] = {}
    for col, _ in columns:
        for proxy, version in ((versions.get(col) or {}).get("data_plane") or {}).items():
            counts = workloads.setdefault(workload_of(proxy), {}).setdefault(col, {})
            counts[str(version)] = counts.get(str(version), 0) + 1

    def versions_cell(counts: dict[str, int] | None) -> str:
        if not counts:
            return "&ndash;"
        return ", ".join(E(v) + (f" ({n} pods)" if n > 1 else "") for v, n in sorted(counts.items()))

    body += "".join(
        f"<tr class='workload'><th>{E(name)}</th>"
        + "".join(f"<td>{versions_cell(seen.get(c))}</td>" for c, _ in columns)
        + "</tr>"
        for name, seen in sorted(workloads.items())
    )
    per_proxy = "".join(
        f"<tr><th>{E(p)}</th>"
        + "".join(f"<td>{cell(versions.get(c), 'data_plane', p)}</td>" for c, _ in columns)
        + "</tr>"
        for p in sorted(proxies)
    )
    details = (
        f"<details><summary>each proxy ({len(proxies)})</summary><table class='grid'><tr><th></th>{head}</tr>"
        f"{per_proxy}</table></details>"
        if proxies
        else ""
    )
    return (
        "<section id='versions'><h2>Versions</h2>"
        f"<table class='grid'><tr><th></th>{head}</tr>{body}</table>{details}"
        f"{_out_of_scope(versions, columns)}"
        "</section>"
    )


#: The characters of generated names and pod-template-hashes (kubernetes apimachinery pkg/util/rand,
#: SafeEncodeString: no vowels, no 0/1/3, so no words).
SAFE_ALPHABET = frozenset("bcdfghjklmnpqrstvwxz2456789")


def workload_of(proxy: str) -> str:
    """``namespace/workload`` of a proxy ID ``<pod>.<namespace>``: the pod name without its random suffix and,
    for a Deployment's pod, the ReplicaSet's pod-template-hash (``echo-7d4b9c8f6-x2x9z`` -> ``echo``)."""
    pod, _, namespace = proxy.rpartition(".")
    if not pod:
        pod, namespace = proxy, ""
    parts = pod.split("-")
    if len(parts) > 1 and len(parts[-1]) == 5 and set(parts[-1]) <= SAFE_ALPHABET:
        parts = parts[:-1]  # the pod's random suffix (Deployment, DaemonSet)
        if len(parts) > 1 and 6 <= len(parts[-1]) <= 10 and set(parts[-1]) <= SAFE_ALPHABET:
            parts = parts[:-1]  # the pod-template-hash
    elif len(parts) > 1 and parts[-1].isdigit():
        parts = parts[:-1]  # a StatefulSet's ordinal
    name = "-".join(parts)
    return f"{namespace}/{name}" if namespace else name


def _out_of_scope(versions: dict[str, Any], columns: list[tuple[str, str]]) -> str:
    """Proxies the run did not restart, listed apart from the judged ones, and the warnings about them."""
    apart: dict[str, dict[str, str]] = {}
    warnings: list[str] = []
    for col, _ in columns:
        data = versions.get(col) or {}
        for proxy, seen in (data.get("out_of_scope") or {}).items():
            apart.setdefault(proxy, {})[col] = f"{seen.get('version')}"
            apart[proxy]["reason"] = str(seen.get("reason") or "")
        warnings += [w for w in data.get("warnings") or [] if w not in warnings]
    if not apart:
        return ""
    head = "".join(f"<th>{E(title)}</th>" for _, title in columns)
    rows = "".join(
        f"<tr><th>{E(proxy)}</th><td>{E(seen.get('reason', ''))}</td>"
        + "".join(f"<td>{E(seen[c]) if c in seen else '&ndash;'}</td>" for c, _ in columns)
        + "</tr>"
        for proxy, seen in sorted(apart.items())
    )
    notes = "".join(f"<li class='warning'>{E(w)}</li>" for w in warnings)
    return (
        "<h3>Not restarted (out of scope)</h3><p>Proxies the run did not restart, and so did not judge: "
        "outside the restart scope, finished pods, pods of Jobs and CronJob history.</p>"
        f"<table class='grid'><tr><th>proxy</th><th>why</th>{head}</tr>{rows}</table>"
        + (f"<ul>{notes}</ul>" if notes else "")
    )


def sentence(name: str) -> str:
    """A check's test name as the sentence it stands for: ``test_no_version_skew`` -> ``No version skew.``"""
    words = name.removeprefix("test_").replace("_", " ").strip()
    return (words[:1].upper() + words[1:] + ".") if words else name


def _validations(record: dict[str, Any]) -> str:
    marks = {"passed": "&#x2713;", "failed": "&#x2717;", "skipped": "&ndash;", "error": "&#x2717;"}
    words = {"passed": "passed", "failed": "failed", "skipped": "not run", "error": "could not be checked"}
    items = []
    for check in record.get("validations") or []:
        findings = check.get("findings") or {}
        outcome = check["outcome"]
        duration = check.get("duration_seconds")
        items.append(
            f"<li class='check {E(outcome)}' data-outcome='{E(outcome)}' data-check='{E(check['name'])}'>"
            f"<span class='mark'>{marks.get(outcome, '?')}</span> <b>{E(sentence(check['name']))}</b> "
            f"{E(words.get(outcome, outcome))}"
            + (f" in {duration:.2f}s" if isinstance(duration, (int, float)) else "")
            + f" <span class='suite'>({E(check.get('suite', ''))})</span>"
            + (f"<p>{E(check['reason'])}</p>" if check.get("reason") else "")
            + (
                f"<details><summary>evidence</summary><code>{E(check['name'])}</code>"
                + trimmed(_json(findings), "rehearsal.json", 2500)
                + "</details>"
                if findings
                else ""
            )
            + "</li>"
        )
    body = "".join(items) or "<li>No validation ran.</li>"
    return f"<section id='validations'><h2>Validation checklist</h2><ul class='checks'>{body}</ul></section>"


def _count_or_list(value: Any) -> str:
    """What a rollback re-applied, in words: a count, or the objects named."""
    if isinstance(value, list):
        return f"{len(value)} object(s): " + ", ".join(str(v) for v in value) if value else "nothing"
    return f"{value} object(s)" if value is not None else "nothing"


def _codes(codes: Any) -> str:
    """``{"200": 50}`` as ``50 x 200``."""
    if not isinstance(codes, dict) or not codes:
        return "nothing"
    return ", ".join(f"{n} x {code}" for code, n in sorted(codes.items()))


def _cleanup_text(cleanup: Any) -> str | None:
    if not isinstance(cleanup, dict):
        return None
    if cleanup.get("errors"):
        return "errors (the verdict is the upgrade's, not the cleanup's): " + "; ".join(cleanup["errors"])
    if cleanup.get("reason"):
        return str(cleanup["reason"])
    removed = cleanup.get("removed") or []
    return "removed " + (", ".join(removed) if removed else "nothing")


def _rollback(record: dict[str, Any]) -> str:
    rollback = record.get("rollback") or {}
    proof = rollback.get("verification") or {}
    restored = "".join(
        f"<li>{E(str(r.get('undo')))} (registered by {E(str(r.get('registered_by')))}): "
        f"{E(_count_or_list(r.get('restored')))} re-applied; "
        f"removed: {E(', '.join(r.get('removed') or []) or 'nothing')}; "
        f"rolled out: {E(', '.join(r.get('rolled out') or []) or 'nothing')}</li>"
        for r in rollback.get("restored") or []
    )
    versions = record.get("versions") or {}
    diff_rows = ""
    after, back = versions.get("after") or {}, versions.get("after_rollback") or {}
    if back:
        for label, a, b in [
            ("control plane", after.get("control_plane"), back.get("control_plane")),
            *[
                (f"proxy {p}", (after.get("data_plane") or {}).get(p), (back.get("data_plane") or {}).get(p))
                for p in sorted(set(after.get("data_plane") or {}) | set(back.get("data_plane") or {}))
            ],
        ]:
            cells = f"<td class='old'>{E(str(a))}</td><td class='new'>{E(str(b))}</td>"
            diff_rows += f"<tr><th>{E(label)}</th>{cells}</tr>"
    traffic = proof.get("traffic") or {}
    findings = proof.get("findings") or {}
    return (
        "<section id='rollback'><h2>Rollback</h2>"
        + _kv(
            [
                ("mode", rollback.get("mode")),
                ("ran", "yes" if rollback.get("ran") else "no"),
                ("reason", rollback.get("reason")),
                ("errors", "; ".join(rollback.get("errors") or [])),
                # Reported apart from the verdict: what the cleanup did, or why it was left, or its errors.
                ("cleanup", _cleanup_text(rollback.get("cleanup"))),
            ]
        )
        + (
            f"<p id='rollback-proof' class='{'ok' if proof.get('verified') else 'bad'}'>Proof: "
            + (
                "the cluster is back at the source: control plane and every proxy at the source version, "
                f"traffic answers {E(_codes(traffic.get('codes')))}, Istio custom resources as backed up"
                if proof.get("verified")
                else f"NOT proven: {E(_json(findings))}"
            )
            + "</p>"
            if proof
            else ""
        )
        + (f"<h3>What it restored</h3><ul>{restored}</ul>" if restored else "")
        + (
            "<h3>Versions: after the upgrade &rarr; after the rollback</h3><table class='grid diff'>"
            f"<tr><th></th><th>after the upgrade</th><th>after the rollback</th></tr>{diff_rows}</table>"
            if diff_rows
            else ""
        )
        + "</section>"
    )


def _manifest(record: dict[str, Any], run_dir: Path) -> str:
    rows = manifest.diff(run_dir, str(record.get("to")))
    if not rows:
        return (
            "<section id='manifest'><h2>Installed manifest: before &rarr; after</h2>"
            "<p>No comparison: the target manifest was not generated in this run.</p></section>"
        )

    def table(items: list[dict[str, str]]) -> str:
        body = "".join(
            f"<tr><td>{E(r['object'])}</td><td>{E(r['facet'])}</td><td class='old'>{E(r['before'])}</td>"
            f"<td class='new'>{E(r['after'])}</td></tr>"
            for r in items
        )
        return (
            "<table class='grid diff'><tr><th>object</th><th>what</th><th>before</th><th>after</th></tr>"
            f"{body}</table>"
        )

    installed = manifest.compared_with(run_dir) == "installed"
    gone = "removed by the upgrade" if installed else "not in the target manifest"
    added = [r for r in rows if r["facet"] == "(object)" and r["after"] == "added"]
    removed = [r for r in rows if r["facet"] == "(object)" and r["after"] != "added"]
    changes = [r for r in rows if r["facet"] != "(object)"]
    by_object: dict[str, list[dict[str, str]]] = {}
    for r in changes:
        by_object.setdefault(r["object"], []).append(r)
    # An object whose only change is its version labels is churn every upgrade brings: folded.
    label_only = {o for o, rs in by_object.items() if all(r["facet"].startswith("label ") for r in rs)}
    images = [r for r in changes if r["facet"].startswith("image ")]
    other = [r for r in changes if not r["facet"].startswith(("image ", "label "))]
    summary = (
        f"<p id='manifest-summary'>{len(added)} object(s) added, {len(removed)} {gone}, "
        f"{len(by_object)} changed: {len(images)} image(s), {len(other)} other change(s), "
        f"{len(label_only)} with only their version labels changed; label changes folded below.</p>"
    )
    parts = [summary]
    if images:
        parts.append("<h3>Images changed</h3>" + table(images))
    if other:
        parts.append("<h3>Other changes</h3>" + table(other))
    if added:
        parts.append("<h3>Added</h3><ul>" + "".join(f"<li>{E(r['object'])}</li>" for r in added) + "</ul>")
    if removed:
        parts.append(
            (
                "<h3>Removed by the upgrade</h3><p>In the backup of the source, gone after the "
                "upgrade.</p><ul>"
                if installed
                else "<h3>Not in the target manifest</h3><p>Kept on the cluster (istioctl creates some at "
                "install time, such as the revision-tag webhooks).</p><ul>"
            )
            + "".join(f"<li>{E(r['object'])}</li>" for r in removed)
            + "</ul>"
        )
    folded = [r for r in changes if r["facet"].startswith("label ")]
    if folded:
        parts.append(
            f"<details><summary>version label changes ({len(folded)}, on "
            f"{len({r['object'] for r in folded})} object(s))</summary>" + table(folded) + "</details>"
        )
    return (
        "<section id='manifest'><h2>Installed manifest: before &rarr; after</h2>"
        "<p>Images, versions, securityContext, Service types, webhooks and CRDs that differ between the "
        "backup of the source and "
        + (
            "what was installed once the upgrade's restarts ended (read back from the cluster)"
            if installed
            else "the generated target manifest (the run stopped before the upgrade was installed)"
        )
        + ".</p>"
        + "".join(parts)
        + "</section>"
    )


def _steps(record: dict[str, Any]) -> str:
    parts = []
    for step in sorted(record.get("steps") or [], key=lambda s: s["started"]):
        artifacts = "".join(
            f"<li><a href='{E(a['path'])}'>{E(a['path'])}</a> {E(a.get('description', ''))}</li>"
            for a in step.get("artifacts") or []
        )
        opened = " open" if step["outcome"] == "failed" else ""
        parts.append(
            f"<details class='stepdetail {E(step['outcome'])}'{opened}>"
            f"<summary><b>{E(step['name'])}</b> &mdash; {E(step['outcome'])} "
            f"({step['duration_seconds']:.2f}s)"
            f"{': ' + E(step['reason'][:240]) if step['reason'] else ''}</summary>"
            + (f"<p>{E(step['reason'])}</p>" if len(step["reason"]) > 240 else "")
            + "".join(_evidence(item) for item in step.get("evidence") or [])
            + (f"<ul>{artifacts}</ul>" if artifacts else "")
            + "</details>"
        )
    return "<section id='steps'><h2>Steps and their evidence</h2>" + "".join(parts) + "</section>"


def _artifacts(run_dir: Path) -> str:
    links = []
    for name in ("rehearsal.json", "junit.xml", "tests.html", "journal.json", "settings.json"):
        if (run_dir / name).exists():
            links.append(f"<li><a href='{E(name)}'>{E(name)}</a></li>")
    root = run_dir / "artifacts"
    if root.is_dir():
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            relative = path.relative_to(run_dir).as_posix()
            private = " (private: mode 0600)" if os.stat(path).st_mode & 0o077 == 0 else ""
            links.append(f"<li><a href='{E(relative)}'>{E(relative)}</a>{E(private)}</li>")
    return f"<section id='artifacts'><h2>Artifacts</h2><ul>{''.join(links)}</ul></section>"


def render(record: dict[str, Any], run_dir: Path) -> str:
    """The whole page for ``record`` (as loaded from ``rehearsal.json``) of the run in ``run_dir``."""
    verdict = record.get("verdict")
    template = Template(resources.files(__package__).joinpath("template.html").read_text())
    env = record.get("environment") or {}
    harness = record.get("harness") or {}
    header = _kv(
        [
            ("run", record.get("run_id")),
            ("Istio", f"{record.get('from')} \u2192 {record.get('to')}"),
            ("cluster", record.get("cluster")),
            ("Kubernetes", env.get("kubernetes_version")),
            ("strategy", record.get("strategy")),
            ("started", record.get("started")),
            ("ended", record.get("ended")),
            ("duration", f"{float(record.get('duration_seconds') or 0):.1f}s"),
            (
                "harness",
                f"{harness.get('version')} at commit {harness.get('commit') or 'unknown'}"
                + (" (with local changes)" if harness.get("dirty") else ""),
            ),
            *[
                (f"istioctl {i.get('version')}", f"{i.get('path')} sha256 {i.get('sha256')}")
                for i in env.get("istioctl") or []
            ],
        ]
    )
    return template.substitute(
        title=E(f"Istio upgrade rehearsal {record.get('run_id')}: {verdict}"),
        colour=COLOURS.get(verdict, COLOURS[None]),
        verdict=E(str(record.get("verdict_summary") or verdict or "interrupted")),
        meaning=E(
            MEANING.get(verdict, "")
            + (
                "; then the rollback was rehearsed: the cluster is back at the source"
                if record.get("verdict_summary") == "upgraded, rollback rehearsed"
                else ""
            )
        ),
        summary=E(f"Istio {record.get('from')} \u2192 {record.get('to')} on {record.get('cluster')}"),
        header=header,
        cause=_cause(record),
        plan=_plan(record),
        versions=_versions(record),
        timeline=timeline(record),
        validations=_validations(record),
        availability=availability.section(record),
        rollback=_rollback(record),
        manifest=_manifest(record, run_dir),
        steps=_steps(record),
        artifacts=_artifacts(run_dir),
    )


def write(run_dir: Path, record: dict[str, Any] | None = None) -> Path:
    """Render ``run_dir/report.html`` from ``record`` (else from ``run_dir/rehearsal.json``)."""
    if record is None:
        record = json.loads((run_dir / "rehearsal.json").read_text())
    path = run_dir / "report.html"
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(render(record, run_dir))
    os.replace(tmp, path)
    return path
