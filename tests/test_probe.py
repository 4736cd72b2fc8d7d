"""The availability prober, its verdict, its chart, the simulated clock's ticks that pace it on the simulated
cluster, and the simulated data plane's endpoint view (EDS debounce, retries): unit tests, no cluster."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests

from kubesim.clock import SimClock
from kubesim.istio import eds
from kubesim.store import Store
from rehearsal.probe import Prober, Sample, Target, summarize
from rehearsal.probe.availability import outages, percentile, version_flips
from rehearsal.probe.targets import series
from rehearsal.report import availability as report
from rehearsal.settings import SettingsError, resolve

# -- a scripted HTTP session -------------------------------------------------------------------------------


@dataclass
class FakeResponse:
    status_code: int
    pod: str | None = None

    def json(self) -> Any:
        return {"os": {"hostname": self.pod}}


@dataclass
class ScriptedSession:
    """Answers by the request number: ``script(n)`` gives (status, pod) or raises a requests exception."""

    script: Any
    headers: dict[str, str] = field(default_factory=dict)
    calls: int = 0
    closed: bool = False

    def get(self, url: str, timeout: float) -> FakeResponse:
        self.calls += 1
        status, pod = self.script(self.calls)
        if status is None:
            raise requests.ConnectionError("refused")
        return FakeResponse(status, pod)

    def close(self) -> None:
        self.closed = True


def answered_by(response: Any) -> str | None:
    return response.json()["os"]["hostname"]


def prober_with(
    script: Any, rate: float = 20.0, versions: dict[str, str] | None = None
) -> tuple[Prober, Any]:
    session = ScriptedSession(script)
    clock = {"t": 1000.0}
    looked_up: list[str] = []

    def resolve_version(pod: str) -> str | None:
        looked_up.append(pod)
        return (versions or {}).get(pod)

    prober = Prober(
        [Target("ingress", "http://gw/echo/{n}", "echo.example", lambda: session, answered_by)],  # type: ignore[arg-type,return-value]
        rate,
        lambda: clock["t"],
        resolve_version,
    )
    return prober, (session, clock, looked_up)


def drive(prober: Prober, clock: dict[str, float], seconds: float) -> None:
    """Tick the prober as the simulated clock would, every interval for ``seconds``."""
    steps = round(seconds * prober.rate)
    for _ in range(steps):
        clock["t"] += prober.interval
        prober.tick(clock["t"])


# -- the prober --------------------------------------------------------------------------------------------


def test_the_prober_records_every_tick_with_status_latency_pod_and_version():
    prober, (session, clock, looked_up) = prober_with(
        lambda n: (200, "echo-old") if n <= 30 else (200, "echo-new"),
        versions={"echo-old": "1.0.0", "echo-new": "1.1.0"},
    )
    prober.start(ticker=lambda period, callback: lambda: None)
    with prober.phase("apply"):
        drive(prober, clock, 3.0)
    prober.stop()
    samples = prober.snapshot()
    assert len(samples) == 60 and session.calls == 60 and session.closed
    assert session.headers["Host"] == "echo.example"
    assert {s.pod for s in samples} == {"echo-old", "echo-new"}
    assert [s.version for s in samples[29:31]] == ["1.0.0", "1.1.0"]
    assert looked_up == ["echo-old", "echo-new"]  # once per pod, not per request
    assert all(s.latency_ms >= 0 for s in samples)
    assert prober.phases[0].name == "apply" and prober.phases[0].end == clock["t"]
    assert prober.pacing == "simulated clock ticks"
    prober.tick(clock["t"] + 1)  # after stop: nothing more
    assert len(prober.snapshot()) == 60


def test_the_record_is_bounded_and_counts_what_it_pushed_out():
    prober, (_, clock, _) = prober_with(lambda n: (200, "p"))
    prober.max_samples = 10
    prober.__post_init__()
    prober.start(ticker=lambda period, callback: lambda: None)
    drive(prober, clock, 1.0)
    assert len(prober.snapshot()) == 10 and prober.dropped == 10


def test_a_paused_prober_sends_nothing_and_says_why():
    prober, (session, clock, _) = prober_with(lambda n: (200, "p"))
    prober.start(ticker=lambda period, callback: lambda: None)
    with prober.pause("counting"):
        drive(prober, clock, 1.0)
    assert session.calls == 0 and prober.phases[0].name == "paused: counting"


def test_a_refused_connection_is_a_failed_sample_named_by_the_client_exception():
    prober, (_, clock, _) = prober_with(lambda n: (None, None))
    prober.start(ticker=lambda period, callback: lambda: None)
    drive(prober, clock, 0.1)
    assert [(s.status, s.ok) for s in prober.snapshot()] == [("ConnectionError", False)] * 2


# -- the verdict -------------------------------------------------------------------------------------------


def samples_of(statuses: str, interval: float = 0.05) -> list[Sample]:
    """'.' for a 200, 'x' for a 503, one per interval."""
    return [
        Sample(i * interval, "ingress", "200" if c == "." else "503", c == ".", float(i % 10))
        for i, c in enumerate(statuses)
    ]


def test_outages_are_runs_of_consecutive_failures_until_the_next_success():
    found = outages(samples_of("..xxx....x..xx"), 0.05)
    assert [(o["requests"], o["seconds"]) for o in found] == [(3, 0.15), (1, 0.05), (2, 0.1)]
    ongoing = outages(samples_of("..xx"), 0.05)
    assert ongoing[0]["ongoing"] and ongoing[0]["seconds"] == 0.1


def test_percentiles_are_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 95), percentile(values, 99)) == (50.0, 95.0, 99.0)
    assert percentile([], 50) is None


def test_the_slo_fails_on_the_ratio_and_on_the_longest_outage():
    prober, _ = prober_with(lambda n: (200, "p"))
    prober.started = 0.0
    good = summarize(prober, 0.99, 1.0, samples_of("." * 200))
    assert (
        good["slo"]["met"]
        and good["success_ratio"] == 1.0
        and good["targets"]["ingress"]["max_gap_seconds"] == 0.05
    )
    # 30 failures in a row: 1.5 s, and 15 % of the requests
    bad = summarize(prober, 0.99, 1.0, samples_of("." * 100 + "x" * 30 + "." * 70))
    assert not bad["slo"]["met"]
    assert len(bad["slo"]["breaches"]) == 2
    assert "below the SLO" in bad["slo"]["breaches"][0] and "1.5 s" in bad["slo"]["breaches"][1]
    assert bad["outages"][0]["statuses"] == {"503": 30}
    assert bad["targets"]["ingress"]["outages"] == {"count": 1, "longest_seconds": 1.5, "total_seconds": 1.5}
    # a single failed request is within a 1 s outage SLO but below a 0.999 ratio of 200 requests
    blip = summarize(prober, 0.999, 1.0, samples_of("." * 100 + "x" + "." * 99))
    assert [b.split(":")[0] for b in blip["slo"]["breaches"]] == ["1 of 200 requests failed"]


def test_a_version_flip_is_where_answers_moved_to_another_version_and_stayed():
    def answers(t0: float, versions: str) -> list[Sample]:
        return [
            Sample(t0 + i, "ingress", "200", True, 1.0, f"pod-{v}", {"a": "1.0", "b": "1.1"}[v])
            for i, v in enumerate(versions)
        ]

    # old only, then old and new in turn (a rolling restart), then new only, then back (a rollback)
    samples = answers(0, "aaaaaa" + "abab" + "bbbbbb" + "aaaaa")
    samples.insert(3, Sample(2.5, "ingress", "503", False, 1.0))  # a failure does not reset anything
    flips = version_flips(samples)
    assert flips == [
        {"t": 9.0, "target": "ingress", "from": "1.0", "to": "1.1"},
        {"t": 16.0, "target": "ingress", "from": "1.1", "to": "1.0"},
    ]


def test_phases_get_their_own_figures():
    prober, (_, clock, _) = prober_with(lambda n: (503, None) if 21 <= n <= 25 else (200, "p"))
    prober.start(ticker=lambda period, callback: lambda: None)
    drive(prober, clock, 1.0)
    with prober.phase("restart"):
        drive(prober, clock, 1.0)
    drive(prober, clock, 1.0)
    prober.stop()
    data = summarize(prober, 0.999, 1.0)
    phase = data["phases"][0]
    assert phase["name"] == "restart" and phase["targets"]["ingress"]["statuses"] == {"200": 16, "503": 5}
    assert data["targets"]["ingress"]["requests"] == 60


# -- the chart ---------------------------------------------------------------------------------------------


def test_the_report_section_draws_the_chart_and_says_what_happened():
    prober, (_, clock, _) = prober_with(
        lambda n: (503, None) if 41 <= n <= 70 else (200, "old" if n < 41 else "new"),
        versions={"old": "1.0", "new": "1.1"},
    )
    prober.start(ticker=lambda period, callback: lambda: None)
    drive(prober, clock, 1.0)
    with prober.phase("workload restart"):
        prober.mark("restart deployment/shop/web")
        drive(prober, clock, 3.0)
    prober.stop()
    data = summarize(prober, 0.999, 1.0)
    data["series"] = series(prober)
    html = report.section({"availability": json.loads(json.dumps(data))})
    assert "Missed the SLO" in html and "30 failed ingress request(s) in a row" in html
    svg = html[html.index("<svg") : html.index("</svg>")]
    assert svg.count('class="success ingress"') == 1 and 'class="latency ingress"' in svg
    assert 'class="phase"' in svg and "workload restart" in svg
    assert 'class="outage"' in svg and 'class="flip"' in svg and "\u2192 1.1" in svg
    assert 'class="mark"' in svg
    assert "<script" not in html and "http://" not in svg.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert report.section({"availability": None}) == ""
    assert "could not start" in report.section({"availability": {"error": "the prober could not start: X"}})


# -- settings ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "seconds"), [("1s", 1.0), ("500ms", 0.5), ("2", 2.0), (0.25, 0.25)])
def test_slo_max_outage_takes_a_duration(text, seconds):
    assert resolve({"slo_max_outage": text}).slo_max_outage == seconds


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"slo_max_outage": "soon"}, "--slo-max-outage 'soon': not seconds"),
        ({"slo_success": 1.5}, "--slo-success 1.5: must be a ratio"),
        ({"probe_rate": 0}, "--probe-rate 0: must be more than 0"),
    ],
)
def test_bad_availability_options_are_one_line(values, message):
    with pytest.raises(SettingsError, match=message.replace("(", r"\(")):
        resolve(values)


def test_the_defaults_are_the_readmes():
    settings = resolve({})
    assert (settings.probe_rate, settings.slo_success, settings.slo_max_outage) == (20.0, 0.999, 1.0)


# -- the simulated clock's ticks ---------------------------------------------------------------------------


def test_a_clock_jump_stops_at_every_tick_and_the_clock_reads_the_tick_there():
    clock = SimClock.manual_clock()
    start = clock.now()
    seen: list[tuple[float, float]] = []
    remove = clock.add_ticker(0.05, lambda instant: seen.append((instant - start, clock.now() - start)))
    clock.advance(1.0)
    assert len(seen) == 20
    assert all(abs(instant - now) < 1e-6 for instant, now in seen)
    assert abs(seen[0][0] - 0.05) < 1e-6 and abs(seen[-1][0] - 1.0) < 1e-6
    assert abs(clock.now() - start - 1.0) < 1e-6
    remove()
    clock.advance(1.0)
    assert len(seen) == 20


def test_a_ticker_that_moves_the_clock_does_not_tick_again_inside_itself():
    clock = SimClock.manual_clock()
    calls: list[float] = []

    def tick(instant: float) -> None:
        calls.append(instant)
        clock.advance(0.01)

    clock.add_ticker(0.1, tick)
    clock.advance(0.35)
    assert 3 <= len(calls) <= 4


# -- the simulated data plane's endpoint view --------------------------------------------------------------


class FakeManager:
    def __init__(self) -> None:
        self.timers: list[tuple[float, Any]] = []

    def after(self, seconds: float, callback: Any, repeat: bool = False) -> None:
        self.timers.append((seconds, callback))


class FakeCluster:
    def __init__(self) -> None:
        self.store = Store()
        self.clock = SimClock.manual_clock()
        self.manager = FakeManager()
        self.extensions: dict[str, Any] = {}


def pod(name: str, ready: bool, ip: str, deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "namespace": "shop",
        "labels": {"app": "web"},
        "resourceVersion": "1",
    }
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {
        "metadata": meta,
        "spec": {"containers": [{"name": "web", "ports": [{"name": "http", "containerPort": 8080}]}]},
        "status": {"podIP": ip, "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


SERVICE = {
    "metadata": {"name": "web", "namespace": "shop"},
    "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
}


def fire(cluster: FakeCluster, seconds: float) -> None:
    cluster.clock.advance(seconds)
    due, cluster.manager.timers = cluster.manager.timers, []
    for _, callback in due:
        callback()


def test_proxies_see_an_endpoint_change_only_after_istiods_debounce():
    cluster = FakeCluster()
    cluster.store.put(("", "pods"), pod("web-a", True, "10.0.0.1"), "ADDED")
    view = eds.view_of(cluster)  # type: ignore[arg-type]
    assert view.endpoints(SERVICE, "80") == [("10.0.0.1", 8080)]
    # web-a starts terminating, web-b becomes ready: nothing changes for the proxies yet
    cluster.store.put(("", "pods"), pod("web-a", False, "10.0.0.1", deleting=True), "MODIFIED")
    cluster.store.put(("", "pods"), pod("web-b", True, "10.0.0.2"), "ADDED")
    assert view.endpoints(SERVICE, "80") == [("10.0.0.1", 8080)]
    assert [s for s, _ in cluster.manager.timers] == [eds.DEBOUNCE_AFTER]
    fire(cluster, eds.DEBOUNCE_AFTER)
    assert view.endpoints(SERVICE, "80") == [("10.0.0.2", 8080)] and view.pushes == 1


def test_a_steady_stream_of_changes_is_pushed_at_the_debounce_max():
    cluster = FakeCluster()
    view = eds.view_of(cluster)  # type: ignore[arg-type]
    n = 0
    while view.pushes == 0 and n < 200:
        n += 1
        cluster.store.put(("", "pods"), pod(f"web-{n}", True, f"10.0.1.{n % 250}"), "ADDED")
        fire(cluster, 0.09)  # always a new change before 100 ms of quiet
    assert view.pushes == 1 and 10.0 <= n * 0.09 <= 10.2


def test_a_request_tries_the_next_host_on_retry_and_no_host_is_no_attempt():
    cluster = FakeCluster()
    for name, ip in (("web-a", "10.0.0.1"), ("web-b", "10.0.0.2")):
        cluster.store.put(("", "pods"), pod(name, True, ip), "ADDED")
    view = eds.view_of(cluster)  # type: ignore[arg-type]
    first, second = view.attempts(SERVICE, "80"), view.attempts(SERVICE, "80")
    assert len(first) == 1 + eds.DEFAULT_RETRIES and first[0] != first[1]
    assert first[0] != second[0]  # round robin
    empty = FakeCluster()
    assert eds.view_of(empty).attempts(SERVICE, "80") == []  # type: ignore[arg-type]


# -- the verdict's words -----------------------------------------------------------------------------------


def test_the_record_says_interrupted_and_rollback_rehearsed():
    from rehearsal.record import verdict

    assert verdict.recorded(None) == "interrupted" and verdict.recorded("failed") == "failed"
    rehearsed = {"mode": "always", "ran": True, "verified": True}
    assert verdict.summary("upgraded", rehearsed) == "upgraded, rollback rehearsed"
    assert verdict.summary("upgraded", {"mode": "on-failure", "ran": False}) == "upgraded"
    assert verdict.summary(None, {}) == "interrupted"
    assert verdict.MEANING["interrupted"] == verdict.MEANING[None]


@pytest.mark.parametrize(
    ("proxy", "workload"),
    [
        ("echo-rmt9hcxkwz-zh5qk.rehearsal-apps", "rehearsal-apps/echo"),
        ("istio-ingressgateway-vb9smjgq2c-8wjbk.istio-system", "istio-system/istio-ingressgateway"),
        ("istio-cni-node-x2x9z.kube-system", "kube-system/istio-cni-node"),  # a DaemonSet's pod
        ("db-0.shop", "shop/db"),  # a StatefulSet's
        ("my-gateway.shop", "shop/my-gateway"),  # a bare pod: nothing generated to strip
    ],
)
def test_the_versions_table_groups_proxies_by_workload(proxy, workload):
    from rehearsal.report.html import workload_of

    assert workload_of(proxy) == workload
