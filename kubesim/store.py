"""In-memory object storage of the simulated API server: the part etcd plays in a real cluster, with the
bookkeeping of kube-apiserver's watch cache.

It keeps one dict per object, a cluster-wide resourceVersion counter, and a bounded history of events so
that watches can resume from a resourceVersion and Exact lists can read an older revision. Two windows bound
what an old resourceVersion may still ask for, as on a real server (the simulated clock, never wall time,
decides ages):

- etcd compaction (``compacted_revision``): kube-apiserver compacts etcd every ``--etcd-compaction-interval``
  (5 minutes) to the revision it saw at the previous tick, never at the first
  (staging/src/k8s.io/apiserver/pkg/storage/etcd3/compact.go runCompactLoop/compact). A read at a revision
  below it is 410 Expired. The store starts at revision 1000 with nothing before: that much is compacted.
  (The real compactor's CAS put of ``compact_rev_key`` also bumps etcd's revision; the simulated one does not
  spend a resourceVersion on it.)
- the watch cache of each resource (``watch_too_old``): it is initialised from a list at the revision it
  started at, so earlier events are never replayable, and keeps a cyclic buffer of events whose capacity
  doubles (to 100 * 1024) while the oldest is younger than 75 s and halves when the newest quarter is older
  (staging/src/k8s.io/apiserver/pkg/storage/cacher/watch_cache.go updateCache, resizeCacheLocked,
  getAllEventsSinceLocked). A watch from before its window is 410 ``too old resource version: R (OLDEST)``.

Stored dicts are never mutated after they are written, which lets readers share them and lets each version
be serialized once, when written: a list of 2,000 pods is a join of cached bytes.
"""

from __future__ import annotations

import bisect
import json
import threading
from collections import deque
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


# watch_cache.go: defaultLowerBoundCapacity, defaultUpperBoundCapacity, eventFreshDuration.
WATCH_CACHE_LOWER = 100
WATCH_CACHE_UPPER = 100 * 1024
EVENT_FRESH_SECONDS = 75.0
# storagebackend.DefaultCompactInterval (kube-apiserver --etcd-compaction-interval).
COMPACTION_INTERVAL = 300.0


class WatchWindow:
    """What the watch cache of one resource can still replay: the revision of the list it was initialised
    from and a buffer of recent events' (resourceVersion, time), sized as watch_cache.go sizes it."""

    __slots__ = ("capacity", "events", "list_rv", "removed")

    def __init__(self, list_rv: int) -> None:
        self.list_rv = list_rv
        self.removed = False  # removedEventSinceRelist
        self.capacity = WATCH_CACHE_LOWER
        self.events: deque[tuple[int, float]] = deque()

    def add(self, rv: int, now: float) -> None:
        """updateCache: resize, drop the oldest event when full, append."""
        events = self.events
        if len(events) >= self.capacity and now - events[0][1] < EVENT_FRESH_SECONDS:
            self.capacity = min(self.capacity * 2, WATCH_CACHE_UPPER)
        elif (
            len(events) >= self.capacity
            and now - events[len(events) - self.capacity // 4][1] > EVENT_FRESH_SECONDS
        ):
            self.capacity = max(self.capacity // 2, WATCH_CACHE_LOWER)
            while len(events) > self.capacity:
                events.popleft()
                self.removed = True
        if len(events) >= self.capacity:
            events.popleft()
            self.removed = True
        events.append((rv, now))

    def oldest(self) -> int:
        """getAllEventsSinceLocked: the oldest event a watch can be served, less one."""
        if not self.removed or not self.events:
            return self.list_rv
        return self.events[0][0] - 1


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
        # The simulated clock (``attach_clock``); without one, time stands still: nothing ages or compacts.
        self._now: Callable[[], float] = lambda: 0.0
        self._windows: dict[GR, WatchWindow] = {}
        self._started_rv = self._rv
        self._history_floor = self._rv  # events at or below it are no longer in _history
        self._compacted = self._rv  # etcd's compact revision: reads below it are 410 Expired
        self._compactor_started = 0.0
        self._compactor_ticks = 0
        self._compactor_rev = 0  # the revision seen at the previous tick (0: bootstrap, nothing to compact)

    # -- windows of old revisions -----------------------------------------------------------------------
    def attach_clock(self, now: Callable[[], float]) -> None:
        """Age events and run the compactor by ``now`` (the simulated clock) from this instant on."""
        with self.lock:
            self._now = now
            self._compactor_started = now()
            self._compactor_ticks = 0

    def start_watch_cache(self, gr: GR) -> None:
        """The watch cache of ``gr`` starts (the server starts, or a CRD's resource is served): initialised
        from a list at the current revision, it replays nothing older."""
        with self.lock:
            self._windows[gr] = WatchWindow(self._rv)

    def _window(self, gr: GR) -> WatchWindow:
        window = self._windows.get(gr)
        if window is None:
            # A resource nobody started a cache for: as if its cache started with the store.
            window = self._windows[gr] = WatchWindow(self._started_rv)
        return window

    def _run_compactor(self) -> None:
        """The ticks of kube-apiserver's compactor that fell due since the last look. Each write looks first,
        so a tick sees exactly the revision of its instant."""
        due = int((self._now() - self._compactor_started) // COMPACTION_INTERVAL)
        while self._compactor_ticks < due:
            self._compactor_ticks += 1
            if self._compactor_rev:
                self._compacted = max(self._compacted, self._compactor_rev)
            self._compactor_rev = self._rv

    def compacted_revision(self) -> int:
        with self.lock:
            self._run_compactor()
            return self._compacted

    def watch_too_old(self, gr: GR, rv: int) -> str | None:
        """The 410 message of a watch of ``gr`` from ``rv`` (watch_cache.go), None when it can be served."""
        with self.lock:
            oldest = self._window(gr).oldest()
            if rv < oldest or rv < self._history_floor:
                return f"too old resource version: {rv} ({max(oldest, self._history_floor)})"
            return None

    def items_at(self, gr: GR, namespace: str | None, rv: int) -> list[dict[str, Any]] | None:
        """The objects of ``gr`` as they were at revision ``rv`` (an Exact list reads etcd at it), None when
        that revision is compacted (or older than the kept history)."""
        with self.lock:
            self._run_compactor()
            if rv < self._compacted or rv < self._history_floor:
                return None
            state = {
                (o["metadata"].get("namespace", ""), o["metadata"]["name"]): o
                for o in self.items(gr, namespace)
            }
            start = bisect.bisect_right(self._history, rv, key=lambda e: e.rv)
            for event in reversed(self._history[start:]):
                if event.gr != gr or namespace is not None and event.namespace != namespace:
                    continue
                key = (event.namespace, event.name)
                if event.old is None:
                    state.pop(key, None)
                else:
                    state[key] = event.old
            return list(state.values())

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
        with self.lock:
            self._run_compactor()  # a tick that fell due saw the revision before this write
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
        self._window(event.gr).add(event.rv, self._now())
        self._history.append(event)
        if len(self._history) > 2 * self.HISTORY:
            self._history_floor = self._history[self.HISTORY - 1].rv
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
            if rv < self._history_floor:
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
