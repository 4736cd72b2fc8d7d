"""The published OpenAPI documents of Kubernetes v1.36.2, and decoding of request bodies against them.

Source: the OpenAPI v2 document (``/openapi/v2``) and the OpenAPI v3 documents
(``/openapi/v3/<group-version>``) of a real kube-apiserver v1.36.2, dumped once from the reference and kept
gzipped as package data (``data/openapi-v{2,3}-v1.36.2.json.gz``; ``python -m tests.conformance.record
--dump-openapi`` writes them again).
Why these and not the official Python client's models: the client is generated from an older OpenAPI
snapshot (its ``openapi_types`` lack the Go formats and the list/map markers), while these documents are what
the real server itself serves, so ``kubectl explain`` reads the same text and the structure used for decoding
is exactly the server's: ``int32``/``int64`` formats, ``x-kubernetes-list-map-keys``, defaults, required.

What a real server does while decoding a JSON body into its Go types, this module imitates from the v2
definitions (compiled once, lazily, into small :class:`Node` trees):
- a value of the wrong JSON type fails the whole request with Go's ``encoding/json`` error text, e.g.
  ``json: cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas of type int32`` (the
  first one met, in document order; it wins over unknown fields);
- fields the type does not have are collected as ``unknown field "spec.template.spec.foo"`` in document order,
  which ``fieldValidation`` turns into a strict decoding error (Strict), ``Warning`` headers (Warn) or nothing
  (Ignore); ``null`` is accepted anywhere, as Go leaves the field unset.
"""

from __future__ import annotations

import gzip
import json
import re
import threading
from functools import cache
from importlib import resources
from typing import Any

K8S_VERSION = "1.36.2"
_DATA = resources.files("kubesim.apiserver") / "data"
_QUANTITY = re.compile(r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$")
QUANTITY_MESSAGE = (
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
)
_INT_RANGE = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}


@cache
def openapi_v2() -> dict[str, Any]:
    with (_DATA / f"openapi-v2-v{K8S_VERSION}.json.gz").open("rb") as raw:
        return json.loads(gzip.decompress(raw.read()))


@cache
def openapi_v3() -> dict[str, dict[str, Any]]:
    """Group-version key (``api/v1``, ``apis/apps/v1``) -> that group-version's OpenAPI v3 document."""
    with (_DATA / f"openapi-v3-v{K8S_VERSION}.json.gz").open("rb") as raw:
        return json.loads(gzip.decompress(raw.read()))


class Node:
    """One Go type: a struct (``props``), a map or slice (``elem``), or a scalar/special kind."""

    __slots__ = ("elem", "go", "kind", "list_keys", "props", "struct")

    def __init__(self, kind: str, go: str) -> None:
        self.kind = (
            kind  # struct, map, list, string, bytes, bool, int32, int64, float64, intstr, quantity, any
        )
        self.go = go  # the Go type as encoding/json names it: v1.PodSpec, []v1.Container, map[string]string
        self.props: dict[str, Node] = {}
        self.elem: Node | None = None
        self.struct = ""  # the struct's bare name (DeploymentSpec), for "Go struct field X.path"
        self.list_keys: tuple[str, ...] = ()  # associative-list keys, for server-side apply paths


_SPECIAL = {
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": "intstr",
    "io.k8s.apimachinery.pkg.api.resource.Quantity": "quantity",
    "io.k8s.apimachinery.pkg.apis.meta.v1.Time": "string",
    "io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime": "string",
}


@cache
def _definitions() -> dict[str, Any]:
    return openapi_v2()["definitions"]


_compiled: dict[str, Node] = {}


