"""The three patch formats of the API server: JSON merge patch, strategic merge patch, JSON patch.

Strategic merge needs to know which lists merge by key. The API server reads that from the Go types; here
the table :data:`LIST_KEYS` names the keyed lists of the built-in kinds that kubectl patches in practice
(containers, env, ports, volumes, conditions, webhooks, ...). Server-side apply (``ssa.py``) shares it.
"""

from __future__ import annotations

import json
from typing import Any

from kubesim.machinery.errors import ApiError, bad_request
from kubesim.store import clone

# field name -> the keys that identify an item, each with the default the API server fills in.
LIST_KEYS: dict[str, tuple[tuple[str, Any], ...]] = {
    "containers": (("name", None),),
    "initContainers": (("name", None),),
    "ephemeralContainers": (("name", None),),
    "env": (("name", None),),
    "volumes": (("name", None),),
    "volumeMounts": (("mountPath", None),),
    "volumeDevices": (("devicePath", None),),
    "imagePullSecrets": (("name", None),),
    "hostAliases": (("ip", None),),
    "ownerReferences": (("uid", None),),
    "conditions": (("type", None),),
    "webhooks": (("name", None),),
    "resourceClaims": (("name", None),),
    "topologySpreadConstraints": (("topologyKey", None), ("whenUnsatisfiable", None)),
}
SET_LISTS = {"finalizers"}


def list_keys(field: str, items: list[Any]) -> tuple[tuple[str, Any], ...] | None:
    """Merge keys of list ``field`` whose items look like ``items``; None for an atomic list."""
    if field == "ports":
        sample = next((i for i in items if isinstance(i, dict)), None)
        if sample is None:
            return None
        if "containerPort" in sample:
            return (("containerPort", None), ("protocol", "TCP"))
        if "port" in sample:
            return (("port", None), ("protocol", "TCP"))
        return None
    return LIST_KEYS.get(field)


def item_key(item: dict[str, Any], keys: tuple[tuple[str, Any], ...]) -> tuple[Any, ...]:
    return tuple(item.get(k, default) for k, default in keys)


