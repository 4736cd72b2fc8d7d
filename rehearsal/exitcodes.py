"""The exit statuses of a rehearsal, in one place (harness library; no pytest).

A rehearsal is a pytest run (``pytest suites``, ``python -m rehearsal run``, ``python -m rehearsal demo``), so
its statuses are pytest's own where pytest decides them (``pytest.ExitCode``: 1 tests failed, 2 interrupted,
4 usage error), and the plugin maps the verdict onto them (``fixtures/plugin.py``: any verdict but
``upgraded`` makes the session fail). The other commands of ``python -m rehearsal`` use the same numbers for
the same meanings. ``tests/test_cli.py`` checks these against ``pytest.ExitCode`` and the README's table.
"""

from __future__ import annotations

#: The upgrade succeeded and every validation passed (verdict ``upgraded``); for the other commands: done.
UPGRADED = 0
#: The upgrade did not succeed: verdict ``failed``, ``rolled-back`` or ``rollback-failed`` (pytest's
#: TESTS_FAILED); for ``rollback`` and ``index``: the rollback was not proven, a run folder is invalid.
NOT_UPGRADED = 1
#: Interrupted once (Ctrl-C or SIGTERM): the step in flight stopped, the rollback per ``--rollback`` and the
#: cleanup ran, the report was written (pytest's INTERRUPTED).
INTERRUPTED = 2
#: A bad option or value, before anything touched a cluster (pytest's USAGE_ERROR).
BAD_OPTION = 4
#: Interrupted twice: stopped at once; the journal stays in the run folder and the rollback command is
#: printed (128 + SIGINT, as a shell reports a process ended by Ctrl-C).
STOPPED_AT_ONCE = 130

#: The README's table, in order: (status, meaning).
TABLE: tuple[tuple[int, str], ...] = (
    (UPGRADED, "upgraded: the upgrade succeeded and every validation passed"),
    (NOT_UPGRADED, "the upgrade did not succeed (failed, rolled back, or the rollback failed)"),
    (INTERRUPTED, "interrupted once: rolled back per --rollback, cleaned up, report written"),
    (BAD_OPTION, "a bad option or value; nothing was touched"),
    (STOPPED_AT_ONCE, "interrupted twice: stopped at once; run the printed rollback command"),
)
