"""Validation of built-in kinds and of custom resources against their CRD schema.

Each check returns causes as ``(reason, field, message)`` with the API server's own wording, so that a
bad object gets the same 422 ``Invalid`` body (and the same kubectl error line) as on a real cluster.
"""

from __future__ import annotations

import ipaddress
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


def _name_problems(gr: tuple[str, str], name: str) -> list[str]:
    """IsDNS1123Label / IsDNS1123Subdomain (apimachinery/pkg/util/validation, v1.36): the length, then the
    pattern, each its own message."""
    if gr in (("", "namespaces"), ("", "services")):
        # RelaxedServiceNameValidation (GA in 1.34): a Service name is an RFC 1123 label, not DNS-1035.
        limit, pattern, msg = 63, _LABEL, _LABEL_MSG
    else:
        limit, pattern, msg = 253, _SUBDOMAIN, _SUBDOMAIN_MSG
    problems = [f"must be no more than {limit} characters"] if len(name) > limit else []
    return problems + ([] if pattern.match(name) else [msg])


def validate_name(gr: tuple[str, str], name: str, generate_name: str = "") -> list[Cause]:
    causes: list[Cause] = []
    if generate_name:
        # ValidateObjectMeta checks the prefix as a name whose trailing dash is masked.
        prefix = generate_name[:-1] + "a" if generate_name.endswith("-") else generate_name
        causes += [
            ("FieldValueInvalid", "metadata.generateName", f'Invalid value: "{generate_name}": {m}')
            for m in _name_problems(gr, prefix)
        ]
    return causes + [
        ("FieldValueInvalid", "metadata.name", f'Invalid value: "{name}": {m}')
        for m in _name_problems(gr, name)
    ]


_NAME_PART = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_NAME_PART_MSG = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
    "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
_CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_CONFIG_KEY_MSG = (
    "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or "
    "'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"
)


def _qualified_name(key: str, field: str) -> list[Cause]:
    """IsQualifiedName (apimachinery/pkg/util/validation): an optional subdomain prefix and a name part."""
    prefix, _, name = key.rpartition("/")
    causes: list[Cause] = []
    if prefix and not (_SUBDOMAIN.match(prefix) and len(prefix) <= 253):
        causes.append(("FieldValueInvalid", field, f'Invalid value: "{key}": prefix part {_SUBDOMAIN_MSG}'))
    if not name:
        causes.append(("FieldValueInvalid", field, f'Invalid value: "{key}": name part must be non-empty'))
    else:
        if len(name) > 63:
            causes.append(
                (
                    "FieldValueInvalid",
                    field,
                    f'Invalid value: "{key}": name part must be no more than 63 bytes',
                )
            )
        if not _NAME_PART.match(name):
            causes.append(("FieldValueInvalid", field, f'Invalid value: "{key}": {_NAME_PART_MSG}'))
    return causes


def _labels(labels: dict[str, Any], field: str) -> list[Cause]:
    causes: list[Cause] = []
    for key in sorted(labels):
        value = labels[key]
        causes += _qualified_name(key, field)
        if isinstance(value, str) and len(value) > 63:
            causes.append(
                ("FieldValueInvalid", field, f'Invalid value: "{value}": must be no more than 63 bytes')
            )
        if not isinstance(value, str) or not _LABEL_VALUE.match(value):
            causes.append(
                (
                    "FieldValueInvalid",
                    field,
                    f'Invalid value: "{value}": a valid label '
                    "must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and "
                    "must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  "
                    "or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
                )
            )
    return causes


def _meta(obj: Obj) -> list[Cause]:
    causes = _labels(obj["metadata"].get("labels") or {}, "metadata.labels")
    for key in sorted(obj["metadata"].get("annotations") or {}):
        causes += _qualified_name(key.lower(), "metadata.annotations")
    return causes


