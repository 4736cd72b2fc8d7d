"""Availability through the upgrade, end to end: the shared default rehearsal is probed through every phase
and meets the default SLO; the shared rolled-back one is probed through the rollback; a user's one-replica
app with ``maxUnavailable: 1`` drops requests, fails the SLO validation, and shows the outage in the record,
the chart and JUnit (one in-process run)."""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from pathlib import Path

import yaml

from tests.runs import scenario


def _validation(record: dict, name: str) -> dict:
    return next(v for v in record["validations"] if v["name"] == name)


def _properties(run_dir: Path) -> dict[str, str]:
    tree = ElementTree.parse(run_dir / "junit.xml")
    return {str(p.get("name")): str(p.get("value")) for p in tree.iter("property")}


def test_the_default_rehearsal_is_probed_through_every_phase_and_meets_the_slo():
    run = scenario("upgraded")
    data = run.record["availability"]
    assert data["pacing"] == "simulated clock ticks" and data["rate_per_second"] == 20
    assert data["slo"] == {"success_ratio": 0.999, "max_outage_seconds": 1.0, "met": True, "breaches": []}
    names = [p["name"] for p in data["phases"]]
    assert names[:3] == ["apply", "control-plane restart", "workload restart"], names
    for phase in data["phases"]:
        if phase["name"].startswith("paused"):
            continue
        ingress = phase["targets"]["ingress"]
        # at least one request per 100 ms of simulated time, however fast the machine ran the phase
        assert ingress["requests"] >= int(phase["seconds"] * 10), phase
        assert ingress["max_gap_seconds"] is None or ingress["max_gap_seconds"] <= 0.1, phase
    assert data["targets"]["ingress"]["max_gap_seconds"] <= 0.1 or any(
        p["name"].startswith("paused") for p in data["phases"]
    )
    assert set(data["targets"]) == {"ingress", "mesh"}
    flips = {(f["target"], f["from"], f["to"]) for f in data["version_flips"]}
    assert ("ingress", run.record["from"], run.record["to"]) in flips
    assert "node port" in data["targets_reached"]["ingress"]["path"]
    assert _validation(run.record, "test_availability_meets_the_slo")["outcome"] == "passed"
    props = _properties(run.run_dir)
    assert props["availability_slo_met"] == "true" and float(props["availability_success_ratio"]) == 1.0
    html = (run.run_dir / "report.html").read_text()
    assert 'id="availability-chart"' in html and 'class="flip"' in html and "Met the SLO" in html
    assert (run.run_dir / data["samples_artifact"]).exists()


def test_the_rollback_is_probed_too():
    data = scenario("rolled-back").record["availability"]
    assert "rollback" in [p["name"] for p in data["phases"]]
    rollback = next(p for p in data["phases"] if p["name"] == "rollback")
    assert rollback["targets"]["ingress"]["requests"] >= int(rollback["seconds"] * 10)


def one_replica_apps(folder: Path) -> Path:
    labels = {"app": "web"}
    docs = [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": "shop", "labels": {"istio-injection": "enabled"}},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                # every pod may go at once, and no new one first: the lone replica leaves before its successor
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "containers": [
                            {
                                "name": "web",
                                "image": "docker.io/mendhak/http-https-echo:37",
                                "env": [{"name": "HTTP_PORT", "value": "8080"}],
                                "ports": [{"name": "http", "containerPort": 8080}],
                                "readinessProbe": {
                                    "httpGet": {"path": "/", "port": "http"},
                                    "periodSeconds": 2,
                                },
                            }
                        ]
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"selector": labels, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
        },
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "Gateway",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {
                "selector": {"istio": "ingressgateway"},
                "servers": [
                    {"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["web.example.com"]}
                ],
            },
        },
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "VirtualService",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {
                "hosts": ["web.example.com"],
                "gateways": ["shop/web"],
                "http": [
                    {
                        "match": [{"uri": {"prefix": "/health"}}],
                        "route": [{"destination": {"host": "web.shop.svc.cluster.local"}}],
                    }
                ],
            },
        },
    ]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "shop.yaml").write_text(yaml.safe_dump_all(docs))
    return folder


def test_a_lone_replica_with_max_unavailable_1_drops_requests_and_fails_the_slo(suites_run, tmp_path):
    apps = one_replica_apps(tmp_path / "apps")
    run = suites_run(
        tmp_path, "--apps", str(apps), "--probe", "/health", "--probe-host", "web.example.com", probe_rate=20
    )
    record = run.record
    check = _validation(record, "test_availability_meets_the_slo")
    assert check["outcome"] == "failed", check
    data = record["availability"]
    assert not data["slo"]["met"]
    restart = next(p for p in data["phases"] if p["name"] == "workload restart")
    assert restart["targets"]["ingress"]["outages"]["count"] >= 1
    assert restart["targets"]["ingress"]["statuses"].get("503", 0) >= 1
    outage = data["outages"][0]
    assert outage["statuses"].get("503") and restart["start"] <= outage["start"] <= restart["end"]
    assert any(m["what"] == "restart deployment/shop/web" for m in data["marks"])
    # the user's pods live in their own namespace; their proxies' versions are still known
    assert [(f["from"], f["to"]) for f in data["version_flips"]][:1] == [(record["from"], record["to"])]
    html = (run.run_dir / "report.html").read_text()
    assert 'class="outage"' in html and "Missed the SLO" in html
    assert _properties(run.run_dir)["availability_slo_met"] == "false"
    assert record["verdict"] in ("rolled-back", "failed")
