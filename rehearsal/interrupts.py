"""Ctrl-C and SIGTERM during a rehearsal: the first one stops the run where it is and lets the safety net act,
the second one stops at once.

Sits around the session (installed by the ``rehearsal`` fixture). On the first SIGINT or SIGTERM the step in
flight is interrupted (it is recorded as failed, and its change, like any other, is in the journal), then the
usual end of the run follows: the rollback per ``--rollback``, the cleanup, the lease released, the report
written. SIGTERM gets the same treatment as Ctrl-C, rather than its default of ending the process on the spot.
A second signal ends the process at once: the journal stays in the run folder and the command that replays it
is printed.

A Python signal handler runs in the main thread between any two bytecodes, possibly while that thread holds a
lock or is half-way through a write to the same stream. So the handler takes no lock, saves no file and writes
with one ``os.write`` to a descriptor of the terminal duplicated beforehand; the record is saved by the safety
net that the ``KeyboardInterrupt`` leads to.

The kernel delivers a process's signal to any of its threads (the lease renewal, the simulated cluster's
server threads). Then the main thread, blocked in a read from the API server that answers late or never, is
not woken, and Python runs the handler only when that read returns. So a relay thread hears every signal
through :func:`signal.set_wakeup_fd` and pokes the main thread with ``RELAY`` (a signal whose Python handler
does nothing): the main thread's system call ends with EINTR, and Python runs the pending handler at once.
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType
from typing import Any

from . import exitcodes
from .run import Run

SIGNALS = (signal.SIGINT, signal.SIGTERM)
# Ignored by default and unused by the harness, so poking the main thread with it changes nothing else.
RELAY = signal.SIGURG


class Interrupts:
    def __init__(self, run: Run, terminal_fd: int | None = None) -> None:
        """``terminal_fd``: a descriptor of the user's terminal (pytest redirects fd 2 while fixtures run);
        the handler owns it and closes it on :meth:`uninstall`. By default a duplicate of fd 2."""
        self.run = run
        self.count = 0
        self.previous: dict[int, Any] = {}
        self.fd = os.dup(2) if terminal_fd is None else terminal_fd
        self._wakeup: tuple[int, int] | None = None
        self._previous_wakeup = -1

    def rollback_command(self) -> str:
        return f"python -m rehearsal rollback {self.run.dir}"

    def _say(self, text: str) -> None:
        try:
            os.write(self.fd, text.encode("utf-8", "replace"))
        except OSError:
            pass  # a closed terminal must not keep the run from stopping

    def handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        self.count += 1
        if self.count > 1:
            try:
                self._say(
                    f"\n{name} again: stopped at once. The journal is in {self.run.dir / 'journal.json'}; "
                    f"to roll the cluster back, run:\n  {self.rollback_command()}\n"
                )
            finally:
                os._exit(exitcodes.STOPPED_AT_ONCE)
        if self.run.failure is None:
            self.run.failure = f"interrupted by {name}"  # saved by the safety net, not here
        self._say(
            f"\n{name}: stopping the rehearsal; rolling back per --rollback {self.run.settings.rollback} and "
            "cleaning up (send it again to stop at once)\n"
        )
        raise KeyboardInterrupt(f"interrupted by {name}")

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signals can only be handled in the main thread
        for signum in SIGNALS:
            self.previous[signum] = signal.signal(signum, self.handle)
        self.previous[RELAY] = signal.signal(RELAY, _poked)
        read_end, write_end = os.pipe()
        os.set_blocking(write_end, False)
        self._wakeup = (read_end, write_end)
        self._previous_wakeup = signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
        main = threading.main_thread().ident
        threading.Thread(target=_relay, args=(read_end, main), name="rehearsal-signals", daemon=True).start()

    def uninstall(self) -> None:
        if self._wakeup is not None:
            signal.set_wakeup_fd(self._previous_wakeup)
            os.close(self._wakeup[1])  # the relay thread reads end-of-file and ends; it closes its end
            self._wakeup = None
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        self.previous.clear()
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _poked(signum: int, frame: FrameType | None) -> None:
    """The relay's signal: its only work is to have interrupted the main thread's system call."""


def _relay(read_end: int, main_thread: int | None) -> None:
    wanted = {int(s) for s in SIGNALS}
    try:
        while True:
            try:
                data = os.read(read_end, 64)
            except OSError:
                return
            if not data:
                return
            if main_thread is not None and wanted & set(data):
                try:
                    signal.pthread_kill(main_thread, RELAY)
                except (OSError, ProcessLookupError):
                    return
    finally:
        os.close(read_end)
