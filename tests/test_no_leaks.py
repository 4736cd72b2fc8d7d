"""Safe to share: a Secret value and markup planted in the cluster (a Secret, an annotation, an event, the log
of a crashing container) never leak into the run folder (except the 0600 backup of Secrets and the 0600
kubeconfig the rollback replay needs), and no markup reaches ``report.html`` unescaped.

The rehearsal runs against a simulated cluster this test starts and prepares itself, reached as any existing
cluster is (``--cluster kubeconfig``), with the istioctl emulator of each version given by path.
"""

from __future__ import annotations

import base64
import stat
from html.parser import HTMLParser
from pathlib import Path

from istiofacts import catalog
from kubesim import SimCluster
from kubesim.faults import PodMatch, ReadinessFault
from kubesim.istio import addon
from rehearsal.kube import Kube
from tests.runs import existing_cluster_args

SECRET = "PLANTED-s3cret-Value-7f3a9c"
MARKUP = "<script>alert('x')</script><img src=x onerror=alert(1)>"
APPS = "rehearsal-apps"


def plant(cluster: SimCluster, source: str) -> None:
    kube = Kube(cluster.api_client())
    kube.apply(
        [
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": APPS, "labels": {"istio-injection": "enabled"}},
            },
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "leaky-credentials", "namespace": APPS, "annotations": {"note": MARKUP}},
                "data": {"password": base64.b64encode(SECRET.encode()).decode()},
            },
            {
                # An app that logs markup and its own password, then fails at once (never ready, so no wait
                # can see it rolled out). It carries a sidecar of the source version, so after the upgrade the
                # harness restarts it, sees it crash-loop, and gathers its last log lines.
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "leaky", "namespace": APPS, "annotations": {"note": MARKUP}},
                "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": {"app": "leaky"}},
                    "template": {
                        "metadata": {"labels": {"app": "leaky"}, "annotations": {"note": MARKUP}},
                        "spec": {
                            "containers": [
                                {
                                    "name": "app",
                                    "image": "docker.io/curlimages/curl:8.11.1",
                                    "command": [
                                        "sh",
                                        "-c",
                                        f'echo "{MARKUP} password={SECRET}"; exit 1',
                                    ],
                                },
                                {
                                    "name": "istio-proxy",
                                    "image": f"{catalog.default_hub(source)}/proxyv2:{source}",
                                },
                            ]
                        },
                    },
                },
            },
        ]
    )
    kube.resource("v1", "Event").create(
        namespace=APPS,
        body={
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": "leaky.planted", "namespace": APPS},
            "involvedObject": {"kind": "Deployment", "name": "leaky", "namespace": APPS},
            "reason": "Planted",
            "type": "Warning",
            "message": f"{MARKUP} token={SECRET}",
            "count": 1,
        },
    )


def elements(document: str) -> list[tuple[str, list[tuple[str, str | None]]]]:
    """Every element the browser would build from ``document``: (tag, attributes)."""
    found: list[tuple[str, list[tuple[str, str | None]]]] = []

    class Collector(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            found.append((tag, attrs))

    Collector().feed(document)
    return found


def test_no_secret_leaks_and_no_markup_reaches_the_report_unescaped(tmp_path, suites_run):
    source, target = catalog.default_pair()
    with SimCluster(time_scale=0, kubeconfig=tmp_path / "kubeconfig", addons=[addon]) as cluster:
        plant(cluster, source)
        # Never ready, whatever the moment a wait looks: the failure is the crash loop and its log lines.
        cluster.faults.add(ReadinessFault(PodMatch(namespace=APPS, label_selector="app=leaky"), never=True))
        run = suites_run(tmp_path, *existing_cluster_args(tmp_path, cluster.kubeconfig_path))
    record = run.record
    assert record["verdict"] is not None, run.stdout[-3000:]
    # The planted app failed the upgrade in its own words, so its log and event were gathered.
    assert "leaky" in (record["failure"] or ""), record["failure"]
    allowed = {
        run.run_dir / "artifacts" / "backup" / "secrets.yaml",
        run.run_dir / "artifacts" / "kubeconfig",
    }
    encoded = base64.b64encode(SECRET.encode()).decode()
    checked = 0
    for path in sorted(p for p in run.run_dir.rglob("*") if p.is_file()):
        if path in allowed:
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
            continue
        text = path.read_text(errors="replace")
        assert SECRET not in text and encoded not in text, f"the planted Secret value leaks into {path}"
        checked += 1
    assert checked > 5
    html = (run.run_dir / "report.html").read_text()
    tags = elements(html)
    assert not {"script", "img", "iframe", "object"} & {tag for tag, _ in tags}
    assert not [attrs for _, attrs in tags if any(name.startswith("on") for name, _ in attrs)]
    # It did reach the page, as text: the planted event and the crashing app's log line.
    assert (
        html.count("&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;") >= 2
    )
    assert "&lt;redacted&gt;" in html
    # The junit file and pytest-html's table carry test outcomes; they must not carry markup raw either.
    junit = (run.run_dir / "junit.xml").read_text()
    assert "<script>" not in junit
    assert not Path(record["plan"].get("plan_file") or tmp_path / "none").exists()
