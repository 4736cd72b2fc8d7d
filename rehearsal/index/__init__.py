"""One index over many runs: ``python -m rehearsal index DIR... -o index.html`` (harness library; no pytest).

Finds every run folder under the given folders (a ``rehearsal.json`` beside its ``report.html``, as a night's
CI artifacts or ``python -m rehearsal matrix --run`` leave them), checks each record against the JSON Schema
shipped with the package (``rehearsal/record/schema.json``, with jsonschema), and writes ``index.html``
(:mod:`rehearsal.index.page`: a table by pair and night, a trend chart, every run with a link to its report)
and ``index.json`` beside it (the same rows as data). A record that does not match the schema is not indexed:
it is listed with the first reason, and the command exits 1.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .. import exitcodes
from ..record import load_schema
from . import facts


@dataclass(frozen=True)
class Row:
    """One run as the index shows it (also a row of ``index.json``)."""

    run_id: str
    night: str
    started: str
    source: str
    target: str
    strategy: str
    plan: str
    verdict: str
    cause: str
    duration_seconds: float
    availability: str
    downtime_seconds: float | None
    report: str  # relative to the index's folder
    record: str

    @property
    def line(self) -> str:
        """What a row of the table by pair is: the pair, the strategy and the plan."""
        plan = f", plan {self.plan}" if self.plan else ""
        return f"{self.source} \u2192 {self.target} ({self.strategy}{plan})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "night": self.night,
            "started": self.started,
            "from": self.source,
            "to": self.target,
            "strategy": self.strategy,
            "plan": self.plan,
            "verdict": self.verdict,
            "cause": self.cause,
            "duration_seconds": self.duration_seconds,
            "availability": self.availability,
            "downtime_seconds": self.downtime_seconds,
            "report": self.report,
            "record": self.record,
        }


@dataclass
class Index:
    html: Path
    json: Path
    runs: list[Row] = field(default_factory=list)
    invalid: list[tuple[str, str]] = field(default_factory=list)  # (record path, why)


def find_records(folders: list[Path]) -> list[Path]:
    """Every ``rehearsal.json`` under ``folders``, once each (``reports/latest`` links are not followed)."""
    found: dict[Path, None] = {}
    for folder in folders:
        if (folder / "rehearsal.json").is_file():
            found[(folder / "rehearsal.json").resolve()] = None
            continue
        for root, dirs, files in os.walk(folder):
            dirs.sort()
            if "rehearsal.json" in files:
                found[(Path(root) / "rehearsal.json").resolve()] = None
    return list(found)


def _validator() -> Any:
    import jsonschema

    return jsonschema.Draft202012Validator(load_schema(), format_checker=jsonschema.FormatChecker())


def _why_invalid(validator: Any, record: Any) -> str | None:
    error = next(iter(sorted(validator.iter_errors(record), key=lambda e: list(e.path))), None)
    if error is None:
        return None
    where = "/".join(str(p) for p in error.path) or "the record"
    return f"{where}: {' '.join(str(error.message).split())[:300]}"


def row(record: dict[str, Any], record_path: Path, base: Path) -> Row:
    run_dir = record_path.parent
    plan = (record.get("plan") or {}).get("plan_file") or ""
    availability = facts.availability(record)
    return Row(
        run_id=str(record["run_id"]),
        night=facts.night(record),
        started=str(record.get("started") or ""),
        source=str(record["from"]),
        target=str(record["to"]),
        strategy=str(record["strategy"]),
        plan=Path(str(plan)).name if plan else "",
        verdict=facts.verdict(record),
        cause=facts.cause(record),
        duration_seconds=round(float(record.get("duration_seconds") or 0), 1),
        availability=availability.text,
        downtime_seconds=availability.downtime_seconds,
        report=os.path.relpath(run_dir / "report.html", base),
        record=os.path.relpath(record_path, base),
    )


def build(folders: list[Path], html_path: Path) -> Index:
    """Collect, check and write ``html_path`` and the ``.json`` beside it."""
    from . import page

    base = html_path.parent.resolve()
    index = Index(html_path, html_path.with_suffix(".json"))
    validator = _validator()
    for record_path in find_records(folders):
        shown = os.path.relpath(record_path, base)
        try:
            record = json.loads(record_path.read_text())
        except (OSError, ValueError) as exc:
            index.invalid.append((shown, f"cannot be read as JSON: {exc}"))
            continue
        why = _why_invalid(validator, record)
        if why:
            index.invalid.append((shown, f"does not match the run record schema: {why}"))
            continue
        index.runs.append(row(record, record_path, base))
    index.runs.sort(key=lambda r: (r.started, r.run_id))
    generated = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    html_path.parent.mkdir(parents=True, exist_ok=True)
    html_path.write_text(page.render(index.runs, index.invalid, generated))
    index.json.write_text(
        json.dumps(
            {
                "generated": generated,
                "runs": [r.to_dict() for r in index.runs],
                "invalid": [{"record": path, "why": why} for path, why in index.invalid],
            },
            indent=2,
        )
        + "\n"
    )
    return index


USAGE = """usage: python -m rehearsal index DIR... [-o index.html]

One page over every run found under the folders (each record checked against the run record's schema): a
table by pair and night (verdict, cause, duration, availability), a trend chart of verdicts and downtime over
nights, and a link to each run's report. index.json is written beside the page."""


def cli(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return exitcodes.UPGRADED if argv else exitcodes.BAD_OPTION
    output = Path("index.html")
    folders: list[Path] = []
    rest = list(argv)
    while rest:
        arg = rest.pop(0)
        if arg in ("-o", "--output"):
            if not rest:
                return _bad(f"{arg} needs a file name, e.g. -o index.html")
            output = Path(rest.pop(0))
        elif arg.startswith("-"):
            return _bad(f"unknown option {arg!r}; python -m rehearsal index DIR... [-o index.html]")
        else:
            folders.append(Path(arg))
    missing = [str(f) for f in folders if not f.is_dir()]
    if not folders or missing:
        return _bad(f"not a folder: {', '.join(missing)}" if missing else "give at least one folder of runs")
    if output.suffix != ".html":
        return _bad(f"-o {output}: the index is an .html file (index.json is written beside it)")
    try:
        index = build(folders, output)
    except OSError as exc:
        print(f"error: cannot write {output}: {exc.strerror}", file=sys.stderr)
        return exitcodes.NOT_UPGRADED
    print(f"index: {index.html.resolve()} ({len(index.runs)} runs; data in {index.json})")
    for path, why in index.invalid:
        print(f"not indexed: {path}: {why}", file=sys.stderr)
    return exitcodes.NOT_UPGRADED if index.invalid else exitcodes.UPGRADED


def _bad(text: str) -> int:
    print(f"error: {text}", file=sys.stderr)
    return exitcodes.BAD_OPTION
