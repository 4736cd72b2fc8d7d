"""Named checks for the known upgrade pitfalls (harness library; the catalog is :mod:`istiofacts.pitfalls`).

Every check is a plain function of :class:`Inputs`: what the cluster holds (read through the API, as on any
cluster), the target's and the rollback's ``istioctl manifest generate`` renders, and the plan. It returns
:class:`Finding` objects that name the pitfall, the objects involved, the issue to read and the documented
fix. No check reads anything only a simulated cluster has: the harness never imports kubesim, and the same
checks run in every rehearsal (``suites/020_preflight/test_pitfalls.py``) and in the scenario corpus
(``python -m rehearsal pitfalls``). ``error`` findings stop the upgrade before anything changes; ``warning``
findings are reported and the upgrade goes on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from istiofacts import pitfalls as catalog

Obj = dict[str, Any]


@dataclass(frozen=True)
class Finding:
    pitfall: str
    severity: str  # "error" stops the upgrade; "warning" is reported
    message: str
    objects: tuple[str, ...] = ()
    phase: str = "pre"  # "pre" (before the apply) or "during" (after the restart, before the rollback)

    @property
    def issue(self) -> str:
        return catalog.get(self.pitfall).issue

    @property
    def fix(self) -> str:
        return catalog.get(self.pitfall).fix

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["objects"] = list(self.objects)
        data.update(title=catalog.get(self.pitfall).title, issue=self.issue, fix=self.fix)
        return data

    def line(self) -> str:
        objects = f" [{', '.join(self.objects[:8])}{' ...' if len(self.objects) > 8 else ''}]"
        return (
            f"{self.pitfall}: {self.message}{objects if self.objects else ''} (fix: {self.fix}; {self.issue})"
        )


@dataclass
class Inputs:
    """What the checks read. ``live`` maps a kind (``Pod``, ``MutatingWebhookConfiguration`` ...) to the
    cluster's objects of it; the renders are ``None`` when istioctl could not render (``*_error`` says
    why)."""

    source: str
    target: str
    k8s_version: str
    live: dict[str, list[Obj]]
    target_render: list[Obj] | None
    rollback_render: list[Obj] | None
    plan: Obj = field(default_factory=dict)  # the install spec for the target (IstioOperator spec)
    target_render_error: str = ""
    rollback_render_error: str = ""
    istio_namespace: str = "istio-system"
    # pods the run does not restart and so does not judge ("name.namespace" -> why; validate.out_of_scope)
    apart: dict[str, str] = field(default_factory=dict)
    # the world's date the registries are judged at (today on a real cluster, --sim-date on sim), or None
    at: datetime | None = None

    def kind(self, kind: str) -> list[Obj]:
        return self.live.get(kind) or []


Check = Callable[[Inputs], list[Finding]]
#: pitfall id -> its pre-apply check (the modules below register themselves on import)
PRE: dict[str, Check] = {}
#: pitfall id -> its check after the workloads restart (before the validations decide on a rollback)
DURING: dict[str, Check] = {}


def check(pitfall_id: str, phase: str = "pre") -> Callable[[Check], Check]:
    catalog.get(pitfall_id)  # a typo in an id fails at import

    def register(fn: Check) -> Check:
        (PRE if phase == "pre" else DURING)[pitfall_id] = fn
        return fn

    return register


def run(
    inputs: Inputs, checks: dict[str, Check] | None = None, only: list[str] | None = None
) -> list[Finding]:
    """Every registered check (or ``only`` those ids) on ``inputs``; a check that raises is itself a
    finding (``error``), never a silent pass."""
    from . import checks_plan, checks_state  # noqa: F401 - registers the checks

    found: list[Finding] = []
    for pitfall_id, fn in (checks if checks is not None else PRE).items():
        if only and pitfall_id not in only:
            continue
        try:
            found += fn(inputs)
        except Exception as exc:
            found.append(
                Finding(pitfall_id, "error", f"the check itself failed: {type(exc).__name__}: {exc}")
            )
    return found


def name(obj: Obj) -> str:
    """``Kind ns/name`` (or ``Kind name`` when cluster-scoped)."""
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{obj.get('kind')} {ns + '/' if ns else ''}{meta.get('name')}"


def image_version(image: str) -> str | None:
    """The Istio version an image tag names (``docker.io/istio/proxyv2:1.30.5-distroless`` -> ``1.30.5``)."""
    tag = image.rpartition(":")[2] if ":" in image.rsplit("/", 1)[-1] else ""
    version = tag.split("-")[0]
    parts = version.split(".")
    return version if len(parts) == 3 and all(p.isdigit() for p in parts) else None


def proxy_version(pod: Obj) -> str | None:
    spec = pod.get("spec") or {}
    for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        if c.get("name") == "istio-proxy":
            return image_version(c.get("image") or "")
    return None


def control_plane_version(live: dict[str, list[Obj]], namespace: str = "istio-system") -> str | None:
    for d in live.get("Deployment") or []:
        meta = d.get("metadata") or {}
        if meta.get("namespace") == namespace and str(meta.get("name", "")).startswith("istiod"):
            for c in d["spec"]["template"]["spec"].get("containers") or []:
                if c.get("name") == "discovery":
                    return image_version(c.get("image") or "")
    return None


def selector_matches(selector: Obj | None, labels: dict[str, str]) -> bool:
    """metav1.LabelSelectorAsSelector(...).Matches: nil matches everything (admission webhook semantics)."""
    if selector is None:
        return True
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


__all__ = ["DURING", "PRE", "Finding", "Inputs", "check", "run"]
