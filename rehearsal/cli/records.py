"""``python -m rehearsal report|summary|rollback RUN_DIR``: the commands that read one run folder.

``summary`` writes the run's verdict, cause and availability as Markdown, for a CI job's
``$GITHUB_STEP_SUMMARY`` (``.github/workflows/rehearsal.yml``); it exits 0 whatever the verdict (the
rehearsal's own exit status already failed the job), and 4 when the folder holds no run record.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from .. import exitcodes
from . import usage_error


def read_record(run_dir: Path) -> dict[str, Any] | str:
    """The run record of ``run_dir``, or why there is none (one line)."""
    record_path = run_dir / "rehearsal.json"
    try:
        record = json.loads(record_path.read_text())
    except OSError as exc:
        return f"cannot read {record_path}: {exc.strerror}; give a run folder (reports/<run-id>)"
    except ValueError as exc:
        return f"{record_path} is not JSON ({exc})"
    if not isinstance(record, dict) or "schema_version" not in record:
        return f"{record_path} is not a run record of this harness (no schema_version)"
    return record


def report(argv: list[str]) -> int:
    if argv in (["-h"], ["--help"]):
        print(
            "usage: python -m rehearsal report RUN_DIR\n\nrender RUN_DIR/report.html again from "
            "RUN_DIR/rehearsal.json"
        )
        return exitcodes.UPGRADED
    if len(argv) != 1:
        return usage_error("usage: python -m rehearsal report RUN_DIR")
    from ..report.html import write

    run_dir = Path(argv[0])
    record = read_record(run_dir)
    if isinstance(record, str):
        return usage_error(record)
    try:
        path = write(run_dir, record)
    except OSError as exc:
        print(f"error: cannot write {run_dir / 'report.html'}: {exc.strerror}", file=sys.stderr)
        return exitcodes.NOT_UPGRADED
    print(f"report: {path.resolve()}")
    return exitcodes.UPGRADED


def markdown(record: dict[str, Any], run_dir: Path) -> str:
    """The step summary of one run: a heading with the verdict, then a small table."""
    from ..index import facts

    verdict = facts.verdict(record)
    mark = "\u2705" if facts.upgraded(record) else "\u274c"
    cell = _cell
    rows = [
        ("verdict", f"**{verdict}**: {record.get('verdict_meaning', '')}"),
        ("cause", facts.cause(record) or "none"),
        ("availability", facts.availability(record).text),
        ("strategy", str(record.get("strategy"))),
        ("cluster", f"{record.get('cluster')} (Kubernetes {_k8s(record)})"),
        ("duration", f"{float(record.get('duration_seconds') or 0):.0f}s"),
        ("run", f"{record.get('run_id')} (artifact folder `{run_dir.name}`)"),
    ]
    lines = [
        f"### {mark} Istio {record.get('from')} \u2192 {record.get('to')}: {cell(verdict)}",
        "",
        "| | |",
        "|---|---|",
        *(f"| {name} | {cell(value)} |" for name, value in rows),
        "",
    ]
    return "\n".join(lines)


def _k8s(record: dict[str, Any]) -> str:
    environment = record.get("environment") or {}
    return str(environment.get("kubernetes_version") or "unknown")


def _cell(text: str) -> str:
    """Markdown table cell text: one line, pipes and HTML escaped (GitHub renders HTML in summaries)."""
    import html

    return html.escape(" ".join(str(text).split())).replace("|", "\\|")


def summary(argv: list[str]) -> int:
    if argv in (["-h"], ["--help"]):
        print(
            "usage: python -m rehearsal summary RUN_DIR\n\nthe run's verdict, cause and availability as "
            'Markdown, e.g. python -m rehearsal summary reports/latest >> "$GITHUB_STEP_SUMMARY"'
        )
        return exitcodes.UPGRADED
    if len(argv) != 1:
        return usage_error("usage: python -m rehearsal summary RUN_DIR")
    run_dir = Path(argv[0])
    record = read_record(run_dir)
    if isinstance(record, str):
        return usage_error(record)
    print(markdown(record, run_dir.resolve()))
    return exitcodes.UPGRADED


def rollback(argv: list[str]) -> int:
    if argv and argv[0] in ("-h", "--help"):
        print(
            "usage: python -m rehearsal rollback [--downgrade] RUN_DIR\n\nreplay the rollback journal a "
            "killed run left in RUN_DIR against its cluster, then prove the source is back; a run that ended "
            "upgraded is rolled back (downgraded) only with --downgrade, as a new record"
        )
        return exitcodes.UPGRADED
    downgrade = "--downgrade" in argv
    rest = [a for a in argv if a != "--downgrade"]
    if len(rest) != 1 or rest[0].startswith("-"):
        return usage_error("usage: python -m rehearsal rollback [--downgrade] RUN_DIR")
    from ..steps.replay import replay

    return replay(Path(rest[0]), downgrade=downgrade)
