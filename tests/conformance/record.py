"""Record the answers of a real kube-apiserver to the conformance scenarios (the suite's test data).

    .venv/bin/python -m tests.conformance.record [--kubeconfig PATH] [--only NAME...]

The kubeconfig defaults to the reference control plane's (``KUBESIM_REFERENCE``, a kubeconfig path or the
directory holding ``control-plane``; start it with ``control-plane start``). Each scenario runs in a fresh
namespace named after the run, so recording twice never collides; answers are normalised by
``runner.outcome`` and written to ``tests/data/conformance/recordings.json`` with the server version.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from kubesim.apiserver.schema import K8S_VERSION
from tests.conformance.runner import Cluster, Request, run
from tests.conformance.scenarios import all_scenarios

OPENAPI_DATA = Path(__file__).resolve().parents[2] / "kubesim" / "apiserver" / "data"
RECORDINGS = Path(__file__).resolve().parent.parent / "data" / "conformance" / "recordings.json"


def reference_kubeconfig() -> str | None:
    """The reference's kubeconfig from KUBESIM_REFERENCE, or None when no reference is configured."""
    value = os.environ.get("KUBESIM_REFERENCE", "")
    if not value:
        return None
    path = Path(value)
    if path.is_dir():
        script = path / "control-plane"
        line = subprocess.run([str(script), "env"], capture_output=True, text=True, check=True).stdout
        return line.strip().split("=", 1)[1]
    return str(path)


def dump_openapi(cluster: Cluster) -> None:
    """The server's /openapi/v2 and every group-version's /openapi/v3 document, gzipped into kubesim."""
    _, v2, _ = cluster.send(Request("GET", "/openapi/v2"), "")
    _, index, _ = cluster.send(Request("GET", "/openapi/v3"), "")
    assert isinstance(v2, dict) and isinstance(index, dict)
    v3, roots = {}, {}
    for key in index["paths"]:
        if key.startswith(("api/", "apis/")) and key.count("/") == (1 if key.startswith("api/") else 2):
            _, v3[key], _ = cluster.send(Request("GET", "/openapi/v3/" + key), "")
        elif ".example.com" not in key:
            # The other documents of the index: group roots (apis/apps), api, apis, version and the
            # service-account issuer discovery paths; a custom group's root is left to the simulator.
            _, roots[key], _ = cluster.send(Request("GET", "/openapi/v3/" + key), "")
    for name, doc in (("openapi-v2", v2), ("openapi-v3", v3), ("openapi-v3-roots", roots)):
        raw = json.dumps(doc, separators=(",", ":")).encode()
        (OPENAPI_DATA / f"{name}-v{K8S_VERSION}.json.gz").write_bytes(gzip.compress(raw, 9, mtime=0))


def namespace_for(run_id: str, index: int) -> str:
    return f"conf-{run_id}-{index}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", default=None)
    parser.add_argument("--only", nargs="*", default=None)
    parser.add_argument(
        "--dump-openapi",
        action="store_true",
        help="also rewrite kubesim's OpenAPI package data from the server",
    )
    args = parser.parse_args(argv)
    kubeconfig = args.kubeconfig or reference_kubeconfig()
    if not kubeconfig:
        print("no reference: pass --kubeconfig or set KUBESIM_REFERENCE", file=sys.stderr)
        return 2
    cluster = Cluster(kubeconfig)
    if args.dump_openapi:
        dump_openapi(cluster)
    _, version, _ = cluster.send(Request("GET", "/version"), "")
    recordings = (
        json.loads(RECORDINGS.read_text()) if RECORDINGS.exists() and args.only else {"scenarios": {}}
    )
    recordings["server"] = version.get("gitVersion") if isinstance(version, dict) else str(version)
    run_id = str(int(time.time()) % 100000)
    failed: list[str] = []
    for index, scenario in enumerate(all_scenarios()):
        if args.only and scenario.name not in args.only:
            continue
        try:
            recordings["scenarios"][scenario.name] = run(
                cluster, scenario, namespace_for(run_id, index), lambda line: print(line, file=sys.stderr)
            )
        except AssertionError as exc:
            failed.append(scenario.name)
            print(f"not recorded: {exc}"[:400], file=sys.stderr)
    RECORDINGS.parent.mkdir(parents=True, exist_ok=True)
    RECORDINGS.write_text(json.dumps(recordings, indent=1, sort_keys=True) + "\n")
    print(f"recorded {len(recordings['scenarios'])} scenarios from {recordings['server']} into {RECORDINGS}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
