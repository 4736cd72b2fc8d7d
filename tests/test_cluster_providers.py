"""Cluster providers: the simulator and an existing cluster by kubeconfig (kind: test_kind_provider.py)."""

from __future__ import annotations

import stat

import pytest
import yaml

from kubesim import SimCluster
from rehearsal.cluster import ClusterError, KubeconfigProvider, SimProvider


def test_sim_provider_gives_a_reachable_cluster(tmp_path):
    cluster = SimProvider(k8s_version="1.32.2").provision(tmp_path)
    try:
        assert cluster.server_version() == "1.32.2"
        assert stat.S_IMODE(cluster.kubeconfig.stat().st_mode) == 0o600
        assert cluster.stable_name == "sim:kind-rehearsal"
    finally:
        cluster.close()


def test_kubeconfig_provider_uses_an_existing_cluster_and_never_deletes_it(tmp_path):
    with SimCluster(time_scale=0, kubeconfig=tmp_path / "existing") as existing:
        cluster = KubeconfigProvider(tmp_path / "existing", "kind-rehearsal").provision(tmp_path / "work")
        assert cluster.details["version"] == "1.33.1"
        cluster.close()
        assert existing.store.get(("", "namespaces"), "", "default") is not None


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda p: None, "does not exist"),
        (lambda p: p.write_text("clusters: [unclosed"), "cannot be read as YAML"),
        (lambda p: p.write_text("just a string"), "is not a kubeconfig"),
        (
            lambda p: p.write_text(yaml.safe_dump({"contexts": [{"name": "a"}], "current-context": "b"})),
            "context 'b' is not in kubeconfig",
        ),
    ],
)
def test_kubeconfig_provider_explains_bad_input(tmp_path, setup, message):
    path = tmp_path / "config"
    setup(path)
    with pytest.raises(ClusterError, match=message):
        KubeconfigProvider(path).provision(tmp_path)


def test_kubeconfig_provider_reports_an_unreachable_cluster(tmp_path):
    with SimCluster(time_scale=0, kubeconfig=tmp_path / "gone"):
        pass  # stopped: the kubeconfig now points at nothing
    with pytest.raises(ClusterError, match="cannot reach the Kubernetes API of kubeconfig:kind-rehearsal"):
        KubeconfigProvider(tmp_path / "gone", connect_timeout=1).provision(tmp_path)
