"""What an old resourceVersion may still ask of the simulated store: etcd compaction (kube-apiserver's
compactor, every 5 simulated minutes, to the revision of the previous tick), Exact reads of a past revision,
and the watch cache's window (initialised at a list, a buffer that grows while its events are fresh).
All timing is a simulated instant, moved by explicit steps (``Instant.step``)."""

from __future__ import annotations

from kubesim.clock import SimClock
from kubesim.store import COMPACTION_INTERVAL, EVENT_FRESH_SECONDS, WATCH_CACHE_LOWER, Store

CM = ("", "configmaps")


class Instant:
    """The store's clock: simulated seconds that move only by ``step``."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def step(self, seconds: float) -> None:
        self.now += seconds


def _store() -> tuple[Store, Instant]:
    clock = Instant()
    store = Store()
    store.attach_clock(clock)
    store.start_watch_cache(CM)
    return store, clock


def _write(store: Store, name: str, data: str = "a", event: str = "ADDED") -> int:
    rv = store.next_rv()
    obj = {"metadata": {"name": name, "namespace": "ns", "resourceVersion": str(rv)}, "data": {"k": data}}
    store.put(CM, obj, event)
    return rv


def test_the_compactor_compacts_to_the_revision_of_its_previous_tick_never_at_the_first():
    store, clock = _store()
    start = store.resource_version
    first = _write(store, "a")
    clock.step(COMPACTION_INTERVAL)  # first tick: bootstrap, records the revision, compacts nothing
    assert store.compacted_revision() == start
    seen_at_tick = store.resource_version
    _write(store, "b")
    assert store.items_at(CM, "ns", first) is not None
    clock.step(COMPACTION_INTERVAL)  # second tick: compacts to what the first one saw
    assert store.compacted_revision() == seen_at_tick
    assert store.items_at(CM, "ns", first - 1) is None
    assert store.items_at(CM, "ns", seen_at_tick) is not None


def test_nothing_before_the_store_started_can_be_read():
    store, _ = _store()
    assert store.items_at(CM, "ns", 2) is None
    assert store.items_at(CM, "ns", store.resource_version) == []


def test_an_exact_read_sees_each_object_as_it_was_at_that_revision():
    store, _ = _store()
    created = _write(store, "a", "one")
    modified = _write(store, "a", "two", "MODIFIED")
    other = _write(store, "b")
    store.remove(CM, "ns", "a")
    assert [o["data"]["k"] for o in store.items_at(CM, "ns", created) or []] == ["one"]
    assert [o["data"]["k"] for o in store.items_at(CM, "ns", modified) or []] == ["two"]
    assert sorted(o["metadata"]["name"] for o in store.items_at(CM, "ns", other) or []) == ["a", "b"]
    assert [o["metadata"]["name"] for o in store.items_at(CM, "ns", store.resource_version) or []] == ["b"]


def test_a_watch_cache_replays_nothing_from_before_its_list():
    store, _ = _store()
    start = store.resource_version
    assert store.watch_too_old(CM, 2) == f"too old resource version: 2 ({start})"
    assert store.watch_too_old(CM, start) is None
    later = ("example.com", "widgets")
    _write(store, "a")
    store.start_watch_cache(later)  # a CRD served now: its cache starts at the current revision
    assert store.watch_too_old(later, start) is not None
    assert store.watch_too_old(later, store.resource_version) is None


def test_the_watch_cache_grows_while_its_events_are_fresh_and_drops_the_oldest_once_they_age():
    store, clock = _store()
    first = _write(store, "x")
    for n in range(3 * WATCH_CACHE_LOWER):  # fresh: the buffer doubles instead of dropping
        _write(store, f"c{n}")
    assert store.watch_too_old(CM, first) is None
    clock.step(EVENT_FRESH_SECONDS + 1)
    for n in range(4 * WATCH_CACHE_LOWER):  # aged: a full buffer now drops its oldest event
        _write(store, f"d{n}", event="ADDED")
    message = store.watch_too_old(CM, first)
    assert message is not None and message.startswith(f"too old resource version: {first} (")
    assert store.watch_too_old(CM, store.resource_version - 1) is None


def test_a_continue_token_of_a_compacted_revision_is_410_with_a_token_that_continues_from_now():
    from kubesim.apiserver.api import Api
    from kubesim.machinery.errors import ApiError

    store = Store()
    api = Api(store, SimClock.manual_clock())
    clock = Instant()
    store.attach_clock(clock)
    rt = api.type_of(*CM)
    for n in range(3):
        _write(store, f"page{n}")
    first = api.list(rt, "ns", limit=2)
    assert first.continue_token
    assert [o["metadata"]["name"] for o in api.list(rt, "ns", continue_token=first.continue_token).items] == [
        "page2"
    ]
    _write(store, "later")  # newer than the token
    clock.step(2 * COMPACTION_INTERVAL)  # the first tick sees it, the second compacts to it
    try:
        api.list(rt, "ns", continue_token=first.continue_token)
    except ApiError as exc:
        assert exc.code == 410 and exc.reason == "Expired"
        assert exc.message.startswith("The provided continue parameter is too old")
        token = exc.status()["metadata"]["continue"]
    else:
        raise AssertionError("a compacted continue token was served")
    # From the latest revision, after the token's key ("later" sorts before it).
    continued = api.list(rt, "ns", continue_token=token)
    assert [o["metadata"]["name"] for o in continued.items] == ["page2"]
    assert continued.resource_version == str(store.resource_version)
