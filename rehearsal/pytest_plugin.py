"""The pytest plugin of the rehearsal: options, ini defaults, the resolved settings, and the report wiring.

Hooks only; the state lives in the :class:`~rehearsal.run.Run` the fixtures create. When the session runs the
suites (``pytest suites``), every run gets ``reports/<run-id>/`` with ``report.html`` (pytest-html,
self-contained), ``junit.xml`` and ``rehearsal.json``; a step that failed skips the rest of the upgrade; the
verdict decides the exit status (non-zero whenever the upgrade did not succeed, rolled back or not).
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import pytest

from .run import Run, new_run_id
from .settings import Settings, SettingsError, load_config, resolve

SETTINGS_KEY = pytest.StashKey[Settings]()
RUN_KEY = pytest.StashKey[Run]()
RUN_ID_KEY = pytest.StashKey[str]()
STEPS_SEEN = pytest.StashKey[int]()
SUITES = Path(__file__).resolve().parent.parent / "suites"

# option -> (setting, help, extra argparse keywords)
OPTIONS: list[tuple[str, str, str, dict[str, Any]]] = [
    ("--cluster", "cluster", "where to rehearse: sim (default, the embedded simulated cluster), kind, or "
     "kubeconfig (an existing cluster)", {}),
    ("--rehearsal-kubeconfig", "kubeconfig", "kubeconfig of the existing cluster (with --cluster kubeconfig)", {}),
    ("--rehearsal-context", "context", "context in that kubeconfig (default: its current context)", {}),
    ("--istio-from", "istio_from", "the Istio version running today, e.g. 1.29.5 (default: the newest patch of "
     "the second newest minor)", {}),
    ("--istio-to", "istio_to", "the Istio version to upgrade to (default: the newest release)", {}),
    ("--plan", "plan", "an IstioOperator file with your install settings", {}),
    ("--set", "sets", "an install setting like istioctl's --set KEY=VALUE (repeatable)", {"action": "append"}),
    ("--strategy", "strategy", "in-place (generate, dry-run, apply, as the runbook) or istioctl "
     "(istioctl upgrade)", {}),
    ("--rollback", "rollback", "on-failure (default), always (also after a successful upgrade) or never", {}),
    ("--report-dir", "report_dir", "where run folders go (default reports/)", {}),
    ("--sim-faults", "sim_faults", "a YAML file of simulator faults, armed once the baseline is established", {}),
    ("--sim-time-scale", "sim_time_scale", "wall seconds per simulated second on the simulated cluster "
     "(default 0: no simulated waiting)", {}),
    ("--k8s-version", "k8s_version", "Kubernetes version of the simulated cluster (default 1.33.1)", {}),
    ("--istioctl-from", "istioctl_from_path", "path of the source version's istioctl (else PATH, cache or "
     "download)", {}),
    ("--istioctl-to", "istioctl_to_path", "path of the target version's istioctl", {}),
    ("--traffic-requests", "traffic_requests", "requests per traffic check (default 50)", {}),
    ("--step-timeout", "timeout", "seconds any one wait may take (default 300)", {}),
    ("--rehearsal-config", "config", "a YAML file of defaults for these options", {}),
]


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    group = parser.getgroup("rehearsal", "Istio upgrade rehearsal")
    for option, dest, text, extra in OPTIONS:
        group.addoption(option, dest=f"rehearsal_{dest}", default=None, help=text, **extra)
        if dest not in ("config", "sets"):
            parser.addini(f"rehearsal_{dest}", f"default for {option}", default=None)
    # pytest-kind (the kind extra) already owns --keep-cluster with the same meaning; reuse it when present.
    if not pluginmanager.has_plugin("pytest-kind"):
        group.addoption("--keep-cluster", action="store_true", default=False,
                        help="keep the cluster after the run (kind), for debugging")


def _values(config: pytest.Config) -> dict[str, Any]:
    file_values = load_config(config.getoption("rehearsal_config"))
    values: dict[str, Any] = {}
    for option, dest, _, _ in OPTIONS:
        if dest == "config":
            continue
        cli = config.getoption(f"rehearsal_{dest}")
        ini = config.getini(f"rehearsal_{dest}") if dest != "sets" else None
        values[dest] = cli if cli is not None else file_values.get(dest, ini if ini not in ("", None) else None)
    values["keep_cluster"] = bool(config.getoption("keep_cluster", default=False) or file_values.get("keep_cluster"))
    if config.pluginmanager.has_plugin("pytest-kind"):
        name = config.getoption("cluster_name", default=None)
        if name and name != "pytest-kind":
            values["kind_name"] = name
    return values


def rehearsing(config: pytest.Config) -> bool:
    """True when this session runs the rehearsal suites (not the harness's own tests)."""
    for arg in config.args:
        path = Path(str(arg).split("::")[0]).resolve()
        if path == SUITES or SUITES in path.parents:
            return True
    return False


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "rehearsal_step(name): the runbook step a test exercises")
    if not rehearsing(config):
        return
    if getattr(config.option, "numprocesses", None):
        raise pytest.UsageError("a rehearsal runs its steps in order on one cluster; run parallel rehearsals as "
                                "separate pytest runs instead of -n")
    try:
        settings = resolve(_values(config))
    except SettingsError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[SETTINGS_KEY] = settings
    run_id = new_run_id()
    config.stash[RUN_ID_KEY] = run_id
    run_dir = Path(settings.report_dir) / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    # Report files of this run, unless the user chose their own.
    if hasattr(config.option, "htmlpath") and not config.option.htmlpath:
        config.option.htmlpath = str(run_dir / "report.html")
        config.option.self_contained_html = True
    if not getattr(config.option, "xmlpath", None):
        config.option.xmlpath = str(run_dir / "junit.xml")
    try:
        from pytest_metadata.plugin import metadata_key
        config.stash[metadata_key].update({"Istio from": settings.istio_from, "Istio to": settings.istio_to,
                                           "Cluster": settings.cluster, "Strategy": settings.strategy,
                                           "Rollback": settings.rollback, "Run": run_id})
    except (ImportError, KeyError):
        pass


