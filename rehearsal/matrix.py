"""The rehearsal matrix as data: ``python -m rehearsal matrix FILE [--run -j N]`` (harness library).

A matrix file (YAML) names the pairs to rehearse, the strategies and the plan files; every combination is an
entry. ``pairs`` takes explicit pairs (``{from: 1.29.8, to: 1.30.5}``) and rules computed from the catalog
(``istiofacts/catalog.py``), so a new release changes the matrix without editing it:

``every-supported-minor-to-newest``
    the newest patch of every minor from which the newest release is a supported upgrade (Istio's policy in
    :func:`catalog.upgrade_path_problem`: at most one minor at a time), on the Kubernetes the rehearsal runs
    (both versions must support it), and the newest minor's previous patch (a patch upgrade).

Every entry is checked as the rehearsal checks its options (:func:`rehearsal.settings.resolve`: known
versions, no downgrade, readable plan) and against the upgrade policy, before anything runs; a bad file is one
line naming what is wrong, exit status 4.

Without ``--run`` the command prints GitHub Actions' ``strategy.matrix`` JSON (``{"include": [...]}``), one
object per entry with ``name``, ``from``, ``to``, ``strategy``, ``plan``, the kind release the harness is
pinned to (``kind_version``, from :mod:`rehearsal.cluster.kind`; the harness picks the node image itself) and
the images the rehearsal on kind will load from Docker (``images``, for the job's registry mirror), which
``.github/workflows/rehearsal.yml`` consumes.

With ``--run -j N`` it rehearses the entries here on simulated clusters, N at a time, each in its own process
(``python -m rehearsal run``, so each its own cluster) and session (a Ctrl-C here is passed on once to each,
so each rolls back and reports; a second one stops them at once), each run folder under ``--report-dir``
(default ``reports/matrix``), then writes one index over them (:mod:`rehearsal.index`).
"""

from __future__ import annotations

import difflib
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from istiofacts import catalog

from . import exitcodes
from .cluster import kind
from .settings import Settings, SettingsError, resolve
from .steps.mesh import kind_images

RULES = ("every-supported-minor-to-newest",)
KEYS = ("pairs", "strategies", "plans")
GITHUB_MAX_JOBS = 256  # a matrix may generate at most 256 jobs per workflow run (GitHub Actions docs)

USAGE = """usage: python -m rehearsal matrix FILE [--run [-j N] [--report-dir DIR] [-- REHEARSAL OPTIONS]]

Expand a matrix file (pairs, strategies, plans) into GitHub Actions' strategy.matrix JSON, or with --run
rehearse its entries here on simulated clusters, N at a time (default 2), then write one index.

matrix file (YAML):
  pairs: [every-supported-minor-to-newest, {from: 1.29.8, to: 1.30.5}]   # rules from the catalog, or pairs
  strategies: [in-place, istioctl]                                     # default [in-place]
  plans: [null, plans/cni.yaml]                                        # null: no plan; paths from the file

exit status: 0 every entry upgraded (or the JSON printed), 1 an entry did not upgrade, 2 interrupted,
4 a bad matrix file or option."""


class MatrixError(ValueError):
    """A bad matrix file; the message is one line naming what is wrong."""


@dataclass(frozen=True)
class Entry:
    name: str
    source: str
    target: str
    strategy: str
    plan: str  # "" for none; relative to the current folder
    images: tuple[str, ...] = ()  # what a rehearsal on kind pulls (rehearsal.steps.mesh.kind_images)

    def github(self) -> dict[str, str]:
        return {
            "name": self.name,
            "from": self.source,
            "to": self.target,
            "strategy": self.strategy,
            "plan": self.plan,
            "kind_version": kind.KIND_VERSION,
            "images": " ".join(self.images),
        }

    def options(self) -> list[str]:
        """The rehearsal options of this entry (``python -m rehearsal run`` / ``pytest suites``)."""
        args = ["--istio-from", self.source, "--istio-to", self.target, "--strategy", self.strategy]
        return args + (["--plan", self.plan] if self.plan else [])


def kubernetes_version() -> str:
    """The Kubernetes a rehearsal runs on by default: the simulator's default, which is also the version of
    the kind node image the harness is pinned to."""
    return Settings().k8s_version


