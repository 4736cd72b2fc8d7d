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
from . import manifest

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
RUNBOOK_ORDER = [
    "provision",
    "resolve istioctl",
    "install source",
    "deploy sample apps",
    "baseline",
    "backup",
    "precheck",
    "generate manifest",
    "inspect manifest",
    "dry-run",
    "apply",
    "restart control plane",
    "restart workloads",
    "rollback",
    "rollback: restart workloads",
    "rollback: verify",
]


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


def _steps_in_order(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    position = {name: i for i, name in enumerate(RUNBOOK_ORDER)}
    return sorted(steps, key=lambda s: (position.get(s["name"], len(position)), s["started"]))


def _seconds(start: str, run_start: str) -> float:
    from datetime import datetime

    try:
        return (datetime.fromisoformat(start) - datetime.fromisoformat(run_start)).total_seconds()
    except (TypeError, ValueError):
        return 0.0


def timeline(record: dict[str, Any]) -> str:
    """The steps in runbook order as inline SVG: a row each, a bar from start to end, coloured by outcome."""
    steps = _steps_in_order(record.get("steps") or [])
    if not steps:
        return "<p>No step ran.</p>"
    start = record["started"]
    ends = [_seconds(s["ended"] or s["started"], start) for s in steps]
    total = max([*ends, float(record.get("duration_seconds") or 0), 0.001])
    label_w, bar_w, row_h = 210, 560, 24
    height = row_h * len(steps) + 30
    rows = []
    for i, step in enumerate(steps):
        y = 10 + i * row_h
        x0 = _seconds(step["started"], start)
        width = max(2.0, bar_w * step["duration_seconds"] / total)
        x = label_w + bar_w * x0 / total
        colour = OUTCOME_COLOURS.get(step["outcome"], "#57606a")
        failed = step["outcome"] == "failed"
        stroke = " stroke='#82071e' stroke-width='2'" if failed else ""
        mark = (
            f"<text x='{x + width + 4:.1f}' y='{y + 15}' class='fail-mark' fill='#cf222e'>"
            "&#x2717; failed</text>"
            if failed
            else ""
        )
        rows.append(
            f"<g class='step' data-step='{E(step['name'])}' data-outcome='{E(step['outcome'])}'>"
            f"<title>{E(step['name'])}: {E(step['outcome'])}, {step['duration_seconds']:.2f}s"
            f"{' - ' + E(step['reason'][:300]) if step['reason'] else ''}</title>"
            f"<text x='4' y='{y + 15}'>{E(step['name'])}</text>"
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
        f"height='{height}' role='img' aria-label='timeline of the steps'>{''.join(rows)}{axis}</svg>"
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
    rows += [(f"proxy {p}", "data_plane", p) for p in sorted(proxies)]
    head = "".join(f"<th>{E(title)}</th>" for _, title in columns)
    body = "".join(
        f"<tr><th>{E(label)}</th>"
        + "".join(f"<td>{cell(versions.get(c), g, k)}</td>" for c, _ in columns)
        + "</tr>"
        for label, g, k in rows
    )
    return (
        "<section id='versions'><h2>Versions</h2>"
        f"<table class='grid'><tr><th></th>{head}</tr>{body}</table>{_out_of_scope(versions, columns)}"
        "</section>"
    )


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


def _validations(record: dict[str, Any]) -> str:
    marks = {"passed": "&#x2713;", "failed": "&#x2717;", "skipped": "&ndash;", "error": "&#x2717;"}
    items = []
    for check in record.get("validations") or []:
        findings = check.get("findings") or {}
        items.append(
            f"<li class='check {E(check['outcome'])}' data-outcome='{E(check['outcome'])}'>"
            f"<span class='mark'>{marks.get(check['outcome'], '?')}</span> <b>{E(check['name'])}</b> "
            f"<span class='suite'>({E(check.get('suite', ''))})</span>"
            + (f"<p>{E(check['reason'])}</p>" if check.get("reason") else "")
            + (trimmed(_json(findings), "rehearsal.json", 2500) if findings else "")
            + "</li>"
        )
    body = "".join(items) or "<li>No validation ran.</li>"
    return f"<section id='validations'><h2>Validation checklist</h2><ul class='checks'>{body}</ul></section>"


def _rollback(record: dict[str, Any]) -> str:
    rollback = record.get("rollback") or {}
    proof = rollback.get("verification") or {}
    restored = "".join(
        f"<li>{E(str(r.get('undo')))} (registered by {E(str(r.get('registered_by')))}): "
        f"{E(str(r.get('restored')))} objects re-applied; "
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
            ]
        )
        + (
            f"<p id='rollback-proof' class='{'ok' if proof.get('verified') else 'bad'}'>Proof: "
            + (
                "the cluster is back at the source: control plane and every proxy at the source version, "
                f"traffic answers {E(_json(traffic.get('codes')))}, Istio custom resources as backed up"
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
    body = "".join(
        f"<tr><td>{E(r['object'])}</td><td>{E(r['facet'])}</td><td class='old'>{E(r['before'])}</td>"
        f"<td class='new'>{E(r['after'])}</td></tr>"
        for r in rows
    )
    return (
        "<section id='manifest'><h2>Installed manifest: before &rarr; after</h2>"
        "<p>Images, versions, securityContext, Service types, webhooks and CRDs that differ between the "
        "backup of the source and the generated target manifest.</p>"
        "<table class='grid diff'><tr><th>object</th><th>what</th><th>before</th><th>after</th></tr>"
        f"{body}</table></section>"
    )


def _steps(record: dict[str, Any]) -> str:
    parts = []
    for step in _steps_in_order(record.get("steps") or []):
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
        verdict=E(str(verdict or "interrupted")),
        meaning=E(MEANING.get(verdict, "")),
        summary=E(f"Istio {record.get('from')} \u2192 {record.get('to')} on {record.get('cluster')}"),
        header=header,
        cause=_cause(record),
        plan=_plan(record),
        versions=_versions(record),
        timeline=timeline(record),
        validations=_validations(record),
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
