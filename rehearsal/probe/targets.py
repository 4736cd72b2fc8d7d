"""Where the rehearsal's prober sends its requests, per cluster kind, and how it ties to the run.

Harness library. :func:`build` makes the :class:`~rehearsal.probe.prober.Prober` of a rehearsal:

- **ingress**: through the ingress gateway's node port, the path real users take: on ``sim`` the simulated
  cluster maps every node port to ``127.0.0.1`` (as kind's ``extraPortMappings`` do); on ``kind`` the node's
  address on the docker network (reachable from a Linux host); on any other cluster, or when the gateway has
  no node port (``ClusterIP``), through the API server's service proxy to the gateway, as the traffic check
  goes (``reason`` in the record says which);
- **mesh**: to the echo Service through the API server's service proxy, which reaches the echo pods through
  their sidecars' inbound listeners (not through the client pod: neither the simulated cluster nor a cheap
  ``exec`` per request streams a shell at 20 requests a second). Only with the sample apps.

The echo app names the pod that answered; the pod's istio-proxy image tag is its proxy version, looked up
once per pod while the pod exists (pods come and go during the restarts). On the simulated cluster the prober
is paced by the simulated clock's ticks; elsewhere by the wall clock.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import TYPE_CHECKING, Any

import requests

from ..kube import http_session
from .availability import summarize
from .prober import Phase, Prober, Target

if TYPE_CHECKING:
    from ..steps import Rehearsal

GATEWAY = "istio-ingressgateway"
STATE_KEY = "prober"


def _node_port(ctx: Rehearsal) -> int | None:
    from ..steps import ISTIO_NS

    services = [s for s in ctx.objects("v1", "Service", ISTIO_NS) if s["metadata"]["name"] == GATEWAY]
    for port in (services[0]["spec"].get("ports") or []) if services else []:
        if (port.get("name") == "http2" or port.get("port") == 80) and port.get("nodePort"):
            return int(port["nodePort"])
    return None


def _node_address(ctx: Rehearsal) -> str | None:
    for node in ctx.objects("v1", "Node"):
        for address in (node.get("status") or {}).get("addresses") or []:
            if address.get("type") == "InternalIP":
                return str(address["address"])
    return None


# The Server header Istio's Envoy writes on every answer (pilot/pkg/networking/core/accesslog.go
# EnvoyServerName, set as the HTTP connection manager's server_name): what proves a node port is the gateway.
ENVOY_SERVER = "istio-envoy"


def _answers_as_the_gateway(url: str, host: str) -> str | None:
    """None when ``url`` is answered by Istio's gateway, else why not (one short request, no proxy)."""
    session = requests.Session()
    session.trust_env = False
    try:
        response = session.get(url, headers={"Host": host} if host else {}, timeout=3)
    except requests.RequestException as exc:
        return f"not reachable from here ({type(exc).__name__})"
    finally:
        session.close()
    server = response.headers.get("server", "")
    if server.lower() != ENVOY_SERVER:
        return f"answered {response.status_code} by {server or 'a server'} that is not Istio's gateway"
    return None


def ingress_base(ctx: Rehearsal, path: str = "/", host: str = "") -> tuple[str, str, bool]:
    """(base URL, how it is reached, whether it goes through the API server) of the ingress gateway. A node
    port is used only once one request shows Istio's gateway answers there (a kind node's address is not
    reachable from every host: Docker Desktop, a remote Docker, a sandbox's network)."""
    from ..steps import ISTIO_NS

    port = _node_port(ctx)
    candidate: tuple[str, str] | None = None
    if port is not None and ctx.cluster.provider == "sim":
        candidate = f"http://127.0.0.1:{port}", f"the gateway's node port {port} on 127.0.0.1 (sim)"
    elif port is not None and ctx.cluster.provider == "kind":
        address = _node_address(ctx)
        if address:
            candidate = f"http://{address}:{port}", f"the gateway's node port {port} on kind node {address}"
    why = ""
    if candidate is not None:
        refused = _answers_as_the_gateway(f"{candidate[0]}{path}/0", host)
        if refused is None:
            return candidate[0], candidate[1], False
        why = f"; {candidate[1]} was {refused}"
    api = ctx.kube.api_client.configuration.host
    return (
        f"{api}/api/v1/namespaces/{ISTIO_NS}/services/{GATEWAY}:http2/proxy",
        "the API server's service proxy to the gateway (no node port reachable from here" + why + ")",
        True,
    )


def build(ctx: Rehearsal) -> tuple[Prober, dict[str, Any]]:
    """The prober of this rehearsal (not started) and a description of its targets for the record."""
    from ..steps import SAMPLE_HOST
    from ..steps.mesh import _answering_pod

    settings = ctx.settings
    if settings.probe:
        path, host = settings.probe.rstrip("/") + "/probe", settings.probe_host
    else:
        path, host = "/echo/probe", SAMPLE_HOST
    base, how, via_api = ingress_base(ctx, path, host or "")

    def api_session() -> requests.Session:
        session: requests.Session = http_session(ctx.kube.api_client)
        return session

    def plain_session() -> requests.Session:
        session = requests.Session()
        session.trust_env = False  # straight to the node port: no proxy from the environment
        return session

    targets = [
        Target(
            "ingress",
            f"{base}{path}/{{n}}",
            host,
            api_session if via_api else plain_session,
            _answering_pod,
        )
    ]
    described = {"ingress": {"url": f"{base}{path}/N", "host": host, "path": how}}
    if not settings.apps:
        api = ctx.kube.api_client.configuration.host
        url = f"{api}/api/v1/namespaces/{ctx.apps_ns}/services/echo:http/proxy/probe/{{n}}"
        # A quarter of the rate: the API server's proxy is the harness's shared path to the cluster.
        targets.append(Target("mesh", url, None, api_session, _answering_pod, every=4))
        described["mesh"] = {
            "url": url.replace("{n}", "N"),
            "path": "the API server's service proxy to echo, through the echo pods' sidecars",
        }

    def resolve_version(pod: str) -> str | None:
        # the apps' namespace first; a user's apps (--apps) may live in namespaces of their own
        found = ctx.objects("v1", "Pod", ctx.apps_ns)
        if not any(item["metadata"]["name"] == pod for item in found):
            found = ctx.objects("v1", "Pod")
        for item in found:
            if item["metadata"]["name"] == pod:
                spec = item["spec"]
                for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
                    if c["name"] == "istio-proxy":
                        return str(c["image"]).rsplit(":", 1)[-1].split("-")[0]
                return None
        return None

    simulator = ctx.cluster.simulator
    now = simulator.clock_now if simulator is not None else None
    prober = Prober(targets, settings.probe_rate, now or time.time, resolve_version)
    return prober, described


