"""Transient API answers are survived: 429 (with Retry-After), 500, 502, 503, 504 and reset connections are
retried with capped backoff inside the deadline, a change that took effect is not made twice, istioctl calls
that failed on such an answer are run again, and a whole rehearsal ends as it does without faults."""

from __future__ import annotations

import stat
import sys
from pathlib import Path
from typing import Any

import pytest

from istiofacts import catalog
from kubesim import SimCluster
from rehearsal import retry
from rehearsal.cluster.base import Cluster
from tests.runs import scenario

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def sim(tmp_path):
    with SimCluster(time_scale=0, kubeconfig=tmp_path / "kubeconfig") as cluster:
        yield cluster


def _core(sim: SimCluster, events: list[dict[str, Any]], budget: float = 60.0) -> Any:
    from kubernetes import client

    assert sim.kubeconfig_path is not None
    cluster = Cluster("kubeconfig", "sim", sim.kubeconfig_path, sim.context)
    cluster.retry_listeners.append(events.append)
    cluster.retry_budget = budget
    return client.CoreV1Api(cluster.api_client())


@pytest.mark.parametrize("code", [429, 500, 503, 504])
def test_each_transient_answer_is_retried_and_recorded(sim, code):
    events: list[dict[str, Any]] = []
    sim.faults.fail_api("list", "namespaces", code=code, times=2, retry_after=0)
    names = {n.metadata.name for n in _core(sim, events).list_namespace().items}
    assert "default" in names
    assert [(e["method"], e["status"], e["attempt"]) for e in events] == [
        ("GET", code, 1),
        ("GET", code, 2),
    ]
    assert all(e["path"] == "/api/v1/namespaces" for e in events)


def test_retry_after_is_honoured(sim):
    events: list[dict[str, Any]] = []
    sim.faults.fail_api("get", "namespaces", code=429, times=1, retry_after=1)
    _core(sim, events).read_namespace("default")
    assert events[0]["status"] == 429 and events[0]["waited_seconds"] >= 1.0


def test_a_persistent_failure_ends_within_the_budget(sim):
    from kubernetes.client.exceptions import ApiException

    events: list[dict[str, Any]] = []
    sim.faults.fail_api("get", "namespaces", code=503, times=-1)
    with pytest.raises(ApiException) as raised:
        _core(sim, events, budget=1.0).read_namespace("default")
    assert raised.value.status == 503
    assert events and sum(e["waited_seconds"] for e in events) <= 1.0


def test_the_backoff_is_capped():
    backoff = retry.Backoff(base=0.2, cap=5.0)
    assert [backoff.delay(n) for n in range(8)][-3:] == [5.0, 5.0, 5.0]
    assert backoff.delay(0, retry_after=3) == 3


class _Response:
    def __init__(self, status: int) -> None:
        self.status, self.reason = status, ""
        self.headers: dict[str, str] = {}

    def read(self) -> bytes:
        return b""


def test_a_create_whose_answer_was_lost_is_not_made_twice():
    """A 504 may come after the server made the object: the retry meets 409 and the caller treats it as done,
    rather than creating anything a second time."""
    made: list[str] = []

    def server(method: str, url: str, *args: Any, **kwargs: Any) -> _Response:
        if made:
            return _Response(409)
        made.append(url)
        return _Response(504)

    events: list[dict[str, Any]] = []
    wrapped = retry._RetryingRequest(server, retry.Backoff(base=0.0), [events.append])
    response = wrapped("POST", "https://api/api/v1/namespaces/x/configmaps")
    assert response.status == 409 and len(made) == 1
    assert events[-1]["reason"] == "the change had already taken effect"

    class Conflict(Exception):
        status = 409

    assert retry.already_done(Conflict(), "create") and not retry.already_done(Conflict(), "delete")


def test_istioctl_is_run_again_after_a_transient_api_error(tmp_path):
    from rehearsal.istio.istioctl import Istioctl

    fake = tmp_path / "istioctl"
    state = tmp_path / "calls"
    fake.write_text(
        f"#!{sys.executable}\n"
        "import pathlib, sys\n"
        f"p = pathlib.Path({str(state)!r})\n"
        "n = int(p.read_text()) if p.exists() else 0\n"
        "p.write_text(str(n + 1))\n"
        "if n == 0:\n"
        "    sys.stderr.write('Error: the server is currently unable to handle the request (get pods)\\n')\n"
        "    sys.exit(1)\n"
        'print(\'{"clientVersion": {"version": "1.30.1"}}\')\n'
    )
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    events: list[dict[str, Any]] = []
    ctl = Istioctl("1.30.1", fake, retry_budget=30, retry_listeners=[events.append])
    assert ctl.version_info()["clientVersion"]["version"] == "1.30.1"
    assert state.read_text() == "2" and events[0]["exit_code"] == 1
    assert "unable to handle the request" in events[0]["reason"]


def test_istioctl_is_not_run_again_after_a_real_error(tmp_path):
    from rehearsal.istio.istioctl import Istioctl, IstioctlFailed

    fake = tmp_path / "istioctl"
    fake.write_text(
        f"#!{sys.executable}\nimport sys\nsys.stderr.write('Error: unknown flag: --nope\\n')\nsys.exit(64)\n"
    )
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    events: list[dict[str, Any]] = []
    with pytest.raises(IstioctlFailed):
        Istioctl("1.30.1", fake, retry_budget=30, retry_listeners=[events.append]).run("version", "--nope")
    assert not events


def test_a_rehearsal_with_one_request_in_ten_failing_ends_as_without_faults(tmp_path, suites_run):
    source, target = catalog.default_pair()
    faults = tmp_path / "faults.yaml"
    # 429, 500, 503 and 504 each answer one request in forty of the harness's own (one in ten in all,
    # watches included), from the moment the baseline is taken to the end.
    faults.write_text(
        "faults:\n"
        + "".join(
            f"  - type: api-error\n    verb: '*'\n    resource: '*'\n    code: {code}\n    every: 40\n"
            f"    skip: {offset}\n    times: -1\n    retryAfter: 0\n    userAgent: istio-upgrade-rehearsal\n"
            for offset, code in enumerate((429, 500, 503, 504))
        )
    )
    plain = scenario("upgraded").record  # the same pair, at default settings, without faults
    faulty = suites_run(
        tmp_path / "faulty",
        "--istio-from",
        source,
        "--istio-to",
        target,
        "--sim-faults",
        str(faults),
        traffic_requests=5,
    ).record

    def outline(data: dict[str, Any]) -> list[tuple[str, str]]:
        return [(s["name"], s["outcome"]) for s in data["steps"]]

    assert faulty["verdict"] == plain["verdict"] == "upgraded", faulty.get("failure")
    assert outline(faulty) == outline(plain)
    assert faulty["versions"]["after"]["control_plane"] == [target]
    retried = [e["data"] for s in faulty["steps"] for e in s["evidence"] if e.get("title") == "retry"]
    assert {e["status"] for e in retried} >= {429, 500, 503, 504}
