"""Command line of the simulated cluster: ``python -m rehearsal.sim serve --kubeconfig PATH``.

``serve`` starts a cluster, writes its kubeconfig (0600), prints one line when ready and runs until SIGINT or
SIGTERM. Everything else the simulator offers (Istio, istioctl emulation) hangs off the same entry point.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from .cluster import DEFAULT_K8S_VERSION, SimCluster
from .faults import Faults, FaultSpecError


def _version(text: str) -> str:
    parts = text.lstrip("v").split(".")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise argparse.ArgumentTypeError(f"'{text}' is not a Kubernetes version like 1.33.1")
    return ".".join(parts)


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"'{text}' is not a positive whole number")
    return int(text)


def _scale(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if value < 0:
        raise argparse.ArgumentTypeError("the time scale cannot be negative")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m rehearsal.sim", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="start a simulated cluster and run until interrupted")
    serve.add_argument("--kubeconfig", required=True, type=Path, help="where to write the cluster's kubeconfig")
    serve.add_argument("--k8s-version", default=DEFAULT_K8S_VERSION, type=_version,
                       help=f"Kubernetes version the cluster reports (default {DEFAULT_K8S_VERSION})")
    serve.add_argument("--nodes", default=1, type=_positive, help="number of nodes (default 1)")
    serve.add_argument("--name", default="rehearsal", help="cluster name; nodes are <name>-control-plane, ...")
    serve.add_argument("--faults", type=Path, help="YAML file of faults to inject (see the README)")
    serve.add_argument("--no-system-workloads", action="store_true",
                       help="leave out CoreDNS, kube-proxy and kindnet (for benchmarks)")
    serve.add_argument("--time-scale", default=1.0, type=_scale,
                       help="wall seconds per simulated second (1 = real time, 0 = no simulated waiting)")
    return parser


def serve(args: argparse.Namespace) -> int:
    try:
        faults = Faults.from_file(args.faults) if args.faults else Faults()
    except FaultSpecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    cluster = SimCluster(args.name, k8s_version=args.k8s_version, nodes=args.nodes, time_scale=args.time_scale,
                         faults=faults, system_workloads=not args.no_system_workloads)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with cluster:
        cluster.write_kubeconfig(args.kubeconfig)
        print(f"simulated cluster {args.name} (Kubernetes v{args.k8s_version}, {args.nodes} node(s)) ready at "
              f"{cluster.server_url}; kubeconfig {args.kubeconfig}", flush=True)
        stop.wait()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return serve(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
