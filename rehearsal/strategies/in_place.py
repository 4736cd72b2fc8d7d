"""The in-place strategy (``--strategy in-place``, the default): the runbook's generate, dry-run and apply of
the target's manifest over the source, as ``istioctl install`` applies it, then a rollout restart of the
control plane and of the workloads whose sidecars are stale.
"""

from __future__ import annotations

from typing import Any

from ..run import StepFailed
from ..steps import ISTIO_NS, Rehearsal, wait_for
from . import Obj, UndoAction, record_move
from .install import (
    ISTIOCTL_FIELD_MANAGER,
    api_message,
    apply_components,
    ensure_default_tag,
    established,
    prune,
    restart_control_plane,
    revision_of,
    silent_prunes,
    with_operator_labels,
)
from .workloads import restart_scope, restart_workloads


def begin_apply(ctx: Rehearsal, docs: list[Obj]) -> None:
    """What every strategy does first in ``apply``: refuse a silent prune (before the journal and before any
    change, so the run stops with nothing applied), then journal the restore of the backup."""
    refuse_silent_prunes(ctx, docs)
    journal_restore(ctx, "apply")


def refuse_silent_prunes(ctx: Rehearsal, docs: list[Obj]) -> None:
    s = ctx.settings
    refused = [ref for ref in silent_prunes(ctx, docs) if ref not in s.allow_prune]
    if refused:
        raise StepFailed(
            f"the {s.istio_to} manifest does not render {len(refused)} object(s) the installed mesh has, "
            f"and applying it would delete them: {', '.join(refused)}. Add them to the plan (e.g. its "
            "components.ingressGateways) or allow their removal with "
            + " ".join(f"--allow-prune {ref}" for ref in refused)
        )


def journal_restore(ctx: Rehearsal, step_name: str, what: str = "restore Istio from the backup") -> None:
    """Journal the restore of the backup (the undo of any change to the control plane), then mark the
    cluster changed."""
    ctx.journal.push(
        what,
        "restore_backup",
        {"backup": str(ctx.state["backup"].relative_to(ctx.run.dir)), "source": ctx.settings.istio_from},
        registered_by=step_name,
    )
    ctx.journal.mark_changed()


class InPlace:
    name = "in-place"
    path_policy = "in-place"

    def plan(self, ctx: Rehearsal) -> dict[str, Any]:
        return {"strategy": self.name, "restart namespaces": restart_scope(ctx)}

    def install_sets(self, ctx: Rehearsal) -> list[str]:
        return []

    def apply(self, ctx: Rehearsal, docs: list[Obj]) -> None:
        s = ctx.settings
        with ctx.run.step("apply") as step:
            begin_apply(ctx, docs)
            labelled = with_operator_labels(docs, s.istio_to, revision_of(ctx))
            crds = [d for d in labelled if d["kind"] == "CustomResourceDefinition"]
            rest = [d for d in labelled if d["kind"] != "CustomResourceDefinition"]
            namespaces = ctx.kube.resource("v1", "Namespace")
            try:
                namespaces.get(name=ISTIO_NS)
            except Exception:
                namespaces.create(
                    body={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ISTIO_NS}}
                )
            try:
                ctx.kube.apply(crds, field_manager=ISTIOCTL_FIELD_MANAGER)
                wait_for(
                    lambda: all(established(ctx, c["metadata"]["name"]) for c in crds),
                    s.timeout,
                    "the Istio CRDs to be Established",
                )
                ctx.kube.invalidate_discovery()
                order, not_ready = apply_components(ctx, rest)
            except TimeoutError as exc:
                raise StepFailed(str(exc)) from None
            except Exception as exc:
                raise StepFailed(f"applying the manifest failed: {api_message(exc)}") from None
            try:
                # istioctl prunes only after every component became ready (install.go lines 152-158).
                pruned = [] if not_ready else prune(ctx, docs)
            except Exception as exc:
                raise StepFailed(
                    f"pruning what {s.istio_to} no longer renders failed: {api_message(exc)}"
                ) from None
            added = ensure_default_tag(ctx)
            step.add_data("pruned", pruned)
            record_move(ctx, "apply the target manifest in place", version=s.istio_to, pruned=pruned)
            step.note(
                f"{len(crds)} CRDs applied and Established, then {len(rest)} objects component by component "
                f"as istioctl install does ({', '.join(order)}; server-side apply, field manager "
                f"{ISTIOCTL_FIELD_MANAGER})"
                + (f"; pruned what {s.istio_to} no longer renders: {', '.join(pruned)}" if pruned else "")
                + (
                    f"; not ready when applied, so nothing pruned (the restart of the control plane waits on "
                    f"them): {'; '.join(not_ready)}"
                    if not_ready
                    else ""
                )
                + (f"; then as istioctl install: {added}" if added else "")
            )

    def restart(self, ctx: Rehearsal, backup: dict[str, list[Obj]]) -> None:
        restart_control_plane(ctx, backup)

    def move(self, ctx: Rehearsal) -> list[str]:
        restarted = restart_workloads(ctx)
        if restarted:
            record_move(ctx, "restart workloads in place", workloads=restarted)
        return restarted

    def verify(self, ctx: Rehearsal) -> None:
        """Nothing of its own: the validations judge an in-place upgrade."""

    def undo(self) -> dict[str, UndoAction]:
        return {}
