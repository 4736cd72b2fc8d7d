"""The upgrade: apply, then restart the control plane and the workloads where needed.

A step that cannot be performed makes its fixture raise (the test reads ERROR); the tests check on the
cluster that the step did what it claims.
"""

import pytest

pytestmark = pytest.mark.order(30)


def _tag(image: str) -> str:
    return image.rsplit(":", 1)[-1].split("-")[0]


def test_manifest_is_applied(upgrade_applied, dry_run_accepted, findings):
    missing = []
    for doc in dry_run_accepted:
        namespace = doc["metadata"].get("namespace")
        names = {
            o["metadata"]["name"] for o in upgrade_applied.objects(doc["apiVersion"], doc["kind"], namespace)
        }
        if doc["metadata"]["name"] not in names:
            missing.append(f"{doc['kind']}/{doc['metadata']['name']}")
    findings["missing"] = missing
    assert not missing


def test_control_plane_rolled_out(control_plane_restarted, rehearsal_settings, findings):
    # A canary's source keeps serving beside the new revision until the namespaces moved: judge the new one.
    canary = control_plane_restarted.state.get("canary")
    selector = "app=istiod" + (f",istio.io/rev={canary['new revision']}" if canary else "")
    pods = [
        p
        for p in control_plane_restarted.objects("v1", "Pod", "istio-system", label_selector=selector)
        if not p["metadata"].get("deletionTimestamp")
    ]
    tags = sorted(
        {_tag(c["image"]) for p in pods for c in p["spec"]["containers"] if c["name"] == "discovery"}
    )
    findings["istiod pods"] = {p["metadata"]["name"]: p["status"].get("phase") for p in pods}
    assert pods and tags == [rehearsal_settings.istio_to]


def test_workloads_run_the_new_sidecars(upgraded, rehearsal_settings, findings):
    # In place: one restart step; a canary: one move per namespace.
    moved = [
        s for s in upgraded.run.steps if s.name == "restart workloads" or s.name.startswith("canary: move")
    ]
    findings["restart workloads"] = {s.name: {"outcome": s.outcome, "reason": s.reason} for s in moved}
    stale = {
        pod: tag
        for pod, tag in upgraded.run.versions["after"]["pod_specs"].items()
        if tag != rehearsal_settings.istio_to
    }
    findings["stale sidecars"] = stale
    assert upgraded.run.versions["after"]["pod_specs"] and not stale
