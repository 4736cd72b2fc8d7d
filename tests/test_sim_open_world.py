"""Open-world images: whatever public image a user brings runs on the simulated cluster, as it would on kind;
what cannot be pulled there (a host that does not resolve, a release Istio never published, a private
registry without its pull secret) cannot be pulled here either."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from istiofacts import catalog
from kubesim.node.images import ImageRegistry, PullError

WHOAMI = "docker.io/traefik/whoami:v1.10"

CHART = """
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: web, namespace: shop}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: web-config, namespace: shop}
data: {LOG_LEVEL: info}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  selector: {app.kubernetes.io/name: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop, labels: {app.kubernetes.io/name: web}}
spec:
  replicas: 2
  selector: {matchLabels: {app.kubernetes.io/name: web}}
  template:
    metadata: {labels: {app.kubernetes.io/name: web}}
    spec:
      serviceAccountName: web
      securityContext: {runAsNonRoot: true, runAsUser: 65532}
      containers:
        - name: web
          image: ghcr.io/stefanprodan/podinfo:6.7.1
          envFrom: [{configMapRef: {name: web-config}}]
          ports: [{name: http, containerPort: 9898}, {name: grpc, containerPort: 9999}]
          readinessProbe: {httpGet: {path: /readyz, port: http}}
          livenessProbe: {tcpSocket: {port: grpc}}
        - name: exporter
          image: quay.io/prometheus/statsd-exporter:v0.28.0
          readinessProbe: {exec: {command: [wget, -qO-, localhost:9102/metrics]}}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: cache, namespace: shop}
spec:
  replicas: 2
  serviceName: cache
  selector: {matchLabels: {app: cache}}
  template:
    metadata: {labels: {app: cache}}
    spec:
      containers:
        - name: redis
          image: public.ecr.aws/docker/library/redis:7.4-alpine
          ports: [{containerPort: 6379}]
          readinessProbe: {tcpSocket: {port: 6379}}
"""


def whoami(kind: str, name: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [
                        {
                            "name": "whoami",
                            "image": WHOAMI,
                            "ports": [{"containerPort": 80}],
                            "readinessProbe": {"httpGet": {"path": "/health", "port": 80}},
                        }
                    ]
                },
            },
        },
    }
    if kind == "StatefulSet":
        body["spec"]["serviceName"] = name
    return body


@pytest.mark.kubectl
def test_unknown_public_images_become_ready_and_roll_out(kubectl, sim_cluster):
    docs = [whoami("Deployment", "whoami"), whoami("StatefulSet", "whoami-set")]
    kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs))
    kubectl("apply", "-f", "-", input=CHART)
    for target, namespace in (
        ("deployment/whoami", "default"),
        ("statefulset/whoami-set", "default"),
        ("deployment/web", "shop"),
        ("statefulset/cache", "shop"),
    ):
        result = kubectl("rollout", "status", target, "-n", namespace, "--timeout=60s")
        assert "successfully rolled out" in result.stdout or "roll out complete" in result.stdout
    # The app answers on its port, through the API server's service proxy as through any Service.
    answer = kubectl("get", "--raw", "/api/v1/namespaces/shop/services/web:http/proxy/readyz")
    assert answer.returncode == 0 and answer.stdout


@pytest.mark.kubectl
def test_an_unresolvable_or_unconfigured_host_ends_in_image_pull_backoff(kubectl, sim_cluster):
    for name, image in (("typo", "registry.exmaple.com/team/app:1"), ("reserved", "registry.invalid/app:1")):
        body = whoami("Deployment", name)
        body["spec"]["template"]["spec"]["containers"][0]["image"] = image
        kubectl("apply", "-f", "-", input=yaml.safe_dump(body))
    sim_cluster.wait_for(
        lambda: (
            {
                p["metadata"]["labels"]["app"]
                for p in sim_cluster.store.items(("", "pods"), "default")
                if (p["status"].get("containerStatuses") or [{}])[0]
                .get("state", {})
                .get("waiting", {})
                .get("reason")
                in ("ErrImagePull", "ImagePullBackOff")
            }
            == {"typo", "reserved"}
        ),
        30,
        "pull failures",
    )
    events = [e["message"] for e in sim_cluster.store.items(("", "events"), "default")]
    assert any("lookup registry.exmaple.com on 127.0.0.11:53: no such host" in m for m in events)


def test_istio_repositories_hold_exactly_the_known_releases(sim_cluster):
    newest = catalog.known_versions()[-1]
    major, minor, patch = catalog.parse_version(newest)
    unreleased = f"{major}.{minor}.{patch + 1}"
    registry = sim_cluster.registry
    assert registry.has(f"docker.io/istio/pilot:{catalog.known_versions()[0]}")
    with pytest.raises(PullError, match="not found|repository does not exist"):
        registry.pull(f"docker.io/istio/pilot:{unreleased}", [])
    # An app image of the same shape on another repository is open world.
    assert registry.has(f"docker.io/someone/pilot:{unreleased}")


def test_a_users_registry_exists_only_when_configured_and_mirrors_the_public_ones():
    registry = ImageRegistry()
    registry.close("docker.io/istio")
    registry.add_image("docker.io/istio/proxyv2:1.29.5", program="proxyv2")
    with pytest.raises(PullError, match="no such host"):
        registry.pull("registry.example.com/mirror/mendhak/http-https-echo:37", [])
    registry.add_registry("registry.example.com")
    echo = registry.pull("registry.example.com/mirror/mendhak/http-https-echo:37", [])
    assert (echo.reference, echo.program) == (
        "registry.example.com/mirror/mendhak/http-https-echo:37",
        "http-echo",
    )
    assert registry.pull("registry.example.com/istio/proxyv2:1.29.5", []).program == "proxyv2"
    with pytest.raises(PullError, match="not found"):
        registry.pull("registry.example.com/istio/proxyv2:1.0.99", [])
    assert registry.pull("registry.example.com/traefik/whoami:v1.10", []).program == "generic"
    with pytest.raises(PullError, match="no such host"):
        registry.pull("registry.example.org/traefik/whoami:v1.10", [])


def test_a_private_registry_needs_its_credentials():
    registry = ImageRegistry()
    registry.add_registry("registry.example.com", "robot", "s3cret")
    with pytest.raises(PullError, match="401 Unauthorized"):
        registry.pull("registry.example.com/traefik/whoami:v1.10", [])


def test_faults_make_an_image_or_a_registry_missing_or_private(sim_cluster):
    from kubesim.faults import Faults

    faults = Faults.from_yaml(
        "faults:\n"
        f"  - {{type: image-pull, image: {WHOAMI}}}\n"
        "  - {type: image-pull, registry: quay.io}\n"
        "  - {type: image-pull, registry: ghcr.io/acme, private: true}\n"
    )
    assert [(f.matches(WHOAMI), f.why) for f in faults.image_pull] == [
        (True, "missing"),
        (False, "unresolvable"),
        (False, "unauthorized"),
    ]
    assert faults.image_pull_for("quay.io/prometheus/statsd-exporter:v0.28.0") is faults.image_pull[1]
    assert faults.image_pull_for("ghcr.io/acme/app:1") is faults.image_pull[2]
    assert faults.image_pull_for("ghcr.io/other/app:1") is None
