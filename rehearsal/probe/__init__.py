"""Availability during the upgrade (harness library): the prober that sends a steady rate of requests from
before the apply to after the rollback (:mod:`.prober`), where it sends them on each kind of cluster
(:mod:`.targets`), and the verdict on what it saw against the SLO (:mod:`.availability`)."""

from .availability import summarize
from .prober import Prober, Sample, Target
from .targets import mark, phase

__all__ = ["Prober", "Sample", "Target", "mark", "phase", "summarize"]