def current_run(config: pytest.Config) -> Run | None:
    return config.stash.get(RUN_KEY, None)


def pytest_runtest_setup(item: pytest.Item) -> None:
    run = current_run(item.config)
    if run is None or "090_rollback" in item.nodeid:
        return
    failed_steps = [s for s in run.steps if s.outcome == "failed"]
    if failed_steps and "040_validate" not in item.nodeid:
        pytest.skip(f"not attempted: step '{failed_steps[0].name}' failed ({failed_steps[0].reason[:200]})")
    if failed_steps and "040_validate" in item.nodeid:
        pytest.skip(f"nothing to validate: step '{failed_steps[0].name}' failed")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    outcome = yield
    report = outcome.get_result()
    run = current_run(item.config)
    if run is None:
        return
    if report.failed and "090_rollback" not in item.nodeid:
        run.fail(f"{item.nodeid.split('::')[-1]}: {str(report.longrepr).splitlines()[-1][:300]}"
                 if report.longrepr else item.nodeid)
    seen = item.stash.get(STEPS_SEEN, 0)
    new_steps = run.steps[seen:]
    item.stash[STEPS_SEEN] = len(run.steps)
    report.rehearsal_steps = [s.name for s in new_steps]  # type: ignore[attr-defined]
    if not new_steps and report.when != "call":
        return
    try:
        from pytest_html import extras
    except ImportError:
        return
    report_extras = getattr(report, "extras", [])
    for step in new_steps:
        report_extras.append(extras.html(render_step(step)))
    evidence = item.stash.get(EVIDENCE_KEY, None)
    if evidence and report.when == "call":
        report_extras.append(extras.json(evidence, name="findings"))
    report.extras = report_extras


