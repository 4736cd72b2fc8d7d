"""Command line of the simulated cluster: ``python -m kubesim serve --kubeconfig PATH``.

``serve`` starts a cluster, writes its kubeconfig (0600), prints one line when ready and runs until SIGINT or
SIGTERM. Everything else the simulator offers (Istio, istioctl emulation) hangs off the same entry point.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

import kubesim.istio
from kubesim.cluster import DEFAULT_K8S_VERSION, SimCluster
from kubesim.faults import Faults, FaultSpecError


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


def _registry(text: str) -> tuple[str, str | None, str | None]:
    location, _, credentials = text.partition("=")
    user, sep, password = credentials.partition(":")
    host = location.split("/", 1)[0]
    if not host or (credentials and (not user or not sep)):
        raise argparse.ArgumentTypeError(f"{text!r}: expected HOST[/PATH][=USER:PASSWORD]")
    if host.endswith(".invalid"):
        raise argparse.ArgumentTypeError(f"{host}: a .invalid host never resolves (RFC 6761)")
    return location.rstrip("/"), user or None, password if sep else None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m kubesim", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="start a simulated cluster and run until interrupted")
    serve.add_argument(
        "--kubeconfig", required=True, type=Path, help="where to write the cluster's kubeconfig"
    )
    serve.add_argument(
        "--k8s-version",
        default=DEFAULT_K8S_VERSION,
        type=_version,
        help=f"Kubernetes version the cluster reports (default {DEFAULT_K8S_VERSION})",
    )
    serve.add_argument("--nodes", default=1, type=_positive, help="number of nodes (default 1)")
    serve.add_argument(
        "--name", default="rehearsal", help="cluster name; nodes are <name>-control-plane, ..."
    )
    serve.add_argument("--faults", type=Path, help="YAML file of faults to inject (see the README)")
    serve.add_argument(
        "--registry",
        action="append",
        default=[],
        type=_registry,
        metavar="HOST[/PATH][=USER:PASSWORD]",
        help="a registry of yours that exists in the simulated world, mirroring the public ones; with "
        "credentials it is private (repeatable; other hosts do not resolve)",
    )
    serve.add_argument(
        "--no-system-workloads",
        action="store_true",
        help="leave out CoreDNS, kube-proxy and kindnet (for benchmarks)",
    )
    serve.add_argument(
        "--time-scale",
        default=1.0,
        type=_scale,
        help="wall seconds per simulated second (1 = real time, 0 = no simulated waiting)",
    )
    serve.add_argument(
        "--istio", metavar="X.Y.Z", help="install this Istio version the way istioctl install would"
    )
    serve.add_argument(
        "--date",
        type=_date,
        metavar="YYYY-MM-DD[THH:MM]",
        help="the simulated world's date (UTC): Istio's registries follow their retirement dates against it",
    )
    serve.add_argument(
        "--apps", action="store_true", help="with --istio: deploy the sample apps behind the ingress"
    )
    commands.add_parser("versions", help="list the Istio versions the simulator can install, oldest first")
    istioctl = commands.add_parser(
        "istioctl", help="run the istioctl emulator of one Istio version", add_help=False
    )
    istioctl.add_argument("--as-version", required=True, metavar="X.Y.Z")
    istioctl.add_argument("rest", nargs=argparse.REMAINDER)
    return parser


def install_istio(cluster: SimCluster, version: str, apps: bool) -> str:
    """Install Istio with the emulator (as `istioctl install -y`), optionally the sample apps; say what."""
    import io

    import yaml
    from kubernetes import dynamic

    from kubesim.istio import kubeops
    from kubesim.istio.istioctl import main as istioctl_main

    out, err = io.StringIO(), io.StringIO()
    code = istioctl_main(version, ["install", "-y", "--kubeconfig", str(cluster.kubeconfig_path)], out, err)
    if code != 0:
        raise RuntimeError(f"istioctl install failed ({code}): {err.getvalue() or out.getvalue()}")
    summary = f"Istio {version} installed"
    if apps:
        root = Path(__file__).resolve().parent.parent / "sample_apps"
        client = dynamic.DynamicClient(cluster.api_client())
        docs = [
            doc
            for path in sorted(root.glob("*.yaml")) + sorted((root / "mesh").glob("*.yaml"))
            for doc in yaml.safe_load_all(path.read_text())
            if doc
        ]
        for doc in docs:
            kubeops.apply(client, doc, field_manager="kubectl")
        for doc in docs:
            if doc["kind"] == "Deployment":
                kubeops.wait_ready(
                    client, "Deployment", doc["metadata"]["name"], doc["metadata"]["namespace"], 300
                )
        url = cluster.node_ports.url("istio-system", "istio-ingressgateway", "http2")
        summary += (
            f"; sample apps at {url}/echo" if url else "; sample apps deployed (gateway has no node port)"
        )
    return summary


def _date(text: str) -> float:
    """``YYYY-MM-DD[THH:MM]`` (UTC) as seconds since 1970."""
    from datetime import UTC, datetime

    try:
        if len(text) not in (10, 16):
            raise ValueError(text)
        return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected YYYY-MM-DD or YYYY-MM-DDTHH:MM (UTC)") from None


def serve(args: argparse.Namespace) -> int:
    try:
        faults = Faults.from_file(args.faults) if args.faults else Faults()
    except FaultSpecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    cluster = SimCluster(
        args.name,
        k8s_version=args.k8s_version,
        nodes=args.nodes,
        time_scale=args.time_scale,
        faults=faults,
        system_workloads=not args.no_system_workloads,
        addons=[kubesim.istio.addon],
    )
    for location, user, password in args.registry:
        cluster.registry.add_registry(location, user, password)
    if args.date is not None:
        cluster.set_calendar(args.date)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    if args.apps and not args.istio:
        print("error: --apps needs --istio X.Y.Z (the sample apps run in the mesh)", file=sys.stderr)
        return 2
    if args.istio:
        from istiofacts.catalog import UnknownVersion, check_known

        try:
            check_known(args.istio)
        except UnknownVersion as exc:
            print(f"error: {exc}; see `python -m kubesim versions`", file=sys.stderr)
            return 2
    with cluster:
        cluster.write_kubeconfig(args.kubeconfig)
        extra = ""
        if args.istio:
            try:
                extra = "; " + install_istio(cluster, args.istio, args.apps)
            except (RuntimeError, TimeoutError) as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 1
        print(
            f"simulated cluster {args.name} (Kubernetes v{args.k8s_version}, {args.nodes} node(s)) ready at "
            f"{cluster.server_url}; kubeconfig {args.kubeconfig}{extra}",
            flush=True,
        )
        stop.wait()
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["istioctl"]:
        # Everything after --as-version goes to the emulator untouched, as the real istioctl would get it.
        from kubesim.istio.istioctl import main as istioctl_main

        rest = argv[1:]
        if len(rest) >= 2 and rest[0] == "--as-version":
            return istioctl_main(rest[1], rest[2:])
        if rest and rest[0].startswith("--as-version="):
            return istioctl_main(rest[0].split("=", 1)[1], rest[1:])
        print("usage: python -m kubesim istioctl --as-version X.Y.Z ARGS...", file=sys.stderr)
        return 64
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return serve(args)
    if args.command == "versions":
        from istiofacts.catalog import known_versions

        print("\n".join(known_versions()))
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
