"""``python -m rehearsal pitfalls [--only ID...] [-j N] [--report-dir DIR]``: rehearse every scenario of
``scenarios/`` on its own simulated cluster, N at a time, and write one report (harness library).

Each scenario runs as its own process (``--one FILE``: :func:`rehearsal.pitfalls.scenario.child`), started and
interrupted by the matrix's machinery (:func:`rehearsal.matrix.run_entries`). The report (``pitfalls.json``
and ``pitfalls.html``) is a matrix pitfall x (caught before apply / caught during / missed) read from each
run's own record (the ``known pitfalls`` steps' findings), plus the catalog's pitfalls that only a real
cluster reproduces, with the reason.
"""

from __future__ import annotations

import html
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from istiofacts import pitfalls as catalog

from .. import exitcodes
from ..matrix import Entry, Interrupted, run_entries
from .scenario import ROOT, Scenario, ScenarioError, load_all

USAGE = """usage: python -m rehearsal pitfalls [--only ID...] [-j N] [--report-dir DIR]

Rehearse every known-pitfall scenario (scenarios/*.yaml) on its own simulated cluster, N at a time
(default 2), and write one report: pitfall x (caught before apply / caught during / missed), with
each finding.
--only takes scenario names or pitfall ids.

exit status: 0 every scenario caught, 1 one was missed, 2 interrupted, 4 a bad option or scenario."""


COLUMNS = ("before apply", "during", "missed", "pending", "averted")


def launcher(scenarios: dict[str, Scenario]) -> Any:
    def launch(entry: Entry, folder: Path, extra: list[str]) -> subprocess.Popen[bytes]:
        folder.mkdir(parents=True, exist_ok=True)
        args = [sys.executable, "-m", "rehearsal", "pitfalls", "--one", str(scenarios[entry.name].path)]
        args += ["--report-dir", str(folder)]
        with open(folder / "rehearsal.log", "wb") as log:
            return subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=ROOT
            )

    return launch


def classify(scenario: Scenario, folder: Path) -> dict[str, Any]:
    """What the run's record says about the scenario's pitfall: caught before the apply, during, or missed."""
    runs = sorted(p for p in folder.glob("run-*") if (p / "rehearsal.json").is_file())
    row: dict[str, Any] = {**scenario.to_dict(), "run": str(runs[-1]) if runs else None}
    if runs:
        row["report"] = f"{folder.name}/{runs[-1].name}/report.html"
    if scenario.check.startswith(("pending", "averted")):
        row.update(caught=scenario.check.split(":")[0], findings=[], verdict=None)
        return row
    if not runs:
        row.update(caught="missed", findings=[], verdict=None, why="the rehearsal wrote no record")
        return row
    record = json.loads((runs[-1] / "rehearsal.json").read_text())
    found: dict[str, list[dict[str, Any]]] = {"pre": [], "during": []}
    for step in record.get("steps") or []:
        phase = {"known pitfalls": "pre", "known pitfalls after restart": "during"}.get(step.get("name"))
        if phase is None:
            continue
        for item in step.get("evidence") or []:
            if item.get("type") == "data" and item.get("title") == "pitfall findings":
                found[phase] += [f for f in item.get("data") or [] if f.get("pitfall") == scenario.pitfall]
    caught = "before apply" if found["pre"] else "during" if found["during"] else "missed"
    row.update(
        caught=caught,
        findings=found["pre"] + found["during"],
        verdict=record.get("verdict") or ("stopped after the preflight" if scenario.stop else None),
        cause=(record.get("cause") or {}).get("summary") if isinstance(record.get("cause"), dict) else None,
        phases=[phase for phase in ("pre", "during") if found[phase]],
    )
    return row


def real_cluster_only() -> list[dict[str, str]]:
    return [
        {"pitfall": p.id, "title": p.title, "reason": p.reason, "issue": p.issue}
        for p in catalog.PITFALLS
        if not p.simulable
    ]


def run_corpus(scenarios: list[Scenario], report_dir: Path, jobs: int, say: Any = print) -> dict[str, Any]:
    by_name = {s.name: s for s in scenarios}
    entries = [Entry(s.name, s.source, s.target, "in-place", "") for s in scenarios if not s.check]
    started = time.monotonic()
    interrupted = False
    try:
        run_entries(entries, report_dir, jobs, start=launcher(by_name), say=say)
    except Interrupted:
        interrupted = True
    rows = [classify(s, report_dir / s.name) for s in scenarios]
    summary = {
        "wall_seconds": round(time.monotonic() - started, 2),
        "jobs": jobs,
        "interrupted": interrupted,
        "scenarios": rows,
        "real_cluster_only": real_cluster_only(),
        "counts": {k: sum(r["caught"] == k for r in rows) for k in COLUMNS},
    }
    (report_dir / "pitfalls.json").write_text(json.dumps(summary, indent=2))
    (report_dir / "pitfalls.html").write_text(render_html(summary))
    return summary


