"""Command line of the harness: ``python -m rehearsal demo``.

``demo`` starts the embedded simulated cluster, deploys the sample apps, waits for their rollouts and prints
what it did, step by step, with timings.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from .cluster import SimProvider
from .kube import Kube, load_manifests

ROOT = Path(__file__).resolve().parent.parent


def demo(args: argparse.Namespace) -> int:
    started = time.monotonic()

    def say(text: str) -> None:
        print(f"[{time.monotonic() - started:6.2f}s] {text}", flush=True)

    with tempfile.TemporaryDirectory(prefix="rehearsal-demo-") as work:
        say(f"starting a simulated cluster (time scale {args.time_scale})")
        cluster = SimProvider(time_scale=args.time_scale).provision(Path(work))
        try:
            say(f"cluster {cluster.stable_name} ready, Kubernetes v{cluster.server_version()}")
            kube = Kube(cluster.api_client(), Path(work) / "discovery.json")
            docs = load_manifests(args.apps)
            for item in kube.apply(docs):
                say(f"applied {item.kind} {item.namespace + '/' if item.namespace else ''}{item.name}")
            for doc in docs:
                if doc["kind"] in ("Deployment", "DaemonSet", "StatefulSet"):
                    ns = doc["metadata"].get("namespace", "default")
                    obj = kube.wait_rollout(doc["kind"], doc["metadata"]["name"], ns, timeout=120)
                    say(f"rolled out {doc['kind']} {ns}/{doc['metadata']['name']}: "
                        f"{obj['status'].get('readyReplicas', 0)}/{obj['spec'].get('replicas', 1)} ready")
            pods = kube.resource("v1", "Pod").get(namespace=docs[0]["metadata"]["name"]).items
            for pod in pods:
                say(f"pod {pod.metadata.name}: {pod.status.phase} on {pod.spec.nodeName} ({pod.status.podIP})")
        finally:
            cluster.close()
    say("done")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rehearsal", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run_demo = commands.add_parser("demo", help="deploy the sample apps on a simulated cluster")
    run_demo.add_argument("--apps", default=str(ROOT / "sample_apps"), help="folder of manifests to deploy")
    run_demo.add_argument("--time-scale", type=float, default=0.2,
                          help="wall seconds per simulated second (default 0.2)")
    args = parser.parse_args(argv)
    if args.command == "demo":
        return demo(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
