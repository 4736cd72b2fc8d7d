"""The rehearsal's settings: one frozen object, resolved once from the command line, a config file and ini
defaults (command line wins when given). Bad values raise :class:`SettingsError` naming the option and what it
accepts, before anything touches a cluster.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from istiofacts import catalog, operator

from . import early

CLUSTERS = ("sim", "kind", "kubeconfig")
STRATEGIES = ("in-place", "istioctl", "canary")
ROLLBACK_MODES = ("on-failure", "always", "never")


class SettingsError(ValueError):
    """A setting with a bad value; the message names the option and what it accepts."""


@dataclass(frozen=True)
class Settings:
    cluster: str = "sim"
    kubeconfig: str | None = None
    context: str | None = None
    istio_from: str = ""
    istio_to: str = ""
    plan: str | None = None
    sets: tuple[str, ...] = ()
    strategy: str = "in-place"
    rollback: str = "on-failure"
    keep_cluster: bool = False
    report_dir: str = "reports"
    sim_faults: str | None = None
    sim_time_scale: float = 0.0
    sim_registries: tuple[str, ...] = ()  # HOST[/PATH][=USER:PASSWORD], see rehearsal.cluster.sim.SimRegistry
    k8s_version: str = "1.33.1"
    kind_name: str = "istio-rehearsal"
    kind_bin: str | None = None  # --kind-bin (else kind on PATH)
    kind_image: str | None = None  # --kind-image (else the kind release's default node image)
    kind_registry_mirror: bool = False  # --kind-registry-mirror
    istioctl_from_path: str | None = None
    istioctl_to_path: str | None = None
    apps_registry: str | None = None
    traffic_requests: int = 50
    timeout: float = 300.0
    # An existing cluster: which contexts may be rehearsed on (globs), which namespaces' workloads to restart
    # (empty: every injected one), the user's own apps instead of the sample apps, and their probe.
    allow_context: tuple[str, ...] = ()
    restart_namespaces: tuple[str, ...] = ()
    # Objects the source installed that the target may prune (KIND/NAMESPACE/NAME; --allow-prune, or the
    # plan's metadata annotation ALLOW_PRUNE_ANNOTATION); any other would-be prune stops the run before apply.
    allow_prune: tuple[str, ...] = ()
    apps: str | None = None
    apps_namespace: str = "rehearsal-apps"
    probe: str | None = None
    probe_host: str | None = None
    # The availability prober (rehearsal.probe): requests per second through the upgrade, and the SLO the
    # validation judges them by (success ratio, longest run of failures in seconds). Defaults: README.
    probe_rate: float = 20.0
    slo_success: float = 0.999
    slo_max_outage: float = 1.0
    istio_from_given: bool = True
    # Warnings about the versions (a patch newer than the catalog on a real cluster); shown by the precheck.
    version_notes: tuple[str, ...] = ()
    # --set values the harness adds on kind for a laptop (kind_sizing), before the user's (not their plan).
    sizing: tuple[str, ...] = ()
    plan_spec: dict[str, Any] = field(default_factory=dict, compare=False)
    # --strategy canary: the new revision's name (default: from the version, 1-31-1) and the namespaces to
    # move first, in order (default: the sample apps first).
    revision: str | None = None
    canary_order: tuple[str, ...] = ()
    # The simulated world's date (--sim-date, UTC, "YYYY-MM-DD[THH:MM]"): Istio's registries follow their
    # retirement dates against it (istiofacts.registries); None: the simulator applies no dates.
    sim_date: str | None = None
    # Pull secrets to create before the source install (--pull-secret NAME=DOCKERCONFIGJSON_FILE); the file's
    # content is read only when the Secret is created, and never logged nor kept in a report.
    pull_secrets: tuple[str, ...] = ()
    # The hub set for a version whose default registry is retired or retires soon, and why (resolve()).
    hub_choices: tuple[tuple[str, str], ...] = ()
    hub_notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The settings as the run record keeps them: registry passwords are left out."""
        data = asdict(self)
        for name in (
            "sets",
            "allow_context",
            "restart_namespaces",
            "allow_prune",
            "version_notes",
            "canary_order",
            "pull_secrets",
            "hub_notes",
            "sizing",
        ):
            data[name] = list(getattr(self, name))
        data["hub_choices"] = [list(c) for c in self.hub_choices]
        data["sim_registries"] = [
            f"{text.partition('=')[0]}={text.partition('=')[2].partition(':')[0]}:***"
            if "=" in text
            else text
            for text in self.sim_registries
        ]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Settings:
        data = dict(data)
        for name in (
            "sets",
            "allow_context",
            "restart_namespaces",
            "allow_prune",
            "sim_registries",
            "version_notes",
            "canary_order",
            "pull_secrets",
            "hub_notes",
            "sizing",
        ):
            data[name] = tuple(data.get(name) or ())
        data["hub_choices"] = tuple(tuple(c) for c in data.get("hub_choices") or ())
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})

    def install_spec(self, version: str) -> dict[str, Any]:
        """The plan for installing ``version``: the plan file, then --set, with the tag of that version."""
        spec = operator.deep_merge({}, self.plan_spec)
        for expression in (*self.sizing, *self.sets):
            key, value = operator.parse_set(expression)
            operator.set_path(spec, key, value)
        spec.pop("tag", None)
        values_global = (spec.get("values") or {}).get("global") or {}
        values_global.pop("tag", None)
        chosen = self.chosen_hub(version)
        if chosen and not spec.get("hub"):
            spec["hub"] = chosen
        return spec

    def chosen_hub(self, version: str) -> str | None:
        """The hub the harness sets for ``version`` (its default registry retires), or None."""
        return next((hub for v, hub in self.hub_choices if v == version), None)

    def install_sets(self, version: str) -> list[str]:
        """--set arguments for istioctl: the laptop sizing on kind (``sizing``), the user's, minus any tag,
        plus ``tag=<version>`` (and the hub the harness chose for a version whose default registry
        retires)."""
        chosen = self.chosen_hub(version)
        return (
            list(self.sizing)
            + [s for s in self.sets if operator.parse_set(s)[0] not in ("tag", "values.global.tag")]
            + ([f"hub={chosen}"] if chosen else [])
            + [f"tag={version}"]
        )


