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
        # Tickers: (period, next instant due, callback), called at every multiple of their period that
        # simulated time passes (see add_ticker).
        self._tickers: list[list[object]] = []
        self._ticking = threading.local()

    def set_calendar(self, epoch: float) -> None:
        """Make ``now()`` read ``epoch`` (seconds since 1970, UTC) from this moment on: the simulated world's
        date, e.g. after Istio retired a registry. Time keeps moving from there as before."""
        with self._lock:
            shift = epoch - self._now_locked()
            self._base += shift
            self.calendar_set = True
            for ticker in self._tickers:  # a ticker stays due one period from its last call, not in the past
                ticker[1] = float(ticker[1]) + shift  # type: ignore[arg-type]

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
        """Move simulated time forward (tests, and the scale-0 scheduler). A jump stops at every instant a
        ticker is due and calls it there, before moving on: what a ticker does happens at its instant,
        however far simulated time jumps."""
        if seconds <= 0:
            return
        target = self.now() + seconds
        while not getattr(self._ticking, "active", False):
            with self._lock:
                due = [t for t in self._tickers if float(t[1]) <= target]  # type: ignore[arg-type]
                if not due:
                    break
                ticker = min(due, key=lambda t: float(t[1]))  # type: ignore[arg-type]
                instant = float(ticker[1])  # type: ignore[arg-type]
                ticker[1] = instant + float(ticker[0])  # type: ignore[arg-type]
                if self.jumps:
                    self._offset = max(self._offset, instant - self._base)
            self._ticking.active = True
            try:
                ticker[2](instant)  # type: ignore[operator]
            finally:
                self._ticking.active = False
        with self._lock:
            self._offset = max(self._offset, self._offset + (target - self._now_locked()))
            listeners = list(self._listeners)
        for listener in listeners:
            listener()

    def _now_locked(self) -> float:
        if self.jumps:
            return self._base + self._offset
        return self._base + (time.monotonic() - self._wall0) / self.time_scale + self._offset

    def max_step(self) -> float | None:
        """The longest jump a loop should make at once while tickers run (their shortest period), so work
        that arrives during a long jump is not held up behind every tick of it; None without tickers."""
        with self._lock:
            return min((float(t[0]) for t in self._tickers), default=None)  # type: ignore[arg-type]

    def add_ticker(self, period: float, callback: Callable[[float], None]) -> Callable[[], None]:
        """Call ``callback(instant)`` at every ``period`` of simulated time from now on, in the thread that
        moves the clock (a jump is cut at each instant). Returns the function that removes it. Meant for
        observers that must see every moment of simulated time however fast it passes (the rehearsal's
        availability prober); a callback that moves the clock itself does not tick again."""
        if period <= 0:
            raise ValueError("period must be > 0")
        ticker: list[object] = [period, self.now() + period, callback]
        with self._lock:
            self._tickers.append(ticker)

        def remove() -> None:
            with self._lock:
                if ticker in self._tickers:
                    self._tickers.remove(ticker)

        return remove

    def advance_to(self, instant: float) -> None:
        self.advance(instant - self.now())

    def on_advance(self, listener: Callable[[], None]) -> None:
        with self._lock:
            self._listeners.append(listener)
