"""The terminal's words for a run as it goes (harness library; the pytest plugin writes them).

One line per step as it ends (name, outcome, duration, one phrase of reason), a live line for a wait that
lasts longer than :data:`LIVE_AFTER` seconds (on a terminal; off one, a plain line every :data:`PLAIN_EVERY`
seconds: :class:`Periodic`), the lines of work below the steps (:func:`note`: kind, downloads), and the
closing lines: verdict, cause when the upgrade did not succeed, and where the report is.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

LIVE_AFTER = 2.0
MARKS = {"passed": "ok  ", "not-needed": "skip", "failed": "FAIL", "running": "... "}
#: Off a terminal, a long wait is told in a plain line this often (seconds): CI logs show what it waits for.
PLAIN_EVERY = 15.0
#: Who shows :func:`note` lines (the pytest plugin, through pytest's capture); none: standard error.
notes: list[Callable[[str], None]] = []


def note(text: str) -> None:
    """A line of progress from below the steps (kind's lines, a download's bytes), shown as it happens."""
    for show in list(notes) or [_stderr]:
        try:
            show(text)
        except Exception:  # progress never breaks the work it reports on
            pass


def _stderr(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


class Periodic:
    """Off a terminal: which wait statuses deserve a plain line (one in every :data:`PLAIN_EVERY` seconds of a
    wait, none for a wait shorter than that), judged by the waits' own elapsed time, not a clock."""

    #: The longest a wait goes between two statuses (a rollout's poll): lines come a little early, never late.
    SLACK = 1.0

    def __init__(self, every: float = PLAIN_EVERY) -> None:
        self.every = every
        self.last: dict[str, float] = {}

    def due(self, what: str, elapsed: float, done: bool = False) -> bool:
        key = what.split(" (", 1)[0]  # the same wait, whatever its pods' states say now
        if done:
            self.last.pop(key, None)
            return False
        gap = self.every - self.SLACK
        last = self.last.get(key, 0.0)
        if elapsed < last:  # a new wait of the same name
            last = self.last[key] = 0.0
        if elapsed - last >= gap:
            self.last[key] = elapsed
            return True
        return False


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


def plain_line(what: str, elapsed: float, deadline: float) -> str:
    """The line a log gets (no terminal): the same words, ending in a newline rather than rewritten."""
    return f"... still waiting for {what}: {elapsed:.0f}s of {deadline:.0f}s"


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
