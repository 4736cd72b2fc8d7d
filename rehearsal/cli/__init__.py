"""Command line of the harness: ``python -m rehearsal COMMAND`` (each command has its own ``--help``).

``run [OPTIONS]``
    the rehearsal suites under pytest with the same options as ``pytest suites`` (``--istio-from``,
    ``--set``, ``--junitxml``, ``-x`` ...); the process becomes that pytest run, so its exit status and its
    handling of Ctrl-C are the rehearsal's own (:mod:`rehearsal.exitcodes`).
``demo [OPTIONS]``
    the same on the embedded simulated cluster, with a simulated time scale that looks real.
``report RUN_DIR``
    renders ``RUN_DIR/report.html`` again from ``RUN_DIR/rehearsal.json``.
``summary RUN_DIR``
    the run's verdict, cause and availability as Markdown (for ``$GITHUB_STEP_SUMMARY``).
``rollback [--downgrade] RUN_DIR``
    replays the journal a killed run left in ``RUN_DIR`` against its cluster, then proves the source is back.
``matrix FILE [--run -j N]``
    expands a matrix file into GitHub Actions' ``strategy.matrix`` JSON, or runs its entries here on simulated
    clusters (:mod:`rehearsal.matrix`).
``pitfalls [--only ID...] [-j N]``
    rehearses the known-pitfall scenarios of ``scenarios/`` on simulated clusters (:mod:`rehearsal.pitfalls`).
``index DIR... -o index.html``
    one page (and ``index.json``) over many runs (:mod:`rehearsal.index`).

Bad usage of any command is one line on stderr and exit status 4, as pytest's usage errors.
"""

from __future__ import annotations

import sys

from .. import exitcodes

USAGE = """usage: python -m rehearsal COMMAND [ARGS]

Rehearse an Istio upgrade on a throwaway cluster, with evidence and automatic rollback.

commands:
  run [OPTIONS]        rehearse: the suites under pytest with the same options (run --help)
  demo [OPTIONS]       rehearse on the embedded simulated cluster (python -m rehearsal demo --help)
  report RUN_DIR       render RUN_DIR/report.html again from RUN_DIR/rehearsal.json
  summary RUN_DIR      the run's verdict, cause and availability as Markdown (for $GITHUB_STEP_SUMMARY)
  rollback RUN_DIR     replay the rollback journal a killed run left in RUN_DIR, then prove the source is back
  matrix FILE          expand a matrix file into GitHub Actions' strategy.matrix JSON; --run -j N runs it here
  index DIR... -o FILE one HTML page (and JSON) over every run found under the folders
  pitfalls [--only ID] rehearse the known-pitfall scenarios (scenarios/) in parallel; one report

options:
  --version            print the harness's version (and git commit) and exit

exit status: 0 upgraded, 1 not upgraded (failed or rolled back), 2 interrupted once, 4 bad option,
130 interrupted twice (stopped at once).

The full rehearsal is a pytest run: pytest suites [OPTIONS] (pytest suites --help lists them under
"Istio upgrade rehearsal")."""


def usage_error(text: str) -> int:
    """One line on stderr, the status of a bad option."""
    print(f"error: {text}", file=sys.stderr)
    return exitcodes.BAD_OPTION


def version_line() -> str:
    from ..record import harness_identity

    identity = harness_identity()
    commit = identity.get("commit")
    suffix = f" (commit {commit[:12]}{', modified' if identity.get('dirty') else ''})" if commit else ""
    return f"istio-upgrade-rehearsal {identity['version']}{suffix}"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return exitcodes.UPGRADED if argv else exitcodes.BAD_OPTION
    if argv[0] in ("--version", "-V"):
        print(version_line())
        return exitcodes.UPGRADED
    command, rest = argv[0], argv[1:]
    if command in ("run", "demo"):
        from . import suites

        return suites.run(rest) if command == "run" else suites.demo(rest)
    if command in ("report", "summary", "rollback"):
        from . import records

        return {"report": records.report, "summary": records.summary, "rollback": records.rollback}[command](
            rest
        )
    if command == "matrix":
        from ..matrix import cli

        return cli(rest)
    if command == "pitfalls":
        from ..pitfalls.corpus import cli as pitfalls_cli

        return pitfalls_cli(rest)
    if command == "index":
        from ..index import cli as index_cli

        return index_cli(rest)
    import difflib

    commands = ["run", "demo", "report", "summary", "rollback", "matrix", "index", "pitfalls"]
    close = difflib.get_close_matches(command, commands, n=1)
    hint = f"did you mean {close[0]}?" if close else f"use one of {', '.join(commands)}"
    return usage_error(f"unknown command {command!r}: {hint} (python -m rehearsal --help)")
