"""Server-side apply: field ownership (``metadata.managedFields``), merging and conflicts.

A manager's applied configuration is its whole intent. Applying it sets the fields it names, removes the
fields the same manager set before but no longer names (unless another manager also owns them), and fails
with a 409 conflict when another manager owns a field the configuration sets to a different value (unless
``force=true``, which moves ownership). Ordinary updates (PUT and non-apply PATCH) make their manager owner
of the fields they change. Field sets use the ``FieldsV1`` encoding that kubectl shows with
``--show-managed-fields`` (``f:name``, ``k:{"name":"x"}``, ``v:"value"``, ``.``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from kubesim.machinery.errors import ApiError
from kubesim.machinery.patch import SET_LISTS, item_key, list_keys
from kubesim.store import clone

Path = tuple[str, ...]
_MISSING = object()
_IGNORED_ROOTS = {"f:apiVersion", "f:kind", "f:status"}
_IGNORED_META = {
    "f:name",
    "f:namespace",
    "f:resourceVersion",
    "f:uid",
    "f:generation",
    "f:managedFields",
    "f:creationTimestamp",
    "f:deletionTimestamp",
    "f:selfLink",
    "f:generateName",
}


def field_set(obj: Any, prefix: Path = (), field: str = "") -> set[Path]:
    """Leaf paths of an object, in FieldsV1 tokens."""
    paths: set[Path] = set()
    if isinstance(obj, dict):
        if (not obj or field == "selector") and prefix:
            # A label selector (and a Service's selector) is an atomic map: owned as a whole.
            paths.add(prefix)
            return paths
        for key, value in obj.items():
            token = "f:" + key
            if not prefix and token in _IGNORED_ROOTS:
                continue
            if prefix == ("f:metadata",) and token in _IGNORED_META:
                continue
            paths |= field_set(value, prefix + (token,), key)
    elif isinstance(obj, list):
        keys = list_keys(field, obj)
        if keys is not None and all(isinstance(i, dict) for i in obj):
            for item in obj:
                token = "k:" + json.dumps(
                    {k: v for (k, d), v in zip(keys, item_key(item, keys), strict=True) if v is not None},
                    separators=(",", ":"),
                    sort_keys=True,
                )
                paths.add(prefix + (token, "."))
                paths |= {p for p in field_set(item, prefix + (token,), "") if p}
        elif field in SET_LISTS:
            for item in obj:
                paths.add(prefix + ("v:" + json.dumps(item, separators=(",", ":")),))
        else:
            paths.add(prefix)  # atomic list: owned as a whole
    elif prefix:
        paths.add(prefix)
    return paths


def to_fields_v1(paths: Iterable[Path]) -> dict[str, Any]:
    root: dict[str, Any] = {}
    for path in sorted(paths):
        node = root
        for token in path:
            node = node.setdefault(token, {})
    return root


def from_fields_v1(fields: dict[str, Any], prefix: Path = ()) -> set[Path]:
    paths: set[Path] = set()
    for token, child in fields.items():
        if token == ".":
            paths.add(prefix + (".",))
        elif child:
            paths |= from_fields_v1(child, prefix + (token,))
        else:
            paths.add(prefix + (token,))
    return paths


def _step(cur: Any, token: str) -> Any:
    if token.startswith("f:"):
        return cur.get(token[2:], _MISSING) if isinstance(cur, dict) else _MISSING
    if token.startswith("k:") and isinstance(cur, list):
        wanted = json.loads(token[2:])
        for item in cur:
            if isinstance(item, dict) and all(
                item.get(k, "TCP" if k == "protocol" else None) == v for k, v in wanted.items()
            ):
                return item
        return _MISSING
    if token.startswith("v:") and isinstance(cur, list):
        value = json.loads(token[2:])
        return value if value in cur else _MISSING
    return _MISSING


def lookup(obj: Any, path: Path) -> Any:
    cur = obj
    for token in path:
        if token == ".":
            return cur
        cur = _step(cur, token)
        if cur is _MISSING:
            return _MISSING
    return cur


def remove_path(obj: Any, path: Path) -> None:
    """Delete the field, list item or set value at ``path`` (in place)."""
    if path and path[-1] == ".":
        path = path[:-1]
    if not path:
        return
    parent = lookup(obj, path[:-1])
    last = path[-1]
    if parent is _MISSING:
        return
    if last.startswith("f:") and isinstance(parent, dict):
        parent.pop(last[2:], None)
    elif isinstance(parent, list):
        target = _step(parent, last)
        if target is not _MISSING:
            parent.remove(target)


def merge_applied(live: Any, applied: Any, field: str = "") -> Any:
    """Merge an applied configuration into the live object: maps recursively, keyed lists by key."""
    if isinstance(applied, dict) and isinstance(live, dict):
        result = dict(live)
        for key, value in applied.items():
            result[key] = merge_applied(live.get(key), value, key) if key in live else clone(value)
        return result
    if isinstance(applied, list) and isinstance(live, list):
        keys = list_keys(field, applied or live)
        if keys is not None and all(isinstance(i, dict) for i in applied + live):
            result_list = [clone(i) for i in live]
            for item in applied:
                match = next(
                    (n for n, cur in enumerate(result_list) if item_key(cur, keys) == item_key(item, keys)),
                    None,
                )
                if match is None:
                    result_list.append(clone(item))
                else:
                    result_list[match] = merge_applied(result_list[match], item)
            return result_list
        if field in SET_LISTS:
            return live + [clone(v) for v in applied if v not in live]
    return clone(applied)


def _managers(live: dict[str, Any]) -> list[dict[str, Any]]:
    return [dict(m) for m in live.get("metadata", {}).get("managedFields") or []]


def _conflict_error(conflicts: list[tuple[str, str, Path]]) -> ApiError:
    """The 409 of structured-merge-diff's Conflicts.Error as the apiserver words it (v1.36): a manager that
    updated is named with its apiVersion ("creator" using v1), one that applied by name only; several
    conflicts are grouped by manager."""

    def dotted(path: Path) -> str:
        out = ""
        for token in path:
            if token.startswith("f:"):
                out += "." + token[2:]
            elif token.startswith(("k:", "v:")):
                out += "[" + token[2:].strip("{}").replace('"', "").replace(":", "=") + "]"
        return out

    def who(manager: str, api: str) -> str:
        return f'"{manager}"' + (f" using {api}" if api else "")

    n = len(conflicts)
    if n == 1:
        manager, api, path = conflicts[0]
        message = f"Apply failed with 1 conflict: conflict with {who(manager, api)}: {dotted(path)}"
    else:
        grouped: dict[tuple[str, str], list[Path]] = {}
        for manager, api, path in conflicts:
            grouped.setdefault((manager, api), []).append(path)
        lines = []
        for manager, api in sorted(grouped):
            lines.append(f"conflicts with {who(manager, api)}:")
            lines += [f"- {dotted(path)}" for path in grouped[(manager, api)]]
        message = f"Apply failed with {n} conflicts: " + "\n".join(lines)
    causes = [
        {
            "reason": "FieldManagerConflict",
            "message": f"conflict with {who(manager, api)}",
            "field": dotted(path),
        }
        for manager, api, path in conflicts
    ]
    return ApiError(409, "Conflict", message, {"causes": causes})


def _without(owned: set[Path], taken: set[Path]) -> set[Path]:
    """A manager's fields once others took ``taken``: a map it set stays its own (structured-merge-diff
    marks it ``"."``), so the entry keeps ``f:data: {}`` when all its keys went to another manager."""
    remaining = owned - taken
    for path in taken & owned:
        parent = path[:-1]
        if parent and not any(p[: len(parent)] == parent for p in remaining):
            remaining.add(parent + (".",))
    return remaining


def _sorted(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """managedFields in the encoder's order (apimachinery managedfields/internal/managedfields.go,
    sortEncodedManagedFields): by operation (Apply before Update), time, manager, apiVersion, subresource."""
    return sorted(
        entries,
        key=lambda e: (
            e.get("operation", ""),
            e.get("time") or "",
            e.get("manager", ""),
            e.get("apiVersion", ""),
            e.get("subresource", ""),
        ),
    )


def apply(
    live: dict[str, Any] | None,
    applied: dict[str, Any],
    manager: str,
    api_version: str,
    force: bool,
    now: str,
    subresource: str = "",
) -> dict[str, Any]:
    """Return the new object for a server-side apply of ``applied`` by ``manager`` onto ``live``."""
    new_fields = field_set(applied)
    entries = _managers(live) if live else []
    mine = next((e for e in entries if e.get("manager") == manager and e.get("operation") == "Apply"), None)
    old_fields = from_fields_v1(mine.get("fieldsV1", {})) if mine else set()
    base = clone(live) if live else {}

    conflicts: list[tuple[str, str, Path]] = []
    clashes: list[tuple[dict[str, Any], set[Path]]] = []
    for entry in entries:
        if entry is mine or entry.get("subresource", "") != subresource:
            continue
        owned = from_fields_v1(entry.get("fieldsV1", {}))
        clashing = {p for p in owned & new_fields if p[-1] != "." and lookup(applied, p) != lookup(base, p)}
        if clashing:
            clashes.append((entry, clashing))
    if clashes and not force and manager == "kubectl" and live is not None:
        every = set().union(*(c for _, c in clashes))
        force = every <= _last_applied_fields(live)
    for entry, clashing in clashes:
        owned = from_fields_v1(entry.get("fieldsV1", {}))
        if force:
            entry["fieldsV1"] = to_fields_v1(_without(owned, clashing))
        else:
            api = "" if entry.get("operation") == "Apply" else entry.get("apiVersion", "")
            conflicts += [(entry["manager"], api, p) for p in sorted(clashing)]
    if conflicts:
        raise _conflict_error(conflicts)

    others: set[Path] = set()
    for entry in entries:
        if entry is not mine:
            others |= from_fields_v1(entry.get("fieldsV1", {}))
    result = merge_applied(base, applied)
    # Shortest paths first: once a list item is gone, the fields inside it need no removal (and removing
    # a key field first would make the item unfindable).
    kept = new_fields | others
    for path in sorted(old_fields - kept, key=lambda p: (len(p) - (p[-1] == "."), p[-1] != ".")):
        if any(p[: len(path)] == path for p in kept):
            continue
        remove_path(result, path)
        # A map or list emptied by the removal goes too, unless someone still owns something under it.
        parent = path[:-2] if path[-1] == "." else path[:-1]
        while (
            parent
            and lookup(result, parent) in ({}, [])
            and not any(p[: len(parent)] == parent for p in kept)
        ):
            remove_path(result, parent)
            parent = parent[:-1]

    entries = [e for e in entries if e is not mine and e.get("fieldsV1")]
    entries.append(_entry(manager, "Apply", api_version, now, new_fields, subresource))
    result.setdefault("metadata", {})["managedFields"] = _sorted(entries)
    return result


LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def _last_applied_fields(live: dict[str, Any]) -> set[Path]:
    """Fields of a client-side apply's last-applied-configuration whose live value is still the one it
    applied: ``kubectl apply --server-side`` may take them over without a conflict, as the real server's
    lastAppliedManager allows (apimachinery pkg/util/managedfields/internal/lastappliedmanager.go)."""
    text = ((live.get("metadata") or {}).get("annotations") or {}).get(LAST_APPLIED)
    if not text:
        return set()
    try:
        last = json.loads(text)
    except ValueError:
        return set()
    return {p for p in field_set(last) if p[-1] == "." or lookup(last, p) == lookup(live, p)}


def record_update(
    old: dict[str, Any] | None,
    new: dict[str, Any],
    manager: str,
    api_version: str,
    now: str,
    subresource: str = "",
) -> None:
    """Make ``manager`` owner of the fields an update changed (in place on ``new``)."""
    before = field_set(old) if old else set()
    after = field_set(new)
    changed = {p for p in after if p not in before or lookup(old, p) != lookup(new, p)}
    entries = _managers(old) if old else []
    if not changed:
        # An update that sets no field records no manager (a created ServiceAccount with only a name).
        new.setdefault("metadata", {})["managedFields"] = entries or None
        if not entries:
            new["metadata"].pop("managedFields", None)
        return
    for entry in entries:
        if entry.get("manager") == manager and entry.get("operation") == "Update":
            continue
        owned = {
            p
            for p in from_fields_v1(entry.get("fieldsV1", {}))
            if p in after or p[-1] == "." and lookup(new, p[:-1]) is not None
        }
        entry["fieldsV1"] = to_fields_v1(_without(owned, changed & owned))
    mine = next(
        (
            e
            for e in entries
            if e.get("manager") == manager
            and e.get("operation") == "Update"
            and e.get("subresource", "") == subresource
        ),
        None,
    )
    owned_before = from_fields_v1(mine["fieldsV1"]) if mine else set()
    entries = [e for e in entries if e is not mine and e.get("fieldsV1")]
    entries.append(_entry(manager, "Update", api_version, now, (owned_before & after) | changed, subresource))
    new.setdefault("metadata", {})["managedFields"] = _sorted(entries)


def _entry(
    manager: str, operation: str, api_version: str, now: str, paths: set[Path], subresource: str
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "manager": manager,
        "operation": operation,
        "apiVersion": api_version,
        "time": now,
        "fieldsType": "FieldsV1",
        "fieldsV1": to_fields_v1(paths),
    }
    if subresource:
        entry["subresource"] = subresource
    return entry
