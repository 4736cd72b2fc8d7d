"""One rehearsal run: its folder, its steps with their evidence, the versions seen, the rollback, the verdict.

This is the data every report is a view of. ``rehearsal.json`` is rewritten after every step, so even a killed
run leaves a readable record next to its journal.
"""

from __future__ import annotations

import json
import os
import secrets
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .evidence import CommandRecord, redact
from .settings import Settings


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
    return time.strftime("run-%Y%m%d-%H%M%S-") + secrets.token_hex(2)


class Run:
    def __init__(self, settings: Settings, report_root: Path, run_id: str | None = None) -> None:
        self.settings = settings
        self.run_id = run_id or new_run_id()
        self.dir = report_root / self.run_id
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "artifacts").mkdir(exist_ok=True)
        self.steps: list[StepRecord] = []
        self.current: StepRecord | None = None
        self.versions: dict[str, Any] = {"before": {}, "after": {}}
        self.rollback: dict[str, Any] = {"mode": settings.rollback, "ran": False}
        self.verdict: str | None = None
        self.failure: str | None = None
        self.cluster_name = ""
        self.started = time.time()
        (self.dir / "settings.json").write_text(json.dumps(settings.to_dict(), indent=2))
        latest = report_root / "latest"
        try:
            if latest.is_symlink() or latest.exists():
                latest.unlink()
            latest.symlink_to(self.run_id)
        except OSError:
            pass

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
        record = StepRecord(name, time.time())
        self.steps.append(record)
        previous, self.current = self.current, record
        try:
            yield record
            if record.outcome == "running":
                record.outcome = "passed"
        except BaseException as exc:
            record.outcome = "failed"
            record.reason = redact(str(exc)) or type(exc).__name__
            if not isinstance(exc, StepFailed):
                record.evidence.append({"type": "traceback", "text": redact(traceback.format_exc())})
            if self.failure is None:
                self.failure = f"{name}: {record.reason}"
            raise
        finally:
            record.ended = time.time()
            self.current = previous
            self.save()

    def on_command(self, record: CommandRecord) -> None:
        if self.current is not None:
            self.current.add_command(record)

    def fail(self, what: str) -> None:
        if self.failure is None:
            self.failure = what
        self.save()

    def to_dict(self) -> dict[str, Any]:
        s = self.settings
        return {
            "run_id": self.run_id,
            "from": s.istio_from,
            "to": s.istio_to,
            "cluster": self.cluster_name or s.cluster,
            "strategy": s.strategy,
            "verdict": self.verdict,
            "failure": self.failure,
            "started": self.started,
            "ended": time.time(),
            "settings": {k: v for k, v in s.to_dict().items() if k != "plan_spec"},
            "steps": [asdict(step) for step in self.steps],
            "versions": self.versions,
            "rollback": self.rollback,
        }

    def save(self) -> None:
        tmp = self.dir / "rehearsal.json.tmp"
        tmp.write_text(json.dumps(self.to_dict(), indent=2, default=str))
        os.replace(tmp, self.dir / "rehearsal.json")