EVIDENCE_KEY = pytest.StashKey[dict]()


def render_step(step: Any) -> str:
    """One step as static HTML; everything from the run is escaped."""
    e = html.escape
    rows = [f"<h4>step: {e(step.name)} &mdash; {e(step.outcome)}</h4>",
            f"<p>{e(step.reason)}</p>" if step.reason else "",
            f"<p>took {step.ended - step.started:.2f}s</p>"]
    for item in step.evidence:
        if item["type"] == "command":
            rows.append(f"<details><summary><code>{e(' '.join(item['argv'][:8]))}</code> exit {item['exit_code']} "
                        f"({item['duration']:.2f}s)</summary><pre>{e(item['stdout'][-4000:])}</pre>"
                        f"<pre>{e(item['stderr'][-2000:])}</pre></details>")
        elif item["type"] == "data":
            rows.append(f"<details><summary>{e(item['title'])}</summary><pre>"
                        f"{e(json.dumps(item['data'], indent=2, default=str)[:8000])}</pre></details>")
        elif item["type"] == "traceback":
            rows.append(f"<details><summary>traceback</summary><pre>{e(item['text'][-4000:])}</pre></details>")
    for artifact in step.artifacts:
        rows.append(f"<p>artifact: <code>{e(artifact['path'])}</code> ({e(artifact['description'])})</p>")
    return "<div class='rehearsal-step'>" + "".join(rows) + "</div>"


def pytest_html_report_title(report: Any) -> None:
    report.title = "Istio upgrade rehearsal"


def pytest_html_results_table_header(cells: list[str]) -> None:
    cells.insert(2, "<th>Steps</th>")


def pytest_html_results_table_row(report: Any, cells: list[str]) -> None:
    cells.insert(2, f"<td>{html.escape(', '.join(getattr(report, 'rehearsal_steps', [])))}</td>")


def pytest_html_results_summary(prefix: list[str], summary: list[str], postfix: list[str], session: Any) -> None:
    run = current_run(session.config)
    if run is None:
        return
    e = html.escape
    data = run.to_dict()
    rollback = data["rollback"]
    prefix.append(
        f"<h2>Verdict: {e(str(data['verdict']))}</h2>"
        f"<p>Istio {e(data['from'])} &rarr; {e(data['to'])} on {e(str(data['cluster']))}, strategy "
        f"{e(data['strategy'])}, rollback {e(rollback.get('mode', ''))}</p>"
        + (f"<p>First failure: {e(str(data['failure']))}</p>" if data["failure"] else "")
        + f"<p>Versions before: {e(json.dumps(data['versions'].get('before', {}).get('control_plane')))}; after: "
          f"{e(json.dumps(data['versions'].get('after', {}).get('control_plane')))}</p>"
        + f"<p>Rollback: {'ran' if rollback.get('ran') else 'not run'}"
          f"{', verified' if rollback.get('verified') else ''}"
          f"{' &mdash; ' + e(str(rollback.get('reason'))) if rollback.get('reason') else ''}</p>")


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    run = current_run(session.config)
    if run is None:
        return
    if run.verdict is None:
        run.verdict = "upgraded" if run.failure is None and exitstatus == 0 else "failed"
    run.save()
    if run.verdict != "upgraded" and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    run = current_run(config)
    if run is None:
        return
    terminalreporter.write_sep("=", f"rehearsal {run.run_id}: {run.verdict}")
    terminalreporter.write_line(f"Istio {run.settings.istio_from} -> {run.settings.istio_to} on {run.cluster_name}")
    if run.failure:
        terminalreporter.write_line(f"first failure: {run.failure}")
    rollback = run.rollback
    if rollback.get("ran"):
        terminalreporter.write_line(f"rollback: {'verified' if rollback.get('verified') else 'NOT verified'}")
    terminalreporter.write_line(f"report: {run.dir / 'report.html'}")
    terminalreporter.write_line(f"record: {run.dir / 'rehearsal.json'}")
