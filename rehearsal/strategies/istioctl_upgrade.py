"""The ``istioctl upgrade`` strategy (``--strategy istioctl``): the target's own istioctl upgrades the mesh in
place (``istioctl upgrade -y`` with the plan); the control plane and the workloads restart as in place.
"""

from __future__ import annotations

from .. import waits
from ..istio.istioctl import IstioctlFailed, IstioctlStopped
from ..istio.watch import install_watched
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
                # Watched: a hopeless pod (ErrImagePull, CrashLoopBackOff, Unschedulable) stops istioctl.
                install_watched(
                    ctx.istioctl_to,
                    ctx.kube,
                    s.install_spec(s.istio_to),
                    plan_files(s),
                    s.install_sets(s.istio_to),
                    f"{int(s.timeout)}s",
                    upgrade=True,
                )
            except IstioctlStopped as exc:
                raise waits.WaitFailed(str(exc), exc.cause, exc.evidence) from None
            except IstioctlFailed as exc:
                raise StepFailed(f"istioctl upgrade failed: {exc}") from None
            record_move(ctx, "istioctl upgrade", version=s.istio_to)
            step.note(f"istioctl {s.istio_to} upgrade -y applied the plan")
