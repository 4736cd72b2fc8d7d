"""The rollback journal: undo actions registered *before* each change, replayed last-in first-out.

Every step that changes the cluster pushes its compensating action first, so a failure at any point (even a
killed process) leaves a journal that says how to get back. The journal is written to ``journal.json`` in the
run folder on every change; ``python -m rehearsal rollback RUN_DIR`` replays a journal left behind.
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


class RollbackJournal:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: list[JournalEntry] = []
        self.changed_cluster = False

    def push(self, name: str, action: str, args: dict[str, Any], registered_by: str) -> JournalEntry:
        entry = JournalEntry(name, action, args, registered_by)
        self.entries.append(entry)
        self.save()
        return entry

    def mark_changed(self) -> None:
        """The cluster has been changed (so a rollback has something to undo)."""
        self.changed_cluster = True
        self.save()

    def pending(self) -> list[JournalEntry]:
        return [e for e in reversed(self.entries) if not e.done]

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
        journal.entries = [JournalEntry(**e) for e in data.get("entries") or []]
        return journal