def every_supported_minor_to_newest(k8s: str) -> list[tuple[str, str]]:
    newest = catalog.newest_minors(1)[0]
    target = newest.patches[-1]
    pairs = []
    for minor in sorted(catalog.CATALOG.values(), key=lambda m: m.version_tuple):
        sources = [p for p in minor.patches if p != target]
        if not sources:
            continue
        source = sources[-1]
        if catalog.upgrade_path_problem(source, target) is None and all(
            catalog.supports_kubernetes(v, k8s) for v in (source, target)
        ):
            pairs.append((source, target))
    return pairs


def _list(data: dict[str, Any], key: str, default: list[Any]) -> list[Any]:
    value = data.get(key, default)
    if value is None:
        return default
    return value if isinstance(value, list) else [value]


def _pairs(items: list[Any], k8s: str) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for item in items:
        if isinstance(item, str):
            if item not in RULES:
                close = difflib.get_close_matches(item, RULES, n=1)
                hint = f"did you mean {close[0]}?" if close else f"rules: {', '.join(RULES)}"
                raise MatrixError(f"pairs: unknown rule {item!r} ({hint}); or give {{from: X, to: Y}}")
            pairs += every_supported_minor_to_newest(k8s)
            continue
        if not isinstance(item, dict) or set(item) != {"from", "to"}:
            raise MatrixError(f"pairs: {item!r} is not a rule name nor {{from: VERSION, to: VERSION}}")
        source, target = str(item["from"]), str(item["to"])
        problem = catalog.upgrade_path_problem(source, target) if _known(source, target) else None
        if problem:
            raise MatrixError(f"pairs: {source} -> {target}: {problem}")
        for version in (source, target):
            if _known(version) and not catalog.supports_kubernetes(version, k8s):
                minor = catalog.minor_of(version)
                raise MatrixError(
                    f"pairs: Istio {version} does not support Kubernetes {k8s}, which the rehearsal runs "
                    f"(Istio {minor.minor} supports {minor.k8s_min} to {minor.k8s_max})"
                )
        pairs.append((source, target))
    return list(dict.fromkeys(pairs))


def _known(*versions: str) -> bool:
    try:
        for version in versions:
            catalog.check_known(version)
    except catalog.UnknownVersion:
        return False  # resolve() names it, in the rehearsal's own words
    return True


