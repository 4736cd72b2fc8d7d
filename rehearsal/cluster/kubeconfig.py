"""The ``kubeconfig`` provider: an existing cluster, chosen by kubeconfig file and context.

The cluster belongs to the user: it is checked (file, context, reachability) before anything else happens,
and it is never deleted. A rehearsal changes a mesh, so only contexts that look meant for it are accepted:
``kind-*`` and names containing ``rehearsal``, ``test``, ``dev`` or ``staging``, or what ``--allow-context``
names (globs, as :mod:`fnmatch` reads them).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .base import Cluster, ClusterError, wait_until_reachable

DEFAULT_ALLOWED_CONTEXTS = ("kind-*", "*rehearsal*", "*test*", "*dev*", "*staging*")


def read_kubeconfig(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ClusterError(f"kubeconfig {path} does not exist; pass the path of an existing kubeconfig file")
    try:
        config = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ClusterError(
            f"kubeconfig {path} cannot be read as YAML ({exc}); pass a valid kubeconfig"
        ) from None
    if not isinstance(config, dict):
        raise ClusterError(
            f"kubeconfig {path} is not a kubeconfig (expected a YAML mapping with clusters, users and "
            "contexts)"
        )
    return config


def chosen_context(path: Path, context: str | None) -> str:
    """The context a run would use: the one asked for, else the kubeconfig's current context."""
    config = read_kubeconfig(path)
    contexts = [str(c.get("name")) for c in config.get("contexts") or [] if isinstance(c, dict)]
    chosen = context or config.get("current-context")
    if not chosen:
        raise ClusterError(
            f"kubeconfig {path} has no current-context; choose one of: "
            f"{', '.join(contexts) or '(none defined)'}"
        )
    if chosen not in contexts:
        raise ClusterError(
            f"context '{chosen}' is not in kubeconfig {path}; choose one of: "
            f"{', '.join(contexts) or '(none defined)'}"
        )
    return str(chosen)


def check_context_allowed(path: Path, context: str | None, allowed: Sequence[str] = ()) -> str:
    """The context, if a rehearsal may run there; else :class:`ClusterError` naming ``--allow-context``."""
    chosen = chosen_context(path, context)
    patterns = tuple(allowed) or DEFAULT_ALLOWED_CONTEXTS
    if not any(fnmatch.fnmatchcase(chosen, p) for p in patterns):
        raise ClusterError(
            f"context '{chosen}' does not look like a cluster meant for rehearsals (allowed: "
            f"{', '.join(patterns)}); if it is one, pass --allow-context '{chosen}'"
        )
    return chosen


@dataclass
class KubeconfigProvider:
    kubeconfig: Path
    context: str | None = None
    name: str = "kubeconfig"
    connect_timeout: float = 10.0

    def provision(self, workdir: Path) -> Cluster:
        path = Path(self.kubeconfig).expanduser()
        context = chosen_context(path, self.context)
        cluster = Cluster("kubeconfig", context, path, context)
        cluster.details["version"] = wait_until_reachable(cluster, self.connect_timeout)
        return cluster