def start(ctx: Rehearsal) -> Prober | None:
    """Build and start the rehearsal's prober (kept in ``ctx.state``); None when it cannot reach the
    ingress (the reason is in the record)."""
    prober, described = build(ctx)
    simulator = ctx.cluster.simulator
    ticker = simulator.ticker() if simulator is not None else None
    prober.start(ticker)
    ctx.state[STATE_KEY] = prober
    ctx.state["probe targets"] = described
    return prober


def of(ctx: Rehearsal) -> Prober | None:
    prober = ctx.state.get(STATE_KEY)
    return prober if isinstance(prober, Prober) else None


@contextmanager
def phase(ctx: Rehearsal, name: str) -> Iterator[Phase | None]:
    """``with probe.phase(ctx, "apply"):`` marks the prober's requests meanwhile; nothing without one."""
    prober = of(ctx)
    with prober.phase(name) if prober is not None and prober.running else nullcontext() as current:
        yield current


@contextmanager
def paused(ctx: Rehearsal, why: str) -> Iterator[None]:
    """No prober requests meanwhile (the telemetry check counts the requests it sends)."""
    prober = of(ctx)
    with prober.pause(why) if prober is not None and prober.running else nullcontext():
        yield


def forget(ctx: Rehearsal, phase: Phase) -> None:
    """Drop a phase that turned out not to happen (a rollback that was not needed)."""
    prober = of(ctx)
    if prober is not None and phase in prober.phases:
        prober.phases.remove(phase)


def begin(ctx: Rehearsal) -> None:
    """Start the prober once the apps answer (after the baseline); a prober that cannot start is recorded
    as such (the availability check then fails saying why), never a reason to stop the rehearsal."""
    if of(ctx) is not None:
        return
    try:
        start(ctx)
    except Exception as exc:  # the record says why; the SLO check fails on it
        ctx.run.availability = {"error": f"the prober could not start: {type(exc).__name__}: {exc}"}


def current(ctx: Rehearsal) -> dict[str, Any] | None:
    """The availability figures so far (the prober keeps running), also kept on the run."""
    prober = of(ctx)
    if prober is None:
        return ctx.run.availability
    data = summarize(prober, ctx.settings.slo_success, ctx.settings.slo_max_outage)
    data["targets_reached"] = ctx.state.get("probe targets")
    data["series"] = series(prober)
    ctx.run.availability = data
    return data


def finish(ctx: Rehearsal) -> None:
    """Stop the prober (idempotent), keep its figures on the run and every sample as an artifact."""
    prober = of(ctx)
    if prober is None or prober.stopped is not None:
        return
    prober.stop()
    current(ctx)
    import json

    samples = [s.to_list() for s in prober.snapshot()]
    path = ctx.run.write_artifact(
        "probe-samples.json",
        json.dumps(
            {"columns": ["t", "target", "status", "latency_ms", "pod", "version"], "samples": samples}
        ),
    )
    if ctx.run.availability is not None:
        ctx.run.availability["samples_artifact"] = str(path.relative_to(ctx.run.dir))
    ctx.run.save()


def series(prober: Prober, buckets: int = 240) -> dict[str, Any]:
    """The record's time series for the chart: per target, ``buckets`` equal slices of the probed time, each
    [start offset s, requests, succeeded, p50 ms, max ms] (empty slices left out)."""
    from .availability import percentile

    samples = prober.snapshot()
    if not samples:
        return {"origin": prober.started, "width_seconds": 0, "targets": {}}
    origin = prober.started if prober.started is not None else samples[0].t
    span = max(samples[-1].t - origin, prober.interval)
    width = max(span / buckets, prober.interval)
    out: dict[str, list[list[Any]]] = {}
    grouped: dict[tuple[str, int], list[Any]] = {}
    for s in samples:
        grouped.setdefault((s.target, int((s.t - origin) / width)), []).append(s)
    for (target, index), group in sorted(grouped.items()):
        latencies = [g.latency_ms for g in group if g.ok]
        out.setdefault(target, []).append(
            [
                round(index * width, 3),
                len(group),
                sum(1 for g in group if g.ok),
                round(percentile(latencies, 50) or 0.0, 2),
                round(max(latencies, default=0.0), 2),
            ]
        )
    return {"origin": round(origin, 3), "width_seconds": round(width, 3), "targets": out}


def mark(ctx: Rehearsal, what: str) -> None:
    prober = of(ctx)
    if prober is not None and prober.running:
        prober.mark(what)
