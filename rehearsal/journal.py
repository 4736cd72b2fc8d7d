"""The rollback journal: undo actions registered *before* each change, replayed last-in first-out.

Every step that changes the cluster pushes its compensating action first, so a failure at any point (even a
killed process) leaves a journal that says how to get back. The journal is written to ``journal.json`` in the
run folder on every change; ``python -m rehearsal rollback RUN_DIR`` replays a journal left behind.

Two phases: ``upgrade`` undos (the restore of the backup) are what a rollback replays; ``setup`` undos (the
sample apps, namespaces and labels the harness created on a cluster that outlives the run) are the cleanup
that runs last, whatever the verdict, so the cluster is left as found except for the upgrade.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class JournalEntry:
    name: str  # what the undo does, for people
    action: str  # the registered undo action (see rollback.ACTIONS)
    args: dict[str, Any]
    registered_by: str  # the step that registered it
    registered_at: float = field(default_factory=time.time)
    done: bool = False
    phase: str = "upgrade"  # upgrade | setup
    error: str = ""  # why the last attempt to undo failed


class RollbackJournal:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: list[JournalEntry] = []
        self.changed_cluster = False

    def push(
        self, name: str, action: str, args: dict[str, Any], registered_by: str, phase: str = "upgrade"
    ) -> JournalEntry:
        entry = JournalEntry(name, action, args, registered_by, phase=phase)
        self.entries.append(entry)
        self.save()
        return entry

    def mark_changed(self) -> None:
        """The cluster has been changed (so a rollback has something to undo)."""
        self.changed_cluster = True
        self.save()

    def pending(self, phase: str | None = "upgrade") -> list[JournalEntry]:
        """Undos not yet done, last registered first (of one phase, or all with ``phase=None``)."""
        return [e for e in reversed(self.entries) if not e.done and (phase is None or e.phase == phase)]

    def mark_failed(self, entry: JournalEntry, error: str) -> None:
        entry.error = error[:500]
        self.save()

    def mark_done(self, entry: JournalEntry) -> None:
        entry.done = True
        self.save()

    def save(self) -> None:
        data = {"changed_cluster": self.changed_cluster, "entries": [asdict(e) for e in self.entries]}
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2))
        os.replace(tmp, self.path)

    @classmethod
    def load(cls, path: Path) -> RollbackJournal:
        journal = cls(path)
        data = json.loads(path.read_text())
        journal.changed_cluster = bool(data.get("changed_cluster"))
        fields = JournalEntry.__dataclass_fields__
        journal.entries = [
            JournalEntry(**{k: v for k, v in e.items() if k in fields}) for e in data.get("entries") or []
        ]
        return journal