def json_merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386."""
    if not isinstance(patch, dict):
        return clone(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = json_merge_patch(result.get(key), value)
    return result


def strategic_merge_patch(original: Any, patch: Any) -> Any:
    """Apply a strategic merge patch, honouring ``$patch``, ``$setElementOrder``, ``$retainKeys`` and
    ``$deleteFromPrimitiveList`` directives the way kubectl generates them."""
    if not isinstance(patch, dict):
        return clone(patch)
    directive = patch.get("$patch")
    if directive == "replace":
        return {k: clone(v) for k, v in patch.items() if k != "$patch"}
    if directive == "delete":
        return None
    result = dict(original) if isinstance(original, dict) else {}
    orders: dict[str, list[Any]] = {
        key.split("/", 1)[1]: value for key, value in patch.items() if key.startswith("$setElementOrder/")
    }
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys") or key.startswith("$setElementOrder/"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            result[field] = [x for x in result.get(field) or [] if x not in value]
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            merged = strategic_merge_patch(result.get(key), value)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        elif isinstance(value, list):
            current = result.get(key)
            current = current if isinstance(current, list) else []
            keys = list_keys(key, [v for v in value if isinstance(v, dict) and "$patch" not in v] or current)
            if keys is not None:
                result[key] = _merge_keyed_list(current, value, keys, orders.pop(key, None))
            elif key in SET_LISTS:
                result[key] = current + [clone(v) for v in value if v not in current]
            else:
                result[key] = clone(value)
        else:
            result[key] = value
    for field, order in orders.items():
        items = result.get(field)
        if isinstance(items, list):
            result[field] = _reorder(items, order, list_keys(field, order or items))
    retain = patch.get("$retainKeys")
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _merge_keyed_list(
    current: list[Any], patch: list[Any], keys: tuple[tuple[str, Any], ...], order: list[Any] | None = None
) -> list[Any]:
    """Merge a list of maps by its merge key, ordered as apimachinery's strategicpatch orders it
    (normalizeElementOrder + mergeSortedSlice): the patch's items in the patch's (or ``$setElementOrder``'s)
    order, merged with the items only the server has, in the server's order."""
    if any(isinstance(i, dict) and i == {"$patch": "replace"} for i in patch):
        return [strategic_merge_patch({}, i) for i in patch if i != {"$patch": "replace"}]
    result = [clone(i) for i in current]
    for item in patch:
        if not isinstance(item, dict):
            raise bad_request("unable to find api field in struct for a keyed list item")
        wanted = item_key(item, keys)
        index = next(
            (n for n, cur in enumerate(result) if isinstance(cur, dict) and item_key(cur, keys) == wanted),
            None,
        )
        if item.get("$patch") == "delete":
            if index is not None:
                del result[index]
            continue
        if index is None:
            result.append(strategic_merge_patch({}, item))
        else:
            result[index] = strategic_merge_patch(result[index], item)
    wanted_order = [item_key(i, keys) for i in (order if order is not None else patch) if isinstance(i, dict)]
    rank = {k: n for n, k in enumerate(wanted_order)}
    from_patch = sorted(
        (i for i in result if item_key(i, keys) in rank), key=lambda i: rank[item_key(i, keys)]
    )
    server_only = [i for i in result if item_key(i, keys) not in rank]
    server_rank = {item_key(i, keys): n for n, i in enumerate(current) if isinstance(i, dict)}
    merged: list[Any] = []
    while from_patch and server_only:
        left, right = (
            server_rank.get(item_key(from_patch[0], keys)),
            server_rank.get(item_key(server_only[0], keys)),
        )
        # Both known to the server: the server's order decides; otherwise the patch's item comes first.
        if left is not None and right is not None and right < left:
            merged.append(server_only.pop(0))
        else:
            merged.append(from_patch.pop(0))
    return merged + from_patch + server_only


def _reorder(items: list[Any], order: list[Any], keys: tuple[tuple[str, Any], ...] | None) -> list[Any]:
    def ident(x: Any) -> Any:
        return item_key(x, keys) if keys and isinstance(x, dict) else json.dumps(x, sort_keys=True)

    rank = {ident(o): n for n, o in enumerate(order)}
    return sorted(items, key=lambda x: rank.get(ident(x), len(rank)))


# -- RFC 6902 JSON patch --------------------------------------------------------------------------------
def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise bad_request(
            f"the server rejected our request due to an error in our request: invalid path {path}"
        )
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _container(doc: Any, parts: list[str]) -> Any:
    cur = doc
    for part in parts:
        if isinstance(cur, list):
            cur = cur[int(part)]
        elif isinstance(cur, dict):
            cur = cur[part]
        else:
            raise KeyError(part)
    return cur


# Every failure of applying a JSON patch (a ``test`` that fails, a path that is missing, an unknown op)
# is answered alike: the patcher wraps evanphx/json-patch's error in NewGenericServerResponse(422) with no
# message of its own (staging/src/k8s.io/apiserver/pkg/endpoints/handlers/patch.go, v1.36), so the
# client reads
# "the server rejected our request due to an error in our request".
PATCH_FAILED = "the server rejected our request due to an error in our request"


def _patch_failed() -> ApiError:
    return ApiError(422, "Invalid", PATCH_FAILED, {})


def json_patch(document: Any, operations: list[dict[str, Any]]) -> Any:
    doc = clone(document)
    try:
        for op in operations:
            kind, parts = op.get("op"), _pointer(op.get("path", ""))
            if kind == "test":
                if _container(doc, parts) != op.get("value"):
                    raise _patch_failed()
                continue
            if kind in ("move", "copy"):
                value = clone(_container(doc, _pointer(op["from"])))
                if kind == "move":
                    doc = json_patch(doc, [{"op": "remove", "path": op["from"]}])
                kind, op = "add", {"value": value}
            if not parts:
                doc = clone(op.get("value")) if kind in ("add", "replace") else None
                continue
            parent, last = _container(doc, parts[:-1]), parts[-1]
            if kind == "add":
                if isinstance(parent, list):
                    parent.insert(len(parent) if last == "-" else int(last), clone(op.get("value")))
                else:
                    parent[last] = clone(op.get("value"))
            elif kind == "replace":
                # json-patch v5 with EnsurePathExistsOnAdd off still replaces a missing map key (as add).
                if isinstance(parent, list):
                    parent[int(last)] = clone(op.get("value"))
                else:
                    parent[last] = clone(op.get("value"))
            elif kind == "remove":
                if isinstance(parent, list):
                    del parent[int(last)]
                else:
                    del parent[last]
            else:
                raise _patch_failed()
    except (KeyError, IndexError, ValueError, TypeError):
        raise _patch_failed() from None
    return doc
