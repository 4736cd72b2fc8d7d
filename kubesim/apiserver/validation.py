"""Validation of built-in kinds and of custom resources against their CRD schema.

Each check returns causes as ``(reason, field, message)`` with the API server's own wording, so that a
bad object gets the same 422 ``Invalid`` body (and the same kubectl error line) as on a real cluster.
"""

from __future__ import annotations

import json
import re
from typing import Any

Cause = tuple[str, str, str]
Obj = dict[str, Any]

_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
    "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
    "start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
    "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
_DNS1035_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
    "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', "
    "regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
)
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")

SERVICE_TYPES = ("ClusterIP", "ExternalName", "LoadBalancer", "NodePort")


def _go_map(labels: dict[str, str]) -> str:
    """A map as field.Invalid prints it since Kubernetes 1.34: JSON with sorted keys."""
    return json.dumps(labels, sort_keys=True, separators=(",", ":"))


def validate_name(gr: tuple[str, str], name: str) -> list[Cause]:
    if gr in (("", "namespaces"),):
        ok, msg = _LABEL.match(name) and len(name) <= 63, _LABEL_MSG
    elif gr == ("", "services"):
        # RelaxedServiceNameValidation (GA in 1.34): a Service name is an RFC 1123 label, not DNS-1035.
        ok, msg = _LABEL.match(name) and len(name) <= 63, _LABEL_MSG
    else:
        ok, msg = _SUBDOMAIN.match(name) and len(name) <= 253, _SUBDOMAIN_MSG
    return [] if ok else [("FieldValueInvalid", "metadata.name", f'Invalid value: "{name}": {msg}')]


def _meta(obj: Obj) -> list[Cause]:
    causes: list[Cause] = []
    for value in (obj["metadata"].get("labels") or {}).values():
        if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
            causes.append(
                (
                    "FieldValueInvalid",
                    "metadata.labels",
                    f'Invalid value: "{value}": a valid label '
                    "must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and "
                    "must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  "
                    "or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
                )
            )
    return causes


def _pod_spec(spec: Obj | None, path: str) -> list[Cause]:
    if not isinstance(spec, dict):
        return [("FieldValueRequired", path, "Required value")]
    causes: list[Cause] = []
    containers = spec.get("containers")
    if not containers:
        causes.append(("FieldValueRequired", f"{path}.containers", "Required value"))
    seen: set[str] = set()
    for kind in ("initContainers", "containers"):
        for n, c in enumerate(spec.get(kind) or []):
            where = f"{path}.{kind}[{n}]"
            name = c.get("name")
            if not name:
                causes.append(("FieldValueRequired", f"{where}.name", "Required value"))
            elif name in seen:
                causes.append(("FieldValueDuplicate", f"{where}.name", f'Duplicate value: "{name}"'))
            else:
                seen.add(name)
                if not _LABEL.match(name):
                    causes.append(
                        ("FieldValueInvalid", f"{where}.name", f'Invalid value: "{name}": {_LABEL_MSG}')
                    )
            if not c.get("image"):
                causes.append(("FieldValueRequired", f"{where}.image", "Required value"))
            policy = c.get("imagePullPolicy")
            if policy not in (None, "Always", "IfNotPresent", "Never"):
                causes.append(
                    (
                        "FieldValueNotSupported",
                        f"{where}.imagePullPolicy",
                        f'Unsupported value: "{policy}": supported values: "Always", "IfNotPresent", "Never"',
                    )
                )
    restart = spec.get("restartPolicy")
    if restart not in (None, "Always", "OnFailure", "Never"):
        causes.append(
            (
                "FieldValueNotSupported",
                f"{path}.restartPolicy",
                f'Unsupported value: "{restart}": supported values: "Always", "OnFailure", "Never"',
            )
        )
    return causes


