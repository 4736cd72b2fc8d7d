"""IstioOperator specs: ``--set`` paths, ``-f`` files, profiles and strict, typed validation of install
values.

istioctl decodes ``spec.values`` strictly with golang/protobuf jsonpb into ``istio.operator.v1alpha1.Values``
(1.24+: operator/pkg/apis/value_types_json.go; up to 1.23: operator/pkg/validate/validate_values.go): a field
the version does not have fails with ``unknown field "X" in istio.operator.v1alpha1.<Message>``, and a value
of the wrong type with encoding/json's message (``json: cannot unmarshal string into Go value of type ...``).
Which fields exist, and their types, per minor, come from ``values_schema.json`` (values_types.proto at each
tag). The rest of the spec (:data:`SPEC`, hand-kept: ``ANY`` marks free-form content) is decoded strictly too:
1.24+ with encoding/json's DisallowUnknownFields (``could not unmarshal: json: unknown field "X"``).
"""

from __future__ import annotations

import copy
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from .catalog import IstioMinor, minor_of

ANY = "*"

_K8S = {
    k: ANY
    for k in (
        "affinity",
        "env",
        "hpaSpec",
        "imagePullPolicy",
        "nodeSelector",
        "podDisruptionBudget",
        "podAnnotations",
        "priorityClassName",
        "readinessProbe",
        "replicaCount",
        "resources",
        "service",
        "strategy",
        "tolerations",
        "serviceAnnotations",
        "securityContext",
        "volumes",
        "volumeMounts",
        "overlays",
        "topologySpreadConstraints",
    )
}
_COMPONENT = (
    "ComponentSpec",
    {"enabled": ANY, "namespace": ANY, "hub": ANY, "tag": ANY, "k8s": ("KubernetesResources", _K8S)},
)
_GATEWAY_COMPONENT = (
    "GatewaySpec",
    {
        "enabled": ANY,
        "namespace": ANY,
        "name": ANY,
        "label": ANY,
        "hub": ANY,
        "tag": ANY,
        "k8s": ("KubernetesResources", _K8S),
    },
)

# spec.values is decoded into istio.operator.v1alpha1.Values, whose fields and types per minor are in
# values_schema.json (generated from values_types.proto at each release tag); VALUES marks where it applies.
VALUES = "Values"

SPEC = (
    "IstioOperatorSpec",
    {
        "profile": ANY,
        "installPackagePath": ANY,
        "hub": ANY,
        "tag": ANY,
        "namespace": ANY,
        "revision": ANY,
        "compatibilityVersion": ANY,
        "meshConfig": ANY,
        "unvalidatedValues": ANY,
        "values": VALUES,
        "components": (
            "IstioComponentSpec",
            {
                "base": _COMPONENT,
                "pilot": _COMPONENT,
                "cni": _COMPONENT,
                "ztunnel": _COMPONENT,
                "istiodRemote": _COMPONENT,
                "ingressGateways": [_GATEWAY_COMPONENT],
                "egressGateways": [_GATEWAY_COMPONENT],
            },
        ),
    },
)

PROFILES = ("default", "minimal", "demo", "empty", "remote", "ambient")


class OperatorError(ValueError):
    """An IstioOperator spec istioctl would reject; the message is istioctl's."""


def _coerce(text: str) -> Any:
    if text in ("true", "false"):
        return text == "true"
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    if re.fullmatch(r"-?\d+\.\d+", text):
        return float(text)
    return text


_TOKEN = re.compile(r"([^.\[\]]+)(?:\[(\d+)\])?")


def set_path(spec: dict[str, Any], path: str, value: Any) -> None:
    """Set ``a.b[0].c`` in ``spec`` the way ``istioctl --set`` does."""
    cur: Any = spec
    tokens = [m for m in _TOKEN.finditer(path) if m.group(1)]
    # Keys such as "gateways.istio-ingressgateway" keep their dashes; dots always split.
    for n, match in enumerate(tokens):
        key, index = match.group(1), match.group(2)
        last = n == len(tokens) - 1
        if index is None:
            if last:
                cur[key] = value
            else:
                cur = cur.setdefault(key, {})
                if not isinstance(cur, dict):
                    raise OperatorError(f"cannot set {path}: {key} is not a map")
        else:
            items = cur.setdefault(key, [])
            i = int(index)
            while len(items) <= i:
                items.append({} if not last else None)
            if last:
                items[i] = value
            else:
                if not isinstance(items[i], dict):
                    items[i] = {}
                cur = items[i]


def parse_set(expression: str) -> tuple[str, Any]:
    if "=" not in expression:
        raise OperatorError(f"--set {expression}: expected KEY=VALUE, for example values.cni.enabled=true")
    key, _, raw = expression.partition("=")
    if not key:
        raise OperatorError(f"--set {expression}: the key is empty")
    return key.strip(), _coerce(raw.strip())