#: What istiod and the ingress gateway request on kind when the plan sets nothing: Istio's demo profile
#: ("Lower resource utilization", istio/istio 1.31 manifests/helm-profiles/demo.yaml: pilot 10m/100Mi,
#: istio-ingressgateway 10m/40Mi); the default profile's istiod asks 500m and 2Gi, twice during a surge.
KIND_SIZING = {
    "pilot": (
        "values.pilot.resources.requests.cpu=10m",
        "values.pilot.resources.requests.memory=100Mi",
    ),
    "ingress gateway": (
        "values.gateways.istio-ingressgateway.resources.requests.cpu=10m",
        "values.gateways.istio-ingressgateway.resources.requests.memory=40Mi",
    ),
}


def kind_sizing(spec: dict[str, Any]) -> tuple[tuple[str, ...], list[str]]:
    """The laptop-sized requests for what ``spec`` (the plan with its --set values) sizes not itself, and
    what was sized (for the note)."""
    components = spec.get("components") or {}
    values = spec.get("values") or {}
    pilot_set = bool(((components.get("pilot") or {}).get("k8s") or {}).get("resources")) or bool(
        (values.get("pilot") or {}).get("resources")
    )
    gateways = components.get("ingressGateways") or []
    gateway_set = any(
        isinstance(g, dict) and (g.get("k8s") or {}).get("resources") for g in gateways
    ) or bool(((values.get("gateways") or {}).get("istio-ingressgateway") or {}).get("resources"))
    sized = [name for name, given in (("pilot", pilot_set), ("ingress gateway", gateway_set)) if not given]
    return tuple(e for name in sized for e in KIND_SIZING[name]), sized


