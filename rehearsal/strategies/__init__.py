"""Upgrade strategies behind one small interface (harness library, between the runbook's steps in
:mod:`rehearsal.steps.upgrade` and the cluster).

A strategy decides how the target reaches the cluster and how the workloads move onto it: ``in-place`` (the
runbook's generate, dry-run, apply: :mod:`.in_place`), ``istioctl`` (``istioctl upgrade``:
:mod:`.istioctl_upgrade`) and ``canary`` (a revision installed beside the source, namespaces moved with
revision tags, then the old revision removed: :mod:`.canary`, as istio.io ``setup/upgrade/canary``). The
runbook's steps call :func:`of` and the strategy's methods; each strategy records the moves it makes
(:func:`record_move`), which the run record keeps as ``moves`` and the report shows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from ..journal import JournalEntry
from ..steps import Rehearsal

Obj = dict[str, Any]
UndoAction = Callable[[Rehearsal, JournalEntry], dict[str, Any]]


class Strategy(Protocol):
    """What the runbook asks of a strategy, in order: ``plan`` (what it will do, recorded before any change),
    ``apply`` (the target onto the cluster, its undo journaled first), ``restart`` (the control plane rolled
    out), ``move`` (the workloads onto the target), ``verify`` (the strategy's own end state), and ``undo``
    (the journal actions only it registers, for the rollback)."""

    name: str
    #: The catalog's upgrade policy this strategy follows (istiofacts.catalog.upgrade_path_problem).
    path_policy: str

    def plan(self, ctx: Rehearsal) -> dict[str, Any]: ...

    def install_sets(self, ctx: Rehearsal) -> list[str]:
        """``--set`` values the strategy adds to the plan's when the target is rendered (a revision)."""
        ...

    def apply(self, ctx: Rehearsal, docs: list[Obj]) -> None: ...

    def restart(self, ctx: Rehearsal, backup: dict[str, list[Obj]]) -> None: ...

    def move(self, ctx: Rehearsal) -> list[str]: ...

    def verify(self, ctx: Rehearsal) -> None: ...

    def undo(self) -> dict[str, UndoAction]: ...


def of(name: str) -> Strategy:
    """The strategy called ``name`` (``--strategy``)."""
    if name == "canary":
        from .canary import Canary

        return Canary()
    if name == "istioctl":
        from .istioctl_upgrade import IstioctlUpgrade

        return IstioctlUpgrade()
    from .in_place import InPlace

    return InPlace()


def undo_actions() -> dict[str, UndoAction]:
    """Every strategy's own undo actions, for the rollback's table of actions."""
    actions: dict[str, UndoAction] = {}
    from ..settings import STRATEGIES

    for name in STRATEGIES:
        actions.update(of(name).undo())
    return actions


def record_move(ctx: Rehearsal, move: str, **details: Any) -> dict[str, Any]:
    """One move of the strategy (a revision installed, a tag set, a namespace relabelled, ...), kept in the
    run record's ``moves`` in the order made."""
    entry = {"move": move, "at": ctx.run.now(), **details}
    ctx.run.moves.append(entry)
    ctx.run.save()
    return entry
