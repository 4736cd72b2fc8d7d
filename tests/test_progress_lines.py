"""Progress everywhere: off a terminal a long wait gets a plain line at least every 15 s (judged on the waits'
own elapsed time, a fake clock here), lines from below the steps (kind, downloads) get through pytest's
capture, istioctl runs tell elapsed, deadline and the pods' states; and the cleanup keeps what it must and
never changes the verdict."""

from __future__ import annotations

import contextlib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from fixtures import plugin as plugin_module
from fixtures import rehearsal as rehearsal_fixtures
from rehearsal import waits
from rehearsal.istio import istioctl as istioctl_mod
from rehearsal.istio import watch as watch_mod
from rehearsal.report import html as report_html
from rehearsal.report import progress
from rehearsal.run import Run, StepFailed
from rehearsal.settings import Settings, resolve


class Reporter:
    def __init__(self, tty: bool) -> None:
        self.isatty = tty
        self.lines: list[str] = []
        self.rewritten: list[str] = []
        self._tw = SimpleNamespace(width_of_current_line=0, line=lambda: None)

    def write_line(self, text: str, **_: Any) -> None:
        self.lines.append(text)

    def rewrite(self, text: str, erase: bool = False) -> None:
        self.rewritten.append(text)

    def ensure_newline(self) -> None:
        pass


class Capture:
    def __init__(self) -> None:
        self.released = 0

    @contextlib.contextmanager
    def global_and_fixture_disabled(self) -> Any:
        self.released += 1
        yield


def _progress(tty: bool) -> tuple[plugin_module.Progress, Reporter, Capture]:
    reporter, capture = Reporter(tty), Capture()
    plugins = {"terminalreporter": reporter, "capturemanager": capture}
    config = SimpleNamespace(pluginmanager=SimpleNamespace(get_plugin=plugins.get))
    return plugin_module.Progress(config), reporter, capture  # type: ignore[arg-type]