def render_html(summary: dict[str, Any]) -> str:
    e = html.escape
    rows = []
    for r in summary["scenarios"]:
        hits = {r["caught"]} | {"during" for p in r.get("phases") or [] if p == "during"}
        cells = "".join(
            f"<td class='{'hit' if col in hits else ''}'>{'&#10003;' if col in hits else ''}</td>"
            for col in COLUMNS
        )
        findings = "".join(
            f"<li><b>{e(f['severity'])}</b> {e(f['message'])}<br><small>"
            f"objects: {e(', '.join(f['objects']))}; "
            f"fix: {e(f['fix'])}; <a href='{e(f['issue'])}'>{e(f['issue'])}</a></small></li>"
            for f in r["findings"]
        )
        rows.append(
            f"<tr><td><b>{e(r['name'])}</b><br><small>{e(r['pitfall'])}: {e(r['source'])} &rarr; "
            f"{e(r['target'])}</small></td>{cells}<td>{e(r.get('verdict') or r.get('check') or '')}"
            + (f"<br><a href='{e(r['report'])}'>report</a>" if r.get("report") else "")
            + "</td>"
            f"<td><ul>{findings}</ul></td></tr>"
        )
    real = "".join(
        f"<tr><td>{e(p['pitfall'])}</td><td>{e(p['title'])}</td><td>{e(p['reason'])}</td>"
        f"<td><a href='{e(p['issue'])}'>{e(p['issue'])}</a></td></tr>"
        for p in summary["real_cluster_only"]
    )
    counts = ", ".join(f"{v} {k}" for k, v in summary["counts"].items())
    return (
        "<!doctype html><meta charset='utf-8'><title>Known upgrade pitfalls</title><style>"
        "body{font-family:sans-serif;margin:2em}td,th{border:1px solid #ccc;padding:4px;vertical-align:top}"
        "table{border-collapse:collapse}td.hit{background:#cfc;text-align:center}</style>"
        f"<h1>Known upgrade pitfalls, rehearsed</h1><p>{e(counts)}; wall {summary['wall_seconds']} s, "
        f"{summary['jobs']} at a time</p><table><tr><th>scenario</th><th>caught before apply</th>"
        "<th>caught during</th><th>missed</th><th>check pending</th><th>averted by the harness</th>"
        "<th>verdict</th><th>findings</th></tr>"
        + "".join(rows)
        + "</table><h2>Only a real cluster reproduces these</h2><table><tr><th>pitfall</th><th>title</th>"
        "<th>why not here</th><th>issue</th></tr>" + real + "</table>"
    )


def cli(argv: list[str]) -> int:
    if argv and argv[0] in ("-h", "--help"):
        print(USAGE)
        return exitcodes.UPGRADED
    if "--one" in argv:
        from .scenario import child

        return child(argv)
    only: list[str] = []
    jobs, report_dir = 2, Path("reports/pitfalls")
    rest = list(argv)
    while rest:
        option = rest.pop(0)
        if option == "--only":
            while rest and not rest[0].startswith("-"):
                only.append(rest.pop(0))
        elif option in ("-j", "--jobs"):
            value = rest.pop(0) if rest else ""
            if not value.isdigit() or int(value) < 1:
                print(
                    f"error: {option} {value!r}: not a whole number of scenarios at a time, e.g. -j 2",
                    file=sys.stderr,
                )
                return exitcodes.BAD_OPTION
            jobs = int(value)
        elif option == "--report-dir" and rest:
            report_dir = Path(rest.pop(0))
        else:
            print(f"error: bad option {option!r} (python -m rehearsal pitfalls --help)", file=sys.stderr)
            return exitcodes.BAD_OPTION
    try:
        scenarios = load_all(only=only or None)
    except ScenarioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exitcodes.BAD_OPTION
    report_dir.mkdir(parents=True, exist_ok=True)
    print(f"rehearsing {len(scenarios)} pitfall scenarios on simulated clusters, {jobs} at a time")
    summary = run_corpus(scenarios, report_dir, jobs)
    for r in summary["scenarios"]:
        also = " (and during)" if r["caught"] != "during" and "during" in (r.get("phases") or []) else ""
        print(f"{r['caught'] + also:<26} {r['name']:<24} {r['pitfall']:<24} {r.get('verdict') or r['check']}")
    print(f"report: {(report_dir / 'pitfalls.html').resolve()} ({summary['wall_seconds']} s)")
    if summary["interrupted"]:
        return exitcodes.INTERRUPTED
    return exitcodes.NOT_UPGRADED if summary["counts"]["missed"] else exitcodes.UPGRADED
