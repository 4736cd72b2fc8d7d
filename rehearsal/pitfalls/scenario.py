"""Pitfall scenarios (``scenarios/*.yaml``) and the cluster each one starts from (harness library).

A scenario is data: the pitfall it reproduces, links, the versions (relative to the catalog, so a new
release moves them: ``newest``, ``newest-minus-1``, ``1.27.x`` for the newest patch of a minor, or a patch),
the Kubernetes version, the install settings the team used (``install``), the rehearsal's own options
(``options``: the user's plan, ``--set``), and what the team's cluster holds besides Istio: ``objects``
(manifests, applied server-side), ``patches`` (JSON or merge patches of Istio's own objects) and ``delete``;
``stop: preflight`` rehearses up to the preflight only, for a pitfall caught there as a warning (the upgrade
that follows it adds nothing to the finding).
Strings may use ``{{source}}``, ``{{target}}``, ``{{source_minor}}``, ``{{target_minor}}`` and
``{{source_minor_re}}`` (``1\\.30``). :func:`seed` builds that cluster on a simulated cluster the way the team
did: ``istioctl install`` of the source (the emulator, reached by its kubeconfig), then the objects through
the API, so the rehearsal meets it as it meets any existing cluster (``--cluster kubeconfig``).
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from istiofacts import catalog, pitfalls

ROOT = Path(__file__).resolve().parent.parent.parent
SCENARIOS = ROOT / "scenarios"
KEYS = {
    "pitfall", "name", "links", "source", "target", "kubernetes", "install", "options", "objects", "patches",
    "delete", "expect", "cite", "check", "notes", "stop",
}  # fmt: skip


class ScenarioError(ValueError):
    """A bad scenario file; the message names the file and what is wrong."""


def resolve_version(expr: str) -> str:
    """``newest``, ``newest-minus-N``, ``M.m.x`` (newest patch of that minor) or a known patch."""
    minors = sorted(catalog.CATALOG.values(), key=lambda m: m.version_tuple)
    if expr == "newest" or expr.startswith("newest-minus-"):
        back = 0 if expr == "newest" else int(expr.rsplit("-", 1)[1])
        return minors[-1 - back].patches[-1]
    if expr.endswith(".x"):
        return catalog.CATALOG[expr[:-2]].patches[-1]
    return catalog.check_known(expr)


@dataclass
class Scenario:
    path: Path
    name: str
    pitfall: str
    source: str
    target: str
    kubernetes: str = ""
    install: list[str] = field(default_factory=list)  # --set values of the team's source install
    options: list[str] = field(default_factory=list)  # rehearsal options (the user's plan)
    objects: list[dict[str, Any]] = field(default_factory=list)
    patches: list[dict[str, Any]] = field(default_factory=list)
    delete: list[dict[str, Any]] = field(default_factory=list)
    expect: str = "pre"  # where the harness catches it: pre | during
    check: str = ""  # "pending: ..." when the named check is another change's
    stop: str = ""  # "preflight": rehearse up to the preflight (and the rollback suite), not the upgrade
    links: list[str] = field(default_factory=list)
    cite: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "pitfall": self.pitfall,
            "file": str(self.path.relative_to(ROOT)) if self.path.is_relative_to(ROOT) else str(self.path),
            "source": self.source,
            "target": self.target,
            "kubernetes": self.kubernetes,
            "expect": self.expect,
            "check": self.check,
            "links": self.links,
        }


def _substitute(value: Any, words: dict[str, str]) -> Any:
    if isinstance(value, str):
        for key, text in words.items():
            value = value.replace("{{" + key + "}}", text)
        return value
    if isinstance(value, list):
        return [_substitute(v, words) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v, words) for k, v in value.items()}
    return value


def load(path: Path) -> Scenario:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ScenarioError(f"{path}: {' '.join(str(exc).split())}") from None
    if not isinstance(data, dict):
        raise ScenarioError(f"{path}: a scenario is a mapping")
    unknown = set(data) - KEYS
    if unknown:
        raise ScenarioError(f"{path}: unknown keys {sorted(unknown)}")
    try:
        pitfalls.get(str(data.get("pitfall")))
        source, target = resolve_version(str(data["source"])), resolve_version(str(data["target"]))
    except (KeyError, ValueError) as exc:
        raise ScenarioError(f"{path}: {exc}") from None
    words = {
        "source": source,
        "target": target,
        "source_minor": catalog.minor_name(source),
        "target_minor": catalog.minor_name(target),
        "source_minor_re": catalog.minor_name(source).replace(".", "\\."),
    }
    data = _substitute(data, words)
    return Scenario(
        path=path,
        name=str(data.get("name") or path.stem),
        pitfall=str(data["pitfall"]),
        source=source,
        target=target,
        kubernetes=str(data.get("kubernetes") or ""),
        install=[str(s) for s in data.get("install") or []],
        options=[str(s) for s in data.get("options") or []],
        objects=list(data.get("objects") or []),
        patches=list(data.get("patches") or []),
        delete=list(data.get("delete") or []),
        expect=str(data.get("expect") or "pre"),
        check=str(data.get("check") or ""),
        stop=str(data.get("stop") or ""),
        links=[str(x) for x in data.get("links") or []],
        cite=[str(x) for x in data.get("cite") or []],
    )


def load_all(folder: Path = SCENARIOS, only: list[str] | None = None) -> list[Scenario]:
    found = [load(p) for p in sorted(folder.glob("*.yaml"))]
    if only:
        unknown = set(only) - {s.name for s in found} - {s.pitfall for s in found}
        if unknown:
            raise ScenarioError(f"--only: no scenario named {', '.join(sorted(unknown))}")
        found = [s for s in found if s.name in only or s.pitfall in only]
    return found


def seed(scenario: Scenario, kube: Any, istioctl: Any) -> None:
    """The team's cluster: the source installed with its istioctl, then their objects, patches and
    deletions through the API."""
    from .. import waits

    sets = [a for s in scenario.install for a in ("--set", s)]
    istioctl.run("install", "-y", *sets)
    kube.invalidate_discovery()
    first = [o for o in scenario.objects if o.get("kind") in ("CustomResourceDefinition", "Namespace")]
    if first:
        kube.apply(first, field_manager="team")
        kube.invalidate_discovery()
    # A new namespace's pods are refused until the ServiceAccount controller has created its "default"
    # account ('error looking up service account NS/default'), as on any cluster: wait for it, as kubectl
    # users retry.
    accounts = kube.resource("v1", "ServiceAccount")

    def has_default(namespace: str) -> bool:
        return any(a.metadata.name == "default" for a in accounts.get(namespace=namespace).items)

    for ns in [o["metadata"]["name"] for o in first if o.get("kind") == "Namespace"]:
        waits.poll(functools.partial(has_default, ns), 60, f"ServiceAccount {ns}/default", 0.05)
    kube.apply([o for o in scenario.objects if o not in first], field_manager="team")
    for p in scenario.patches:
        kind = {"json": "application/json-patch+json", "merge": "application/merge-patch+json"}[
            p.get("type", "json")
        ]
        kube.resource(p["apiVersion"], p["kind"]).patch(
            name=p["name"], namespace=p.get("namespace"), body=p["patch"], content_type=kind
        )
    for d in scenario.delete:
        kube.resource(d["apiVersion"], d["kind"]).delete(name=d["name"], namespace=d.get("namespace"))
    for o in scenario.objects:
        if o.get("kind") in ("Deployment", "StatefulSet", "DaemonSet"):
            ns = o["metadata"].get("namespace") or "default"
            waits.rollouts(kube, [(o["kind"], o["metadata"]["name"])], ns, 120)


def child(argv: list[str]) -> int:
    """``python -m rehearsal pitfalls --one FILE --report-dir DIR``: seed the scenario's cluster on a
    simulated cluster (in this process), then rehearse on it by its kubeconfig as on any existing cluster."""
    from ..cluster.sim import SimProvider
    from ..istio.istioctl import Istioctl
    from ..kube import Kube

    file, report_dir = Path(argv[argv.index("--one") + 1]), Path(argv[argv.index("--report-dir") + 1])
    scenario = load(file)
    report_dir.mkdir(parents=True, exist_ok=True)
    (report_dir / "scenario.json").write_text(json.dumps(scenario.to_dict(), indent=2))
    provider = SimProvider(k8s_version=scenario.kubernetes) if scenario.kubernetes else SimProvider()
    cluster = provider.provision(report_dir)
    try:
        assert cluster.simulator is not None
        bin_dir = report_dir / "bin"
        ctl_from = cluster.simulator.istioctl(scenario.source, bin_dir / scenario.source)
        ctl_to = cluster.simulator.istioctl(scenario.target, bin_dir / scenario.target)
        from kubernetes import config

        kube = Kube(config.new_client_from_config(config_file=str(cluster.kubeconfig)))
        seed(scenario, kube, Istioctl(scenario.source, ctl_from, cluster.kubeconfig))
        args = [sys.executable, "-m", "rehearsal", "run", "--cluster", "kubeconfig"]
        args += ["--rehearsal-kubeconfig", str(cluster.kubeconfig), "--istioctl-from", str(ctl_from)]
        args += ["--istioctl-to", str(ctl_to), "--istio-from", scenario.source, "--istio-to", scenario.target]
        args += ["--report-dir", str(report_dir), "--traffic-requests", "5", "-q", "-p", "no:cacheprovider"]
        # A kubeconfig rehearsal judges Istio's registry dates at today's date (--sim-date is the simulated
        # cluster's option; the scenario test passes it to the checks directly).
        options = list(scenario.options)
        while "--sim-date" in options:
            at = options.index("--sim-date")
            del options[at : at + 2]
        args += options
        if scenario.stop == "preflight":
            args += [f"--ignore={ROOT / 'suites' / name}" for name in ("030_upgrade", "040_validate")]
        return subprocess.run(args, cwd=ROOT).returncode
    finally:
        cluster.close()
