"""The ``istioctl upgrade`` strategy (``--strategy istioctl``): the target's own istioctl upgrades the mesh in
place (``istioctl upgrade -y`` with the plan); the control plane and the workloads restart as in place.
"""

from __future__ import annotations

from ..istio.istioctl import IstioctlFailed
from ..run import StepFailed
from ..steps import Rehearsal
from ..steps.mesh import plan_files
from . import Obj, record_move
from .in_place import InPlace, begin_apply


class IstioctlUpgrade(InPlace):
    name = "istioctl"
    path_policy = "in-place"

    def apply(self, ctx: Rehearsal, docs: list[Obj]) -> None:
        s = ctx.settings
        with ctx.run.step("apply") as step:
            begin_apply(ctx, docs)
            try:
                ctx.istioctl_to.install(
                    plan_files(s),
                    s.install_sets(s.istio_to),
                    readiness_timeout=f"{int(s.timeout)}s",
                    upgrade=True,
                )
            except IstioctlFailed as exc:
                raise StepFailed(f"istioctl upgrade failed: {exc}") from None
            record_move(ctx, "istioctl upgrade", version=s.istio_to)
            step.note(f"istioctl {s.istio_to} upgrade -y applied the plan")
