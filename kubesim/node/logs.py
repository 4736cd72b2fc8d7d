"""Container logs kept by the simulated kubelet: what ``kubectl logs`` (and ``--previous``, ``-f``) reads.

Keyed by (namespace, pod, container): the current instance's lines and the previous instance's, as the
kubelet keeps the log of the last terminated container for ``--previous``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any


class LogBook:
    """Container logs by (namespace, pod, container): the current instance and the previous one."""

    def __init__(self) -> None:
        self._logs: dict[tuple[str, str, str], dict[str, Any]] = {}
        self._cond = threading.Condition()

    def write(self, key: tuple[str, str, str], uid: str, when: str, text: str) -> None:
        with self._cond:
            entry = self._logs.setdefault(key, {"uid": uid, "current": [], "previous": None, "running": True})
            if entry["uid"] != uid:
                entry.update(uid=uid, current=[], previous=None)
            entry["current"].append((when, text))
            del entry["current"][:-5000]
            self._cond.notify_all()

    def begin(self, key: tuple[str, str, str], uid: str, restart: bool) -> None:
        with self._cond:
            entry = self._logs.get(key)
            if entry is None or entry["uid"] != uid:
                self._logs[key] = {"uid": uid, "current": [], "previous": None, "running": True}
            else:
                if restart:
                    entry["previous"], entry["current"] = entry["current"], []
                entry["running"] = True
            self._cond.notify_all()

    def end(self, key: tuple[str, str, str]) -> None:
        with self._cond:
            if key in self._logs:
                self._logs[key]["running"] = False
            self._cond.notify_all()

    def forget_pod(self, namespace: str, pod: str) -> None:
        with self._cond:
            for key in [k for k in self._logs if k[:2] == (namespace, pod)]:
                del self._logs[key]
            self._cond.notify_all()

    def started(self, key: tuple[str, str, str], uid: str, previous: bool) -> bool:
        entry = self._logs.get(key)
        if entry is None or entry["uid"] != uid:
            return False
        return entry["previous"] is not None if previous else True

    def read(
        self,
        key: tuple[str, str, str],
        previous: bool = False,
        timestamps: bool = False,
        tail: int | None = None,
    ) -> list[str]:
        with self._cond:
            entry = self._logs.get(key) or {}
            lines = list(entry.get("previous" if previous else "current") or [])
        if tail is not None:
            lines = lines[-tail:] if tail > 0 else []
        return [f"{when} {text}\n" if timestamps else f"{text}\n" for when, text in lines]

    def follow(
        self, key: tuple[str, str, str], first: list[str], timestamps: bool, store: Any
    ) -> Iterator[str]:
        yield from first
        with self._cond:
            seen = len((self._logs.get(key) or {}).get("current") or [])
        while True:
            with self._cond:
                entry = self._logs.get(key)
                if entry is None:
                    return
                lines = entry["current"][seen:]
                if not lines:
                    if not entry["running"] or store.closed:
                        return
                    self._cond.wait(1.0)
                    continue
                seen += len(lines)
            for when, text in lines:
                yield f"{when} {text}\n" if timestamps else f"{text}\n"
