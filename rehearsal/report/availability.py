"""The report's availability section: the SLO verdict in words, figures per phase, and an inline SVG chart.

Harness library; rendered from the record's ``availability`` (see :mod:`rehearsal.probe.availability`) only.
The chart is plain SVG inside the page (no script, no external request): the success rate of each slice of
time (top band) and the answered requests' latency (p50 line, max as light bars; bottom band), with the
phases as shaded spans, outages in red, the moments the answering proxy version flipped as dashed lines,
and the workload restarts as ticks.
"""

from __future__ import annotations

import html
from typing import Any

E = html.escape
WIDTH, LEFT, RIGHT = 1000, 56, 16
TOP_H, GAP, BOTTOM_H, AXIS = 120, 34, 120, 40
PHASE_COLOURS = ["#ddf4ff", "#fff8c5", "#fbefff", "#dafbe1", "#ffebe9", "#eaeef2"]
TARGET_COLOURS = {"ingress": "#0969da", "mesh": "#8250df"}


def _x(t: float, span: float) -> float:
    return LEFT + (WIDTH - LEFT - RIGHT) * (max(0.0, min(t, span)) / span if span > 0 else 0)


def chart(data: dict[str, Any]) -> str:
    """The SVG of ``data`` (the record's ``availability``); empty when nothing was probed."""
    series = data.get("series") or {}
    origin = series.get("origin")
    targets = series.get("targets") or {}
    if origin is None or not targets:
        return ""
    width = float(series.get("width_seconds") or 1.0)
    span = max((row[0] + width for rows in targets.values() for row in rows), default=width)
    span = max(span, float(data.get("ended") or origin) - origin)
    height = TOP_H + GAP + BOTTOM_H + AXIS
    y_top, y_bottom = 8, 8 + TOP_H + GAP
    parts = [
        f'<svg id="availability-chart" role="img" xmlns="http://www.w3.org/2000/svg" '
        f'viewBox="0 0 {WIDTH} {height}" width="100%" style="max-width:{WIDTH}px">',
        "<title>Success rate and latency of the prober's requests over the run</title>",
    ]
    # phases
    for i, phase in enumerate(p for p in data.get("phases") or [] if not p["name"].startswith("paused")):
        x0 = _x(phase["start"] - origin, span)
        x1 = _x((phase.get("end") or phase["start"]) - origin, span)
        colour = PHASE_COLOURS[i % len(PHASE_COLOURS)]
        parts.append(
            f'<rect class="phase" x="{x0:.1f}" y="{y_top}" width="{max(1.0, x1 - x0):.1f}" '
            f'height="{TOP_H + GAP + BOTTOM_H}" fill="{colour}"><title>{E(phase["name"])}: '
            f"{phase['seconds']:g} s</title></rect>"
        )
        parts.append(
            f'<text x="{x0 + 2:.1f}" y="{y_top + TOP_H + 13 + 12 * (i % 2)}" class="dur">'
            f"{E(phase['name'])}</text>"
        )
    # outages
    for outage in data.get("outages") or []:
        x0, x1 = _x(outage["start"] - origin, span), _x(outage["end"] - origin, span)
        parts.append(
            f'<rect class="outage" x="{x0:.1f}" y="{y_top}" width="{max(2.0, x1 - x0):.1f}" height="{TOP_H}" '
            f'fill="#cf222e" fill-opacity="0.35"><title>outage of {E(outage["target"])}: '
            f"{outage['seconds']:g} s, {outage['requests']} failed request(s)</title></rect>"
        )
    # axes and labels
    parts.append(
        f'<line x1="{LEFT}" y1="{y_top + TOP_H}" x2="{WIDTH - RIGHT}" y2="{y_top + TOP_H}" stroke="#57606a"/>'
        f'<line x1="{LEFT}" y1="{y_bottom + BOTTOM_H}" x2="{WIDTH - RIGHT}" y2="{y_bottom + BOTTOM_H}" '
        f'stroke="#57606a"/>'
        f'<text x="4" y="{y_top + 10}">100%</text><text x="4" y="{y_top + TOP_H}">0%</text>'
        f'<text x="4" y="{y_top + TOP_H // 2}">200s</text>'
    )
    latencies = [row[4] for rows in targets.values() for row in rows if row[2]]
    top_ms = max(1.0, max(latencies, default=1.0))
    parts.append(
        f'<text x="4" y="{y_bottom + 10}">{top_ms:.0f} ms</text>'
        f'<text x="4" y="{y_bottom + BOTTOM_H}">0 ms</text>'
        f'<text x="4" y="{y_bottom + BOTTOM_H // 2}">latency</text>'
    )
    for k in range(6):
        t = span * k / 5
        anchor = "end" if k == 5 else "middle" if k else "start"
        parts.append(
            f'<text x="{_x(t, span):.1f}" y="{y_bottom + BOTTOM_H + 16}" class="dur" text-anchor="{anchor}">'
            f"{t:.0f}s</text>"
        )
    parts.append(
        f'<text x="{LEFT}" y="{height - 4}" class="dur">{E(str(data.get("clock") or "seconds"))} since the '
        f"prober started; lines: success rate and p50 latency per target; bars: max latency</text>"
    )
    for name, rows in targets.items():
        colour = TARGET_COLOURS.get(name, "#1f2328")
        success, p50 = [], []
        for start, total, ok, median, worst in rows:
            x = _x(start + width / 2, span)
            success.append(f"{x:.1f},{y_top + TOP_H * (1 - (ok / total if total else 0)):.1f}")
            if ok:
                p50.append(f"{x:.1f},{y_bottom + BOTTOM_H * (1 - median / top_ms):.1f}")
                h = BOTTOM_H * worst / top_ms
                parts.append(
                    f'<rect x="{x - 1:.1f}" y="{y_bottom + BOTTOM_H - h:.1f}" width="2" height="{h:.1f}" '
                    f'fill="{colour}" fill-opacity="0.25"/>'
                )
        parts.append(
            f'<polyline class="success {E(name)}" fill="none" stroke="{colour}" stroke-width="1.5" '
            f'points="{" ".join(success)}"><title>{E(name)}: success rate</title></polyline>'
        )
        if p50:
            parts.append(
                f'<polyline class="latency {E(name)}" fill="none" stroke="{colour}" stroke-width="1" '
                f'points="{" ".join(p50)}"><title>{E(name)}: p50 latency</title></polyline>'
            )
    for flip in data.get("version_flips") or []:
        x = _x(flip["t"] - origin, span)
        parts.append(
            f'<line class="flip" x1="{x:.1f}" y1="{y_top}" x2="{x:.1f}" y2="{y_bottom + BOTTOM_H}" '
            f'stroke="#1a7f37" stroke-dasharray="4 3" stroke-width="1.5"><title>{E(flip["target"])} first '
            f"answered by a {E(flip['to'])} proxy (was {E(flip['from'])})</title></line>"
            f'<text x="{x + 3:.1f}" y="{y_top + 24}" fill="#1a7f37">\u2192 {E(flip["to"])}</text>'
        )
    for mark in data.get("marks") or []:
        x = _x(mark["t"] - origin, span)
        parts.append(
            f'<line class="mark" x1="{x:.1f}" y1="{y_top + TOP_H}" x2="{x:.1f}" y2="{y_top + TOP_H + 8}" '
            f'stroke="#1f2328"><title>{E(mark["what"])}</title></line>'
        )
    legend_x = WIDTH - RIGHT - 160
    for i, name in enumerate(targets):
        parts.append(
            f'<rect x="{legend_x + i * 80}" y="{height - 14}" width="10" height="10" '
            f'fill="{TARGET_COLOURS.get(name, "#1f2328")}"/>'
            f'<text x="{legend_x + i * 80 + 14}" y="{height - 5}">{E(name)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _ms(value: Any) -> str:
    return "n/a" if value is None else f"{value:g} ms"


def _ratio(value: Any) -> str:
    return "n/a" if value is None else f"{value:.3%}"


def section(record: dict[str, Any]) -> str:
    """The whole section: verdict sentence, chart, and a table of figures per phase and target."""
    data = record.get("availability")
    if not data:
        return ""
    if "error" in data:
        return (
            '<section id="availability"><h2>Availability during the upgrade</h2>'
            f'<p class="cause-text">{E(data["error"])}</p></section>'
        )
    slo = data["slo"]
    if slo["met"]:
        verdict = (
            f'<p id="availability-verdict" class="ok">Met the SLO: {data["requests"]} requests, '
            f"{_ratio(data['success_ratio'])} answered 200 (SLO {_ratio(slo['success_ratio'])}), "
            "longest outage "
            f"{data['longest_outage_seconds']:g} s (SLO {slo['max_outage_seconds']:g} s).</p>"
        )
    else:
        verdict = (
            '<p id="availability-verdict" class="cause-text">Missed the SLO: '
            + E("; ".join(slo["breaches"]))
            + ".</p>"
        )
    reached = data.get("targets_reached") or {}
    how = "".join(
        f"<li><b>{E(name)}</b>: {E(str(t.get('path')))} (<code>{E(str(t.get('url')))}</code>)</li>"
        for name, t in reached.items()
    )
    rows = []
    for label, start, targets in [("whole run", None, data.get("targets") or {})] + [
        (p["name"], p, p["targets"]) for p in data.get("phases") or []
    ]:
        for name, f in targets.items():
            if not f["requests"] and start is not None and str(start["name"]).startswith("paused"):
                continue
            rows.append(
                "<tr>"
                f"<td>{E(label)}</td><td>{E(name)}</td><td>{f['requests']}</td>"
                f"<td>{_ratio(f['success_ratio'])}</td><td>{f['outages']['count']}</td>"
                f"<td>{f['outages']['longest_seconds']:g} s</td><td>{f['outages']['total_seconds']:g} s</td>"
                f"<td>{_ms(f['latency_ms']['p50'])}</td><td>{_ms(f['latency_ms']['p95'])}</td>"
                f"<td>{_ms(f['latency_ms']['p99'])}</td>"
                "</tr>"
            )
    table = (
        '<table class="grid" id="availability-phases"><tr><th>phase</th><th>target</th><th>requests</th>'
        "<th>success</th><th>outages</th><th>longest</th><th>total</th><th>p50</th><th>p95</th><th>p99</th></tr>"
        + "".join(rows)
        + "</table>"
    )
    flips = "".join(
        f"<li>{E(f['target'])}: {E(f['from'])} \u2192 {E(f['to'])} at "
        f"{f['t'] - (data.get('series') or {}).get('origin', f['t']):.1f} s</li>"
        for f in data.get("version_flips") or []
    )
    return (
        '<section id="availability"><h2>Availability during the upgrade</h2>'
        + verdict
        + f"<p>{data['rate_per_second']:g} requests per second per target, paced by {E(data['pacing'])}"
        + f" ({E(data['clock'])}).</p><ul>{how}</ul>"
        + chart(data)
        + table
        + (f"<p>Answering proxy version flipped:</p><ul>{flips}</ul>" if flips else "")
        + "</section>"
    )