def _non_negative(spec: Obj, key: str, path: str) -> list[Cause]:
    value = spec.get(key)
    if isinstance(value, int) and value < 0:
        return [
            (
                "FieldValueInvalid",
                f"{path}.{key}",
                f"Invalid value: {value}: must be greater than or equal to 0",
            )
        ]
    return []


_QUANTITY_SUFFIX = {
    "": 1,
    "m": 10**-3,
    "u": 10**-6,
    "n": 10**-9,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}


def _quantity(value: Any) -> float | None:
    """A resource quantity's value (resource.Quantity), or None when it cannot be read."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    m = re.match(r"^([+-]?[0-9.]+)(e[+-]?[0-9]+|[A-Za-z]*)$", str(value))
    if not m:
        return None
    number, suffix = m.groups()
    if suffix.startswith("e"):
        return float(number + suffix)
    factor = _QUANTITY_SUFFIX.get(suffix)
    return float(number) * factor if factor is not None else None


def _resources(resources: Obj, path: str) -> list[Cause]:
    """ValidateResourceRequirements: a request may not exceed its limit."""
    causes: list[Cause] = []
    requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
    for name, request in requests.items():
        if name not in limits:
            continue
        wanted, cap = _quantity(request), _quantity(limits[name])
        if wanted is not None and cap is not None and wanted > cap:
            causes.append(
                (
                    "FieldValueInvalid",
                    f"{path}.requests",
                    f'Invalid value: "{request}": must be less than or equal to {name} limit of '
                    f"{limits[name]}",
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
            for p, port in enumerate(c.get("ports") or []):
                if not port.get("containerPort"):
                    causes.append(
                        ("FieldValueRequired", f"{where}.ports[{p}].containerPort", "Required value")
                    )
            for e, env in enumerate(c.get("env") or []):
                if not env.get("name"):
                    causes.append(("FieldValueRequired", f"{where}.env[{e}].name", "Required value"))
            causes += _resources(c.get("resources") or {}, f"{where}.resources")
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
    if selector is None:
        causes.append(("FieldValueRequired", "spec.selector", "Required value"))
    template = spec.get("template") or {}
    labels = (template.get("metadata") or {}).get("labels") or {}
    if isinstance(selector, dict):
        from kubesim.machinery.selectors import match_label_selector_object

        if not (selector.get("matchLabels") or selector.get("matchExpressions")):
            # field.Invalid prints the value as JSON (v1.36): an empty LabelSelector is "{}".
            causes.append(
                (
                    "FieldValueInvalid",
                    "spec.selector",
                    "Invalid value: {}: empty selector is invalid for deployment",
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
    for key in ("revisionHistoryLimit", "minReadySeconds"):
        causes += _non_negative(spec, key, "spec")
    if kind == "Deployment":
        causes += _deployment_strategy(spec.get("strategy") or {})
    if kind == "StatefulSet" and spec.get("podManagementPolicy") not in (None, "OrderedReady", "Parallel"):
        causes.append(
            (
                "FieldValueInvalid",
                "spec.podManagementPolicy",
                f"Invalid value: \"{spec['podManagementPolicy']}\": must be 'OrderedReady' or 'Parallel'",
            )
        )
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


def _deployment_strategy(strategy: Obj) -> list[Cause]:
    """ValidateDeploymentStrategy / ValidateRollingUpdateDeployment (pkg/apis/apps/validation)."""
    rolling = strategy.get("rollingUpdate")
    if strategy.get("type") == "Recreate":
        if rolling is not None:
            return [
                (
                    "FieldValueForbidden",
                    "spec.strategy.rollingUpdate",
                    "Forbidden: may not be specified when strategy `type` is 'Recreate'",
                )
            ]
        return []
    if not isinstance(rolling, dict):
        return []
    causes: list[Cause] = []
    surge, unavailable = rolling.get("maxSurge"), rolling.get("maxUnavailable")
    if unavailable in (0, "0%") and surge in (0, "0%"):
        shown = json.dumps(unavailable)
        causes.append(
            (
                "FieldValueInvalid",
                "spec.strategy.rollingUpdate.maxUnavailable",
                f"Invalid value: {shown}: may not be 0 when `maxSurge` is 0",
            )
        )
    if isinstance(unavailable, str) and unavailable.endswith("%") and unavailable[:-1].isdigit():
        if int(unavailable[:-1]) > 100:
            causes.append(
                (
                    "FieldValueInvalid",
                    "spec.strategy.rollingUpdate.maxUnavailable",
                    f'Invalid value: "{unavailable}": must not be greater than 100%',
                )
            )
    return causes


def _job(obj: Obj) -> list[Cause]:
    spec = obj.get("spec") or {}
    template = spec.get("template") or {}
    causes = _pod_spec(template.get("spec"), "spec.template.spec")
    for key in ("backoffLimit", "parallelism", "completions", "activeDeadlineSeconds"):
        causes += _non_negative(spec, key, "spec")
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
    cluster_ip = spec.get("clusterIP")
    if cluster_ip and cluster_ip != "None":
        try:
            ipaddress.ip_address(cluster_ip)
        except ValueError:
            causes.append(
                (
                    "FieldValueInvalid",
                    "spec.clusterIPs[0]",
                    f'Invalid value: "{cluster_ip}": must be a valid IP address, '
                    "(e.g. 10.9.8.7 or 2001:db8::ffff)",
                )
            )
    seen_ports: set[tuple[int, str]] = set()
    for n, port in enumerate(spec.get("ports") or []):
        key = (port.get("port"), port.get("protocol", "TCP"))
        if key in seen_ports:
            causes.append(
                (
                    "FieldValueDuplicate",
                    f"spec.ports[{n}]",
                    f'Duplicate value: {{"Name":"","Protocol":"{key[1]}","AppProtocol":null,"Port":{key[0]},'
                    '"TargetPort":0,"NodePort":0}',
                )
            )
        seen_ports.add(key)
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
    families = spec.get("ipFamilies") or []
    for n, family in enumerate(families):
        if family not in ("IPv4", "IPv6"):
            causes.append(
                (
                    "FieldValueNotSupported",
                    f"spec.ipFamilies[{n}]",
                    f'Unsupported value: "{family}": supported values: "IPv4", "IPv6"',
                )
            )
    external = spec.get("externalName")
    if stype == "ExternalName" and isinstance(external, str):
        problems = _name_problems(
            ("", "configmaps"), external.rstrip(".")
        )  # a subdomain, trailing dot allowed
        causes += [
            ("FieldValueInvalid", "spec.externalName", f'Invalid value: "{external}": {m}') for m in problems
        ]
    return causes


def _config_data(obj: Obj, gr: tuple[str, str]) -> list[Cause]:
    causes: list[Cause] = []
    for section in ("data", "binaryData", "stringData"):
        for key in obj.get(section) or {}:
            if not _CONFIG_KEY.match(key) or len(key) > 253:
                causes.append(
                    ("FieldValueInvalid", f"{section}[{key}]", f'Invalid value: "{key}": {_CONFIG_KEY_MSG}')
                )
    if gr == ("", "secrets"):
        data = obj.get("data") or {}
        required = {
            "kubernetes.io/tls": ("tls.crt", "tls.key"),
            "kubernetes.io/basic-auth": (),  # one of username/password, below
            "kubernetes.io/dockerconfigjson": (".dockerconfigjson",),
            "kubernetes.io/dockercfg": (".dockercfg",),
            "kubernetes.io/ssh-auth": ("ssh-privatekey",),
        }.get(obj.get("type", "Opaque"), ())
        for key in required:
            if key not in data:
                causes.append(("FieldValueRequired", f"data[{key}]", "Required value"))
        if (
            obj.get("type") == "kubernetes.io/basic-auth"
            and "username" not in data
            and "password" not in data
        ):
            causes += [
                ("FieldValueRequired", "data[username]", "Required value"),
                ("FieldValueRequired", "data[password]", "Required value"),
            ]
    return causes


def _webhooks(obj: Obj) -> list[Cause]:
    """ValidateValidatingWebhookConfiguration / ...Mutating... (pkg/apis/admissionregistration/validation)."""
    causes: list[Cause] = []
    names: set[str] = set()
    for n, hook in enumerate(obj.get("webhooks") or []):
        where = f"webhooks[{n}]"
        name = hook.get("name", "")
        if not name:
            causes.append(("FieldValueRequired", f"{where}.name", "Required value"))
        elif name.count(".") < 2 or not _SUBDOMAIN.match(name):
            causes.append(
                (
                    "FieldValueInvalid",
                    f"{where}.name",
                    f'Invalid value: "{name}": should be a domain with at least three segments '
                    "separated by dots",
                )
            )
        elif name in names:
            causes.append(("FieldValueDuplicate", f"{where}.name", f'Duplicate value: "{name}"'))
        names.add(name)
        effects = hook.get("sideEffects")
        if effects is None:
            causes.append(
                (
                    "FieldValueRequired",
                    f"{where}.sideEffects",
                    "Required value: must specify one of None, NoneOnDryRun",
                )
            )
        elif effects not in ("None", "NoneOnDryRun"):
            causes.append(
                (
                    "FieldValueNotSupported",
                    f"{where}.sideEffects",
                    f'Unsupported value: "{effects}": supported values: "None", "NoneOnDryRun"',
                )
            )
        if not hook.get("admissionReviewVersions"):
            causes.append(
                (
                    "FieldValueRequired",
                    f"{where}.admissionReviewVersions",
                    "Required value: must specify one of v1, v1beta1",
                )
            )
    return causes


def _structural(schema: Obj, path: str, root: bool = False) -> list[Cause]:
    """The structural-schema rule that every specified field has a type (apiextensions validation)."""
    causes: list[Cause] = []
    preserve = schema.get("x-kubernetes-preserve-unknown-fields") or schema.get("x-kubernetes-int-or-string")
    if not schema.get("type") and not preserve:
        what = "must not be empty at the root" if root else "must not be empty for specified object fields"
        causes.append(("FieldValueRequired", f"{path}.type", f"Required value: {what}"))
    for key, child in (schema.get("properties") or {}).items():
        if isinstance(child, dict):
            causes += _structural(child, f"{path}.properties[{key}]")
    items = schema.get("items")
    if isinstance(items, dict):
        causes += _structural(items, f"{path}.items")
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        causes += _structural(extra, f"{path}.additionalProperties")
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
    elif gr in (("", "configmaps"), ("", "secrets")):
        causes += _config_data(obj, gr)
    elif gr in (("rbac.authorization.k8s.io", "roles"), ("rbac.authorization.k8s.io", "clusterroles")):
        for n, rule in enumerate(obj.get("rules") or []):
            if not rule.get("verbs"):
                causes.append(
                    (
                        "FieldValueRequired",
                        f"rules[{n}].verbs",
                        "Required value: verbs must contain at least one value",
                    )
                )
    elif gr[0] == "admissionregistration.k8s.io":
        causes += _webhooks(obj)
    elif gr == ("apiextensions.k8s.io", "customresourcedefinitions"):
        spec = obj.get("spec") or {}
        for version in spec.get("versions") or []:
            schema = (version.get("schema") or {}).get("openAPIV3Schema")
            if isinstance(schema, dict):
                causes += _structural(schema, "spec.validation.openAPIV3Schema", root=True)
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
        ("rbac.authorization.k8s.io", "rolebindings"),
        ("rbac.authorization.k8s.io", "clusterrolebindings"),
    ):
        ref = new.get("roleRef") or {}
        if ref != old.get("roleRef"):
            shown = json.dumps(
                {
                    "APIGroup": ref.get("apiGroup", ""),
                    "Kind": ref.get("kind", ""),
                    "Name": ref.get("name", ""),
                },
                separators=(",", ":"),
            )
            causes.append(("FieldValueInvalid", "roleRef", f"Invalid value: {shown}: cannot change roleRef"))
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
                    f"Invalid value: {json.dumps(after, separators=(',', ':'))}: field is immutable",
                )
            )
    if gr == ("", "secrets") and old.get("type", "Opaque") != new.get("type", "Opaque"):
        causes.append(
            ("FieldValueInvalid", "type", f'Invalid value: "{new.get("type")}": field is immutable')
        )
    if gr == ("", "services"):
        before, after = (old.get("spec") or {}).get("clusterIP"), (new.get("spec") or {}).get("clusterIP")
        if after and before != after:
            causes.append(
                (
                    "FieldValueInvalid",
                    "spec.clusterIPs[0]",
                    f'Invalid value: ["{after}"]: may not change once set',
                )
            )
    if (
        gr in (("", "secrets"), ("", "configmaps"))
        and old.get("immutable")
        and old.get("data") != new.get("data")
    ):
        causes.append(
            ("FieldValueForbidden", "data", "Forbidden: field is immutable when `immutable` is set")
        )
    return causes


# -- custom resources ------------------------------------------------------------------------------------
def _value_limits(value: Any, schema: dict[str, Any], path: str) -> list[Cause]:
    """The value validations of an OpenAPI schema, worded as kube-openapi's validator words them."""
    shown = path.lstrip(".")
    causes: list[Cause] = []
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        for key, word in (("maximum", "less"), ("minimum", "greater")):
            if key not in schema:
                continue
            limit, exclusive = schema[key], schema.get("exclusiveM" + key[1:])
            beyond = value > limit if key == "maximum" else value < limit
            if beyond or (exclusive and value == limit):
                causes.append(
                    (
                        "FieldValueInvalid",
                        path,
                        f"Invalid value: {json.dumps(value)}: {shown} in body should be {word} than "
                        f"{'' if exclusive else 'or equal to '}{json.dumps(limit)}",
                    )
                )
    if isinstance(value, str):
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            causes.append(
                ("FieldValueTooLong", path, f"Too long: may not be more than {schema['maxLength']} bytes")
            )
        if "minLength" in schema and len(value) < schema["minLength"]:
            causes.append(
                (
                    "FieldValueInvalid",
                    path,
                    f'Invalid value: "{value}": {shown} in body should be at least {schema["minLength"]} '
                    "chars long",
                )
            )
        if "pattern" in schema and not re.search(schema["pattern"], value):
            causes.append(
                (
                    "FieldValueInvalid",
                    path,
                    f"Invalid value: \"{value}\": {shown} in body should match '{schema['pattern']}'",
                )
            )
    if isinstance(value, list):
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            causes.append(
                (
                    "FieldValueTooMany",
                    path,
                    f"Too many: {len(value)}: must have at most {schema['maxItems']} items",
                )
            )
        if "minItems" in schema and len(value) < schema["minItems"]:
            causes.append(
                (
                    "FieldValueInvalid",
                    path,
                    f"Invalid value: {len(value)}: {shown} in body should have at least "
                    f"{schema['minItems']} items",
                )
            )
    return causes


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
                f'Invalid value: "{got}": {path.lstrip(".")} in body must be of type {kind}: "{got}"',
            )
        )
        return value, causes
    causes += _value_limits(value, schema, path)
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
        for key, prop in props.items():
            # Structural defaulting (apiextensions-apiserver pkg/apiserver/schema/defaulting) fills a
            # missing field with its schema default before validation.
            if key not in value and isinstance(prop, dict) and "default" in prop:
                value = dict(value, **{key: prop["default"]})
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