def load(path: Path) -> list[Entry]:
    """The entries of the matrix file at ``path``, every one checked."""
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise MatrixError(f"cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise MatrixError(f"{path} is not valid YAML: {' '.join(str(exc).split())}") from None
    if not isinstance(data, dict):
        raise MatrixError(f"{path}: a matrix file is a mapping with {', '.join(KEYS)}")
    for key in data:
        if key not in KEYS:
            close = difflib.get_close_matches(str(key), KEYS, n=1)
            hint = f" (did you mean {close[0]}?)" if close else f"; known keys: {', '.join(KEYS)}"
            raise MatrixError(f"{path}: unknown key {key!r}{hint}")
    k8s = kubernetes_version()
    try:
        pairs = _pairs(_list(data, "pairs", ["every-supported-minor-to-newest"]), k8s)
        strategies = [str(s) for s in _list(data, "strategies", ["in-place"])]
        plans = [_plan(path, p) for p in _list(data, "plans", [None])]
    except MatrixError as exc:
        raise MatrixError(f"{path}: {exc}") from None
    entries = []
    for source, target in pairs:
        for strategy in strategies:
            for plan in plans:
                try:
                    settings = resolve(
                        {"istio_from": source, "istio_to": target, "strategy": strategy, "plan": plan or None}
                    )
                except SettingsError as exc:
                    raise MatrixError(f"{path}: {exc}") from None
                name = f"{source}-to-{target}-{strategy}" + (f"-{Path(plan).stem}" if plan else "")
                entries.append(Entry(name, source, target, strategy, plan, tuple(kind_images(settings))))
    if not entries:
        raise MatrixError(f"{path}: the matrix has no entries (no pairs, strategies or plans)")
    if len(entries) > GITHUB_MAX_JOBS:
        raise MatrixError(f"{path}: {len(entries)} entries; GitHub Actions runs at most {GITHUB_MAX_JOBS}")
    return entries


def _plan(matrix_file: Path, value: Any) -> str:
    if value in (None, ""):
        return ""
    if not isinstance(value, str):
        raise MatrixError(f"plans: {value!r} is not a file path (or null for no plan)")
    resolved = (matrix_file.parent / value).resolve()
    return os.path.relpath(resolved) if resolved.is_relative_to(Path.cwd()) else str(resolved)


def github_matrix(entries: list[Entry]) -> dict[str, list[dict[str, str]]]:
    """GitHub Actions' ``strategy.matrix``: ``fromJSON`` of this is the matrix of the per-entry job."""
    return {"include": [e.github() for e in entries]}


@dataclass
class Outcome:
    entry: Entry
    returncode: int
    seconds: float
    run_dir: Path | None
    verdict: str | None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["entry"] = asdict(self.entry)
        data["run_dir"] = str(self.run_dir) if self.run_dir else None
        return data


class Interrupted(KeyboardInterrupt):
    """The matrix run was interrupted; ``outcomes`` are those of the rehearsals that had started."""

    def __init__(self, outcomes: list[Outcome]) -> None:
        super().__init__("interrupted")
        self.outcomes = outcomes


Launch = Callable[[Entry, Path, list[str]], "subprocess.Popen[bytes]"]


def launch(entry: Entry, folder: Path, extra: list[str]) -> subprocess.Popen[bytes]:
    """One entry as its own rehearsal: its own process (so its own simulated cluster) in its own session, so
    that only this command decides when it is interrupted; its output in ``folder/rehearsal.log``."""
    folder.mkdir(parents=True, exist_ok=True)
    args = [sys.executable, "-m", "rehearsal", "run", "--cluster", "sim", *entry.options()]
    args += ["--report-dir", str(folder), "-q", *extra]
    with open(folder / "rehearsal.log", "wb") as log:
        return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def run_entries(
    entries: list[Entry],
    report_dir: Path,
    jobs: int,
    extra: list[str] = [],  # noqa: B006 - read only
    start: Launch = launch,
    say: Callable[[str], None] = print,
) -> list[Outcome]:
    """Rehearse ``entries``, at most ``jobs`` at a time; returns their outcomes in matrix order."""
    pending = list(enumerate(entries))
    running: dict[int, tuple[subprocess.Popen[bytes], float]] = {}
    done: dict[int, Outcome] = {}
    interrupts = 0

    def on_signal(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_signal)
    try:
        while pending or running:
            try:
                while pending and len(running) < jobs and not interrupts:
                    index, entry = pending.pop(0)
                    running[index] = (start(entry, report_dir / entry.name, extra), time.monotonic())
                    say(f"started  {entry.name} ({len(running)} running, {len(pending)} waiting)")
                if interrupts:
                    pending.clear()
                for index, (process, started) in list(running.items()):
                    code = process.poll()
                    if code is None:
                        continue
                    del running[index]
                    entry = entries[index]
                    done[index] = _outcome(entry, code, time.monotonic() - started, report_dir / entry.name)
                    result = done[index]
                    say(f"{result.verdict or 'no verdict':<14} {entry.name} ({result.seconds:.1f}s)")
                if running:
                    _wait_any([process for process, _ in running.values()])
            except KeyboardInterrupt:
                interrupts += 1
                say(
                    "interrupted: passing it on to the running rehearsals (they roll back and report; "
                    "interrupt again to stop them at once)"
                    if interrupts == 1
                    else "interrupted again: stopping the running rehearsals at once"
                )
                for process, _ in running.values():
                    if process.poll() is None:
                        process.send_signal(signal.SIGINT if interrupts == 1 else signal.SIGTERM)
    finally:
        signal.signal(signal.SIGTERM, previous)
    outcomes = [done[i] for i in sorted(done)]
    if interrupts:
        raise Interrupted(outcomes)
    return outcomes


def _wait_any(processes: list[subprocess.Popen[bytes]]) -> None:
    """Block until one of ``processes`` has ended, leaving it for ``poll`` to reap (no polling by wall time).

    On Linux each process is watched through a pidfd (readable once it exits), so only these children
    count: waiting for any child of this process (``waitid(P_ALL, WNOWAIT)``) would return at once, forever,
    for an unreaped child someone else started, and spin. Elsewhere, a bounded wait on the first one."""
    pidfd_open = getattr(os, "pidfd_open", None)
    if pidfd_open is None:
        try:
            processes[0].wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            pass
        return
    fds: list[int] = []
    try:
        for process in processes:
            try:
                fds.append(pidfd_open(process.pid))
            except ProcessLookupError:
                return  # already reaped: poll will say so
        select.select(fds, [], [])
    finally:
        for fd in fds:
            os.close(fd)


def _outcome(entry: Entry, code: int, seconds: float, folder: Path) -> Outcome:
    runs = sorted(p for p in folder.glob("run-*") if (p / "rehearsal.json").is_file())
    verdict = None
    run_dir = runs[-1] if runs else None
    if run_dir is not None:
        try:
            verdict = json.loads((run_dir / "rehearsal.json").read_text()).get("verdict")
        except ValueError:
            verdict = None
    return Outcome(entry, code, round(seconds, 2), run_dir, verdict)


def cli(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return exitcodes.UPGRADED if argv else exitcodes.BAD_OPTION
    extra: list[str] = []
    if "--" in argv:
        extra = argv[argv.index("--") + 1 :]
        argv = argv[: argv.index("--")]
    file, rest = Path(argv[0]), argv[1:]
    run, jobs, report_dir = False, 2, Path("reports/matrix")
    known = ["--run", "-j", "--jobs", "--report-dir"]
    while rest:
        option = rest.pop(0)
        if option == "--run":
            run = True
        elif option in ("-j", "--jobs", "--report-dir"):
            if not rest:
                return _bad(f"{option} needs a value")
            value = rest.pop(0)
            if option == "--report-dir":
                report_dir = Path(value)
                continue
            if not value.isdigit() or int(value) < 1:
                return _bad(f"{option} {value!r}: not a whole number of rehearsals at a time, e.g. -j 2")
            jobs = int(value)
        else:
            close = difflib.get_close_matches(option, known, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            return _bad(f"unknown option {option!r}{hint}; rehearsal options go after --")
    try:
        entries = load(file)
    except MatrixError as exc:
        return _bad(str(exc))
    if not run:
        print(json.dumps(github_matrix(entries)))
        return exitcodes.UPGRADED
    return run_here(entries, report_dir, jobs, extra)


def run_here(entries: list[Entry], report_dir: Path, jobs: int, extra: list[str]) -> int:
    from . import index

    report_dir.mkdir(parents=True, exist_ok=True)
    print(f"rehearsing {len(entries)} entries on simulated clusters, {jobs} at a time, into {report_dir}")
    started = time.monotonic()
    interrupted = False
    try:
        outcomes = run_entries(entries, report_dir, jobs, extra)
    except Interrupted as exc:
        interrupted, outcomes = True, exc.outcomes
    wall = time.monotonic() - started
    (report_dir / "matrix.json").write_text(
        json.dumps(
            {"wall_seconds": round(wall, 2), "jobs": jobs, "outcomes": [o.to_dict() for o in outcomes]},
            indent=2,
        )
    )
    built = index.build([report_dir], report_dir / "index.html")
    print(f"index: {built.html.resolve()} ({len(built.runs)} runs)")
    if interrupted:
        return exitcodes.INTERRUPTED
    upgraded = sum(o.verdict == "upgraded" for o in outcomes)
    print(
        f"{upgraded} of {len(outcomes)} upgraded; wall {wall:.1f}s for "
        f"{sum(o.seconds for o in outcomes):.1f}s of rehearsals"
    )
    return exitcodes.UPGRADED if upgraded == len(outcomes) else exitcodes.NOT_UPGRADED


def _bad(text: str) -> int:
    print(f"error: {text}", file=sys.stderr)
    return exitcodes.BAD_OPTION


__all__ = ["Entry", "Interrupted", "MatrixError", "github_matrix", "load", "run_entries"]
