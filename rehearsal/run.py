"""One rehearsal run: its folder, its steps with their evidence, the versions seen, the rollback, the verdict.

This is the data every report is a view of (harness library; no pytest). ``rehearsal.json`` (built by
:mod:`rehearsal.record`) is rewritten after every step, so even a killed run leaves a readable record next to
its journal. The verdict is never stored here: :attr:`Run.verdict` asks
:func:`rehearsal.record.verdict.compute`.
"""

from __future__ import annotations

import json
import os
import secrets
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .evidence import CommandRecord, redact, redact_known
from .settings import Settings

#: Command output longer than this is kept whole in an artifact; the record holds its tail and a marker.
OUTPUT_LIMIT = 8000


class StepFailed(Exception):
    """A step could not be performed; the message says why (shown as the step's reason)."""


@dataclass
class StepRecord:
    name: str
    started: float
    ended: float = 0.0
    outcome: str = "running"  # passed | failed | not-needed | running
    reason: str = ""
    evidence: list[dict[str, Any]] = field(default_factory=list)
    artifacts: list[dict[str, str]] = field(default_factory=list)

    def note(self, reason: str) -> None:
        self.reason = reason

    def add_command(self, record: CommandRecord) -> None:
        self.evidence.append({"type": "command", **record.to_dict()})

    def add_data(self, title: str, data: Any) -> None:
        self.evidence.append({"type": "data", "title": title, "data": data})

    def add_artifact(self, path: Path, description: str, run_dir: Path) -> None:
        self.artifacts.append({"path": str(path.relative_to(run_dir)), "description": description})

    def not_needed(self, reason: str) -> None:
        self.outcome, self.reason = "not-needed", reason


def new_run_id() -> str:
    return time.strftime("run-%Y%m%d-%H%M%S-", time.gmtime()) + secrets.token_hex(2)


