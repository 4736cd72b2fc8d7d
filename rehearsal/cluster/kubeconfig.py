"""The ``kubeconfig`` provider: an existing cluster, chosen by kubeconfig file and context.

The cluster belongs to the user: it is checked (file, context, reachability) before anything else happens,
and it is never deleted.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from .base import Cluster, ClusterError, wait_until_reachable


@dataclass
class KubeconfigProvider:
    kubeconfig: Path
    context: str | None = None
    name: str = "kubeconfig"
    connect_timeout: float = 10.0

    def provision(self, workdir: Path) -> Cluster:
        path = Path(self.kubeconfig).expanduser()
        if not path.is_file():
            raise ClusterError(
                f"kubeconfig {path} does not exist; pass the path of an existing kubeconfig file"
            )
        try:
            config = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ClusterError(
                f"kubeconfig {path} cannot be read as YAML ({exc}); pass a valid kubeconfig"
            ) from None
        if not isinstance(config, dict):
            raise ClusterError(
                f"kubeconfig {path} is not a kubeconfig (expected a YAML mapping with clusters, users "
                "and contexts)"
            )
        contexts = [c.get("name") for c in config.get("contexts") or [] if isinstance(c, dict)]
        context = self.context or config.get("current-context")
        if not context:
            raise ClusterError(
                f"kubeconfig {path} has no current-context; choose one of: "
                f"{', '.join(contexts) or '(none defined)'}"
            )
        if context not in contexts:
            raise ClusterError(
                f"context '{context}' is not in kubeconfig {path}; choose one of: "
                f"{', '.join(contexts) or '(none defined)'}"
            )
        cluster = Cluster("kubeconfig", context, path, context)
        cluster.details["version"] = wait_until_reachable(cluster, self.connect_timeout)
        return cluster
