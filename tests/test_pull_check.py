"""The image pull check's pieces (rehearsal/steps/images.py), as units: which images a render pulls (the
sidecar template's proxy image included) and the short-lived DaemonSet that pulls them."""

from __future__ import annotations

import json

from istiofacts import catalog
from rehearsal.steps import RUN_LABEL, images

TARGET = catalog.CATALOG["1.31"].patches[-1]
HUB = catalog.default_hub(TARGET)


def _workload(kind: str, name: str, image: str) -> dict:
    return {
        "kind": kind,
        "metadata": {"name": name},
        "spec": {"template": {"spec": {"containers": [{"name": "c", "image": image}]}}},
    }


def test_rendered_images_include_the_sidecar_templates_proxy():
    sidecar_hub = "registry.example.com/sidecars"
    docs = [
        _workload("Deployment", "istiod", f"{HUB}/pilot:{TARGET}"),
        _workload("DaemonSet", "istio-cni-node", f"{HUB}/install-cni:{TARGET}"),
        _workload("Deployment", "someone-else", "docker.io/library/nginx:1.27"),
        {
            "kind": "ConfigMap",
            "metadata": {"name": "istio-sidecar-injector"},
            "data": {"values": json.dumps({"global": {"hub": sidecar_hub, "tag": TARGET, "proxy": {}}})},
        },
    ]
    assert images.rendered_images(docs) == sorted(
        [f"{HUB}/pilot:{TARGET}", f"{HUB}/install-cni:{TARGET}", f"{sidecar_hub}/proxyv2:{TARGET}"]
    )


def test_the_daemonset_runs_each_binarys_version_command_as_the_runs_own():
    body = images.daemonset(
        "run-1", [f"{HUB}/pilot:{TARGET}", f"{HUB}/proxyv2:{TARGET}"], ["regcred", "regcred"]
    )
    assert body["metadata"]["labels"][RUN_LABEL] == "run-1"
    pod = body["spec"]["template"]["spec"]
    assert body["spec"]["template"]["metadata"]["labels"][RUN_LABEL] == "run-1"
    assert [c["command"] for c in pod["containers"]] == [
        ["pilot-discovery", "version"],
        ["pilot-agent", "version"],
    ]
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert pod["tolerations"] == [{"operator": "Exists"}]
