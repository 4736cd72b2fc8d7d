"""In-memory object storage of the simulated API server: the part etcd plays in a real cluster.

It keeps one dict per object, a cluster-wide resourceVersion counter, and a bounded history of watch events
so that watches can resume from a resourceVersion (and get ``410 Expired`` when it is too old, as from etcd
after compaction). Stored dicts are never mutated after they are written, which lets readers share them
and lets each version be serialized once, when written: a list of 2,000 pods is a join of cached bytes.
"""

from __future__ import annotations

import bisect
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

Key = tuple[str, str]  # (namespace or "", name)
GR = tuple[str, str]  # (group, plural)


def clone(value: Any) -> Any:
    """Deep copy of JSON-shaped data (faster than copy.deepcopy for dicts, lists and scalars)."""
    if isinstance(value, dict):
        return {k: clone(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clone(v) for v in value]
    return value


@dataclass(frozen=True)
class WatchEvent:
    type: str  # ADDED, MODIFIED, DELETED
    rv: int
    gr: GR
    namespace: str
    name: str
    obj: dict[str, Any]
    old: dict[str, Any] | None = None  # the previous version, for selector-filtered watches


class Store:
    """Objects by group/resource and namespace/name, with resourceVersions and a watch history."""

    HISTORY = 20_000  # like the API server's watch cache, a window: older resourceVersions get 410

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        # group/resource -> namespace ("" when cluster-scoped) -> name -> object
        self._objects: dict[GR, dict[str, dict[str, dict[str, Any]]]] = {}
        # (id(stored dict), as a list item) -> its JSON, valid while the dict is stored
        self._json: dict[tuple[int, bool], bytes] = {}
        self._rv = 1000
        self._history: list[WatchEvent] = []  # ascending rv; trimmed to HISTORY events
        self._listeners: list[Callable[[WatchEvent], None]] = []
        self.closed = False

    # -- reading -------------------------------------------------------------------------------------------
    @property
    def resource_version(self) -> int:
        return self._rv

    def get(self, gr: GR, namespace: str, name: str) -> dict[str, Any] | None:
        """The stored object (shared: callers must not mutate it; use clone())."""
        return self._objects.get(gr, {}).get(namespace, {}).get(name)

    def items(self, gr: GR, namespace: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            bucket = self._objects.get(gr, {})
            if namespace is None:
                return [o for objects in bucket.values() for o in objects.values()]
            return list(bucket.get(namespace, {}).values())

    def groups(self) -> Iterator[GR]:
        return iter(list(self._objects))

    def json_of(self, gr: GR, obj: dict[str, Any], item: bool = False) -> bytes:
        """The object's JSON, cached for as long as this exact dict is the stored version. As an ``item``
        of a built-in list it has no apiVersion/kind (typed list items carry none on the wire)."""
        key = (id(obj), item)
        cached = self._json.get(key)
        if cached is None:
            shown = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind")} if item else obj
            cached = json.dumps(shown, separators=(",", ":")).encode()
            meta = obj["metadata"]
            if self.get(gr, meta.get("namespace", ""), meta["name"]) is obj:
                self._json[key] = cached
        return cached

    # -- writing -------------------------------------------------------------------------------------------
    def next_rv(self) -> int:
        self._rv += 1
        return self._rv

    def put(self, gr: GR, obj: dict[str, Any], event: str) -> dict[str, Any]:
        """Store ``obj`` (already carrying a fresh resourceVersion) and publish the event."""
        with self.lock:
            meta = obj["metadata"]
            key = (meta.get("namespace", ""), meta["name"])
            bucket = self._objects.setdefault(gr, {}).setdefault(key[0], {})
            old = bucket.get(key[1])
            if old is not None:
                self._json.pop((id(old), False), None)
                self._json.pop((id(old), True), None)
            bucket[key[1]] = obj
            # Serialized once per version, as the API server's watch cache does: lists and watches then only
            # join bytes, however many clients read.
            self._json[(id(obj), False)] = json.dumps(obj, separators=(",", ":")).encode()
            self._publish(WatchEvent(event, int(meta["resourceVersion"]), gr, key[0], key[1], obj, old))
            return obj

    def remove(self, gr: GR, namespace: str, name: str) -> dict[str, Any] | None:
        with self.lock:
            bucket = self._objects.get(gr, {}).get(namespace, {})
            old = bucket.pop(name, None)
            if old is None:
                return None
            if not bucket:
                self._objects[gr].pop(namespace, None)
            self._json.pop((id(old), False), None)
            self._json.pop((id(old), True), None)
            rv = self.next_rv()
            gone = dict(old)
            gone["metadata"] = dict(old["metadata"], resourceVersion=str(rv))
            self._publish(WatchEvent("DELETED", rv, gr, namespace, name, gone, old))
            return gone

    def drop_resource(self, gr: GR) -> list[dict[str, Any]]:
        """Remove every object of a resource (a deleted CRD), publishing DELETED events."""
        with self.lock:
            keys = [(ns, name) for ns, objects in self._objects.get(gr, {}).items() for name in objects]
            return [o for o in (self.remove(gr, ns, name) for ns, name in keys) if o is not None]

    def _publish(self, event: WatchEvent) -> None:
        self._history.append(event)
        if len(self._history) > 2 * self.HISTORY:
            del self._history[: self.HISTORY]
        for listener in self._listeners:
            listener(event)
        self.changed.notify_all()

    def subscribe(self, listener: Callable[[WatchEvent], None]) -> None:
        with self.lock:
            self._listeners.append(listener)

    # -- watching ------------------------------------------------------------------------------------------
    def events_since(self, rv: int) -> list[WatchEvent] | None:
        """Events after ``rv``; None when ``rv`` is older than the kept history (the watch must relist)."""
        with self.lock:
            history = self._history
            if history and rv < history[0].rv - 1 and len(history) >= self.HISTORY:
                return None
            start = bisect.bisect_right(history, rv, key=lambda e: e.rv)
            return history[start:]

    def wait(self, timeout: float) -> None:
        with self.changed:
            if not self.closed:
                self.changed.wait(timeout)

    def close(self) -> None:
        with self.changed:
            self.closed = True
            self.changed.notify_all()
