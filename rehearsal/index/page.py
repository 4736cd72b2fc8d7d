"""The index page (harness library): static HTML, no script, no external request, everything from a record
escaped.

Three parts: the table by pair and night (a row per pair, strategy and plan; a column per night, newest first;
each cell the night's runs of that row with verdict, cause, duration and availability, linking to the run's
report), the trend chart (inline SVG: per night a bar of upgraded runs over one of the others, and the
night's longest downtime when the records measured it), and every run in a list.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ..report.html import COLOURS

if TYPE_CHECKING:
    from . import Row

E = html.escape
STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 0; color: #1f2328; }
header { background: #24292f; color: #fff; padding: 16px 24px; }
main { padding: 8px 24px 32px; }
h2 { margin-top: 28px; }
table { border-collapse: collapse; }
th, td { border: 1px solid #d0d7de; padding: 4px 8px; vertical-align: top; text-align: left; }
th { background: #f6f8fa; }
.run { display: block; margin: 2px 0; }
.verdict { display: inline-block; color: #fff; padding: 0 6px; border-radius: 3px; font-weight: 600; }
.cause, .avail { color: #57606a; font-size: 12px; display: block; max-width: 28em; }
.invalid { color: #cf222e; }
svg text { font: 11px system-ui, sans-serif; fill: #57606a; }
"""


def _verdict(verdict: str) -> str:
    colour = COLOURS.get(verdict, COLOURS[None])
    return f"<span class='verdict' style='background:{colour}'>{E(verdict)}</span>"


def _cell_run(run: Row) -> str:
    cause = f"<span class='cause'>{E(run.cause)}</span>" if run.cause else ""
    return (
        f"<a class='run' href='{E(run.report)}' data-run='{E(run.run_id)}' data-verdict='{E(run.verdict)}'>"
        f"{_verdict(run.verdict)} {run.duration_seconds:.0f}s</a>{cause}"
        f"<span class='avail'>availability: {E(run.availability)}</span>"
    )


def by_pair_and_night(runs: list[Row]) -> str:
    nights = sorted({r.night for r in runs}, reverse=True)
    lines = sorted({r.line for r in runs})
    head = "".join(f"<th>{E(n)}</th>" for n in nights)
    body = []
    for line in lines:
        cells = []
        for night in nights:
            here = [r for r in runs if r.line == line and r.night == night]
            cells.append(f"<td>{''.join(_cell_run(r) for r in here)}</td>")
        body.append(f"<tr><th scope='row'>{E(line)}</th>{''.join(cells)}</tr>")
    return f"<table id='by-night'><tr><th>pair (strategy)</th>{head}</tr>{''.join(body)}</table>"


def trend(runs: list[Row]) -> str:
    """Per night, oldest first: a bar of the runs that upgraded (green) over those that did not (red), and
    the longest downtime of the night as a dot on a second scale when any record measured it."""
    nights = sorted({r.night for r in runs})
    if not nights:
        return "<p>No runs yet.</p>"
    width, height, left, bottom, top = max(560, 60 + 48 * len(nights)), 220, 40, 40, 16
    plot = height - bottom - top
    most = max(sum(1 for r in runs if r.night == n) for n in nights)
    downtimes = {
        n: max(
            (r.downtime_seconds for r in runs if r.night == n and r.downtime_seconds is not None),
            default=None,
        )
        for n in nights
    }
    worst = max((d for d in downtimes.values() if d is not None), default=None)
    parts = [
        f"<svg id='trend' xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' role='img' "
        f"aria-label='verdicts per night'>",
        f"<line x1='{left}' y1='{top + plot}' x2='{width - 8}' y2='{top + plot}' stroke='#8c959f'/>",
        f"<text x='4' y='{top + 4}'>{most}</text><text x='4' y='{top + plot}'>0</text>",
    ]
    for i, night in enumerate(nights):
        here = [r for r in runs if r.night == night]
        good = sum(1 for r in here if r.verdict == "upgraded")
        bad = len(here) - good
        x = left + 12 + i * 48
        good_h, bad_h = plot * good / most, plot * bad / most
        parts.append(
            f"<g class='night' data-night='{E(night)}' data-upgraded='{good}' data-not-upgraded='{bad}'>"
            f"<rect x='{x}' y='{top + plot - good_h:.1f}' width='24' height='{good_h:.1f}' "
            f"fill='{COLOURS['upgraded']}'><title>{E(night)}: {good} upgraded</title></rect>"
            f"<rect x='{x}' y='{top + plot - good_h - bad_h:.1f}' width='24' height='{bad_h:.1f}' "
            f"fill='{COLOURS['failed']}'><title>{E(night)}: {bad} not upgraded</title></rect>"
            f"<text x='{x - 8}' y='{height - bottom + 14}'>{E(night[5:])}</text>"
        )
        downtime = downtimes[night]
        if downtime is not None and worst:
            y = top + plot - plot * downtime / worst
            parts.append(
                f"<circle class='downtime' cx='{x + 12}' cy='{y:.1f}' r='4' fill='#24292f'>"
                f"<title>{E(night)}: longest downtime {downtime:.1f}s</title></circle>"
            )
        parts.append("</g>")
    legend = "green: upgraded, red: not upgraded" + (
        f"; dots: the night's downtime (top = {worst:.1f}s)" if worst else "; downtime: not measured"
    )
    parts.append(f"<text x='{left}' y='{height - 6}'>{E(legend)}</text></svg>")
    return "".join(parts)


def every_run(runs: list[Row]) -> str:
    rows = "".join(
        f"<tr data-run='{E(r.run_id)}'><td><a href='{E(r.report)}'>{E(r.run_id)}</a></td>"
        f"<td>{E(r.night)}</td>"
        f"<td>{E(r.source)} \u2192 {E(r.target)}</td><td>{E(r.strategy)}</td><td>{E(r.plan or '-')}</td>"
        f"<td class='v'>{_verdict(r.verdict)}</td><td>{E(r.cause or '-')}</td>"
        f"<td>{r.duration_seconds:.1f}s</td><td>{E(r.availability)}</td></tr>"
        for r in reversed(runs)
    )
    return (
        "<table id='runs'><tr><th>run</th><th>night</th><th>pair</th><th>strategy</th><th>plan</th>"
        f"<th>verdict</th><th>cause</th><th>duration</th><th>availability</th></tr>{rows}</table>"
    )


def _invalid(invalid: Iterable[tuple[str, str]]) -> str:
    items = "".join(f"<li class='invalid'>{E(path)}: {E(why)}</li>" for path, why in invalid)
    return f"<h2>Not indexed</h2><ul id='invalid'>{items}</ul>" if items else ""


def render(runs: list[Row], invalid: list[tuple[str, str]], generated: str) -> str:
    upgraded = sum(1 for r in runs if r.verdict == "upgraded")
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta http-equiv='Content-Security-Policy' "
        "content=\"default-src 'none'; style-src 'unsafe-inline'\">"
        f"<title>Istio upgrade rehearsals: {len(runs)} runs</title><style>{STYLE}</style></head><body>"
        f"<header><h1>Istio upgrade rehearsals</h1><p id='totals'>{len(runs)} runs, {upgraded} upgraded, "
        f"{len(runs) - upgraded} not; generated {E(generated)}</p></header><main>"
        f"<h2>By pair and night</h2>{by_pair_and_night(runs)}"
        f"<h2>Trend</h2>{trend(runs)}"
        f"<h2>Every run</h2>{every_run(runs)}{_invalid(invalid)}"
        "</main></body></html>\n"
    )