def _workload(obj: Obj, kind: str) -> list[Cause]:
    spec = obj.get("spec") or {}
    causes: list[Cause] = []
    replicas = spec.get("replicas")
    if isinstance(replicas, int) and replicas < 0:
        causes.append(
            (
                "FieldValueInvalid",
                "spec.replicas",
                f"Invalid value: {replicas}: must be greater than or equal to 0",
            )
        )
    selector = spec.get("selector")
    if not selector:
        causes.append(("FieldValueRequired", "spec.selector", "Required value"))
    template = spec.get("template") or {}
    labels = (template.get("metadata") or {}).get("labels") or {}
    if selector:
        from kubesim.machinery.selectors import match_label_selector_object

        if not (selector.get("matchLabels") or selector.get("matchExpressions")):
            causes.append(
                (
                    "FieldValueInvalid",
                    "spec.selector",
                    "Invalid value: v1.LabelSelector{MatchLabels:"
                    "map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: "
                    "empty selector is invalid for deployment",
                )
            )
        elif not match_label_selector_object(selector, labels):
            causes.append(
                (
                    "FieldValueInvalid",
                    "spec.template.metadata.labels",
                    f"Invalid value: {_go_map(labels)}: `selector` does not match template `labels`",
                )
            )
    causes += _pod_spec(template.get("spec"), "spec.template.spec")
    if kind in ("Deployment", "ReplicaSet", "DaemonSet", "StatefulSet"):
        restart = (template.get("spec") or {}).get("restartPolicy", "Always")
        if restart != "Always":
            causes.append(
                (
                    "FieldValueNotSupported",
                    "spec.template.spec.restartPolicy",
                    f'Unsupported value: "{restart}": supported values: "Always"',
                )
            )
    return causes


def _job(obj: Obj) -> list[Cause]:
    spec = obj.get("spec") or {}
    template = spec.get("template") or {}
    causes = _pod_spec(template.get("spec"), "spec.template.spec")
    restart = (template.get("spec") or {}).get("restartPolicy")
    if restart not in ("OnFailure", "Never"):
        # pkg/apis/batch/validation: field.Required(..., "valid values: OnFailure, Never") whatever the value.
        causes.append(
            (
                "FieldValueRequired",
                "spec.template.spec.restartPolicy",
                'Required value: valid values: "OnFailure", "Never"',
            )
        )
    return causes


def _service(obj: Obj) -> list[Cause]:
    spec = obj.get("spec") or {}
    causes: list[Cause] = []
    stype = spec.get("type", "ClusterIP")
    if stype not in SERVICE_TYPES:
        causes.append(
            (
                "FieldValueNotSupported",
                "spec.type",
                f'Unsupported value: "{stype}": supported values: '
                + ", ".join(f'"{t}"' for t in SERVICE_TYPES),
            )
        )
    if stype != "ExternalName" and spec.get("clusterIP") != "None" and not spec.get("ports"):
        causes.append(("FieldValueRequired", "spec.ports", "Required value"))
    names: set[str] = set()
    for n, port in enumerate(spec.get("ports") or []):
        number = port.get("port")
        if not isinstance(number, int) or not 0 < number < 65536:
            causes.append(
                (
                    "FieldValueInvalid",
                    f"spec.ports[{n}].port",
                    f"Invalid value: {number}: must be between 1 and 65535, inclusive",
                )
            )
        target = port.get("targetPort")
        if isinstance(target, int) and not 0 < target < 65536:
            causes.append(
                (
                    "FieldValueInvalid",
                    f"spec.ports[{n}].targetPort",
                    f"Invalid value: {target}: must be between 1 and 65535, inclusive",
                )
            )
        name = port.get("name", "")
        if len(spec.get("ports") or []) > 1 and not name:
            causes.append(("FieldValueRequired", f"spec.ports[{n}].name", "Required value"))
            continue
        if name in names:
            causes.append(("FieldValueDuplicate", f"spec.ports[{n}].name", f'Duplicate value: "{name}"'))
        names.add(name)
    return causes


def validate(gr: tuple[str, str], obj: Obj) -> list[Cause]:
    causes = _meta(obj)
    kind = obj.get("kind", "")
    if gr == ("", "pods"):
        causes += _pod_spec(obj.get("spec"), "spec")
    elif gr in (
        ("apps", "deployments"),
        ("apps", "replicasets"),
        ("apps", "daemonsets"),
        ("apps", "statefulsets"),
    ):
        causes += _workload(obj, kind)
    elif gr == ("batch", "jobs"):
        causes += _job(obj)
    elif gr == ("", "services"):
        causes += _service(obj)
    elif gr == ("apiextensions.k8s.io", "customresourcedefinitions"):
        spec = obj.get("spec") or {}
        names = spec.get("names") or {}
        for key in ("plural", "kind"):
            if not names.get(key):
                causes.append(("FieldValueRequired", f"spec.names.{key}", "Required value"))
        if (
            names.get("plural")
            and spec.get("group")
            and obj["metadata"]["name"] != f"{names['plural']}.{spec['group']}"
        ):
            causes.append(
                (
                    "FieldValueInvalid",
                    "metadata.name",
                    f'Invalid value: "{obj["metadata"]["name"]}": must be spec.names.plural+"."+spec.group',
                )
            )
        if not spec.get("versions"):
            causes.append(("FieldValueRequired", "spec.versions", "Required value"))
    return causes


