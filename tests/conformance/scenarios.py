"""The conformance scenarios: requests whose answers the simulated API server must give as a real one does.

Grouped by area: decoding (unknown fields under each ``fieldValidation`` mode, wrong types), semantic
validation of the kinds a rehearsal touches, REST errors, query-parameter errors, server-side apply, dry-run,
protobuf bodies. Each is recorded from a real kube-apiserver v1.36.2 by ``record.py`` and replayed by
``tests/test_conformance.py``.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from tests.conformance.runner import Request, Scenario, node_port_for

Obj = dict[str, Any]


def deployment(name: str = "web", **spec_changes: Any) -> Obj:
    obj: Obj = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "main", "image": "registry.k8s.io/pause:3.10"}]},
            },
        },
    }
    obj["spec"].update(spec_changes)
    return obj


def pod(name: str = "p", **spec_changes: Any) -> Obj:
    obj: Obj = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            # No token volume: the reference (OpenShift's build of v1.36.2) adds its service-CA bundle to it.
            "automountServiceAccountToken": False,
            "containers": [{"name": "main", "image": "registry.k8s.io/pause:3.10"}],
        },
    }
    obj["spec"].update(spec_changes)
    return obj


def service(name: str = "svc", **spec_changes: Any) -> Obj:
    obj: Obj = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80}]},
    }
    obj["spec"].update(spec_changes)
    return obj


def configmap(name: str = "cm", **top: Any) -> Obj:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"a": "b"}, **top}


def secret(name: str = "s", **top: Any) -> Obj:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": {"k": "v"}, **top}


def job(name: str = "j", **spec_changes: Any) -> Obj:
    obj: Obj = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "main", "image": "registry.k8s.io/pause:3.10"}],
                }
            }
        },
    }
    obj["spec"].update(spec_changes)
    return obj


def workload(kind: str, name: str = "w") -> Obj:
    obj = deployment(name)
    obj["kind"] = kind
    spec = obj["spec"]
    if kind == "DaemonSet":
        spec.pop("replicas")
    if kind == "StatefulSet":
        spec["serviceName"] = name
    return obj


def role(name: str = "r", **top: Any) -> Obj:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": name},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}],
        **top,
    }


def webhook_config(kind: str, name: str) -> Obj:
    hook = {
        "name": "v.example.com",
        "clientConfig": {"url": "https://example.com/validate"},
        "admissionReviewVersions": ["v1"],
        "sideEffects": "None",
        "rules": [
            {"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}
        ],
    }
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": kind,
        "metadata": {"name": name},
        "webhooks": [hook],
    }


def crd(group: str, plural: str = "widgets", kind: str = "Widget", schema: Obj | None = None) -> Obj:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "names": {"plural": plural, "singular": plural[:-1], "kind": kind, "listKind": kind + "List"},
            "scope": "Namespaced",
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": schema
                        or {
                            "type": "object",
                            "properties": {
                                "spec": {"type": "object", "properties": {"size": {"type": "integer"}}}
                            },
                        }
                    },
                }
            ],
        },
    }


def with_change(obj: Obj, path: str, value: Any) -> Obj:
    """A copy of ``obj`` with the dotted ``path`` (list indices as numbers) set to ``value``."""
    out = copy.deepcopy(obj)
    parts = [int(p) if p.isdigit() else p for p in path.split(".")]
    target: Any = out
    for part in parts[:-1]:
        target = target[part]
    target[parts[-1]] = value
    return out


NS = "/api/v1/namespaces/{ns}"
APPS = "/apis/apps/v1/namespaces/{ns}"
PATHS = {
    "Deployment": f"{APPS}/deployments",
    "ReplicaSet": f"{APPS}/replicasets",
    "DaemonSet": f"{APPS}/daemonsets",
    "StatefulSet": f"{APPS}/statefulsets",
    "Job": "/apis/batch/v1/namespaces/{ns}/jobs",
    "Pod": f"{NS}/pods",
    "Service": f"{NS}/services",
    "ConfigMap": f"{NS}/configmaps",
    "Secret": f"{NS}/secrets",
    "ServiceAccount": f"{NS}/serviceaccounts",
    "Role": "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles",
    "ValidatingWebhookConfiguration": "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations",
    "MutatingWebhookConfiguration": "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations",
    "CustomResourceDefinition": "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
}
DRY = {"dryRun": "All"}


def create(kind: str, obj: Obj, **query: str) -> Request:
    return Request("POST", PATHS[kind], obj, query=dict(DRY, **query))


def _decoding() -> list[Scenario]:
    out: list[Scenario] = []
    bad_fields: list[tuple[str, Obj, list[str]]] = [
        (
            "Deployment",
            deployment(),
            ["spec.template.spec.containers.0.imagePullPolicyy", "spec.template.spec.foo"],
        ),
        ("Deployment", deployment(), ["spec.Replicas"]),
        ("Deployment", deployment(), ["metadata.foo", "spec.template.metadata.bar"]),
        ("Pod", pod(), ["spec.containers.0.ports"]),
        ("Pod", pod(), ["spec.containers.0.resource"]),
        ("Service", service(), ["spec.ports.0.targetport"]),
        ("ConfigMap", configmap(), ["datax"]),
        ("Secret", secret(), ["strinData"]),
        ("Job", job(), ["spec.backofflimit"]),
        ("DaemonSet", workload("DaemonSet"), ["spec.replicas"]),
        ("StatefulSet", workload("StatefulSet"), ["spec.servicename"]),
        ("ReplicaSet", workload("ReplicaSet"), ["spec.strategy"]),
        ("Role", role(), ["rules.0.verb"]),
        (
            "ServiceAccount",
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "sa"}},
            ["secret"],
        ),
        (
            "ValidatingWebhookConfiguration",
            webhook_config("ValidatingWebhookConfiguration", "vwc-unknown-{ns}"),
            ["webhooks.0.clientconfig"],
        ),
        (
            "MutatingWebhookConfiguration",
            webhook_config("MutatingWebhookConfiguration", "mwc-unknown-{ns}"),
            ["webhooks.0.reinvocation"],
        ),
    ]
    for n, (kind, obj, fields) in enumerate(bad_fields):
        bad = obj
        for f in fields:
            if f == "spec.containers.0.ports":
                bad = with_change(bad, "spec.containers.0.ports", [{"containerPort": 80, "protocl": "TCP"}])
            else:
                bad = with_change(bad, f, 1)
        for mode in ("Strict", "Warn") if n < 8 else ("Strict",):
            out.append(
                Scenario(
                    f"unknown-field-{kind.lower()}-{n}-{mode.lower()}",
                    create(kind, bad, fieldValidation=mode),
                )
            )
    out.append(
        Scenario(
            "unknown-field-ignore",
            create("ConfigMap", with_change(configmap(), "datax", 1), fieldValidation="Ignore"),
        )
    )
    out.append(
        Scenario("unknown-field-default-is-warn", create("ConfigMap", with_change(configmap(), "datax", 1)))
    )
    out.append(Scenario("field-validation-bogus", create("ConfigMap", configmap(), fieldValidation="Loud")))
    wrong_types: list[tuple[str, Obj, str, Any]] = [
        ("Deployment", deployment(), "spec.replicas", "three"),
        ("Deployment", deployment(), "spec.replicas", True),
        ("Deployment", deployment(), "spec.paused", "yes"),
        ("Deployment", deployment(), "spec.template", "x"),
        ("Deployment", deployment(), "spec.template.spec.containers", {}),
        ("Deployment", deployment(), "metadata.labels", {"a": 1}),
        ("Deployment", deployment(), "spec.strategy", {"rollingUpdate": {"maxSurge": True}}),
        ("Pod", pod(), "spec.containers.0.ports", [{"containerPort": "80"}]),
        ("Pod", pod(), "spec.containers.0.ports", [{"containerPort": 1.5}]),
        ("Pod", pod(), "spec.containers.0.resources", {"limits": {"cpu": [1]}}),
        ("Pod", pod(), "spec.containers.0", "main"),
        ("Service", service(), "spec.ports.0.port", "80"),
        ("ConfigMap", configmap(), "data", {"a": 1}),
        ("Secret", secret(), "stringData", ["k"]),
        ("Job", job(), "spec.backoffLimit", "6"),
        ("Role", role(), "rules", "all"),
    ]
    for n, (kind, obj, path, value) in enumerate(wrong_types):
        out.append(Scenario(f"wrong-type-{kind.lower()}-{n}", create(kind, with_change(obj, path, value))))
    both = with_change(with_change(deployment(), "spec.foo", 1), "spec.replicas", "x")
    out.append(
        Scenario("wrong-type-wins-over-unknown-field", create("Deployment", both, fieldValidation="Strict"))
    )
    nulls = with_change(deployment(), "spec.replicas", None)
    out.append(
        Scenario(
            "null-field-accepted",
            create("Deployment", with_change(nulls, "spec.minReadySeconds", None), fieldValidation="Strict"),
            compare_object=False,
        )
    )
    return out


def _semantics() -> list[Scenario]:
    invalid: list[tuple[str, Obj]] = [
        ("Deployment", with_change(deployment(), "spec.replicas", -1)),
        ("Deployment", with_change(deployment(), "spec.template.metadata.labels", {"app": "other"})),
        ("Deployment", with_change(deployment(), "spec.template.spec.containers", [])),
        ("Deployment", with_change(deployment(), "spec.template.spec.containers.0.image", "")),
        ("Deployment", with_change(deployment(), "spec.template.spec.restartPolicy", "Never")),
        ("Deployment", with_change(deployment(), "metadata.name", "Web")),
        ("Deployment", with_change(deployment(), "metadata.labels", {"app": "bad value"})),
        ("Pod", with_change(pod(), "spec.containers.0.imagePullPolicy", "Sometimes")),
        ("Pod", with_change(pod(), "spec.restartPolicy", "Sometimes")),
        (
            "Pod",
            with_change(pod(), "spec.containers", [{"name": "a", "image": "x"}, {"name": "a", "image": "y"}]),
        ),
        ("Pod", with_change(pod(), "spec.containers.0.name", "Main")),
        ("Service", with_change(service(), "spec.type", "Magic")),
        ("Service", with_change(service(), "spec.ports", [{"port": 80}, {"port": 81}])),
        ("Service", with_change(service(), "spec.ports.0.port", 70000)),
        ("Service", with_change(service(), "metadata.name", "1svc")),
        ("Job", with_change(job(), "spec.template.spec.restartPolicy", "Always")),
        ("ConfigMap", with_change(configmap(), "metadata.name", "Bad_Name")),
    ]
    out = [
        Scenario(f"invalid-{kind.lower()}-{n}", create(kind, obj)) for n, (kind, obj) in enumerate(invalid)
    ]
    nameless = configmap()
    del nameless["metadata"]["name"]
    out.append(Scenario("invalid-no-name", create("ConfigMap", nameless)))
    return out


def _rest() -> list[Scenario]:
    cm = configmap("exists")
    made = Request("POST", PATHS["ConfigMap"], cm)
    return [
        Scenario("get-not-found", Request("GET", f"{NS}/configmaps/nothing")),
        Scenario("delete-not-found", Request("DELETE", f"{NS}/configmaps/nothing")),
        Scenario("get-unknown-resource", Request("GET", f"{NS}/widgetz")),
        Scenario(
            "create-in-missing-namespace",
            Request("POST", "/api/v1/namespaces/nowhere-{ns}/configmaps", configmap()),
        ),
        Scenario("create-already-exists", Request("POST", PATHS["ConfigMap"], cm), setup=[made]),
        Scenario(
            "update-stale-resource-version",
            Request("PUT", f"{NS}/configmaps/exists", with_change(cm, "metadata.resourceVersion", "1")),
            setup=[made],
        ),
        Scenario(
            "update-name-mismatch",
            Request("PUT", f"{NS}/configmaps/exists", with_change(cm, "metadata.name", "other")),
            setup=[made],
        ),
        Scenario(
            "create-namespace-mismatch",
            Request("POST", PATHS["ConfigMap"], with_change(cm, "metadata.namespace", "elsewhere")),
        ),
        Scenario(
            "unsupported-media-type", Request("POST", PATHS["ConfigMap"], "a: b", content_type="text/plain")
        ),
        Scenario(
            "patch-not-found",
            Request(
                "PATCH", f"{NS}/configmaps/nothing", {"data": {"a": "c"}}, "application/merge-patch+json"
            ),
        ),
        Scenario(
            "merge-patch-ok",
            Request("PATCH", f"{NS}/configmaps/exists", {"data": {"x": "y"}}, "application/merge-patch+json"),
            setup=[made],
        ),
        Scenario("get-configmap", Request("GET", f"{NS}/configmaps/exists"), setup=[made]),
        # The ServiceAccount admission plugin: a pod may only name a ServiceAccount that exists; a name not
        # generated yet is quoted as its generateName.
        Scenario(
            "pod-missing-service-account", Request("POST", f"{NS}/pods", pod(serviceAccountName="nobody"))
        ),
        Scenario(
            "pod-missing-service-account-generate-name",
            Request(
                "POST",
                f"{NS}/pods",
                {**pod(serviceAccountName="nobody"), "metadata": {"generateName": "web-7d4b9c-"}},
            ),
        ),
        Scenario(
            "apply-without-field-manager",
            Request("PATCH", f"{NS}/configmaps/ssa", configmap("ssa"), "application/apply-patch+yaml"),
        ),
        Scenario(
            "apply-unknown-field",
            Request(
                "PATCH",
                f"{NS}/configmaps/ssa",
                with_change(configmap("ssa"), "datax", {"a": "c"}),
                "application/apply-patch+yaml",
                query={"fieldManager": "test"},
            ),
        ),
        Scenario(
            "apply-creates",
            Request(
                "PATCH",
                f"{NS}/configmaps/ssa",
                configmap("ssa"),
                "application/apply-patch+yaml",
                query={"fieldManager": "test"},
            ),
        ),
        Scenario("create-configmap", Request("POST", PATHS["ConfigMap"], configmap("plain"))),
        Scenario("create-secret", Request("POST", PATHS["Secret"], secret("plain"))),
        Scenario("create-role", Request("POST", PATHS["Role"], role("plain"))),
        Scenario(
            "create-serviceaccount",
            Request(
                "POST",
                PATHS["ServiceAccount"],
                {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "sa"}},
            ),
        ),
    ]


def _query() -> list[Scenario]:
    return [
        Scenario("list-limit-not-a-number", Request("GET", f"{NS}/configmaps", query={"limit": "abc"})),
        Scenario(
            "list-invalid-label-selector", Request("GET", f"{NS}/configmaps", query={"labelSelector": "a b"})
        ),
        Scenario(
            "list-unsupported-field-selector",
            Request("GET", f"{NS}/configmaps", query={"fieldSelector": "data.a=b"}),
        ),
        Scenario(
            "list-pods-unsupported-field-selector",
            Request("GET", f"{NS}/pods", query={"fieldSelector": "spec.foo=b"}),
        ),
        Scenario(
            "list-resource-version-match-without-version",
            Request("GET", f"{NS}/configmaps", query={"resourceVersionMatch": "NotOlderThan"}),
        ),
        Scenario(
            "create-bad-dry-run", Request("POST", PATHS["ConfigMap"], configmap(), query={"dryRun": "Some"})
        ),
        Scenario(
            "create-force-without-apply",
            Request("POST", PATHS["ConfigMap"], configmap(), query={"force": "true"}),
        ),
    ]


def _pb_field(number: int, payload: bytes | int) -> bytes:
    """One protobuf field (varint or length-delimited), enough to build what kubectl sends."""

    def varint(n: int) -> bytes:
        out = b""
        while True:
            byte, n = n & 0x7F, n >> 7
            out += bytes([byte | (0x80 if n else 0)])
            if not n:
                return out

    if isinstance(payload, int):
        return varint(number << 3) + varint(payload)
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def _pb_map(number: int, entries: dict[str, str]) -> bytes:
    return b"".join(
        _pb_field(number, _pb_field(1, k.encode()) + _pb_field(2, v.encode())) for k, v in entries.items()
    )


def protobuf_body(kind: str, name: str, fields: bytes = b"", labels: dict[str, str] | None = None) -> bytes:
    """``k8s\\x00`` + runtime.Unknown{typeMeta{v1, kind}, raw}, as client-go encodes a core/v1 object."""
    meta = _pb_field(1, name.encode()) + _pb_map(11, labels or {})
    raw = _pb_field(1, meta) + fields
    type_meta = _pb_field(1, b"v1") + _pb_field(2, kind.encode())
    return (
        b"k8s\x00"
        + _pb_field(1, type_meta)
        + _pb_field(2, raw)
        + _pb_field(4, b"application/vnd.kubernetes.protobuf")
    )


def _protobuf() -> list[Scenario]:
    pb = "application/vnd.kubernetes.protobuf"
    return [
        Scenario(
            "protobuf-create-namespace",
            Request(
                "POST",
                "/api/v1/namespaces",
                lambda ns: protobuf_body("Namespace", f"pb-{ns}", labels={"a": "b"}),
                pb,
                query=DRY,
            ),
            namespaced=False,
        ),
        Scenario(
            "protobuf-create-configmap",
            Request("POST", PATHS["ConfigMap"], protobuf_body("ConfigMap", "pb", _pb_map(2, {"k": "v"})), pb),
        ),
        Scenario(
            "protobuf-create-secret",
            Request(
                "POST",
                PATHS["Secret"],
                protobuf_body("Secret", "pb", _pb_map(2, {"k": "v"}) + _pb_field(3, b"Opaque")),
                pb,
            ),
        ),
        Scenario(
            "protobuf-create-serviceaccount",
            Request(
                "POST", PATHS["ServiceAccount"], protobuf_body("ServiceAccount", "pb", _pb_field(4, 0)), pb
            ),
        ),
    ]


def _rules() -> list[Scenario]:
    """Semantic rules of the kinds a rehearsal touches, from pkg/apis/*/validation (v1.36)."""
    rolling = {"type": "Recreate", "rollingUpdate": {"maxSurge": 1}}
    limits = {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}

    def nodeport(name: str) -> Any:
        return lambda ns: json.dumps(
            service(
                name, type="NodePort", ports=[{"name": "http", "port": 80, "nodePort": node_port_for(ns)}]
            )
        ).replace("{ns}", ns)

    immutable_cm = configmap("frozen", immutable=True)
    invalid: list[tuple[str, Obj]] = [
        ("Deployment", with_change(deployment(), "spec.strategy", rolling)),
        (
            "Deployment",
            with_change(
                deployment(), "spec.strategy", {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}}
            ),
        ),
        ("Deployment", with_change(deployment(), "spec.strategy", {"rollingUpdate": {"maxSurge": "120%"}})),
        ("Deployment", with_change(deployment(), "spec.template.spec.containers.0.resources", limits)),
        ("Deployment", with_change(deployment(), "metadata.labels", {"bad key!": "x"})),
        ("Deployment", with_change(deployment(), "spec.revisionHistoryLimit", -1)),
        ("Pod", with_change(pod(), "spec.containers.0.ports", [{"containerPort": 0}])),
        ("Pod", with_change(pod(), "spec.containers.0.env", [{"name": ""}])),
        (
            "Service",
            with_change(service(), "spec.ports", [{"name": "a", "port": 80}, {"name": "b", "port": 80}]),
        ),
        ("Service", with_change(service(), "spec.clusterIP", "10.0.0.300")),
        ("Service", service(type="NodePort", ports=[{"name": "http", "port": 80, "nodePort": 80}])),
        ("ConfigMap", with_change(configmap(), "data", {"bad key!": "x"})),
        ("Secret", with_change(secret(), "type", "kubernetes.io/tls")),
        ("Role", with_change(role(), "rules", [{"apiGroups": [""], "resources": ["pods"]}])),
        ("Job", with_change(job(), "spec.backoffLimit", -1)),
        ("StatefulSet", with_change(workload("StatefulSet"), "spec.podManagementPolicy", "Random")),
        (
            "ValidatingWebhookConfiguration",
            with_change(
                webhook_config("ValidatingWebhookConfiguration", "v-{ns}"), "webhooks.0.sideEffects", None
            ),
        ),
        (
            "MutatingWebhookConfiguration",
            with_change(
                webhook_config("MutatingWebhookConfiguration", "m-{ns}"), "webhooks.0.name", "nodots"
            ),
        ),
        (
            "CustomResourceDefinition",
            crd("{ns}.example.com", schema={"properties": {"spec": {"type": "object"}}}),
        ),
        (
            "CustomResourceDefinition",
            crd("{ns}.example.com", schema={"type": "object", "properties": {"spec": {}}}),
        ),
    ]
    out = [Scenario(f"rule-{kind.lower()}-{n}", create(kind, obj)) for n, (kind, obj) in enumerate(invalid)]
    made_np = Request("POST", PATHS["Service"], nodeport("np"))
    out.append(
        Scenario(
            "rule-service-duplicate-nodeport",
            Request("POST", PATHS["Service"], nodeport("np2")),
            setup=[made_np],
        )
    )
    made_cm = Request("POST", PATHS["ConfigMap"], immutable_cm)
    out.append(
        Scenario(
            "rule-configmap-immutable",
            Request("PUT", f"{NS}/configmaps/frozen", with_change(immutable_cm, "data", {"a": "c"})),
            setup=[made_cm],
        )
    )
    made_dep = Request("POST", PATHS["Deployment"], deployment())
    changed = with_change(deployment(), "spec.selector", {"matchLabels": {"app": "web", "x": "y"}})
    changed = with_change(changed, "spec.template.metadata.labels", {"app": "web", "x": "y"})
    out.append(
        Scenario(
            "rule-deployment-selector-immutable",
            Request("PUT", f"{APPS}/deployments/web", changed),
            setup=[made_dep],
        )
    )
    made_svc = Request("POST", PATHS["Service"], service())
    out.append(
        Scenario(
            "rule-service-type-to-externalname",
            Request("PUT", f"{NS}/services/svc", service(type="ExternalName", externalName="example.com")),
            setup=[made_svc],
        )
    )
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "rb"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"},
        "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": "{ns}"}],
    }
    rb_path = "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings"
    out.append(
        Scenario(
            "rule-rolebinding-roleref-immutable",
            Request("PUT", f"{rb_path}/rb", with_change(binding, "roleRef.name", "other")),
            setup=[Request("POST", rb_path, binding)],
        )
    )
    return out


WIDGET_SCHEMA: Obj = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "required": ["size"],
            "properties": {
                "size": {"type": "integer", "minimum": 1, "maximum": 100},
                "name": {"type": "string", "maxLength": 5},
                "tags": {"type": "array", "maxItems": 2, "items": {"type": "string"}},
                "mode": {"type": "string", "enum": ["fast", "slow"]},
                "color": {"type": "string", "default": "blue"},
            },
        }
    },
}


def _custom_resources() -> list[Scenario]:
    group = "{ns}.example.com"
    crd_path = PATHS["CustomResourceDefinition"]
    widgets = f"/apis/{group}/v1/namespaces/{{ns}}/widgets"
    setup = [
        Request("POST", crd_path, crd(group, schema=WIDGET_SCHEMA)),
        Request("GET", widgets, until_ok=True),
    ]
    cleanup = [Request("DELETE", f"{crd_path}/widgets.{group}")]

    def widget(**spec: Any) -> Obj:
        return {"apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": spec}

    cases: list[tuple[str, Obj, dict[str, str]]] = [
        ("maximum", widget(size=200), {}),
        ("minimum", widget(size=0), {}),
        ("max-length", widget(size=1, name="toolong"), {}),
        ("max-items", widget(size=1, tags=["a", "b", "c"]), {}),
        ("enum", widget(size=1, mode="medium"), {}),
        ("required", widget(name="a"), {}),
        ("wrong-type", widget(size="big"), {}),
        ("default", widget(size=3), {}),
        ("unknown-strict", widget(size=3, extra=1), {"fieldValidation": "Strict"}),
        ("unknown-warn", widget(size=3, extra=1), {"fieldValidation": "Warn"}),
    ]
    scenarios = [
        Scenario(
            f"cr-{name}", Request("POST", widgets, body, query=query), setup=list(setup), cleanup=cleanup
        )
        for name, body, query in cases
    ]
    columns = [
        {"name": "Size", "type": "integer", "jsonPath": ".spec.size"},
        {"name": "Color", "type": "string", "jsonPath": ".spec.color", "description": "paint"},
        {"name": "Mode", "type": "string", "jsonPath": ".spec.mode", "priority": 1},
        {"name": "First-Tag", "type": "string", "jsonPath": ".spec.tags[0]"},
    ]
    printed = crd(group, schema=WIDGET_SCHEMA)
    printed["spec"]["versions"][0]["additionalPrinterColumns"] = columns
    table = "application/json;as=Table;v=v1;g=meta.k8s.io"
    scenarios.append(
        Scenario(
            "cr-printer-columns",
            Request("GET", widgets, accept=table, query={"includeObject": "None"}),
            setup=[
                Request("POST", crd_path, printed),
                Request("GET", widgets, until_ok=True),
                Request("POST", widgets, widget(size=7, mode="fast", tags=["x"])),
            ],
            cleanup=cleanup,
        )
    )
    scenarios.append(
        Scenario(
            "cr-default-columns",
            Request("GET", widgets, accept=table, query={"includeObject": "None"}),
            setup=list(setup),
            cleanup=cleanup,
        )
    )
    return scenarios


def _strategic_merge() -> list[Scenario]:
    """Strategic merge patches: list order of merged items, directives, as the real server merges."""
    env = [{"name": "X", "value": "x"}, {"name": "Y", "value": "y"}]
    base = with_change(deployment(), "spec.template.spec.containers.0.env", env)
    made = Request("POST", PATHS["Deployment"], base)
    smp = "application/strategic-merge-patch+json"

    def container_patch(container: Obj, order: list[str] | None = None) -> Obj:
        spec: Obj = {"containers": [dict({"name": "main"}, **container)]}
        if order is not None:
            spec["containers"][0]["$setElementOrder/env"] = [{"name": n} for n in order]
        return {"spec": {"template": {"spec": spec}}}

    patches = {
        "smp-append-item": container_patch({"env": [{"name": "Z", "value": "z"}]}),
        "smp-new-and-changed-items": container_patch(
            {"env": [{"name": "Z", "value": "z"}, {"name": "X", "value": "2"}]}
        ),
        "smp-reordered-existing-items": container_patch(
            {"env": [{"name": "Y", "value": "2"}, {"name": "X", "value": "1"}]}
        ),
        "smp-existing-then-new-item": container_patch(
            {"env": [{"name": "Y", "value": "2"}, {"name": "Z", "value": "z"}]}
        ),
        "smp-set-element-order": container_patch(
            {"env": [{"name": "Z", "value": "z"}]}, order=["Z", "Y", "X"]
        ),
        "smp-delete-item": container_patch({"env": [{"name": "X", "$patch": "delete"}]}),
        "smp-replace-list": container_patch({"env": [{"name": "W", "value": "w"}, {"$patch": "replace"}]}),
        "smp-new-container": {
            "spec": {
                "template": {
                    "spec": {"containers": [{"name": "side", "image": "registry.k8s.io/pause:3.10"}]}
                }
            }
        },
        "smp-retain-keys": {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}},
    }
    # Only the spec: the reference's deployment controller writes status at its own pace.
    return [
        Scenario(name, Request("PATCH", f"{APPS}/deployments/web", patch, smp), setup=[made], compare="spec")
        for name, patch in patches.items()
    ]


def all_scenarios() -> list[Scenario]:
    from tests.conformance.scenarios_core import core_scenarios, past_revision_scenarios
    from tests.conformance.scenarios_exact import exact_scenarios

    scenarios = (
        _decoding()
        + _semantics()
        + _rest()
        + _query()
        + _protobuf()
        + _rules()
        + _custom_resources()
        + _strategic_merge()
        + exact_scenarios()
        + core_scenarios()
        + past_revision_scenarios()
    )
    names = [s.name for s in scenarios]
    assert len(names) == len(set(names)), "scenario names must be unique"
    return scenarios
