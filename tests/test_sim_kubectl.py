"""The real kubectl against the simulated cluster: the operations an upgrade runbook uses."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
APPS = "rehearsal-apps"


def _apply_samples(kubectl) -> None:
    out = kubectl("apply", "--server-side", "-f", str(ROOT / "sample_apps")).stdout
    assert "deployment.apps/echo serverside-applied" in out
    kubectl("rollout", "status", "deployment/echo", "-n", APPS, "--timeout=60s")


def test_server_side_apply_of_sample_apps_and_pods_listing(kubectl, sim_cluster):
    _apply_samples(kubectl)
    pods = json.loads(kubectl("get", "pods", "-A", "-o", "json").stdout)
    assert pods["kind"] == "List" or pods["kind"] == "PodList"
    app_pods = [p for p in pods["items"] if p["metadata"]["namespace"] == APPS]
    assert {p["metadata"]["labels"]["app"] for p in app_pods} == {"echo", "client"}
    echo = [p for p in app_pods if p["metadata"]["labels"]["app"] == "echo"]
    assert len(echo) == 2
    assert all(p["status"]["phase"] == "Running" for p in echo)
    assert all(p["spec"]["nodeName"] == "rehearsal-control-plane" for p in echo)
    table = kubectl("get", "pods", "-n", APPS).stdout.splitlines()
    assert table[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert any("1/1" in line and "Running" in line for line in table[1:])


def test_rollout_restart_then_status_returns_once_new_pods_are_ready(kubectl, sim_cluster):
    _apply_samples(kubectl)
    before = {
        p["metadata"]["name"]
        for p in json.loads(kubectl("get", "pods", "-n", APPS, "-l", "app=echo", "-o", "json").stdout)[
            "items"
        ]
    }
    assert "restarted" in kubectl("rollout", "restart", "deployment/echo", "-n", APPS).stdout
    status = kubectl("rollout", "status", "deployment/echo", "-n", APPS, "--timeout=60s").stdout
    assert 'deployment "echo" successfully rolled out' in status
    after = json.loads(kubectl("get", "pods", "-n", APPS, "-l", "app=echo", "-o", "json").stdout)["items"]
    ready = [
        p
        for p in after
        if any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"]["conditions"])
        and not p["metadata"].get("deletionTimestamp")
    ]
    assert len(ready) == 2
    assert not {p["metadata"]["name"] for p in ready} & before
    annotations = [p["metadata"].get("annotations", {}) for p in ready]
    assert all("kubectl.kubernetes.io/restartedAt" in a for a in annotations)
    rs = json.loads(kubectl("get", "rs", "-n", APPS, "-l", "app=echo", "-o", "json").stdout)["items"]
    assert sorted(r["spec"]["replicas"] for r in rs) == [0, 2]


def test_wait_for_available_condition(kubectl, sim_cluster):
    kubectl("apply", "--server-side", "-f", str(ROOT / "sample_apps"))
    out = kubectl(
        "wait",
        "--for=condition=Available",
        "deployment/echo",
        "deployment/client",
        "-n",
        APPS,
        "--timeout=60s",
    ).stdout
    assert "deployment.apps/echo condition met" in out
    assert "deployment.apps/client condition met" in out


def test_events_and_logs(kubectl, sim_cluster):
    _apply_samples(kubectl)
    events = kubectl("get", "events", "-n", APPS).stdout
    assert "Scheduled" in events and "Started" in events and "ScalingReplicaSet" in events
    pod = json.loads(kubectl("get", "pods", "-n", APPS, "-l", "app=echo", "-o", "json").stdout)["items"][0]
    # A request through the service proxy lands in the echo pod's log.
    body = json.loads(
        kubectl(
            "get", "--raw", f"/api/v1/namespaces/{APPS}/pods/{pod['metadata']['name']}:8080/proxy/from-test"
        ).stdout
    )
    assert body["path"] == "/from-test" and body["pod"] == pod["metadata"]["name"]
    logs = kubectl("logs", pod["metadata"]["name"], "-n", APPS).stdout
    assert "Listening on ports 8080" in logs
    assert "GET /from-test 200" in logs


def test_delete_removes_dependents(kubectl, sim_cluster):
    _apply_samples(kubectl)
    kubectl("delete", "deployment", "client", "-n", APPS, "--timeout=60s")
    sim_cluster.wait_for(
        lambda: (
            not [
                p
                for p in sim_cluster.store.items(("", "pods"), APPS)
                if p["metadata"]["labels"].get("app") == "client"
            ]
        ),
        60,
        "client pods gone",
    )
    assert not json.loads(kubectl("get", "rs", "-n", APPS, "-l", "app=client", "-o", "json").stdout)["items"]
    kubectl("delete", "namespace", APPS, "--timeout=60s")
    assert "NotFound" in kubectl("get", "namespace", APPS, check=False).stderr


def test_server_dry_run_changes_nothing(kubectl, sim_cluster, tmp_path):
    _apply_samples(kubectl)
    before = json.loads(kubectl("get", "deployment", "echo", "-n", APPS, "-o", "json").stdout)
    docs = list(yaml.safe_load_all((ROOT / "sample_apps" / "10-echo.yaml").read_text()))
    docs[0]["spec"]["replicas"] = 7
    changed = tmp_path / "echo.yaml"
    changed.write_text(yaml.safe_dump_all(docs))
    out = kubectl("apply", "--dry-run=server", "-f", str(changed)).stdout
    assert "(server dry run)" in out
    kubectl("apply", "--dry-run=server", "-f", str(tmp_path / "echo.yaml"), "--server-side")
    after = json.loads(kubectl("get", "deployment", "echo", "-n", APPS, "-o", "json").stdout)
    assert after["spec"]["replicas"] == 2
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    new_ns = tmp_path / "ns.yaml"
    new_ns.write_text("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: dry-only\n")
    kubectl("apply", "--dry-run=server", "-f", str(new_ns))
    assert "NotFound" in kubectl("get", "namespace", "dry-only", check=False).stderr


def test_client_side_apply_updates_and_errors_are_kubectl_shaped(kubectl, sim_cluster, tmp_path):
    _apply_samples(kubectl)
    docs = list(yaml.safe_load_all((ROOT / "sample_apps" / "10-echo.yaml").read_text()))
    docs[0]["spec"]["replicas"] = 3
    path = tmp_path / "echo.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    assert "deployment.apps/echo configured" in kubectl("apply", "-f", str(path)).stdout
    kubectl("rollout", "status", "deployment/echo", "-n", APPS, "--timeout=60s")
    assert (
        kubectl("get", "deploy", "echo", "-n", APPS, "-o", "jsonpath={.status.readyReplicas}").stdout == "3"
    )
    missing = kubectl("get", "pod", "nope", "-n", APPS, check=False)
    assert missing.returncode == 1
    assert 'Error from server (NotFound): pods "nope" not found' in missing.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: bad, namespace: default}\nspec:\n"
        "  selector: {matchLabels: {a: b}}\n  template:\n    metadata: {labels: {a: c}}\n"
        "    spec: {containers: [{name: c, image: busybox}]}\n"
    )
    invalid = kubectl("apply", "-f", str(bad), check=False)
    assert invalid.returncode == 1
    assert (
        'The Deployment "bad" is invalid: spec.template.metadata.labels: Invalid value: '
        '{"a":"c"}: `selector` does not match template `labels`' in invalid.stderr
    )
