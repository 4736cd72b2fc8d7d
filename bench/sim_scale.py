"""Scale benchmark of the simulated cluster: 100 namespaces x 10 Deployments x 2 replicas (2,000 pods).

The cluster runs in its own process (``python -m kubesim serve --time-scale 0``), as a kind cluster
would. Through the official client the benchmark creates 100 namespaces and 1,000 Deployments, waits until
every Deployment is available, restarts them all (the ``kubectl rollout restart`` patch), waits again, then
times a list of all pods. It prints wall time per phase, API requests per second (counted by the cluster's own
``/metrics``), the cluster process's peak memory (VmHWM) and the list times.
Goals: whole run < 60 s, memory < 1 GiB, list of 2,000 pods < 0.5 s. Run: ``make bench``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # ahead of bench/, whose rehearsal.py would shadow the package

from rehearsal.kube import http_session  # noqa: E402


def deployment(name: str) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "main", "image": "registry.k8s.io/pause:3.10"}]},
            },
        },
    }


def complete(d: dict, generation: int) -> bool:
    s, m = d.get("status") or {}, d["metadata"]
    return (
        m.get("generation", 1) >= generation
        and s.get("observedGeneration", 0) >= m.get("generation", 1)
        and s.get("updatedReplicas", 0) == 2
        and s.get("availableReplicas", 0) == 2
        and s.get("replicas") == 2
    )


def follow(list_call, update, finished, timeout: float, what: str) -> None:
    """List, then watch from the list's resourceVersion, feeding each object to update() until finished()."""
    deadline = time.monotonic() + timeout
    body = json.loads(list_call(_preload_content=False).data)
    for obj in body["items"]:
        update("ADDED", obj)
    rv = body["metadata"]["resourceVersion"]
    while not finished():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"timed out waiting for {what}")
        w = watch.Watch()
        for event in w.stream(
            list_call, resource_version=rv, timeout_seconds=max(1, int(remaining)), _preload_content=False
        ):
            rv = event["raw_object"]["metadata"]["resourceVersion"]
            update(event["type"], event["raw_object"])
            if finished():
                w.stop()
                break


def _key(obj: dict) -> str:
    return f"{obj['metadata']['namespace']}/{obj['metadata']['name']}"


def wait_all_available(apps: client.AppsV1Api, expected: int, generation: int, timeout: float) -> None:
    """Every Deployment reports its rollout complete (one cluster-wide list+watch)."""
    done: dict[str, bool] = {}

    def update(kind: str, d: dict) -> None:
        done[_key(d)] = complete(d, generation)

    follow(
        apps.list_deployment_for_all_namespaces,
        update,
        lambda: sum(done.values()) >= expected,
        timeout,
        f"{expected} deployments to be available",
    )


def wait_pod_count(core: client.CoreV1Api, expected: int, timeout: float) -> None:
    """Exactly ``expected`` pods exist (the old pods of a rollout have terminated)."""
    names: set[str] = set()

    def update(kind: str, p: dict) -> None:
        (names.discard if kind == "DELETED" else names.add)(_key(p))

    follow(
        core.list_pod_for_all_namespaces, update, lambda: len(names) == expected, timeout, f"{expected} pods"
    )


def requests_counted(api_client: client.ApiClient) -> int:
    """The sum of ``apiserver_request_total`` on the cluster's /metrics."""
    text = http_session(api_client).get(f"{api_client.configuration.host}/metrics", timeout=30).text
    return sum(
        int(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("apiserver_request_total{")
    )


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc status")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--namespaces", type=int, default=100)
    parser.add_argument("--deployments", type=int, default=10, help="per namespace")
    parser.add_argument("--workers", type=int, default=8, help="client threads issuing requests")
    args = parser.parse_args()
    total = args.namespaces * args.deployments
    phases: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as work:
        kubeconfig = Path(work) / "kubeconfig"
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kubesim",
                "serve",
                "--kubeconfig",
                str(kubeconfig),
                "--time-scale",
                "0",
                "--no-system-workloads",
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert server.stdout is not None
            server.stdout.readline()
            api_client = config.new_client_from_config(config_file=str(kubeconfig))
            api_client.configuration.connection_pool_maxsize = args.workers
            # Plain dicts and raw responses (_preload_content=False), which the client's typed stubs do not
            # describe: the benchmark measures the wire, not the models.
            core: Any = client.CoreV1Api(api_client)
            apps: Any = client.AppsV1Api(api_client)
            before = requests_counted(api_client)
            start = time.monotonic()
            with ThreadPoolExecutor(args.workers) as pool:
                list(
                    pool.map(
                        lambda n: core.create_namespace(
                            {"metadata": {"name": f"bench-{n:03d}"}}, _preload_content=False
                        ),
                        range(args.namespaces),
                    )
                )
                list(
                    pool.map(
                        lambda i: apps.create_namespaced_deployment(
                            f"bench-{i // args.deployments:03d}",
                            deployment(f"web-{i % args.deployments}"),
                            _preload_content=False,
                        ),
                        range(total),
                    )
                )
            phases["create"] = time.monotonic() - start
            wait_all_available(apps, total, 1, 300)
            phases["ready"] = time.monotonic() - start - phases["create"]
            stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            patch = {
                "spec": {
                    "template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": stamp}}}
                }
            }
            t = time.monotonic()
            with ThreadPoolExecutor(args.workers) as pool:
                list(
                    pool.map(
                        lambda i: apps.patch_namespaced_deployment(
                            f"web-{i % args.deployments}",
                            f"bench-{i // args.deployments:03d}",
                            patch,
                            _preload_content=False,
                        ),
                        range(total),
                    )
                )
            phases["restart"] = time.monotonic() - t
            wait_all_available(apps, total, 2, 300)
            wait_pod_count(core, 2 * total, 300)
            phases["ready again"] = time.monotonic() - t - phases["restart"]
            wall = time.monotonic() - start
            served = requests_counted(api_client) - before
            t = time.monotonic()
            raw = json.loads(core.list_pod_for_all_namespaces(_preload_content=False).data)
            raw_list = time.monotonic() - t
            t = time.monotonic()
            typed = core.list_pod_for_all_namespaces()
            typed_list = time.monotonic() - t
            running = sum(1 for p in raw["items"] if p["status"].get("phase") == "Running")
            peak = peak_rss_mib(server.pid)
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(
        f"deployments: {total} in {args.namespaces} namespaces; "
        f"pods listed: {len(raw['items'])} ({running} Running)"
    )
    for name, seconds in phases.items():
        print(f"  {name:12s} {seconds:6.2f} s")
    print(f"wall time (create -> ready -> restart -> ready): {wall:.2f} s   (goal < 60 s)")
    print(f"API requests served: {served} ({served / wall:.0f} requests/s)")
    print(f"cluster process peak memory (VmHWM): {peak:.0f} MiB   (goal < 1024 MiB)")
    print(
        f"list all {len(typed.items)} pods: {raw_list:.3f} s as JSON, "
        f"{typed_list:.3f} s into the client's typed models   (goal < 0.5 s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
