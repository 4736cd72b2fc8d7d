"""Checked first: what the options and the plan can be judged on before any cluster is created or any istioctl
downloaded (harness library; called by :func:`rehearsal.settings.resolve`, whose errors are one line and exit
with ``exitcodes.BAD_OPTION``).

- the plan decoded against the source's and the target's typed schemas (``istiofacts.operator.validate``,
  the same decoder the precheck uses; istioctl of either version would refuse the same fields);
- the upgrade path (the same version twice, a skip of more minors than the strategy allows; a downgrade asked
  for as an upgrade is refused by ``resolve`` itself);
- the hubs against Istio's registry dates (``istiofacts.registries``): a plan hub on a retired registry is
  refused, and a version whose default registry is retired or retires within 30 days gets the advised hub;
- ``--sim-date`` and ``--pull-secret`` values.

Each function returns what is wrong (a sentence naming the option or key) or raises nothing; the settings
module turns that into its ``SettingsError``.
"""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from istiofacts import catalog, operator, registries

SIM_DATE = re.compile(r"\d{4}-\d{2}-\d{2}(T\d{2}:\d{2})?")
SECRET_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")


def parse_sim_date(text: str) -> datetime | str:
    """``YYYY-MM-DD[THH:MM]`` (UTC) as a moment, or what is wrong with it."""
    if not SIM_DATE.fullmatch(text.strip()):
        return f"--sim-date {text!r}: expected YYYY-MM-DD or YYYY-MM-DDTHH:MM (UTC), e.g. 2026-12-10"
    try:
        return datetime.fromisoformat(text.strip()).replace(tzinfo=UTC)
    except ValueError as exc:
        return f"--sim-date {text!r}: {exc}"


def pull_secret_problem(text: str) -> str:
    """What is wrong with ``NAME=DOCKERCONFIGJSON_FILE`` ("" when nothing). The file is parsed to check it,
    and its content never appears in the message."""
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        return f"--pull-secret {name or text!r}: expected NAME=DOCKERCONFIGJSON_FILE"
    if not SECRET_NAME.fullmatch(name):
        return f"--pull-secret {name}: not a Secret name (lower-case letters, digits, '-' and '.')"
    try:
        data = json.loads(Path(path).expanduser().read_text())
    except OSError as exc:
        return f"--pull-secret {name}: cannot read {path}: {exc.strerror}"
    except ValueError:
        return f"--pull-secret {name}: {path} is not JSON (a Docker config.json with an 'auths' mapping)"
    if not isinstance(data, dict) or not isinstance(data.get("auths"), dict) or not data["auths"]:
        return f"--pull-secret {name}: {path} has no 'auths' mapping of registries (a Docker config.json)"
    return ""


def pull_secret_body(text: str, namespace: str, labels: dict[str, str]) -> dict[str, Any]:
    """The ``kubernetes.io/dockerconfigjson`` Secret of ``NAME=FILE`` in ``namespace``."""
    name, _, path = text.partition("=")
    raw = Path(path).expanduser().read_bytes()
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": base64.b64encode(raw).decode()},
    }


def plan_hub(spec: dict[str, Any]) -> str | None:
    return spec.get("hub") or operator.get(spec, "values.global.hub") or None


def plan_problems(specs: dict[str, dict[str, Any]]) -> list[str]:
    """The plan (``{version: install spec}``) decoded as each version's istioctl decodes it."""
    problems = []
    for version, spec in specs.items():
        try:
            operator.validate(spec, version)
        except operator.OperatorError as exc:
            problems.append(f"the plan's values for Istio {version}: {exc}{_hint(spec, version)}")
    return problems


def _hint(spec: dict[str, Any], version: str) -> str:
    """Which planned values paths ``version`` no longer has, or does not have yet (values_types.proto)."""
    paths = [p.removeprefix("values.") for p in _paths(spec.get("values") or {}, "values")]
    removed = [p for p in paths if operator.is_removed(f"values.{p}", version)]
    later = [p for p in paths if operator.is_unknown_yet(f"values.{p}", version)]
    minor = catalog.minor_of(version).minor
    hints = [f"{', '.join(removed)} removed in Istio {minor} or earlier"] if removed else []
    hints += [f"{', '.join(later)} added after Istio {minor}"] if later else []
    return f" ({'; '.join(hints)})" if hints else ""


def _paths(tree: dict[str, Any], prefix: str) -> list[str]:
    out = []
    for key, value in tree.items():
        path = f"{prefix}.{key}"
        out += _paths(value, path) if isinstance(value, dict) and value else [path]
    return out


def path_problem(source: str, target: str, strategy: str = "in-place") -> str:
    """The same version twice, or more minors skipped than the strategy allows (in-place and istioctl: one;
    canary, with revisions: two)."""
    policy = "canary" if strategy == "canary" else "in-place"
    return catalog.upgrade_path_problem(source, target, policy) or ""


def hub_decisions(
    specs: dict[str, dict[str, Any]], at: datetime | None
) -> tuple[list[str], tuple[tuple[str, str], ...], tuple[str, ...]]:
    """``(refusals, ((version, hub), ...), notes)`` for the plan of each version at ``at`` (None: no dates,
    as on the simulator without --sim-date)."""
    if at is None:
        return [], (), ()
    refusals, choices, notes = [], [], []
    for version, spec in specs.items():
        hub = plan_hub(spec)
        if hub:
            why = registries.refused_hub(hub, at)
            if why:
                refusals.append(f"hub {hub} (the plan's, for Istio {version}): {why}")
            continue
        chosen, note = registries.hub_choice(version, None, at)
        if chosen:
            choices.append((version, chosen))
            notes.append(note)
    return refusals, tuple(choices), tuple(notes)