def _compile_ref(name: str) -> Node:
    node = _compiled.get(name)
    if node is not None:
        return node
    definition = _definitions().get(name) or {}
    special = _SPECIAL.get(name)
    short = name.rsplit(".", 1)[-1]
    package = name.rsplit(".", 2)[-2] if name.count(".") >= 2 else ""
    if special:
        node = Node(special, "string" if special != "intstr" else "int32")
    elif "properties" not in definition:
        node = Node("any", "interface {}")  # RawExtension, JSON, FieldsV1, JSONSchemaPropsOr*: free-form
    else:
        node = Node("struct", f"{package}.{short}")
        node.struct = short
    _compiled[name] = node
    if node.kind == "struct":
        for key, prop in definition["properties"].items():
            node.props[key] = _compile(prop)
    return node


def _compile(schema: dict[str, Any]) -> Node:
    ref = schema.get("$ref") or next((s["$ref"] for s in schema.get("allOf") or [] if "$ref" in s), None)
    if ref:
        return _compile_ref(ref.rsplit("/", 1)[-1])
    kind, fmt = schema.get("type"), schema.get("format")
    if kind == "array":
        elem = _compile(schema.get("items") or {})
        node = Node("list", "[]" + elem.go)
        node.elem = elem
        node.list_keys = tuple(schema.get("x-kubernetes-list-map-keys") or ()) or (
            (schema["x-kubernetes-patch-merge-key"],) if "x-kubernetes-patch-merge-key" in schema else ()
        )
        return node
    if kind == "object":
        extra = schema.get("additionalProperties")
        elem = _compile(extra) if isinstance(extra, dict) else Node("any", "interface {}")
        node = Node("map", "map[string]" + elem.go)
        node.elem = elem
        return node
    if kind == "integer":
        return Node(
            fmt if fmt in ("int32", "int64") else "int64", fmt if fmt in ("int32", "int64") else "int64"
        )
    if kind == "number":
        return Node("float64", "float64")
    if kind == "boolean":
        return Node("bool", "bool")
    if kind == "string":
        return Node("bytes", "[]uint8") if fmt == "byte" else Node("string", "string")
    return Node("any", "interface {}")


@cache
def _kinds() -> dict[tuple[str, str, str], str]:
    out: dict[tuple[str, str, str], str] = {}
    for name, definition in _definitions().items():
        for gvk in definition.get("x-kubernetes-group-version-kind") or []:
            out[(gvk["group"], gvk["version"], gvk["kind"])] = name
    return out


_roots: dict[tuple[str, str, str], Node | None] = {}
_compile_lock = threading.RLock()


def root(group: str, version: str, kind: str) -> Node | None:
    """The compiled type of a built-in kind, or None when the published schema does not describe it.

    Compiling registers each node before filling it (types are recursive), so it runs under a lock and a
    root is published only once complete: a request thread never sees a half-built type.
    """
    key = (group, version, kind)
    if key in _roots:
        return _roots[key]
    with _compile_lock:
        name = _kinds().get(key)
        _roots[key] = _compile_ref(name) if name else None
        return _roots[key]


def definition_name(group: str, version: str, kind: str) -> str | None:
    return _kinds().get((group, version, kind))


class DecodeError(Exception):
    """A body that does not fit the Go types; the message is encoding/json's (or Quantity's)."""


def _json_kind(value: Any) -> str:
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, list):
        return "array"
    return "object"


def decode(value: dict[str, Any], node: Node) -> list[str]:
    """Check a body against a kind's type and drop the fields it does not have (Go never decodes them);
    return their paths, or raise DecodeError on a type error. ``value`` must be the caller's own copy."""
    unknown: list[Any] = []
    error: list[str] = []
    _walk_struct(value, node, "", "", unknown, error)
    if error:
        raise DecodeError(error[0])
    paths = unknown[0::3]
    for container, key in zip(unknown[1::3], unknown[2::3], strict=True):
        container.pop(key, None)
    return paths


def _type_error(value: Any, node: Node, struct: str, field: str, error: list[str]) -> None:
    if error:
        return
    if node.kind == "quantity":
        error.append(QUANTITY_MESSAGE)
        return
    what = _json_kind(value)
    if what == "number" and node.kind in ("int32", "int64", "intstr"):
        what = f"number {json.dumps(value)}"
    error.append(f"json: cannot unmarshal {what} into Go struct field {struct}.{field} of type {node.go}")


