"""The canary strategy (``--strategy canary``): istio.io ``setup/upgrade/canary`` with revision tags.

The target is installed as a revision beside the source (``istioctl install --set revision=<rev>`` with the
plan, the revision named from the version, ``1-31-1``, or ``--revision``); both control planes are verified;
the tags ``prod-stable`` (the old revision) and ``prod-canary`` (the new) are set; the namespaces move one by
one (``--canary-order``, else the sample apps first) onto ``istio.io/rev=prod-canary`` with a rollout
restart, each validated before the next (and :func:`namespace_moved` called, the availability probe's hook);
the gateways, which istioctl's revision install upgrades in place (istio.io: "gateways ... are in-place
upgraded"), are checked; then ``prod-stable`` and ``default`` are moved to the new revision, the namespaces
take their final labels (``istio-injection=enabled`` namespaces keep it, through the ``default`` tag; the
others ``istio.io/rev=prod-stable``), and only then is the old revision removed (``istioctl uninstall
--revision <old>``). A source installed without a revision is the ``default`` revision, as Istio documents.

Canary may skip a minor (N-2 -> N), which in-place may not: its ``path_policy`` is the catalog's ``canary``.
Every move is journaled first (:mod:`.canary_moves`); a failure moves everything back.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from .. import waits
from ..istio.istioctl import IstioctlFailed, IstioctlStopped
from ..istio.watch import install_watched
from ..run import StepFailed
from ..steps import ISTIO_NS, Rehearsal
from ..steps.detect import revision_tags
from ..steps.mesh import plan_files
from . import Obj, UndoAction, record_move
from .canary_moves import (
    INJECTION_LABEL,
    REV_LABEL,
    UNDO,
    istiod_revisions,
    label_namespace,
    namespace_labels,
    restart_markers,
    restart_namespace,
    revision_name,
    set_tag,
)
from .in_place import journal_restore
from .install import api_message
from .workloads import injected_namespaces

STABLE, CANARY = "prod-stable", "prod-canary"

#: Called as ``hook(ctx, namespace, phase)`` with phase ``before`` and ``after`` around each namespace move:
#: where an availability probe marks its phases. Add to ``ctx.state["namespace_move_hooks"]``.
MoveHook = Callable[[Rehearsal, str, str], None]


def namespace_moved(ctx: Rehearsal, namespace: str, phase: str) -> None:
    for hook in list(ctx.state.get("namespace_move_hooks") or []):
        hook(ctx, namespace, phase)


def move_phase(ctx: Rehearsal, name: str) -> AbstractContextManager[Any]:
    """The availability probe's phase for one move (``rehearsal.probe.targets.phase``, issue 18's prober,
    when it is there; nothing otherwise): its phases are the namespace moves."""
    try:
        probe = importlib.import_module("rehearsal.probe.targets")
    except ImportError:
        return nullcontext()
    phase: Callable[[Rehearsal, str], AbstractContextManager[Any]] = probe.phase
    return phase(ctx, name)


def revisions(ctx: Rehearsal) -> tuple[str, str]:
    """(old, new): the revision serving the source version (``default`` when installed without one) and the
    target's (``--revision``, else named from the version)."""
    s = ctx.settings
    found = istiod_revisions(ctx)
    old = next((r for r, v in sorted(found.items()) if v == s.istio_from), None) or (
        "default" if not found or "default" in found else sorted(found)[0]
    )
    return old, s.revision or revision_name(s.istio_to)


def order(ctx: Rehearsal) -> list[str]:
    """The namespaces to move, in order: ``--canary-order`` first, then the sample apps' namespace, then every
    other injected namespace (all must move before the old revision can go)."""
    injected = [n for n in injected_namespaces(ctx) if n != ISTIO_NS]
    first = [n for n in ctx.settings.canary_order if n in injected]
    if ctx.apps_ns in injected and ctx.apps_ns not in first:
        first.append(ctx.apps_ns)
    return first + sorted(n for n in injected if n not in first)


