"""The matrix as data: a matrix file expands into GitHub Actions' ``strategy.matrix`` JSON with pairs computed
from the catalog, a bad file is one line, and ``--run -j N`` rehearses the entries here, N at a time, each in
its own process, then writes one index."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from istiofacts import catalog
from rehearsal import exitcodes, matrix
from rehearsal.cluster import kind
from tests.runs import ROOT

EXAMPLE = ROOT / "examples" / "matrix.yaml"


def _cli(*args: str, cwd: Path = ROOT, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rehearsal", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def test_every_supported_minor_to_newest_follows_the_catalogs_policy():
    newest = catalog.newest_minors(1)[0].patches[-1]
    k8s = matrix.kubernetes_version()
    pairs = matrix.every_supported_minor_to_newest(k8s)
    assert pairs and all(target == newest for _, target in pairs)
    sources = [source for source, _ in pairs]
    # The newest patch of each minor that qualifies, no minor twice, each a supported upgrade here.
    assert len({catalog.minor_name(s) for s in sources}) == len(sources)
    for source in sources:
        assert catalog.upgrade_path_problem(source, newest) is None
        assert catalog.supports_kubernetes(source, k8s)
        minor = catalog.minor_of(source)
        assert source == [p for p in minor.patches if p != newest][-1]
    # Every minor left out is left out for a reason the catalog gives.
    for minor in catalog.CATALOG.values():
        if minor.minor not in {catalog.minor_name(s) for s in sources}:
            source = [p for p in minor.patches if p != newest][-1]
            assert catalog.upgrade_path_problem(source, newest) or not catalog.supports_kubernetes(
                source, k8s
            )


def test_the_example_expands_into_githubs_matrix_json():
    result = _cli("matrix", str(EXAMPLE))
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    entries = data["include"]
    assert set(data) == {"include"}
    pairs = {(e["from"], e["to"]) for e in entries}
    assert set(matrix.every_supported_minor_to_newest(matrix.kubernetes_version())) <= pairs
    assert len(pairs) >= 4 and len(entries) == len(pairs) * 2  # every pair with both strategies
    assert {e["strategy"] for e in entries} == {"in-place", "istioctl"}
    assert len({e["name"] for e in entries}) == len(entries)
    assert all(e["kind_version"] == kind.KIND_VERSION and e["plan"] == "" for e in entries)


def test_plans_are_found_beside_the_matrix_file(tmp_path):
    (tmp_path / "plans").mkdir()
    (tmp_path / "plans" / "cni.yaml").write_text(
        "apiVersion: install.istio.io/v1alpha1\nkind: IstioOperator\nspec:\n  components:\n"
        "    cni:\n      enabled: true\n"
    )
    source, target = catalog.default_pair()
    (tmp_path / "m.yaml").write_text(
        f"pairs: [{{from: {source}, to: {target}}}]\nplans: [null, plans/cni.yaml]\n"
    )
    entries = json.loads(_cli("matrix", "m.yaml", cwd=tmp_path).stdout)["include"]
    assert [(e["plan"], e["name"]) for e in entries] == [
        ("", f"{source}-to-{target}-in-place"),
        ("plans/cni.yaml", f"{source}-to-{target}-in-place-cni"),
    ]


def _skipping_a_minor() -> str:
    oldest, _, newest = catalog.newest_minors(3)
    return f"pairs: [{{from: {oldest.patches[-1]}, to: {newest.patches[-1]}}}]\n"


@pytest.mark.parametrize(
    "content, message",
    [
        ("pairs: [every-suported-minor-to-newest]\n", "did you mean every-supported-minor-to-newest?"),
        ("strategy: [in-place]\n", "unknown key 'strategy' (did you mean strategies?)"),
        ("strategies: [blue-green]\n", "--strategy 'blue-green' is not one of: in-place, istioctl, canary"),
        ("plans: [missing.yaml]\n", "--plan"),
        ("pairs: [{from: 1.99.0, to: 1.99.1}]\n", "Istio 1.99 is not in the catalog"),
        (_skipping_a_minor(), "upgrades may move at most 1 minor"),
        ("pairs: [[1, 2]]\n", "is not a rule name nor {from: VERSION, to: VERSION}"),
        ("- just a list\n", "a matrix file is a mapping"),
    ],
)
def test_a_bad_matrix_file_is_one_line_naming_what_is_wrong(tmp_path, capsys, content, message):
    path = tmp_path / "matrix.yaml"
    path.write_text(content)
    status = matrix.cli([str(path), "--run", "--report-dir", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert status == exitcodes.BAD_OPTION
    assert len(err.strip().splitlines()) == 1 and message in err, err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "args, message",
    [(["--rnu"], "did you mean --run?"), (["--run", "-j", "0"], "-j '0': not a whole number of rehearsals")],
)
def test_a_bad_matrix_option_is_named(capsys, args, message):
    assert matrix.cli([str(EXAMPLE), *args]) == exitcodes.BAD_OPTION
    assert message in capsys.readouterr().err


def test_entries_run_at_most_n_at_a_time_each_in_its_own_process(tmp_path):
    """The scheduler with stand-in rehearsals (a process that ends with a given status): never more than
    ``jobs`` alive at once, all of them run, outcomes in matrix order."""
    entries = [matrix.Entry(f"e{i}", "1.0.0", "1.0.1", "in-place", "") for i in range(5)]
    alive: list[subprocess.Popen[bytes]] = []
    most = 0

    def start(entry: matrix.Entry, folder: Path, extra: list[str]) -> subprocess.Popen[bytes]:
        nonlocal most
        alive[:] = [p for p in alive if p.poll() is None]
        code = int(entry.name[1:]) % 2
        process = subprocess.Popen([sys.executable, "-c", f"import sys; sys.exit({code})"])
        alive.append(process)
        most = max(most, len(alive))
        return process

    outcomes = matrix.run_entries(entries, tmp_path, 2, start=start, say=lambda line: None)
    assert [o.entry.name for o in outcomes] == [e.name for e in entries]
    assert [o.returncode for o in outcomes] == [0, 1, 0, 1, 0]
    assert 1 <= most <= 2
    assert len({p.pid for p in alive}) == len(alive)


STAND_IN = (
    "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "print('ready', flush=True); sys.stdin.read()"
)


def test_an_interrupt_is_passed_on_once_to_each_running_rehearsal_and_nothing_more_starts(tmp_path):
    """Stand-in rehearsals that run until interrupted; the interrupt arrives as the second one starts (as a
    Ctrl-C would, raised where the command is): both get one SIGINT, the other three never start."""
    import signal

    entries = [matrix.Entry(f"e{i}", "1.0.0", "1.0.1", "in-place", "") for i in range(5)]
    started: list[subprocess.Popen[bytes]] = []

    def start(entry: matrix.Entry, folder: Path, extra: list[str]) -> subprocess.Popen[bytes]:
        if len(started) == 2:
            raise KeyboardInterrupt
        # The stand-in says when it runs its own code: a SIGINT during the interpreter's start-up would end it
        # with exit code 1 (a KeyboardInterrupt in site), not -SIGINT, whatever run_entries does. It takes
        # SIGINT as a rehearsal does (which installs its own handler): started in the background of a
        # non-interactive shell (make, CI, bench/flake.sh), it would inherit SIGINT ignored and never end.
        process = subprocess.Popen(
            [sys.executable, "-c", STAND_IN],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert process.stdout is not None and process.stdout.readline() == b"ready\n"
        started.append(process)
        return process

    with pytest.raises(matrix.Interrupted) as interrupted:
        matrix.run_entries(entries, tmp_path, 3, start=start, say=lambda line: None)
    assert [o.entry.name for o in interrupted.value.outcomes] == ["e0", "e1"]
    assert [p.returncode for p in started] == [-signal.SIGINT, -signal.SIGINT]


def test_the_matrix_runs_here_on_simulated_clusters_and_writes_one_index(tmp_path):
    """End to end: one entry (a full rehearsal in its own process), its run folder, the index over it."""
    source, target = catalog.default_pair()
    path = tmp_path / "matrix.yaml"
    path.write_text(f"pairs: [{{from: {source}, to: {target}}}]\n")
    out = tmp_path / "out"
    result = _cli(
        "matrix",
        str(path),
        "--run",
        "-j",
        "2",
        "--report-dir",
        str(out),
        "--",
        "--traffic-requests",
        "10",
        timeout=600,
    )
    assert result.returncode == exitcodes.UPGRADED, result.stdout + result.stderr
    name = f"{source}-to-{target}-in-place"
    assert f"upgraded       {name} (" in result.stdout
    [run_dir] = (out / name).glob("run-*")
    assert json.loads((run_dir / "rehearsal.json").read_text())["verdict"] == "upgraded"
    assert "verdict: upgraded" in (out / name / "rehearsal.log").read_text()
    index = json.loads((out / "index.json").read_text())
    assert [(r["run_id"], r["verdict"]) for r in index["runs"]] == [(run_dir.name, "upgraded")]
    assert (out / index["runs"][0]["report"]).resolve() == (run_dir / "report.html").resolve()
    summary = json.loads((out / "matrix.json").read_text())
    assert summary["jobs"] == 2 and summary["outcomes"][0]["verdict"] == "upgraded"
