"""The ``kubeconfig`` provider: an existing cluster, chosen by kubeconfig file and context.

The cluster belongs to the user: it is checked (file, context, reachability) before anything else happens,
and it is never deleted. A rehearsal changes a mesh, so only contexts that look meant for it are accepted:
``kind-*`` and names with ``rehearsal``, ``test``, ``dev`` or ``staging`` as a whole word (words split at
``-`` and ``_``), or what ``--allow-context`` names. Patterns are globs matched against the whole name
(:func:`fnmatch.fnmatchcase`, anchored at both ends), on the context's name and on the host of its
cluster's server, so ``*dev*`` is never the default and ``gke_acme-prod_europe-west1_prod-latest`` (the word
``latest``, not ``test``) or ``devops-prod`` are refused. The check reads only the kubeconfig file: a
refused context never sees a request, let alone one that writes.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .base import Cluster, ClusterError, wait_until_reachable

DEFAULT_ALLOWED_CONTEXTS = ("kind-*",)
DEFAULT_ALLOWED_WORDS = ("rehearsal", "test", "dev", "staging")
DEFAULTS_DESCRIBED = "kind-*, or a name with the word rehearsal, test, dev or staging"


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


def server_host(path: Path, context: str) -> str | None:
    """The host of the server the context's cluster points at (``https://HOST:PORT`` -> ``HOST``)."""
    from urllib.parse import urlsplit

    config = read_kubeconfig(path)
    entry = next(
        (c for c in config.get("contexts") or [] if isinstance(c, dict) and c.get("name") == context), {}
    )
    cluster_name = (entry.get("context") or {}).get("cluster")
    cluster = next(
        (
            c.get("cluster") or {}
            for c in config.get("clusters") or []
            if isinstance(c, dict) and c.get("name") == cluster_name
        ),
        {},
    )
    server = str(cluster.get("server") or "")
    try:
        return urlsplit(server if "//" in server else f"//{server}").hostname or None
    except ValueError:
        return None


def words(name: str) -> set[str]:
    """The words of a name, split at ``-`` and ``_``, in lower case."""
    return {w for w in re.split(r"[-_]", name.lower()) if w}


def context_allowed(context: str, host: str | None, allowed: Sequence[str] = ()) -> bool:
    """Whether a rehearsal may run on ``context`` (whose server is ``host``): a pattern of ``allowed``
    matches the whole context name or the whole host; without patterns, the defaults:
    :data:`DEFAULT_ALLOWED_CONTEXTS`, or a word of :data:`DEFAULT_ALLOWED_WORDS` in the context's name (a
    host's words are not trusted: ``test.prod.example.com`` is not a test cluster)."""
    names = [context] + ([host] if host else [])
    if allowed:
        return any(fnmatch.fnmatchcase(n, p) for n in names for p in allowed)
    if any(fnmatch.fnmatchcase(context, p) for p in DEFAULT_ALLOWED_CONTEXTS):
        return True
    return bool(words(context) & set(DEFAULT_ALLOWED_WORDS))


def check_context_allowed(path: Path, context: str | None, allowed: Sequence[str] = ()) -> str:
    """The context, if a rehearsal may run there; else :class:`ClusterError` naming ``--allow-context``."""
    chosen = chosen_context(path, context)
    host = server_host(path, chosen)
    if not context_allowed(chosen, host, allowed):
        described = ", ".join(allowed) if allowed else DEFAULTS_DESCRIBED
        raise ClusterError(
            f"context '{chosen}' does not look like a cluster meant for rehearsals ("
            + (f"server {host}; " if host else "")
            + f"allowed: {described}, matched against the whole context name or server host); if it is one, "
            f"pass --allow-context '{chosen}'"
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
