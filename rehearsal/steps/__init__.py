"""The runbook's steps as plain functions over a :class:`Rehearsal` context.

Each step records what it did in the run (commands, data, artifacts, and why it was or was not needed), raises
:class:`~rehearsal.run.StepFailed` with a readable reason when it cannot be done, and registers its undo in
the journal *before* it changes the cluster. The pytest fixtures in ``fixtures/`` call these in order; nothing
here imports pytest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..cluster import Cluster
from ..istio.istioctl import Istioctl
from ..journal import RollbackJournal
from ..kube import Kube
from ..run import Run
from ..settings import Settings

ISTIO_NS = "istio-system"
APPS_NS = "rehearsal-apps"
ROOT = Path(__file__).resolve().parent.parent.parent
SAMPLE_APPS = ROOT / "sample_apps"
# The host the sample apps' gateway route matches (and nothing else): one no one else can own.
SAMPLE_HOST = "echo.istio-upgrade-rehearsal.invalid"
# Every object the harness creates carries this label, so restores and cleanups tell it from the user's.
OWNED_LABEL = "app.kubernetes.io/managed-by"
OWNED_VALUE = "istio-upgrade-rehearsal"
# ... and this one, with the id of the run that created it: cleanup and rollback remove only objects with this
# label and value that did not exist before the run, never an object of the same name the user had.
RUN_LABEL = "istio-upgrade-rehearsal/run"


@dataclass
class Rehearsal:
    """Everything a step needs: settings, run record, journal, the cluster and the two istioctls."""

    settings: Settings
    run: Run
    journal: RollbackJournal
    cluster: Cluster
    kube: Kube
    istioctl_from: Istioctl
    istioctl_to: Istioctl
    state: dict[str, Any] = field(default_factory=dict)

    @property
    def apps_ns(self) -> str:
        """The namespace of the sample apps (``--apps-namespace``)."""
        return self.settings.apps_namespace

    def objects(
        self, api_version: str, kind: str, namespace: str | None = None, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        try:
            resource = self.kube.resource(api_version, kind)
        except Exception:
            return []
        kwargs = {"label_selector": label_selector} if label_selector else {}
        return [
            i.to_dict()
            for i in resource.get(namespace=namespace if resource.namespaced else None, **kwargs).items
        ]


def wait_for(predicate: Any, timeout: float, what: str, interval: float = 0.2) -> Any:
    """Deadline-bound poll for conditions no single watch expresses (several objects at once)."""
    from ..waits import poll

    return poll(predicate, timeout, what, interval)
