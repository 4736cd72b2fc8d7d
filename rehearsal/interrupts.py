"""Ctrl-C and SIGTERM during a rehearsal: the first one stops the run where it is and lets the safety net act,
the second one stops at once.

Sits around the session (installed by the ``rehearsal`` fixture). On the first SIGINT or SIGTERM the step in
flight is interrupted (it is recorded as failed, and its change, like any other, is in the journal), then the
usual end of the run follows: the rollback per ``--rollback``, the cleanup, the lease released, the report
written. SIGTERM gets the same treatment as Ctrl-C, rather than its default of ending the process on the spot.
A second signal ends the process at once: the journal stays in the run folder and the command that replays it
is printed.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from . import retry
from .run import Run

SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _write_stderr(text: str) -> None:
    sys.stderr.write(text)
    sys.stderr.flush()


class Interrupts:
    def __init__(self, run: Run, write: Callable[[str], None] | None = None) -> None:
        self.run = run
        self.count = 0
        self.previous: dict[int, Any] = {}
        # How to reach the user's terminal (pytest captures stderr while fixtures run).
        self.write = write or _write_stderr

    def rollback_command(self) -> str:
        return f"python -m rehearsal rollback {self.run.dir}"

    def handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        self.count += 1
        if self.count > 1:
            retry.interrupt()
            self.write(
                f"\n{name} again: stopped at once. The journal is in {self.run.dir / 'journal.json'}; "
                f"to roll the cluster back, run:\n  {self.rollback_command()}\n"
            )
            os._exit(130)
        self.run.fail(f"interrupted by {name}")
        self.write(
            f"\n{name}: stopping the rehearsal; rolling back per --rollback {self.run.settings.rollback} and "
            "cleaning up (send it again to stop at once)\n"
        )
        raise KeyboardInterrupt(f"interrupted by {name}")

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signals can only be handled in the main thread
        for signum in SIGNALS:
            self.previous[signum] = signal.signal(signum, self.handle)

    def uninstall(self) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        self.previous.clear()