class Canary:
    name = "canary"
    path_policy = "canary"

    def plan(self, ctx: Rehearsal) -> dict[str, Any]:
        old, new = revisions(ctx)
        # The default tag moves only where there is one (or the source is the default revision): creating it
        # would make every istio-injection=enabled namespace inject, which the source did not.
        default_tag = old == "default" or "default" in revision_tags(ctx)
        planned = {
            "strategy": self.name,
            "old revision": old,
            "new revision": new,
            "tags": {STABLE: old, CANARY: new},
            "move the default tag": default_tag,
            "namespace order": order(ctx),
            "gateways": "upgraded in place by the revision's istioctl install (istio.io upgrade/canary)",
            "then": f"tags {STABLE} and default -> {new}; istioctl uninstall --revision {old}",
        }
        ctx.state["canary"] = planned
        return planned

    def install_sets(self, ctx: Rehearsal) -> list[str]:
        return [f"revision={revisions(ctx)[1]}"]

    def apply(self, ctx: Rehearsal, docs: list[Obj]) -> None:
        s = ctx.settings
        plan = ctx.state.get("canary") or self.plan(ctx)
        old, new = plan["old revision"], plan["new revision"]
        with ctx.run.step("apply") as step:
            if new in istiod_revisions(ctx):
                raise StepFailed(f"revision {new} is already installed; choose another with --revision")
            # No silent prune to refuse: an install of a revision prunes only what carries that revision's
            # label (operator/pkg/install/install.go prune, by istio.io/rev), never the source's objects.
            # Replayed last: the restore (first) puts the old control plane and the gateways back and removes
            # what the install added; then nothing of the new revision may be left.
            ctx.journal.push(
                f"remove the new revision {new}",
                "canary_remove_revision",
                {"revision": new},
                registered_by="apply",
            )
            journal_restore(ctx, "apply")
            try:
                # Watched: a hopeless pod of the new revision stops istioctl (the rollback moves back).
                install_watched(
                    ctx.istioctl_to,
                    ctx.kube,
                    s.install_spec(s.istio_to),
                    plan_files(s),
                    [*s.install_sets(s.istio_to), *self.install_sets(ctx)],
                    f"{int(s.timeout)}s",
                )
            except IstioctlStopped as exc:
                raise waits.WaitFailed(str(exc), exc.cause, exc.evidence) from None
            except IstioctlFailed as exc:
                raise StepFailed(f"istioctl install --set revision={new} failed: {exc}") from None
            gateways = _gateways(ctx, new)
            record_move(ctx, "install revision", revision=new, version=s.istio_to, beside=old)
            record_move(ctx, "gateways upgraded in place", revision=new, gateways=gateways)
            step.note(
                f"istioctl {s.istio_to} install --set revision={new} beside revision {old}; gateways "
                f"upgraded in place: {', '.join(gateways) or 'none'}"
            )

    def restart(self, ctx: Rehearsal, backup: dict[str, list[Obj]]) -> None:
        """Both control planes ready and answering, each at its version (``istioctl version --revision``)."""
        from .checks import control_planes

        plan = ctx.state["canary"]
        with ctx.run.step("restart control plane") as step:
            gateways = [tuple(g.split("/", 1)) for g in _gateways(ctx, plan["new revision"])]
            for namespace in sorted({ns for ns, _ in gateways}):
                names = [("Deployment", name) for ns, name in gateways if ns == namespace]
                try:
                    waits.rollouts(ctx.kube, names, namespace, ctx.settings.timeout)
                except waits.WaitFailed as exc:
                    raise StepFailed(f"the gateways upgraded in place did not roll out: {exc}") from None
            seen = control_planes(
                ctx,
                {plan["old revision"]: ctx.settings.istio_from, plan["new revision"]: ctx.settings.istio_to},
            )
            step.add_data("control planes", seen)
            step.note(
                "the source's control plane keeps serving; "
                + "; ".join(f"revision {r}: {v}" for r, v in seen.items())
            )

    def move(self, ctx: Rehearsal) -> list[str]:
        from .checks import validate_namespace

        plan = ctx.state["canary"]
        old, new = plan["old revision"], plan["new revision"]
        with ctx.run.step("canary: set revision tags") as step:
            try:
                set_tag(ctx, STABLE, old, step.name)
                set_tag(ctx, CANARY, new, step.name)
            except RuntimeError as exc:
                raise StepFailed(str(exc)) from None
            record_move(ctx, "tag set", tags={STABLE: old, CANARY: new})
            from .checks import tags_consistent

            problems = tags_consistent(ctx, {STABLE: old, CANARY: new})
            if problems:
                raise StepFailed("; ".join(problems))
            step.note(
                f"istioctl tag set {STABLE} --revision {old}; istioctl tag set {CANARY} --revision {new}; "
                "istioctl tag list agrees; istioctl analyze finds no overlapping injectors (IST0139)"
            )
        moved: list[str] = []
        originals: dict[str, dict[str, str | None]] = {}
        for namespace in plan["namespace order"]:
            with ctx.run.step(f"canary: move namespace {namespace}") as step, move_phase(ctx, step.name):
                namespace_moved(ctx, namespace, "before")
                labels = namespace_labels(ctx, namespace)
                originals[namespace] = labels
                previous = restart_markers(ctx, namespace)
                ctx.journal.push(
                    f"move namespace {namespace} back to revision {old}",
                    "canary_move_back",
                    {"namespace": namespace, "labels": labels, "restarted": previous},
                    registered_by=step.name,
                )
                label_namespace(ctx, namespace, {INJECTION_LABEL: None, REV_LABEL: CANARY})
                try:
                    restart_namespace(ctx, namespace, list(previous))
                except waits.WaitFailed as exc:
                    raise StepFailed(str(exc)) from None
                findings = validate_namespace(ctx, namespace, ctx.settings.istio_to)
                step.add_data("validation", findings)
                namespace_moved(ctx, namespace, "after")
                if findings["problems"]:
                    raise StepFailed(f"namespace {namespace} on {CANARY}: " + "; ".join(findings["problems"]))
                record_move(
                    ctx, "namespace moved", namespace=namespace, labels={REV_LABEL: CANARY}, was=labels
                )
                moved.append(namespace)
                step.note(
                    f"istio.io/rev={CANARY} ({new}); {len(previous)} workload(s) restarted and validated"
                )
        with ctx.run.step("canary: promote tags") as step, move_phase(ctx, step.name):
            try:
                set_tag(ctx, STABLE, new, step.name)
                if plan["move the default tag"]:
                    set_tag(ctx, "default", new, step.name)
            except RuntimeError as exc:
                raise StepFailed(str(exc)) from None
            final = {}
            for namespace, labels in originals.items():
                if labels[INJECTION_LABEL] == "enabled":
                    final[namespace] = {INJECTION_LABEL: "enabled", REV_LABEL: None}
                else:
                    final[namespace] = {INJECTION_LABEL: None, REV_LABEL: STABLE}
                label_namespace(ctx, namespace, final[namespace])
            record_move(ctx, "tags promoted", tags={STABLE: new, "default": new}, namespaces=final)
            step.note(
                f"istioctl tag set {STABLE} --revision {new} --overwrite; istioctl tag set default "
                f"--revision {new} --overwrite; namespaces labelled for their tag: "
                + ", ".join(f"{n} ({_label_text(want)})" for n, want in final.items())
            )
        with ctx.run.step("canary: remove old revision") as step, move_phase(ctx, step.name):
            ctx.journal.push(
                f"reinstall the old revision {old} from the backup",
                "restore_backup",
                {
                    "backup": str(ctx.state["backup"].relative_to(ctx.run.dir)),
                    "source": ctx.settings.istio_from,
                },
                registered_by=step.name,
            )
            try:
                ctx.istioctl_to.uninstall(old)
            except IstioctlFailed as exc:
                raise StepFailed(f"istioctl uninstall --revision {old}: {api_message(exc)}") from None
            record_move(ctx, "uninstall revision", revision=old)
            step.note(f"istioctl uninstall --revision {old}, after every namespace validated on {new}")
        return moved

    def verify(self, ctx: Rehearsal) -> None:
        from .checks import end_state

        with ctx.run.step("canary: verify") as step:
            findings = end_state(ctx, ctx.state["canary"])
            step.add_data("end state", findings)
            if findings["problems"]:
                raise StepFailed("; ".join(findings["problems"]))
            step.note(
                f"one revision left ({findings['revisions']}); every injected namespace on "
                f"{ctx.state['canary']['new revision']} through its tag; tags {findings['tags']}"
            )

    def undo(self) -> dict[str, UndoAction]:
        return dict(UNDO)


def _label_text(labels: dict[str, str | None]) -> str:
    return ", ".join(f"{k}={v}" for k, v in labels.items() if v)


def _gateways(ctx: Rehearsal, revision: str) -> list[str]:
    """Gateway Deployments now labelled with the new revision (istioctl's install upgraded them in place)."""
    out = []
    for d in ctx.objects("apps/v1", "Deployment", None, f"{REV_LABEL}={revision}"):
        if (d["metadata"].get("labels") or {}).get("app") != "istiod":
            out.append(f"{d['metadata']['namespace']}/{d['metadata']['name']}")
    return sorted(out)


__all__ = ["Canary", "namespace_moved", "revision_tags"]