def _choice(option: str, value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise SettingsError(f"{option} {value!r} is not one of: {', '.join(choices)}")
    return value


def _version(option: str, value: str, cluster: str, notes: list[str]) -> str:
    """A known release; on a real cluster also a newer patch of a known minor (with a warning in ``notes``:
    that version's real istioctl decides), while the simulator refuses what it cannot emulate."""
    try:
        if cluster == "sim":
            return catalog.check_known(value)
        version, warning = catalog.check_release(value, newer_minor_ok=True)
    except catalog.UnknownVersion as exc:
        raise SettingsError(f"{option}: {exc}") from None
    if warning:
        notes.append(f"{option}: {warning}")
    return version


def _number(option: str, value: Any, kind: type[int] | type[float], what: str) -> float:
    """A numeric option's value, or an error naming the option, the value and what it takes."""
    try:
        if isinstance(value, bool) or (kind is int and isinstance(value, float)):
            raise ValueError(value)
        number = kind(value)
    except (TypeError, ValueError):
        raise SettingsError(f"{option} {value!r}: not {what}") from None
    if number != number or number in (float("inf"), float("-inf")):  # nan, inf
        raise SettingsError(f"{option} {value!r}: not {what}")
    return float(number)


ALLOW_PRUNE_ANNOTATION = "istio-upgrade-rehearsal/allow-prune"


def allow_prune_of(values: Any, plan: str | None) -> tuple[str, ...]:
    """``--allow-prune`` values (repeatable or comma-separated) and the plan file's
    ``metadata.annotations["istio-upgrade-rehearsal/allow-prune"]``, each checked as KIND/NAMESPACE/NAME
    (NAMESPACE empty for cluster-scoped kinds: ``ClusterRole//name``)."""
    items = [str(i) for i in (values or ())] if not isinstance(values, str) else [values]
    if plan:
        try:
            doc = yaml.safe_load(Path(plan).read_text()) or {}
        except (OSError, yaml.YAMLError):
            doc = {}  # load_plan reports an unreadable plan
        annotations = ((doc.get("metadata") or {}) if isinstance(doc, dict) else {}).get("annotations") or {}
        if annotations.get(ALLOW_PRUNE_ANNOTATION):
            items.append(str(annotations[ALLOW_PRUNE_ANNOTATION]))
    out = []
    for item in items:
        for ref in (r.strip() for r in item.replace("\n", ",").split(",")):
            if not ref:
                continue
            if ref.count("/") != 2 or not ref.split("/")[0] or not ref.split("/")[2]:
                raise SettingsError(
                    f"--allow-prune {ref}: expected KIND/NAMESPACE/NAME, e.g. Deployment/istio-ingress/"
                    "istio-ingressgateway (NAMESPACE empty for cluster-scoped kinds)"
                )
            out.append(ref)
    return tuple(dict.fromkeys(out))


def load_plan(path: str) -> dict[str, Any]:
    try:
        return operator.load_file(path)
    except operator.OperatorError as exc:
        raise SettingsError(f"--plan: {exc}") from None


def load_config(path: str | None) -> dict[str, Any]:
    """A YAML config file of option defaults (keys as the options without dashes, e.g. istio-to)."""
    if not path:
        return {}
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except OSError as exc:
        raise SettingsError(f"--rehearsal-config: cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise SettingsError(f"--rehearsal-config: {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise SettingsError(f"--rehearsal-config: {path} must be a mapping of option names to values")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def resolve(values: dict[str, Any], now: datetime | None = None) -> Settings:
    """Build and check Settings from merged option values (None means "not given"). ``now`` is the moment a
    real cluster's registries are judged at (default: the real time); the simulator's is --sim-date."""
    v = {k: val for k, val in values.items() if val is not None}
    known = {
        f
        for f in Settings.__dataclass_fields__
        if f not in ("plan_spec", "istio_from_given", "version_notes", "hub_choices", "hub_notes")
    }
    unknown = sorted(set(v) - known)
    if unknown:
        raise SettingsError(f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    default_from, default_to = catalog.default_pair()
    cluster = _choice("--cluster", str(v.get("cluster", "sim")), CLUSTERS)
    notes: list[str] = []
    istio_from = _version("--istio-from", str(v.get("istio_from") or default_from), cluster, notes)
    istio_to = _version("--istio-to", str(v.get("istio_to") or default_to), cluster, notes)
    if catalog.parse_version(istio_to) < catalog.parse_version(istio_from):
        policy = catalog.upgrade_path_problem(istio_from, istio_to) or (
            "a downgrade may go back at most one minor, as this one does"
        )
        raise SettingsError(
            f"--istio-to {istio_to} is older than --istio-from {istio_from}: that is a downgrade, not an "
            f"upgrade (Istio's policy in the catalog: {policy}); this harness rehearses upgrades, so swap "
            "the two versions to rehearse the upgrade"
        )
    strategy = _choice("--strategy", str(v.get("strategy", "in-place")), STRATEGIES)
    rollback = _choice("--rollback", str(v.get("rollback", "on-failure")), ROLLBACK_MODES)
    revision = v.get("revision") or None
    if revision is not None and not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", str(revision)):
        raise SettingsError(
            f"--revision {revision!r} is not a revision name (lower-case letters, digits and '-', "
            "e.g. 1-31-1)"
        )
    order_given = v.get("canary_order") or ()
    canary_order = tuple(
        n.strip()
        for item in ((order_given,) if isinstance(order_given, str) else order_given)
        for n in str(item).split(",")
        if n.strip()
    )
    if (revision or canary_order) and strategy != "canary":
        raise SettingsError("--revision and --canary-order apply only to --strategy canary")
    sets = tuple(v.get("sets") or ())
    for expression in sets:
        try:
            operator.parse_set(expression)
        except operator.OperatorError as exc:
            raise SettingsError(str(exc)) from None
    plan = v.get("plan")
    plan_spec = load_plan(plan) if plan else {}
    kubeconfig = v.get("kubeconfig")
    if cluster == "kubeconfig" and not kubeconfig:
        raise SettingsError(
            "--cluster kubeconfig needs --rehearsal-kubeconfig PATH (and optionally --rehearsal-context NAME)"
        )
    allow_context = tuple(v.get("allow_context") or ())
    restart_namespaces = tuple(
        n.strip() for item in v.get("restart_namespaces") or () for n in str(item).split(",") if n.strip()
    )
    apps_namespace = str(v.get("apps_namespace") or "rehearsal-apps")
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", apps_namespace):
        raise SettingsError(
            f"--apps-namespace {apps_namespace!r} is not a namespace name (lower-case letters, digits and "
            "'-', at most 63, starting and ending with a letter or digit)"
        )
    if apps_namespace in ("default", "kube-system", "kube-public", "kube-node-lease", "istio-system"):
        raise SettingsError(
            f"--apps-namespace {apps_namespace}: the sample apps need a namespace of their own, not "
            f"{apps_namespace}; pick a new name such as rehearsal-apps-2"
        )
    allow_prune = allow_prune_of(v.get("allow_prune"), plan)
    apps = v.get("apps")
    if apps and not Path(str(apps)).is_dir():
        raise SettingsError(f"--apps {apps}: not a folder; pass a folder of Kubernetes YAML manifests")
    if v.get("probe_host") and not v.get("probe"):
        raise SettingsError("--probe-host needs --probe PATH (the path to request through the ingress)")
    if apps and not v.get("probe"):
        raise SettingsError(
            "--apps needs --probe PATH: the path on the ingress gateway your apps answer 200 on"
        )
    faults = v.get("sim_faults")
    if faults:
        if cluster != "sim":
            raise SettingsError("--sim-faults only applies to --cluster sim")
        from .cluster.base import ClusterError
        from .cluster.sim import check_faults_file

        try:
            check_faults_file(faults)
        except ClusterError as exc:
            raise SettingsError(f"--sim-faults: {exc}") from None
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            # A value of the wrong type deep in a fault (times: many): still one line, not a traceback.
            raise SettingsError(f"--sim-faults: {faults}: a value has the wrong type: {exc}") from None
    registries = v.get("sim_registries") or ()
    registries = (registries,) if isinstance(registries, str) else tuple(str(r) for r in registries)
    if registries:
        if cluster != "sim":
            raise SettingsError("--sim-registry only applies to --cluster sim")
        from .cluster.base import ClusterError
        from .cluster.sim import SimRegistry

        for text in registries:
            try:
                SimRegistry.parse(text)
            except ClusterError as exc:
                raise SettingsError(str(exc)) from None
    # Only once the options agree with each other: the kubeconfig file is read for its contexts.
    if cluster == "kubeconfig":
        from .cluster.base import ClusterError
        from .cluster.kubeconfig import check_context_allowed

        try:
            check_context_allowed(Path(str(kubeconfig)).expanduser(), v.get("context"), allow_context)
        except ClusterError as exc:
            raise SettingsError(str(exc)) from None
    scale = _number(
        "--sim-time-scale", v.get("sim_time_scale", 0.0), float, "a number of wall seconds, e.g. 0.05"
    )
    requests_n = int(
        _number("--traffic-requests", v.get("traffic_requests", 50), int, "a whole number, e.g. 50")
    )
    timeout = _number("--step-timeout", v.get("timeout", 300.0), float, "a number of seconds, e.g. 300")
    probe_rate = _number("--probe-rate", v.get("probe_rate", 20.0), float, "requests per second, e.g. 20")
    slo_success = _number("--slo-success", v.get("slo_success", 0.999), float, "a ratio, e.g. 0.999")
    slo_max_outage = _number(
        "--slo-max-outage", _seconds_text(v.get("slo_max_outage", 1.0)), float, "seconds, e.g. 1s or 0.5"
    )
    if not 0 < probe_rate <= 1000:
        raise SettingsError(f"--probe-rate {probe_rate:g}: must be more than 0 and at most 1000 per second")
    if not 0 <= slo_success <= 1:
        raise SettingsError(f"--slo-success {slo_success:g}: must be a ratio between 0 and 1, e.g. 0.999")
    if slo_max_outage < 0:
        raise SettingsError(f"--slo-max-outage {slo_max_outage:g}: must be 0 seconds or more")
    if scale < 0:
        raise SettingsError(f"--sim-time-scale {scale:g}: must be 0 or more")
    if requests_n < 1:
        raise SettingsError(f"--traffic-requests {requests_n}: must be at least 1")
    if timeout <= 0:
        raise SettingsError(f"--step-timeout {timeout:g}: must be more than 0 seconds")
    sim_date = v.get("sim_date")
    if sim_date is not None and cluster != "sim":
        raise SettingsError("--sim-date only applies to --cluster sim (a real cluster has today's date)")
    moment = early.parse_sim_date(str(sim_date)) if sim_date is not None else None
    if isinstance(moment, str):
        raise SettingsError(moment)
    if cluster != "sim":
        moment = now or datetime.now(UTC)
    pull_secrets = tuple(str(p) for p in v.get("pull_secrets") or ())
    for text in pull_secrets:
        if problem := early.pull_secret_problem(text):
            raise SettingsError(problem)
    # Checked first (rehearsal/early.py): the path, the plan against both versions' schemas, the hubs.
    if problem := early.path_problem(istio_from, istio_to, strategy):
        raise SettingsError(f"--istio-from {istio_from} --istio-to {istio_to}: {problem}")
    planned = Settings(istio_from=istio_from, istio_to=istio_to, sets=sets, plan_spec=plan_spec)
    specs = {version: planned.install_spec(version) for version in (istio_from, istio_to)}
    problems = early.plan_problems(specs)
    if problems:
        raise SettingsError(f"{'--plan/--set' if plan else '--set'}: {problems[0]}")
    refusals, choices, hub_notes = early.hub_decisions(specs, moment)
    if refusals:
        raise SettingsError(f"{'--plan/--set' if plan else '--set'}: {refusals[0]}")
    sizing: tuple[str, ...] = ()
    if cluster == "kind":
        sizing, sized = kind_sizing(Settings(plan_spec=plan_spec, sets=sets).install_spec(istio_to))
        if sized:
            notes.append(
                f"--cluster kind: the {' and the '.join(sized)} request what Istio's demo profile requests "
                f"({', '.join(sizing)}), as the plan sets no requests for them; a laptop's node has room for "
                "that during a surge"
            )
    return Settings(
        cluster=cluster,
        sizing=sizing,
        kubeconfig=kubeconfig,
        context=v.get("context"),
        istio_from=istio_from,
        istio_to=istio_to,
        plan=plan,
        sets=sets,
        strategy=strategy,
        rollback=rollback,
        keep_cluster=bool(v.get("keep_cluster", False)),
        report_dir=str(v.get("report_dir", "reports")),
        sim_faults=faults,
        sim_time_scale=scale,
        sim_registries=registries,
        k8s_version=str(v.get("k8s_version", "1.33.1")),
        kind_name=str(v.get("kind_name", "istio-rehearsal")),
        kind_bin=v.get("kind_bin"),
        kind_image=v.get("kind_image"),
        kind_registry_mirror=bool(v.get("kind_registry_mirror", False)),
        istioctl_from_path=v.get("istioctl_from_path"),
        istioctl_to_path=v.get("istioctl_to_path"),
        apps_registry=v.get("apps_registry"),
        traffic_requests=requests_n,
        timeout=timeout,
        allow_context=allow_context,
        restart_namespaces=restart_namespaces,
        allow_prune=allow_prune,
        apps=str(apps) if apps else None,
        apps_namespace=apps_namespace,
        probe=v.get("probe"),
        probe_host=v.get("probe_host"),
        probe_rate=probe_rate,
        slo_success=slo_success,
        slo_max_outage=slo_max_outage,
        istio_from_given=bool(v.get("istio_from")),
        version_notes=tuple(notes),
        plan_spec=plan_spec,
        revision=str(revision) if revision else None,
        canary_order=canary_order,
        sim_date=str(sim_date) if sim_date is not None else None,
        pull_secrets=pull_secrets,
        hub_choices=choices,
        hub_notes=hub_notes,
    )


def _seconds_text(value: Any) -> Any:
    """``1s``, ``500ms`` or a bare number of seconds (``--slo-max-outage``); anything else unchanged, so
    :func:`_number` names it."""
    if isinstance(value, str):
        text = value.strip()
        try:
            if text.endswith("ms"):
                return float(text[:-2]) / 1000
            if text.endswith("s"):
                return float(text[:-1])
        except ValueError:
            return value
    return value