@pytest.mark.parametrize("poll", [0.05, 0.7, 1.0])
def test_off_a_terminal_a_two_minute_wait_prints_a_line_at_least_every_15_seconds(poll, monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    shown, reporter, capture = _progress(tty=False)
    what = "deployment istiod in istio-system to roll out"
    elapsed, printed_at = 0.0, []
    while elapsed <= 120:
        before = len(reporter.lines)
        shown.on_wait(waits.WaitStatus(what, elapsed, 300))
        if len(reporter.lines) > before:
            printed_at.append(elapsed)
        elapsed += poll
    shown.on_wait(waits.WaitStatus(what, elapsed, 300, done=True))
    gaps = [b - a for a, b in zip([0.0, *printed_at], printed_at, strict=False)]
    assert len(printed_at) >= 8 and max(gaps) <= 15, printed_at
    assert reporter.lines[0] == f"... still waiting for {what}: {printed_at[0]:.0f}s of 300s"
    assert not reporter.rewritten and capture.released == len(reporter.lines)  # through pytest's capture


def test_off_a_terminal_a_short_wait_prints_nothing_and_on_one_the_live_line_is_rewritten(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    shown, reporter, _ = _progress(tty=False)
    for elapsed in (0.5, 5.0, 12.0):
        shown.on_wait(waits.WaitStatus("a short wait", elapsed, 300))
    assert reporter.lines == []
    live, terminal, _ = _progress(tty=True)
    live.on_wait(waits.WaitStatus("a wait", 5.0, 300))
    assert terminal.rewritten == [progress.live_line("a wait", 5.0, 300)] and terminal.lines == []


def test_notes_from_below_the_steps_get_through_the_capture(monkeypatch, capsys):
    shown, reporter, capture = _progress(tty=False)
    monkeypatch.setattr(progress, "notes", [shown.on_note])
    progress.note("[kind] creating kind cluster istio-rehearsal")
    assert reporter.lines == ["[kind] creating kind cluster istio-rehearsal"] and capture.released == 1
    monkeypatch.setattr(progress, "notes", [])
    progress.note("no plugin: standard error")
    assert capsys.readouterr().err == "no plugin: standard error\n"


def test_an_istioctl_download_tells_its_bytes(monkeypatch):
    lines: list[str] = []
    monkeypatch.setattr(progress, "notes", [lines.append])
    show = istioctl_mod.terminal_progress("1.31.1")
    assert show is not None
    total = 40_000_000
    for done in range(0, total + 1, 1_000_000):
        show(done, total)
    assert lines[0] == "downloading istioctl 1.31.1: 0.0/40.0 MB"
    assert lines[-1] == "downloading istioctl 1.31.1: 40.0/40.0 MB" and len(lines) == 5


def test_an_istioctl_run_tells_elapsed_deadline_and_the_pods_states(monkeypatch):
    heard: list[waits.WaitStatus] = []
    monkeypatch.setattr(waits, "observers", [heard.append])
    pod = {
        "metadata": {"name": "istiod-5d4f-x", "namespace": "istio-system"},
        "status": {
            "phase": "Pending",
            "containerStatuses": [{"name": "discovery", "state": {"waiting": {"reason": "ErrImagePull"}}}],
        },
    }
    watch = watch_mod.PodWatch(None, ["istio-system"])  # type: ignore[arg-type]
    watch.last_pods = {"istio-system": [pod]}
    watch_mod.ticker_for(watch, "istioctl 1.30.5 install")(12.0, 960.0)
    assert heard[-1].what == "istioctl 1.30.5 install (istiod-5d4f-x Pending (ErrImagePull))"
    assert (heard[-1].elapsed, heard[-1].deadline) == (12.0, 960.0)


def _ctx(tmp_path: Path, settings: Settings, provider: str) -> Any:
    run = Run(settings, tmp_path / "reports")
    run.versions["after"] = {"control_plane": ["x"]}
    run.verdict = "upgraded"
    cluster = SimpleNamespace(provider=provider, name="c")
    return SimpleNamespace(settings=settings, run=run, cluster=cluster)


def test_on_kind_nothing_is_uninstalled_and_keep_cluster_keeps_the_mesh(tmp_path, monkeypatch):
    def no_cleanup(ctx: Any) -> dict:
        raise AssertionError("cleanup ran on kind")

    monkeypatch.setattr(rehearsal_fixtures.rollback, "cleanup", no_cleanup)
    for keep in (False, True):
        ctx = _ctx(tmp_path, resolve({"cluster": "kind", "keep_cluster": keep}), "kind")
        rehearsal_fixtures.clean_up(ctx)
        cleanup = ctx.run.rollback["cleanup"]
        assert cleanup["ran"] is False and ("--keep-cluster" in cleanup["reason"]) == keep
        assert ctx.run.verdict == "upgraded"


def test_a_cleanup_error_is_reported_apart_and_never_changes_the_verdict(tmp_path, monkeypatch):
    def failing(ctx: Any) -> dict:
        raise StepFailed("uninstall the Istio the rehearsal installed: connection refused")

    monkeypatch.setattr(rehearsal_fixtures.rollback, "cleanup", failing)
    ctx = _ctx(tmp_path, Settings(), "kubeconfig")
    rehearsal_fixtures.clean_up(ctx)
    assert ctx.run.verdict == "upgraded" and ctx.run.failure is None
    assert ctx.run.rollback["cleanup"]["errors"] == [
        "uninstall the Istio the rehearsal installed: connection refused"
    ]
    ctx.run.conclude()
    ctx.run.save()
    report_html.write(ctx.run.dir, rehearsal_fixtures_record(ctx.run.dir))
    page = (ctx.run.dir / "report.html").read_text()
    assert "errors (the verdict is the upgrade" in page and "connection refused" in page


def rehearsal_fixtures_record(run_dir: Path) -> dict:
    import json

    return json.loads((run_dir / "rehearsal.json").read_text())