class Run:
    def __init__(
        self,
        settings: Settings,
        report_root: Path,
        run_id: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.run_id = run_id or new_run_id()
        self.dir = report_root / self.run_id
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "artifacts").mkdir(exist_ok=True)
        self.now = clock
        self.steps: list[StepRecord] = []
        self.current: StepRecord | None = None
        self.versions: dict[str, Any] = {"before": {}, "after": {}}
        self.rollback: dict[str, Any] = {"mode": settings.rollback, "ran": False}
        self.validations: list[dict[str, Any]] = []
        # The availability prober's figures (rehearsal.probe), once it ran.
        self.availability: dict[str, Any] | None = None
        self.failure: str | None = None
        self.failure_detail: dict[str, Any] | None = None
        self.concluded = False
        self.cluster_name = ""
        self.kubernetes_version: str | None = None
        self.istioctls: list[tuple[str, str]] = []
        # What the strategy planned and the moves it made, in order (rehearsal.strategies.record_move).
        self.strategy_plan: dict[str, Any] = {}
        self.moves: list[dict[str, Any]] = []
        self.started = self.now()
        self.ended: float | None = None
        self.step_listeners: list[Callable[[StepRecord], None]] = []
        self._commands = 0
        (self.dir / "settings.json").write_text(json.dumps(settings.to_dict(), indent=2))
        latest = report_root / "latest"
        try:
            if latest.is_symlink() or latest.exists():
                latest.unlink()
            latest.symlink_to(self.run_id)
        except OSError:
            pass

    # -- the verdict: computed, never stored ----------------------------------------------------------------
    @property
    def verdict(self) -> str | None:
        from .record.verdict import compute

        return compute(self.concluded, self.failure, self.rollback, bool(self.versions.get("after")))

    @verdict.setter
    def verdict(self, decided: str | None) -> None:
        """Steps that conclude the run (rollback.decide, replay) say so by assigning a verdict; the value
        recorded is still the one computed from the data, so the two can never disagree silently."""
        self.concluded = decided is not None
        if self.concluded and self.ended is None:
            self.ended = self.now()

    def conclude(self) -> None:
        """The run is over (whatever happened): from now on it has a verdict."""
        self.verdict = "concluded"

    def cause(self) -> dict[str, str | None] | None:
        if self.failure is None:
            return None
        detail = self.failure_detail or {}
        return {
            "step": detail.get("step"),
            "summary": self.failure,
            "object": detail.get("object"),
            "reason": detail.get("reason"),
            "message": detail.get("message"),
        }

    @property
    def artifacts(self) -> Path:
        return self.dir / "artifacts"

    def write_artifact(self, name: str, text: str, mode: int = 0o644) -> Path:
        path = self.artifacts / name
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.chmod(path, mode)
        return path

    @contextmanager
    def step(self, name: str) -> Iterator[StepRecord]:
        from . import retry

        record = StepRecord(name, self.now())
        self.steps.append(record)
        previous, self.current = self.current, record
        try:
            # One retry budget for the whole step, however many calls it makes (rehearsal.retry).
            with retry.budget(self.settings.timeout):
                yield record
            if record.outcome == "running":
                record.outcome = "passed"
        except BaseException as exc:
            record.outcome = "failed"
            # An API error is one line in the API server's words, never the client's dump of headers.
            said = retry.api_error_line(exc) if retry.is_api_error(exc) else str(exc)
            record.reason = redact(said) or type(exc).__name__
            evidence = getattr(exc, "evidence", None)
            if evidence is not None:
                record.evidence.append({"type": "data", "title": "what the cluster said", "data": evidence})
            elif not isinstance(exc, StepFailed):
                record.evidence.append({"type": "traceback", "text": redact(traceback.format_exc())})
            if self.failure is None:
                self.failure = f"{name}: {record.reason}"
                cause = getattr(exc, "cause", None) or {}
                self.failure_detail = {
                    "step": name,
                    "object": cause.get("object"),
                    "reason": cause.get("reason") or type(exc).__name__,
                    "message": redact(str(cause.get("message") or record.reason)),
                }
            raise
        finally:
            record.ended = self.now()
            self.current = previous
            self.save()
            for listener in list(self.step_listeners):
                listener(record)

    def on_command(self, record: CommandRecord) -> None:
        if self.current is None:
            return
        self._commands += 1
        data = record.to_dict()
        for stream in ("stdout", "stderr"):
            text = data[stream]
            if len(text) > OUTPUT_LIMIT:
                tool = Path(record.argv[0]).name if record.argv else "command"
                words = "-".join(a for a in record.argv[1:3] if not a.startswith("-"))
                path = self.write_artifact(f"commands/{self._commands:03d}-{tool}-{words}.{stream}.txt", text)
                relative = str(path.relative_to(self.dir))
                data[stream] = (
                    f"[trimmed: the last {OUTPUT_LIMIT} of {len(text)} characters; full text in {relative}]\n"
                    + text[-OUTPUT_LIMIT:]
                )
                data[f"{stream}_artifact"] = relative
                data[f"{stream}_length"] = len(text)
        self.current.evidence.append({"type": "command", **data})

    def fail(self, what: str, detail: dict[str, Any] | None = None) -> None:
        if self.failure is None:
            self.failure = what
            self.failure_detail = detail
        self.save()

    def add_validation(
        self, name: str, suite: str, outcome: str, reason: str, findings: dict[str, Any] | None
    ) -> None:
        """One check of the suites (a test): its outcome, why, and what it observed."""
        self.validations.append(
            {
                "name": name,
                "suite": suite,
                "outcome": outcome,
                "reason": redact(reason),
                "findings": json.loads(redact(json.dumps(findings or {}, default=str))),
            }
        )

    def to_dict(self) -> dict[str, Any]:
        from .record import build

        return build(self)

    def save(self) -> None:
        tmp = self.dir / "rehearsal.json.tmp"
        # Last line of defence: no value of a Secret seen during the run is written, wherever it came from.
        tmp.write_text(redact_known(json.dumps(self.to_dict(), indent=2, default=str)))
        os.replace(tmp, self.dir / "rehearsal.json")
