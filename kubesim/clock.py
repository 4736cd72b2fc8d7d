"""Simulated time for the controllers and kubelet of the simulated cluster.

Every delay inside the simulator (an image pull, a readiness probe, a crash-loop back-off) is expressed in
simulated seconds. The clock maps them onto wall time with a *time scale*: 1.0 runs like a real cluster
(good for a demo), 0.05 runs twenty times faster, and 0 does no simulated waiting at all (the scheduler jumps
straight to the next due timer once nothing else is pending). ``SimClock.manual()`` never moves by itself:
a test drives it with :meth:`SimClock.advance`, which is how timing-dependent behaviour is tested exactly.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class SimClock:
    """Simulated seconds since the epoch, scaled from wall time or driven by hand."""

    def __init__(self, time_scale: float = 1.0, *, manual: bool = False) -> None:
        if time_scale < 0:
            raise ValueError("time_scale must be >= 0")
        self.time_scale = time_scale
        self.manual = manual
        self._base = time.time()
        self._wall0 = time.monotonic()
        self._offset = 0.0
        self._lock = threading.Lock()
        self._listeners: list[Callable[[], None]] = []
        # True once a calendar date was set (set_calendar): the simulated world then follows Istio's registry
        # dates against this clock (kubesim.node.images); otherwise the clock starts at wall time and dated
        # facts are not applied, so nothing in the simulator depends on the real date.
        self.calendar_set = False

    def set_calendar(self, epoch: float) -> None:
        """Make ``now()`` read ``epoch`` (seconds since 1970, UTC) from this moment on: the simulated world's
        date, e.g. after Istio retired a registry. Time keeps moving from there as before."""
        with self._lock:
            self._base += epoch - (self._base + self._offset if self.jumps else self._now_locked())
            self.calendar_set = True

    def _now_locked(self) -> float:
        return self._base + (time.monotonic() - self._wall0) / self.time_scale + self._offset

    @classmethod
    def manual_clock(cls) -> SimClock:
        return cls(0.0, manual=True)

    @property
    def jumps(self) -> bool:
        """True when simulated time only moves by jumps (manual, or time scale 0)."""
        return self.manual or self.time_scale == 0

    def now(self) -> float:
        with self._lock:
            if self.jumps:
                return self._base + self._offset
            return self._base + (time.monotonic() - self._wall0) / self.time_scale + self._offset

    def wall_seconds(self, simulated: float) -> float | None:
        """Wall seconds until ``simulated`` seconds have passed; None when only advance() moves time."""
        if self.manual:
            return None
        if self.time_scale == 0:
            return 0.0
        return max(0.0, simulated * self.time_scale)

    def advance(self, seconds: float) -> None:
        """Move simulated time forward (tests, and the scale-0 scheduler)."""
        if seconds <= 0:
            return
        with self._lock:
            self._offset += seconds
            listeners = list(self._listeners)
        for listener in listeners:
            listener()

    def advance_to(self, instant: float) -> None:
        self.advance(instant - self.now())

    def on_advance(self, listener: Callable[[], None]) -> None:
        with self._lock:
            self._listeners.append(listener)