def validate_update(gr: tuple[str, str], old: Obj, new: Obj) -> list[Cause]:
    causes: list[Cause] = []
    if gr in (
        ("apps", "deployments"),
        ("apps", "replicasets"),
        ("apps", "daemonsets"),
        ("apps", "statefulsets"),
    ):
        before, after = (old.get("spec") or {}).get("selector"), (new.get("spec") or {}).get("selector")
        if before != after:
            causes.append(
                (
                    "FieldValueInvalid",
                    "spec.selector",
                    f"Invalid value: {json.dumps(after)}: field is immutable",
                )
            )
    if gr == ("", "services"):
        before, after = (old.get("spec") or {}).get("clusterIP"), (new.get("spec") or {}).get("clusterIP")
        if after and before != after:
            causes.append(
                (
                    "FieldValueInvalid",
                    "spec.clusterIPs[0]",
                    f'Invalid value: []string{{"{after}"}}: may not change once set',
                )
            )
    if gr == ("", "secrets") and old.get("immutable") and old.get("data") != new.get("data"):
        causes.append(("FieldForbidden", "data", "Forbidden: field is immutable when `immutable` is set"))
    return causes


# -- custom resources ------------------------------------------------------------------------------------
_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool}


def validate_schema(
    value: Any, schema: dict[str, Any], path: str, strict: bool, unknown: list[str]
) -> tuple[Any, list[Cause]]:
    """Check ``value`` against a structural schema; prune unknown fields (or list them when strict)."""
    causes: list[Cause] = []
    if not schema or schema.get("x-kubernetes-preserve-unknown-fields") and not schema.get("properties"):
        return value, causes
    if value is None:
        return value, causes
    kind = schema.get("type")
    if schema.get("x-kubernetes-int-or-string"):
        if not isinstance(value, (int, str)) or isinstance(value, bool):
            causes.append(
                ("FieldValueTypeInvalid", path, f'Invalid value: "{value}": spec must be int or string')
            )
        return value, causes
    if kind == "integer":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind == "number":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif kind in _TYPES:
        ok = isinstance(value, _TYPES[kind])
    else:
        ok = True
    if not ok:
        got = {
            dict: "object",
            list: "array",
            str: "string",
            bool: "boolean",
            int: "integer",
            float: "number",
        }.get(type(value), "null")
        causes.append(
            (
                "FieldValueTypeInvalid",
                path,
                f'Invalid value: "{got}": {path} in body must be of type {kind}: "{got}"',
            )
        )
        return value, causes
    if "enum" in schema and value not in schema["enum"]:
        allowed = ", ".join(json.dumps(e) for e in schema["enum"])
        causes.append(
            (
                "FieldValueNotSupported",
                path,
                f"Unsupported value: {json.dumps(value)}: supported values: {allowed}",
            )
        )
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        for req in schema.get("required") or []:
            if req not in value:
                causes.append(("FieldValueRequired", f"{path}.{req}", "Required value"))
        result = {}
        for key, child in value.items():
            child_path = f"{path}.{key}"
            if key in props:
                result[key], more = validate_schema(child, props[key], child_path, strict, unknown)
                causes += more
            elif isinstance(extra, dict):
                result[key], more = validate_schema(child, extra, child_path, strict, unknown)
                causes += more
            elif extra is True or schema.get("x-kubernetes-preserve-unknown-fields"):
                result[key] = child
            else:
                unknown.append(child_path)
        return result, causes
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        out = []
        for n, item in enumerate(value):
            checked, more = validate_schema(item, schema["items"], f"{path}[{n}]", strict, unknown)
            out.append(checked)
            causes += more
        return out, causes
    return value, causes
