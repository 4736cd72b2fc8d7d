"""The control loop that runs every controller and the kubelets of the simulated cluster.

One thread, like a single-process kube-controller-manager: store events become work items (a controller
name and an object key, de-duplicated while queued), and controllers schedule timers in *simulated* time
(an image pull that takes 2 s, a back-off of 10 s). With a time scale of 0 the loop jumps the clock to the
next timer that makes progress as soon as no work is queued, so nothing waits for nothing, and lets idle
time (back-offs, probe periods) pass at ``IDLE_PACE``; with a manual clock, timers fire only when a test
calls ``clock.advance()``. Because everything runs on this one thread, controllers never
race each other; they still re-read the store before every write, as real controllers must.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import threading
import time
import traceback
from collections import OrderedDict
from collections.abc import Callable

from kubesim.clock import SimClock
from kubesim.store import Store, WatchEvent

Key = tuple[str, str]  # namespace, name
ALL = ("*", "*")  # in ``Controller.watches``: every group/resource
#: At time scale 0, how many simulated seconds pass per wall second while only periodic timers are pending.
#: Five, not more: a harness on a busy machine may spend several wall seconds in a subprocess between two
#: looks at the cluster, and what it then reports must still be within a simulated minute of what happened,
#: as on a real cluster. Measured with four busy loops on two cores: a rehearsal whose target pilot cannot be
#: pulled declared it 15-45 simulated s after the first ErrImagePull at 5 (and 4 s), 20-61 s at 10 (and 2 s).
IDLE_PACE = 5.0
#: ... except that one long wait (a crash loop's later back-offs, up to 300 s) takes at most this many wall s.
IDLE_WAIT_MAX = 4.0


class Controller:
    """Base class: ``watches`` names the group/resources whose events reach :meth:`on_event`."""

    name = "controller"
    watches: tuple[tuple[str, str], ...] = ()

    def __init__(self, manager: ControllerManager) -> None:
        self.manager = manager

    def on_event(self, event: WatchEvent) -> None:
        """Default: reconcile the object the event is about."""
        self.enqueue((event.namespace, event.name))

    def enqueue(self, key: Key) -> None:
        self.manager.enqueue(self, key)

    def reconcile(self, key: Key) -> None:
        raise NotImplementedError

    def resync(self) -> None:
        """Called once at start."""


class ControllerManager:
    def __init__(self, store: Store, clock: SimClock) -> None:
        self.store = store
        self.clock = clock
        self.controllers: list[Controller] = []
        self._by_gr: dict[tuple[str, str], tuple[Controller, ...]] = {}
        self._queue: OrderedDict[tuple[int, Key], Controller] = OrderedDict()
        # Two heaps: timers that make progress (a pull finishing) and periodic ones (probes, back-offs,
        # leases).
        self._timers: list[tuple[float, int, bool, Callable[[], None]]] = []
        self._periodic: list[tuple[float, int, bool, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._owed = 0.0  # idle simulated seconds credited but not yet added (paid a tick at a time)
        self._busy = False  # a work item or timer is running right now (taken off the queue, not finished)
        self.errors: list[str] = []
        store.subscribe(self._on_store_event)
        clock.on_advance(self._wake)

    def register(self, controller: Controller) -> Controller:
        self.controllers.append(controller)
        for gr in controller.watches:
            self._by_gr[gr] = self._by_gr.get(gr, ()) + (controller,)
        return controller

    # -- work intake (called from any thread) -------------------------------------------------------------
    def _on_store_event(self, event: WatchEvent) -> None:
        for controller in self._by_gr.get(event.gr, ()) + self._by_gr.get(ALL, ()):
            try:
                controller.on_event(event)
            except Exception:
                self.errors.append(traceback.format_exc())

    def enqueue(self, controller: Controller, key: Key) -> None:
        with self._cond:
            self._queue[(id(controller), key)] = controller
            self._cond.notify()

    def after(self, seconds: float, callback: Callable[[], None], repeat: bool = False) -> None:
        """Run ``callback`` on the loop after ``seconds`` of simulated time.

        ``repeat`` marks periodic work (lease renewals, back-off retries): at time scale 0 the loop does not
        jump the clock for it alone, or a crash-looping pod would spin through its back-offs at full speed.
        """
        with self._cond:
            heapq.heappush(
                self._periodic if repeat else self._timers,
                (self.clock.now() + max(0.0, seconds), next(self._seq), repeat, callback),
            )
            self._cond.notify()

    def _wake(self) -> None:
        with self._cond:
            self._cond.notify()

    # -- the loop -------------------------------------------------------------------------------------------
    def start(self) -> None:
        for controller in self.controllers:
            controller.resync()
        self._thread = threading.Thread(target=self._run, name="sim-controllers", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            advance = 0.0
            with self._cond:
                if self._stopping:
                    return
                work: Callable[[], None] | None = None
                if self._queue:
                    (_, key), controller = self._queue.popitem(last=False)
                    work = functools.partial(controller.reconcile, key)
                else:
                    work, advance = self._due_timer_locked()
                step = self.clock.max_step()
                if work is None and not advance:
                    # Idle credit (time scale 0) owed from an earlier wait is paid first, in steps.
                    credit = self._owed if self._owed > 0 and not self._timers else self._wait_locked()
                    advance = credit if step is None else min(credit, step)
                    self._owed = credit - advance
                elif advance and step is not None:
                    advance = min(advance, step)
                if work is not None:
                    self._busy = True
            if work is None:
                # The clock moves outside the loop's lock (and the store's): a clock ticker (the rehearsal's
                # prober) may send requests that the API server serves from other threads. With tickers, a
                # jump is made a tick at a time so that new work is picked up between ticks.
                if advance > 0:
                    self.clock.advance(advance)
                continue
            try:
                with self.store.lock:
                    work()
            except Exception:
                self.errors.append(traceback.format_exc())
            finally:
                with self._cond:
                    self._busy = False

    def _next_heap(self) -> list[tuple[float, int, bool, Callable[[], None]]] | None:
        """The heap whose first timer is earliest, if any."""
        if self._timers and (not self._periodic or self._timers[0] <= self._periodic[0]):
            return self._timers
        return self._periodic or None

    def _due_timer_locked(self) -> tuple[Callable[[], None] | None, float]:
        """A due timer to run, or how far to jump the clock to the next one that makes progress."""
        heap = self._next_heap()
        if heap is None:
            return None, 0.0
        now = self.clock.now()
        if heap[0][0] <= now:
            return heapq.heappop(heap)[3], 0.0
        if self.clock.time_scale == 0 and not self.clock.manual and self._timers:
            # No simulated waiting: jump to the next timer that makes progress.
            return None, self._timers[0][0] - now
        return None, 0.0

    def _wait_locked(self) -> float:
        """Wait for work or a timer; return the idle simulated seconds to credit the clock (scale 0)."""
        heap = self._next_heap()
        if heap is None or self.clock.manual:
            # Nothing scheduled, or only advance() moves time: wake on new work (or to re-check).
            self._cond.wait(0.5)
            return 0.0
        delta = heap[0][0] - self.clock.now()
        if self.clock.time_scale > 0:
            self._cond.wait(min(0.5, max(0.0, delta * self.clock.time_scale)))
            return 0.0
        # Time scale 0 with only periodic timers left (back-offs, probe periods): the cluster is idle, and
        # idle simulated time passes IDLE_PACE times faster than wall time, never faster. A client that reacts
        # within a wall second then reacts within IDLE_PACE simulated seconds, so how soon the harness
        # notices a failure still means something in simulated seconds.
        # Long waits (a crash loop's later back-offs, up to 300 s) pass faster still, in at most
        # IDLE_WAIT_MAX wall seconds each.
        pace = max(IDLE_PACE, delta / IDLE_WAIT_MAX)
        idle_from = time.monotonic()
        self._cond.wait(min(0.5, max(0.0, delta / pace)))
        if self._periodic and not self._timers:
            # Credited even when new work woke the loop early: a steady trickle of events must not stop
            # idle time from passing.
            return min(delta, (time.monotonic() - idle_from) * pace)
        return 0.0

    def settle(self, timeout: float = 30.0) -> None:
        """Block until the queue is empty and no timer is due (for tests and benchmarks)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._cond:
                now = self.clock.now()
                pending = (
                    self._busy
                    or bool(self._queue)
                    or any(heap and heap[0][0] <= now for heap in (self._timers, self._periodic))
                )
            if not pending:
                return
            time.sleep(0.005)
        raise TimeoutError("the simulated cluster did not settle")
