"""The availability prober: a steady request rate through the whole upgrade, each answer recorded.

Harness library (no pytest, no kubesim). A :class:`Prober` sends requests to its targets at a fixed
rate with one connection-reusing ``requests.Session`` per target (as a real client keeps its connections), and
keeps one :class:`Sample` per request (time, status, latency, the pod that answered and its proxy version) in
a bounded record. It is paced one of two ways:

- **wall clock** (kind, an existing cluster, the benchmark): its own daemon thread at a fixed rate (catching
  up at most :data:`CATCH_UP` intervals), handing each tick to a bounded pool of workers, stopped by
  :meth:`Prober.stop` or after ``max_seconds``;
- **a clock's ticks** (the simulated cluster): the simulator calls :meth:`Prober.tick` at every
  ``1/rate`` of *simulated* time, however fast that time passes, so the record has a request every
  ``1/rate`` simulated seconds through every phase without depending on the machine's speed.

Phases (``with prober.phase("apply"):``) and instant marks (a workload restarted) are recorded on the same
clock as the samples; :mod:`rehearsal.probe.availability` judges the record.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import requests

#: How many intervals behind the wall-clock pacer may fall and still send the ticks it owes (at once); beyond,
#: they are missed (counted), so a stalled machine does not get a burst.
CATCH_UP = 5
#: The record's bound: samples beyond it push out the oldest (and are counted), about 2.8 h at 20 req/s.
MAX_SAMPLES = 200_000
# How long pause() waits, at most, for requests already on their way (each has its own timeout too).
PAUSE_DRAIN_SECONDS = 60.0


@dataclass
class Target:
    """Where requests go: ``url`` (with ``n`` formatted in, if it has ``{n}``), the Host header, and how to
    read which pod answered from a response (the echo app names it)."""

    name: str
    url: str
    host: str | None = None
    session_factory: Callable[[], requests.Session] = requests.Session
    answered_by: Callable[[requests.Response], str | None] = lambda response: None
    every: int = 1  # one request every ``every`` ticks
    timeout: float = 5.0


@dataclass
class Sample:
    t: float  # on the prober's clock (simulated seconds on the simulated cluster)
    target: str
    status: str  # the HTTP code, or the client's exception class (ConnectTimeout, ConnectionError...)
    ok: bool
    latency_ms: float  # wall milliseconds the request took
    pod: str | None = None
    version: str | None = None

    def to_list(self) -> list[Any]:
        """Compact form for the record: [t, target, status, latency_ms, pod, version]."""
        return [round(self.t, 3), self.target, self.status, round(self.latency_ms, 2), self.pod, self.version]


@dataclass
class Phase:
    name: str
    start: float
    end: float | None = None


@dataclass
class Prober:
    targets: list[Target]
    rate: float = 20.0
    now: Callable[[], float] = time.time
    # pod name -> proxy version (the istio-proxy image tag of its spec), looked up once per pod
    resolve_version: Callable[[str], str | None] = lambda pod: None
    max_samples: int = MAX_SAMPLES
    max_seconds: float = 4 * 3600.0
    samples: deque[Sample] = field(init=False)
    phases: list[Phase] = field(default_factory=list)
    marks: list[tuple[float, str]] = field(default_factory=list)
    dropped: int = 0  # samples pushed out of the bounded record
    missed: int = 0  # ticks the wall-clock pacer could not keep (it does not catch up)
    started: float | None = None
    stopped: float | None = None
    pacing: str = "wall clock"
    paused: bool = False
    # wall-clock pacing: requests in flight at once (fortio's -c), so a slow answer does not delay the next
    # request's departure; each worker keeps its own connections
    workers: int = 16

    def __post_init__(self) -> None:
        self.samples = deque(maxlen=self.max_samples)
        self._sessions: dict[str, requests.Session] = {}
        self._versions: dict[str, str | None] = {}
        self._ticks = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._remove_ticker: Callable[[], None] | None = None
        self._local = threading.local()
        self._pool: ThreadPoolExecutor | None = None
        self._in_flight = threading.Semaphore(self.workers * 2)
        # Ticks sending right now: pause() waits for them, so no request of the prober lands inside the block.
        self._active = 0
        self._idle = threading.Condition(self._lock)

    # -- running ---------------------------------------------------------------------------------------------
    @property
    def interval(self) -> float:
        return 1.0 / self.rate

    def start(
        self, ticker: Callable[[float, Callable[[float], None]], Callable[[], None]] | None = None
    ) -> None:
        """Start probing: on ``ticker(period, callback)`` (a clock that calls back at every period of its
        time, returning how to stop) when given, else on a thread of its own paced by the wall clock."""
        self.started = self.now()
        if ticker is not None:
            self.pacing = "simulated clock ticks"
            self._remove_ticker = ticker(self.interval, self.tick)
            return
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="rehearsal-prober-worker")
        self._thread = threading.Thread(target=self._pace, name="rehearsal-prober", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop probing (idempotent); closes the sessions and ends any open phase."""
        if self._remove_ticker is not None:
            self._remove_ticker()
            self._remove_ticker = None
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        if self.stopped is None:
            self.stopped = self.now()
        for phase in self.phases:
            if phase.end is None:
                phase.end = self.stopped
        for session in self._sessions.values():
            session.close()

    @property
    def running(self) -> bool:
        return self.started is not None and self.stopped is None

    def _pace(self) -> None:
        begin = time.monotonic()
        k = 0
        while not self._stop.is_set():
            if time.monotonic() - begin > self.max_seconds:
                self.stopped = self.now()  # stops by itself: a run that never ended must not probe forever
                return
            self._dispatch(self.now())
            k += 1
            due = begin + k * self.interval
            lag = time.monotonic() - due
            if lag > CATCH_UP * self.interval:
                # Far behind (the machine stalled this thread): those ticks are missed, not sent in a burst.
                skipped = int(lag / self.interval)
                self.missed += skipped
                k += skipped
                due = begin + k * self.interval
            # A little behind (a scheduling hiccup): the next ticks go at once until the pacer is on time.
            self._stop.wait(max(0.0, due - time.monotonic()))

    def _dispatch(self, t: float) -> None:
        """Wall-clock pacing: hand the tick to a worker; when every worker is busy and the queue is full, the
        tick is missed (counted), never queued without bound."""
        if self._pool is None or not self._in_flight.acquire(blocking=False):
            self.missed += 1
            return

        def run() -> None:
            try:
                self.tick(t)
            finally:
                self._in_flight.release()

        try:
            self._pool.submit(run)
        except RuntimeError:  # shut down meanwhile
            self._in_flight.release()

    def tick(self, instant: float | None = None) -> None:
        """One period: a request to every target due this tick, stamped ``instant`` (the clock's time)."""
        t = self.now() if instant is None else instant
        with self._lock:
            if self.stopped is not None or self.paused:
                return
            self._ticks += 1
            number = self._ticks
            self._active += 1
        try:
            for target in self.targets:
                if (number - 1) % max(1, target.every) == 0:
                    self._record(self._send(target, t, number))
        finally:
            with self._lock:
                self._active -= 1
                if self._active == 0:
                    self._idle.notify_all()

    def _session(self, target: Target) -> requests.Session:
        """This thread's session for ``target`` (a worker reuses its connections, as a real client does)."""
        sessions: dict[str, requests.Session] | None = getattr(self._local, "sessions", None)
        if sessions is None:
            sessions = self._local.sessions = {}
        session = sessions.get(target.name)
        if session is None:
            session = target.session_factory()
            if target.host:
                session.headers["Host"] = target.host
            sessions[target.name] = session
            with self._lock:
                self._sessions[f"{target.name}/{threading.get_ident()}"] = session
        return session

    def _send(self, target: Target, t: float, number: int) -> Sample:
        session = self._session(target)
        url = target.url.format(n=number) if "{n}" in target.url else target.url
        started = time.perf_counter()
        try:
            response = session.get(url, timeout=target.timeout)
            # requests' own measure: from sending the request to parsing the answer's headers, which leaves
            # out the client's preparation of the request (bench/traffic.py compares it with the server's)
            elapsed = getattr(response, "elapsed", None)
            latency = (
                elapsed.total_seconds() * 1000
                if elapsed is not None
                else (time.perf_counter() - started) * 1000
            )
            pod = target.answered_by(response) if response.status_code == 200 else None
            return Sample(
                t,
                target.name,
                str(response.status_code),
                response.status_code == 200,
                latency,
                pod,
                self.version_of(pod),
            )
        except requests.RequestException as exc:
            return Sample(t, target.name, type(exc).__name__, False, (time.perf_counter() - started) * 1000)

    def version_of(self, pod: str | None) -> str | None:
        if pod is None:
            return None
        if pod not in self._versions:
            try:
                self._versions[pod] = self.resolve_version(pod)
            except Exception:
                self._versions[pod] = None
        return self._versions[pod]

    def _record(self, sample: Sample) -> None:
        with self._lock:
            if len(self.samples) == self.samples.maxlen:  # deque(maxlen) pushes the oldest out
                self.dropped += 1
            self.samples.append(sample)

    # -- phases ----------------------------------------------------------------------------------------------
    @contextmanager
    def phase(self, name: str) -> Iterator[Phase]:
        """Mark the requests sent while the block runs as ``name``'s (apply, a restart, the rollback)."""
        phase = Phase(name, self.now())
        self.phases.append(phase)
        try:
            yield phase
        finally:
            phase.end = self.now()

    @contextmanager
    def pause(self, why: str) -> Iterator[None]:
        """No requests while the block runs (a check that counts requests itself); recorded as a phase
        ``paused: <why>`` so the gap in the record is explained."""
        with self.phase(f"paused: {why}"):
            with self._lock:
                self.paused = True
                # A request already on its way (a tick in another thread) ends before the block starts:
                # the check counting requests must not see one of the prober's land inside it.
                self._idle.wait_for(lambda: self._active == 0, timeout=PAUSE_DRAIN_SECONDS)
            try:
                yield
            finally:
                with self._lock:
                    self.paused = False

    def mark(self, what: str) -> None:
        """An instant worth seeing on the chart (a workload's restart began)."""
        self.marks.append((self.now(), what))

    def snapshot(self) -> list[Sample]:
        """The samples in time order (wall-clock workers may finish out of order)."""
        with self._lock:
            return sorted(self.samples, key=lambda s: s.t)