def deep_merge(base: Any, overlay: Any) -> Any:
    if isinstance(base, dict) and isinstance(overlay, dict):
        out = dict(base)
        for k, v in overlay.items():
            out[k] = deep_merge(base.get(k), v) if k in base else copy.deepcopy(v)
        return out
    return copy.deepcopy(overlay)


def load_file(path: str | Path) -> dict[str, Any]:
    """The ``spec`` of an IstioOperator file (``-f``)."""
    p = Path(path)
    try:
        doc = yaml.safe_load(p.read_text())
    except OSError as exc:
        raise OperatorError(f"could not read {p}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise OperatorError(f"could not parse {p}: {exc}") from None
    if not isinstance(doc, dict) or doc.get("kind") != "IstioOperator":
        raise OperatorError(
            f"{p} is not an IstioOperator (expected apiVersion install.istio.io/v1alpha1, kind IstioOperator)"
        )
    spec = doc.get("spec") or {}
    if not isinstance(spec, dict):
        raise OperatorError(f"{p}: spec must be a map")
    return spec


def build_spec(files: list[str | Path] = (), sets: list[str] = ()) -> dict[str, Any]:
    """Overlay ``-f`` files in order, then ``--set`` expressions, as istioctl does."""
    spec: dict[str, Any] = {}
    for f in files:
        spec = deep_merge(spec, load_file(f))
    for expression in sets:
        key, value = parse_set(expression)
        set_path(spec, key, value)
    return spec


def validate(spec: dict[str, Any], version: str) -> None:
    """Reject what istioctl ``version`` rejects: unknown spec fields, values fields this version does not
    have, values of the wrong type, unknown profiles; the message is the one that version prints."""
    record = minor_of(version)
    _check_spec(spec, SPEC, record)
    profile = spec.get("profile", "default")
    if profile not in PROFILES:
        raise OperatorError(
            f'could not read profile "{profile}": profile does not exist; known profiles: '
            f"{', '.join(PROFILES)}"
        )
    if record.at_least("1.22") and profile == "external":
        raise OperatorError('could not read profile "external": use profile "remote"')


def _check_spec(value: Any, schema: Any, record: IstioMinor) -> None:
    if schema == ANY or value is None:
        return
    if schema == VALUES:
        try:
            _check_value(value, "Values", record.minor)
        except OperatorError as exc:
            raise OperatorError(record.unknown_value_error_prefix + str(exc)) from None
        return
    if isinstance(schema, list):
        if not isinstance(value, list):
            raise OperatorError(
                _spec_error(record, f"json: cannot unmarshal {_json_type(value)} into Go value")
            )
        for item in value:
            _check_spec(item, schema[0], record)
        return
    message, fields = schema
    if not isinstance(value, dict):
        raise OperatorError(_spec_error(record, f"json: cannot unmarshal {_json_type(value)} into Go value"))
    for key, child in value.items():
        if key not in fields:
            if record.at_least("1.24"):
                raise OperatorError(f'could not unmarshal: json: unknown field "{key}"')
            raise OperatorError(f'unknown field "{key}" in istio.operator.v1alpha1.{message}')
        _check_spec(child, fields[key], record)


def _spec_error(record: IstioMinor, text: str) -> str:
    return f"could not unmarshal: {text}" if record.at_least("1.24") else text


@cache
def _schema() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((Path(__file__).with_name("values_schema.json")).read_text())
    return data


def values_fields(message: str, minor: str) -> dict[str, Any]:
    """The fields of a values message in ``minor``: ``{json name: kind}`` (values_schema.json)."""
    mt = _minor_key(minor)
    return {
        name: kind
        for name, segments in _schema()["messages"].get(message, {}).items()
        for kind, since, until in segments
        if _minor_key(since) <= mt <= _minor_key(until)
    }


def values_source(minor: str) -> str:
    """Where the values schema of ``minor`` was read (repository, tag and path)."""
    return str(_schema()["sources"][minor])


def _minor_key(minor: str) -> tuple[int, int]:
    major, number = minor.split(".")[:2]
    return int(major), int(number)


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


_GO_DURATION = re.compile(r"^-?(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$|^0$")


def _check_value(value: Any, kind: Any, minor: str) -> None:
    """Decode ``value`` as golang/protobuf jsonpb decodes a field of ``kind``; raise with its message."""
    if value is None or kind == "any":
        return
    if isinstance(kind, list):
        container, item = kind
        if container == "list":
            if not isinstance(value, list):
                raise OperatorError(
                    f"json: cannot unmarshal {_json_type(value)} into Go value of type []json.RawMessage"
                )
            for element in value:
                _check_value(element, item, minor)
        else:
            if not isinstance(value, dict):
                raise OperatorError(
                    f"json: cannot unmarshal {_json_type(value)} into Go value of type "
                    "map[string]json.RawMessage"
                )
            for element in value.values():
                _check_value(element, item, minor)
        return
    if kind == "struct":
        if not isinstance(value, dict):
            raise OperatorError(
                f"bad StructValue: json: cannot unmarshal {_json_type(value)} into Go value of type "
                "map[string]json.RawMessage"
            )
        return
    if kind == "bool":
        if not isinstance(value, bool):
            raise OperatorError(f"json: cannot unmarshal {_json_type(value)} into Go value of type bool")
        return
    if kind in ("int", "number"):
        # jsonpb strips quotes around numbers ("5" is 5) and hands the rest to encoding/json.
        text = value if isinstance(value, str) else json.dumps(value)
        if isinstance(value, (bool, list, dict)):
            go = "int32" if kind == "int" else "float64"
            raise OperatorError(f"json: cannot unmarshal {_json_type(value)} into Go value of type {go}")
        try:
            number = json.loads(text)
        except ValueError:
            raise OperatorError(f"invalid character {text[:1]!r} looking for beginning of value") from None
        if not isinstance(number, (int, float)) or isinstance(number, bool):
            raise OperatorError(f"json: cannot unmarshal {_json_type(number)} into Go value of type int32")
        if kind == "int" and isinstance(number, float) and not number.is_integer():
            raise OperatorError(f"json: cannot unmarshal number {text} into Go value of type int32")
        return
    if kind in ("string", "enum"):
        if kind == "enum" and isinstance(value, int) and not isinstance(value, bool):
            return
        if not isinstance(value, str):
            raise OperatorError(f"json: cannot unmarshal {_json_type(value)} into Go value of type string")
        return
    if kind == "duration":
        if not isinstance(value, str):
            raise OperatorError(f"json: cannot unmarshal {_json_type(value)} into Go value of type string")
        if not _GO_DURATION.match(value):
            raise OperatorError(f'bad Duration: time: invalid duration "{value}"')
        return
    if kind == "intorstring":
        if isinstance(value, (bool, list, dict)):
            raise OperatorError(
                f"json: cannot unmarshal {_json_type(value)} into Go value of type intstr.IntOrString"
            )
        return
    # A message of the values proto.
    if not isinstance(value, dict):
        raise OperatorError(
            f"json: cannot unmarshal {_json_type(value)} into Go value of type map[string]json.RawMessage"
        )
    fields = values_fields(kind, minor)
    for key, child in value.items():
        if key not in fields:
            raise OperatorError(f'unknown field "{key}" in istio.operator.v1alpha1.{kind}')
        _check_value(child, fields[key], minor)


def field_history(path: str) -> tuple[str, str] | None:
    """``(first minor, last minor)`` that have the values field ``path`` (``global.proxy.seccompProfile``),
    or None when no catalogued minor has it. (Fields that come and go again are not expected; the outer
    span.)"""
    minors = [m for m in _schema()["sources"] if _has_path(path.removeprefix("values."), m)]
    return (minors[0], minors[-1]) if minors else None


def _has_path(path: str, minor: str) -> bool:
    message: str | None = "Values"
    for key in path.split("."):
        if message is None:
            return True  # inside free-form content (a Struct or Value): whatever the holder accepts
        kind = values_fields(message, minor).get(key)
        if kind is None:
            return False
        message = _message_of(kind)
    return True


def _message_of(kind: Any) -> str | None:
    """The values message a field of ``kind`` holds (directly, or as list/map items), if any."""
    if isinstance(kind, list):
        kind = kind[1]
    return kind if isinstance(kind, str) and kind[:1].isupper() else None


def get(spec: dict[str, Any], path: str, default: Any = None) -> Any:
    cur: Any = spec
    for match in _TOKEN.finditer(path):
        key, index = match.group(1), match.group(2)
        if not key:
            continue
        if not isinstance(cur, dict) or key not in cur:
            return default
        cur = cur[key]
        if index is not None:
            if not isinstance(cur, list) or len(cur) <= int(index):
                return default
            cur = cur[int(index)]
    return cur


def apply_time_labels(
    version: str, namespace: str = "istio-system", revision: str = "default"
) -> dict[str, str]:
    """The ownership labels ``istioctl install`` puts on every object it applies, and selects on when it
    prunes (operator/pkg/install/install.go getOwnerLabels, 1.24+): a plain ``kubectl apply`` of ``manifest
    generate`` output lacks them."""
    return {
        "operator.istio.io/version": version,
        "operator.istio.io/managed": "Reconcile",
        "install.operator.istio.io/owning-resource-namespace": namespace,
        "istio.io/rev": revision or "default",
    }


def is_removed(path: str, version: str) -> bool:
    """Whether the values ``path`` existed in an earlier minor and no longer exists in ``version``."""
    span = field_history(path)
    if span is None:
        return False
    return _minor_key(span[1]) < minor_of(version).version_tuple


def is_unknown_yet(path: str, version: str) -> bool:
    """Whether the values ``path`` is only known from a later minor than ``version``'s (added later)."""
    span = field_history(path)
    return span is not None and _minor_key(span[0]) > minor_of(version).version_tuple
