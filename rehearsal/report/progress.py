"""The terminal's words for a run as it goes (harness library; the pytest plugin writes them).

One line per step as it ends (name, outcome, duration, one phrase of reason), a live line for a wait that
lasts longer than :data:`LIVE_AFTER` seconds (only on a terminal), and the closing lines: verdict, cause when
the upgrade did not succeed, and where the report is.
"""

from __future__ import annotations

from typing import Any

LIVE_AFTER = 2.0
MARKS = {"passed": "ok  ", "not-needed": "skip", "failed": "FAIL", "running": "... "}


def phrase(reason: str, limit: int = 100) -> str:
    """The first phrase of a reason, on one line."""
    text = " ".join(str(reason).split())
    for stop in ("; ", ". "):
        if stop in text[:limit]:
            text = text.split(stop, 1)[0]
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def step_line(step: Any) -> str:
    """``FAIL restart control plane (4.21s): pod istio-system/istiod-... ImagePullBackOff``."""
    duration = max(0.0, (step.ended or step.started) - step.started)
    line = f"{MARKS.get(step.outcome, step.outcome)} {step.name} ({duration:.2f}s)"
    return line + (f": {phrase(step.reason)}" if step.reason else "")


def live_line(what: str, elapsed: float, deadline: float) -> str:
    return f"     waiting for {what}: {elapsed:.0f}s of {deadline:.0f}s"


def closing_lines(record: dict[str, Any], report: str) -> list[str]:
    lines = [
        f"verdict: {record.get('verdict') or 'interrupted'} "
        f"(Istio {record.get('from')} -> {record.get('to')}, "
        f"{record.get('cluster')}, {record.get('strategy')})"
    ]
    if record.get("verdict") != "upgraded" and record.get("failure"):
        lines.append(f"cause: {phrase(record['failure'], 400)}")
    lines.append(f"report: {report}")
    return lines