def _walk_struct(
    value: dict[str, Any], node: Node, path: str, field: str, unknown: list[Any], error: list[str]
) -> None:
    props = node.props
    for key, child in value.items():
        sub = props.get(key)
        if sub is None:
            unknown += (f"{path}.{key}" if path else key, value, key)
            continue
        if child is None:
            continue
        _walk(
            child,
            sub,
            f"{path}.{key}" if path else key,
            f"{field}.{key}" if field else key,
            node.struct,
            unknown,
            error,
        )


def _walk(
    value: Any, node: Node, path: str, field: str, struct: str, unknown: list[Any], error: list[str]
) -> None:
    kind = node.kind
    if kind == "string":
        if not isinstance(value, str):
            _type_error(value, node, struct, field, error)
    elif kind == "struct":
        if isinstance(value, dict):
            _walk_struct(value, node, path, field, unknown, error)
        else:
            _type_error(value, node, struct, field, error)
    elif kind == "list":
        if not isinstance(value, list):
            _type_error(value, node, struct, field, error)
            return
        elem = node.elem
        assert elem is not None
        for n, item in enumerate(value):
            if item is not None:
                _walk(item, elem, f"{path}[{n}]", field, struct, unknown, error)
    elif kind == "map":
        if not isinstance(value, dict):
            _type_error(value, node, struct, field, error)
            return
        elem = node.elem
        assert elem is not None
        if elem.kind == "any":
            return
        for key, item in value.items():
            if item is not None:
                _walk(item, elem, f"{path}[{key}]", field, struct, unknown, error)
    elif kind in ("int32", "int64"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            _type_error(value, node, struct, field, error)
        elif isinstance(value, float) or not _INT_RANGE[kind][0] <= value <= _INT_RANGE[kind][1]:
            _type_error(value, node, struct, field, error)
    elif kind == "bool":
        if not isinstance(value, bool):
            _type_error(value, node, struct, field, error)
    elif kind == "float64":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            _type_error(value, node, struct, field, error)
    elif kind == "intstr":
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            _type_error(value, node, struct, field, error)
    elif kind == "quantity":
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            _type_error(value, node, struct, field, error)
        elif isinstance(value, str) and not _QUANTITY.match(value):
            _type_error(value, node, struct, field, error)
    elif kind == "bytes":
        if not isinstance(value, str):
            _type_error(value, node, struct, field, error)


def apply_schema_error(value: dict[str, Any], node: Node) -> str | None:
    """What structured-merge-diff says of the first field of an apply configuration the type does not
    declare or a scalar of the wrong type (``.spec.foo: field not declared in schema``, ``.spec.replicas:
    expected numeric (int or float), got string``), or None."""
    return _apply_walk(value, node, "")


def _apply_walk(value: Any, node: Node, path: str) -> str | None:
    if node.kind in ("int32", "int64", "float64") and isinstance(value, str):
        return f"{path}: expected numeric (int or float), got string"
    if node.kind == "bool" and isinstance(value, str):
        return f"{path}: expected boolean, got &{{{value}}}"
    if node.kind == "struct" and isinstance(value, dict):
        for key, child in value.items():
            sub = node.props.get(key)
            if sub is None:
                return f"{path}.{key}: field not declared in schema"
            found = _apply_walk(child, sub, f"{path}.{key}")
            if found:
                return found
    elif node.kind == "list" and isinstance(value, list) and node.elem is not None:
        for n, item in enumerate(value):
            if node.list_keys and isinstance(item, dict):
                label = ",".join(f"{k}={json.dumps(item.get(k))}" for k in node.list_keys if k in item)
                where = f"{path}[{label}]"
            else:
                where = f"{path}[{n}]"
            found = _apply_walk(item, node.elem, where)
            if found:
                return found
    elif node.kind == "map" and isinstance(value, dict) and node.elem is not None:
        for key, item in value.items():
            found = _apply_walk(item, node.elem, f"{path}.{key}")
            if found:
                return found
    return None
