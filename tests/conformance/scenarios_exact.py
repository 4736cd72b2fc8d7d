"""Conformance scenarios of issue 15 ("exact where it differs"): malformed requests, JSON and merge patch
errors, delete preconditions and deletecollection, resourceVersion semantics, pages, managedFields by several
managers, dry-run delete and patch, workload status as v1.36 writes it, CRDs and group discovery, scale,
namespace termination, Service allocation, name and label validation, server-side tables as kubectl prints
them, ``kubectl api-resources``, the OpenAPI v3 index, server-side apply conflicts and Secret base64 errors.

Each is recorded from the reference kube-apiserver v1.36.2 by ``record.py`` and replayed by
``tests/test_conformance.py`` (see ``runner`` for what is normalised).
"""

from __future__ import annotations

from typing import Any

from tests.conformance.runner import Request, Scenario, kubectl
from tests.conformance.scenarios import (
    APPS,
    NS,
    PATHS,
    WIDGET_SCHEMA,
    configmap,
    crd,
    deployment,
    secret,
    service,
    with_change,
)

Obj = dict[str, Any]
CM = f"{NS}/configmaps"
JSON_PATCH = "application/json-patch+json"
MERGE = "application/merge-patch+json"
APPLY = "application/apply-patch+yaml"
IP = r"\b\d+\.\d+\.\d+\.\d+\b"
HASH = r"\bweb-[0-9a-z]{6,10}\b"


def _made(name: str = "exists", **top: Any) -> Request:
    return Request("POST", CM, configmap(name, **top))


def _malformed() -> list[Scenario]:
    made = _made()
    return [
        Scenario("malformed-unknown-group", Request("GET", "/apis/nosuch.example.com/v1"), namespaced=False),
        Scenario(
            "malformed-unknown-group-root", Request("GET", "/apis/nosuch.example.com"), namespaced=False
        ),
        Scenario("malformed-unknown-version", Request("GET", "/apis/apps/v9/namespaces/{ns}/deployments")),
        Scenario("malformed-unknown-core-version", Request("GET", "/api/v2"), namespaced=False),
        Scenario("malformed-put-collection", Request("PUT", CM, configmap())),
        Scenario("malformed-post-named", Request("POST", f"{CM}/exists", configmap("exists"))),
        Scenario("malformed-patch-collection", Request("PATCH", CM, {"data": {}}, MERGE)),
        Scenario(
            "malformed-accept-xml", Request("GET", f"{CM}/exists", accept="application/xml"), setup=[made]
        ),
        Scenario("malformed-accept-text-list", Request("GET", CM, accept="text/plain")),
        Scenario("malformed-body-not-json", Request("POST", CM, "{not json")),
        Scenario("malformed-body-empty-object", Request("POST", CM, {})),
    ]


def _json_patch() -> list[Scenario]:
    made = _made()
    path = f"{CM}/exists"

    def patch(name: str, body: Any, content_type: str = JSON_PATCH) -> Scenario:
        return Scenario(name, Request("PATCH", path, body, content_type), setup=[made])

    return [
        patch("json-patch-test-fails", [{"op": "test", "path": "/data/a", "value": "c"}]),
        patch("json-patch-test-passes", [{"op": "test", "path": "/data/a", "value": "b"}]),
        patch("json-patch-remove-missing", [{"op": "remove", "path": "/data/nothing"}]),
        patch("json-patch-replace-missing", [{"op": "replace", "path": "/data/nothing", "value": "x"}]),
        patch("json-patch-bad-op", [{"op": "frobnicate", "path": "/data/a"}]),
        patch("json-patch-not-array", {"op": "add", "path": "/data/x", "value": "y"}),
        patch("json-patch-invalid-json", "[{"),
        patch("json-patch-add-deep-missing", [{"op": "add", "path": "/metadata/nothing/x", "value": "y"}]),
        patch("json-patch-move", [{"op": "move", "from": "/data/a", "path": "/data/z"}]),
        patch("merge-patch-invalid-json", "{not json", MERGE),
        patch("merge-patch-array-body", [1, 2], MERGE),
        patch("patch-unsupported-content-type", {"data": {"a": "c"}}, "application/json"),
        patch("patch-text-plain", "data: {}", "text/plain"),
    ]


def _deletes() -> list[Scenario]:
    made = _made()
    path = f"{CM}/exists"
    delete_options = "application/json"

    def options(**fields: Any) -> Obj:
        return {"apiVersion": "v1", "kind": "DeleteOptions", **fields}

    labelled = [
        Request("POST", CM, with_change(configmap(f"c{n}"), "metadata.labels", {"sel": "yes" if n else "no"}))
        for n in range(3)
    ]
    return [
        Scenario(
            "delete-precondition-uid",
            Request(
                "DELETE",
                path,
                options(preconditions={"uid": "00000000-0000-0000-0000-000000000000"}),
                delete_options,
            ),
            setup=[made],
        ),
        Scenario(
            "delete-precondition-resource-version",
            Request("DELETE", path, options(preconditions={"resourceVersion": "1"}), delete_options),
            setup=[made],
            volatile=(r"in record \(\d+\)",),
        ),
        Scenario(
            "delete-precondition-matches",
            Request(
                "DELETE",
                path,
                options(preconditions={"uid": "{uid}", "resourceVersion": "{rv}"}),
                delete_options,
            ),
            setup=[made],
        ),
        Scenario(
            "delete-dry-run",
            Request("DELETE", path, query={"dryRun": "All"}),
            setup=[made],
        ),
        Scenario(
            "delete-dry-run-leaves-object",
            Request("GET", path),
            setup=[made, Request("DELETE", path, query={"dryRun": "All"})],
        ),
        Scenario(
            "delete-bad-propagation",
            Request("DELETE", path, options(propagationPolicy="Sideways"), delete_options),
            setup=[made],
        ),
        Scenario(
            "deletecollection-selected",
            Request("DELETE", CM, query={"labelSelector": "sel=yes"}),
            setup=labelled,
        ),
        Scenario(
            "deletecollection-leaves-others",
            Request("GET", CM, query={"labelSelector": "sel"}),
            setup=[*labelled, Request("DELETE", CM, query={"labelSelector": "sel=yes"})],
        ),
        Scenario(
            "deletecollection-dry-run",
            Request("GET", CM, query={"labelSelector": "sel"}),
            setup=[*labelled, Request("DELETE", CM, query={"labelSelector": "sel=yes", "dryRun": "All"})],
        ),
    ]


_EXACT_AT_2 = {"resourceVersion": "2", "resourceVersionMatch": "Exact"}


def _resource_versions() -> list[Scenario]:
    made = _made()
    path = f"{CM}/exists"
    sel = {"labelSelector": "app"}
    labelled = Request("POST", CM, with_change(configmap("l"), "metadata.labels", {"app": "x"}))
    return [
        Scenario(
            "get-resource-version-zero", Request("GET", path, query={"resourceVersion": "0"}), setup=[made]
        ),
        Scenario(
            "get-resource-version-exact",
            Request("GET", path, query={"resourceVersion": "{rv}"}),
            setup=[made],
        ),
        Scenario(
            "get-resource-version-not-a-number",
            Request("GET", path, query={"resourceVersion": "abc"}),
            setup=[made],
        ),
        Scenario("list-resource-version-not-a-number", Request("GET", CM, query={"resourceVersion": "abc"})),
        Scenario(
            "list-resource-version-exact",
            Request("GET", CM, query={**sel, "resourceVersion": "{rv}", "resourceVersionMatch": "Exact"}),
            setup=[labelled],
        ),
        Scenario(
            "list-resource-version-not-older-than",
            Request(
                "GET", CM, query={**sel, "resourceVersion": "{rv}", "resourceVersionMatch": "NotOlderThan"}
            ),
            setup=[labelled],
        ),
        Scenario(
            "list-resource-version-match-bogus",
            Request("GET", CM, query={"resourceVersion": "1", "resourceVersionMatch": "Newest"}),
        ),
        Scenario(
            "list-resource-version-exact-zero",
            Request("GET", CM, query={"resourceVersion": "0", "resourceVersionMatch": "Exact"}),
        ),
        # The two below depend on the reference's history, not only on the request: live, an Exact list at
        # revision 2 is 410 once kube-apiserver's compactor has compacted past it (its second tick, 10 minutes
        # after start), and a watch from 2 once the configmaps watch cache has dropped events (its buffer
        # full of events older than 75 s, as after a whole run). The simulated store has no revision before
        # its first one, so both are 410 there from the start.
        Scenario(
            "list-resource-version-exact-compacted",
            Request("GET", CM, query=_EXACT_AT_2),
            # Live, on a reference started less than 10 minutes ago, wait for that second tick.
            setup=[
                Request(
                    "GET",
                    CM,
                    query=_EXACT_AT_2,
                    done_codes=(410,),
                    until=lambda body: isinstance(body, dict) and body.get("code") == 410,
                    patience=11 * 60,
                    why="kube-apiserver's compactor to pass revision 2 (it compacts every 5 minutes)",
                )
            ],
            volatile=(r"\(\d+\)", r"version: \d+"),
        ),
        Scenario(
            "watch-compacted",
            Request(
                "GET", CM, query={"watch": "true", "resourceVersion": "2", "timeoutSeconds": "1"}, watch=True
            ),
            volatile=(r"\(\d+\)",),
        ),
        Scenario(
            "watch-resource-version-not-a-number",
            Request("GET", CM, query={"watch": "true", "resourceVersion": "abc", "timeoutSeconds": "1"}),
        ),
    ]


def _pages() -> list[Scenario]:
    made = [
        Request("POST", CM, with_change(configmap(f"page{n}"), "metadata.labels", {"page": "yes"}))
        for n in range(3)
    ]
    sel = {"labelSelector": "page"}
    return [
        Scenario("list-limit-first-page", Request("GET", CM, query={**sel, "limit": "2"}), setup=made),
        Scenario(
            "list-limit-next-page",
            Request("GET", CM, query={**sel, "limit": "2", "continue": "{continue}"}),
            setup=[*made, Request("GET", CM, query={**sel, "limit": "2"})],
        ),
        Scenario("list-bad-continue", Request("GET", CM, query={"limit": "2", "continue": "abc"})),
        Scenario(
            "list-bad-continue-base64-json",
            Request("GET", CM, query={"limit": "2", "continue": "eyJ2IjoxfQ"}),
        ),
        Scenario("list-limit-negative", Request("GET", CM, query={**sel, "limit": "-1"}), setup=made),
    ]


def _managed_fields() -> list[Scenario]:
    path = f"{CM}/mf"
    made = Request("POST", CM, configmap("mf"), query={"fieldManager": "creator"})
    patched = Request("PATCH", path, {"data": {"p": "1"}}, MERGE, query={"fieldManager": "patcher"})
    updated = Request(
        "PUT",
        path,
        with_change(configmap("mf"), "data", {"a": "b", "p": "1", "u": "2"}),
        query={"fieldManager": "updater"},
    )
    applied = Request(
        "PATCH",
        path,
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "mf"}, "data": {"s": "3"}},
        APPLY,
        query={"fieldManager": "applier"},
    )
    return [
        Scenario(
            "managed-fields-after-patch", Request("GET", path), setup=[made, patched], compare="metadata"
        ),
        Scenario(
            "managed-fields-after-update",
            Request("GET", path),
            setup=[made, patched, updated],
            compare="metadata",
        ),
        Scenario(
            "managed-fields-after-apply",
            Request("GET", path),
            setup=[made, patched, updated, applied],
            compare="metadata",
        ),
        Scenario(
            "managed-fields-taken-over",
            Request("PATCH", path, {"data": {"a": "new"}}, MERGE, query={"fieldManager": "patcher"}),
            setup=[made],
            compare="metadata",
        ),
        Scenario(
            "ssa-conflict-with-update-manager",
            Request(
                "PATCH",
                path,
                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "mf"}, "data": {"a": "mine"}},
                APPLY,
                query={"fieldManager": "applier"},
            ),
            setup=[made],
        ),
        Scenario(
            "ssa-conflict-two-fields",
            Request(
                "PATCH",
                path,
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": "mf"},
                    "data": {"a": "mine", "p": "mine"},
                },
                APPLY,
                query={"fieldManager": "other"},
            ),
            setup=[made, patched],
        ),
        Scenario(
            "ssa-conflict-with-applier",
            Request(
                "PATCH",
                path,
                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "mf"}, "data": {"s": "other"}},
                APPLY,
                query={"fieldManager": "second"},
            ),
            setup=[made, applied],
        ),
        Scenario(
            "ssa-force-takes-over",
            Request(
                "PATCH",
                path,
                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "mf"}, "data": {"a": "mine"}},
                APPLY,
                query={"fieldManager": "applier", "force": "true"},
            ),
            setup=[made],
            compare="metadata",
        ),
    ]


def _dry_run_patch() -> list[Scenario]:
    made = _made()
    path = f"{CM}/exists"
    dry_patch = Request("PATCH", path, {"data": {"a": "dry"}}, MERGE, query={"dryRun": "All"})
    return [
        Scenario("patch-dry-run", dry_patch, setup=[made]),
        Scenario("patch-dry-run-leaves-object", Request("GET", path), setup=[made, dry_patch]),
        Scenario(
            "json-patch-dry-run",
            Request(
                "PATCH",
                path,
                [{"op": "add", "path": "/data/n", "value": "1"}],
                JSON_PATCH,
                query={"dryRun": "All"},
            ),
            setup=[made],
        ),
    ]


def _settled(kind_replicas: int) -> Any:
    def ready(body: Any) -> bool:
        status = (body or {}).get("status") or {}
        return (
            status.get("observedGeneration") == (body or {}).get("metadata", {}).get("generation")
            and status.get("replicas", 0) == kind_replicas
            and len(status.get("conditions") or []) >= 1
        )

    return ready


def _workload_status() -> list[Scenario]:
    # The reference has no kubelet (nor nodes): its pods stay Pending. A node selector no node matches
    # keeps the simulated cluster's pods Pending too, so both controllers write the same status.
    pinned = with_change(deployment(), "spec.template.spec.nodeSelector", {"conformance": "nowhere"})
    made = Request("POST", PATHS["Deployment"], pinned)
    dep = f"{APPS}/deployments/web"
    settled = Request("GET", dep, until=_settled(2))

    def rs_settled(body: Any) -> bool:
        items = (body or {}).get("items") or []
        return bool(items) and all(
            (i.get("status") or {}).get("replicas") == 2
            and (i.get("status") or {}).get("observedGeneration") == i["metadata"].get("generation")
            for i in items
        )

    rs_list = Request("GET", PATHS["ReplicaSet"], until=rs_settled)
    scaled = with_change(pinned, "spec.replicas", 0)
    return [
        Scenario(
            "deployment-status-pending",
            Request("GET", dep),
            setup=[made, settled],
            compare="status",
            volatile=(HASH,),
        ),
        Scenario(
            "replicaset-status-pending",
            Request("GET", PATHS["ReplicaSet"]),
            setup=[made, settled, rs_list],
            compare="items.0.status",
        ),
        Scenario(
            "deployment-status-scaled-to-zero",
            Request("GET", dep),
            setup=[made, settled, Request("PUT", dep, scaled), Request("GET", dep, until=_settled(0))],
            compare="status",
            volatile=(HASH,),
        ),
        Scenario(
            "kubectl-get-deployment",
            kubectl("get", "deployment", "web", "-n", "{ns}"),
            setup=[made, settled],
        ),
        Scenario(
            "kubectl-get-deployment-wide",
            kubectl("get", "deployment", "web", "-n", "{ns}", "-o", "wide"),
            setup=[made, settled],
        ),
    ]


def _crds_and_discovery() -> list[Scenario]:
    group = "{ns}.example.com"
    crd_path = PATHS["CustomResourceDefinition"]
    widgets = f"/apis/{group}/v1/namespaces/{{ns}}/widgets"
    scaled = crd(group, schema=WIDGET_SCHEMA)
    version = scaled["spec"]["versions"][0]
    version["subresources"] = {
        "status": {},
        "scale": {"specReplicasPath": ".spec.size", "statusReplicasPath": ".status.replicas"},
    }
    version["additionalPrinterColumns"] = [
        {"name": "Size", "type": "integer", "jsonPath": ".spec.size"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]
    scaled["spec"]["names"]["shortNames"] = ["wd"]
    scaled["spec"]["names"]["categories"] = ["conformance"]
    setup = [Request("POST", crd_path, scaled), Request("GET", widgets, until_ok=True)]
    cleanup = [Request("DELETE", f"{crd_path}/widgets.{group}")]
    widget = {
        "apiVersion": f"{group}/v1",
        "kind": "Widget",
        "metadata": {"name": "w", "labels": {"tier": "gold"}},
        "spec": {"size": 3},
    }
    with_widget = [*setup, Request("POST", widgets, widget)]

    def established(body: Any) -> bool:
        conditions = ((body or {}).get("status") or {}).get("conditions") or []
        return any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions)

    return [
        Scenario(
            "crd-status-established",
            Request("GET", f"{crd_path}/widgets.{group}"),
            setup=[
                Request("POST", crd_path, scaled),
                Request("GET", f"{crd_path}/widgets.{group}", until=established),
            ],
            cleanup=cleanup,
            compare="status",
        ),
        Scenario("crd-created", Request("POST", crd_path, scaled), cleanup=cleanup, compare="spec"),
        Scenario("discovery-custom-group", Request("GET", f"/apis/{group}"), setup=setup, cleanup=cleanup),
        Scenario(
            "discovery-custom-group-version",
            Request("GET", f"/apis/{group}/v1"),
            setup=setup,
            cleanup=cleanup,
            volatile=(r"^[A-Za-z0-9+/]{11}=$",),  # the storageVersionHash of a group named after the run
        ),
        Scenario("discovery-apps-v1", Request("GET", "/apis/apps/v1"), namespaced=False),
        Scenario("discovery-core-v1", Request("GET", "/api/v1"), namespaced=False),
        Scenario(
            "scale-custom-resource", Request("GET", f"{widgets}/w/scale"), setup=with_widget, cleanup=cleanup
        ),
        Scenario(
            "scale-custom-resource-update",
            Request(
                "PUT",
                f"{widgets}/w/scale",
                {
                    "apiVersion": "autoscaling/v1",
                    "kind": "Scale",
                    "metadata": {"name": "w"},
                    "spec": {"replicas": 5},
                },
            ),
            setup=with_widget,
            cleanup=cleanup,
        ),
        Scenario(
            "kubectl-get-custom-resources",
            kubectl("get", "widgets", "-n", "{ns}"),
            setup=with_widget,
            cleanup=cleanup,
        ),
        Scenario(
            "kubectl-get-custom-resources-show-labels",
            kubectl("get", "wd", "-n", "{ns}", "--show-labels"),
            setup=with_widget,
            cleanup=cleanup,
        ),
        Scenario(
            "kubectl-get-custom-resource-category",
            kubectl("get", "conformance", "-n", "{ns}"),
            setup=with_widget,
            cleanup=cleanup,
        ),
    ]


def _scale() -> list[Scenario]:
    made = Request(
        "POST",
        PATHS["Deployment"],
        with_change(deployment(), "spec.template.spec.nodeSelector", {"c": "nowhere"}),
    )
    scale = f"{APPS}/deployments/web/scale"

    def body(replicas: Any) -> Obj:
        return {
            "apiVersion": "autoscaling/v1",
            "kind": "Scale",
            "metadata": {"name": "web"},
            "spec": {"replicas": replicas},
        }

    return [
        Scenario("scale-get", Request("GET", scale), setup=[made], compare="spec"),
        Scenario("scale-update", Request("PUT", scale, body(3)), setup=[made], compare="spec"),
        Scenario("scale-update-negative", Request("PUT", scale, body(-1)), setup=[made]),
        Scenario(
            "scale-patch",
            Request("PATCH", scale, {"spec": {"replicas": 4}}, MERGE),
            setup=[made],
            compare="spec",
        ),
        Scenario("scale-not-found", Request("GET", f"{APPS}/deployments/nothing/scale")),
        Scenario("scale-configmap-not-a-subresource", Request("GET", f"{CM}/exists/scale"), setup=[_made()]),
        Scenario(
            "kubectl-scale",
            kubectl("scale", "deployment", "web", "-n", "{ns}", "--replicas=3"),
            setup=[made],
        ),
    ]


def _namespace_termination() -> list[Scenario]:
    held = Request(
        "POST", CM, configmap("held", metadata={"name": "held", "finalizers": ["example.com/hold"]})
    )
    delete_ns = Request("DELETE", "/api/v1/namespaces/{ns}")
    release = [Request("PATCH", f"{CM}/held", {"metadata": {"finalizers": None}}, MERGE)]

    def conditions_settled(body: Any) -> bool:
        conditions = ((body or {}).get("status") or {}).get("conditions") or []
        return any(
            c.get("type") == "NamespaceFinalizersRemaining" and c.get("status") == "True" for c in conditions
        )

    return [
        Scenario(
            "namespace-terminating-create",
            Request("POST", CM, configmap("late")),
            setup=[held, delete_ns],
            cleanup=release,
        ),
        Scenario(
            "namespace-terminating-status",
            Request("GET", "/api/v1/namespaces/{ns}"),
            setup=[held, delete_ns, Request("GET", "/api/v1/namespaces/{ns}", until=conditions_settled)],
            cleanup=release,
            compare="status",
        ),
        Scenario(
            "namespace-terminating-update-allowed",
            Request("PATCH", f"{CM}/held", {"data": {"a": "still"}}, MERGE),
            setup=[held, delete_ns],
            cleanup=release,
            compare="data",
        ),
    ]


def _services() -> list[Scenario]:
    made = Request("POST", PATHS["Service"], service())
    path = f"{NS}/services/svc"
    node_port = service("np", type="NodePort", ports=[{"name": "http", "port": 80, "nodePort": 40000}])
    return [
        Scenario(
            "service-cluster-ip-out-of-range",
            Request("POST", PATHS["Service"], service(clusterIP="10.200.0.5")),
            volatile=(r"10\.96\.0\.0/\d+",),
        ),
        Scenario("service-node-port-out-of-range", Request("POST", PATHS["Service"], node_port)),
        Scenario(
            "service-cluster-ip-immutable",
            Request("PUT", path, service(clusterIP="10.96.250.250")),
            setup=[made],
            volatile=(IP,),
        ),
        Scenario(
            "service-cluster-ip-patch-immutable",
            Request(
                "PATCH",
                path,
                {"spec": {"clusterIP": "10.96.250.251", "clusterIPs": ["10.96.250.251"]}},
                MERGE,
            ),
            setup=[made],
            volatile=(IP,),
        ),
        Scenario(
            "service-headless-to-ip",
            Request("PUT", f"{NS}/services/headless", service("headless", clusterIP="10.96.250.252")),
            setup=[Request("POST", PATHS["Service"], service("headless", clusterIP="None"))],
        ),
        Scenario("service-bad-ip-family", Request("POST", PATHS["Service"], service(ipFamilies=["IPv7"]))),
        Scenario(
            "service-external-name-invalid",
            Request("POST", PATHS["Service"], service(type="ExternalName", externalName="not a name")),
        ),
        Scenario(
            "kubectl-get-services",
            kubectl("get", "services", "-n", "{ns}", "-o", "wide"),
            setup=[made],
            volatile=(IP,),
        ),
    ]


def _names_and_labels() -> list[Scenario]:
    long_value = "v" * 64
    cases: list[tuple[str, Obj]] = [
        ("label-value-too-long", with_change(configmap(), "metadata.labels", {"a": long_value})),
        ("label-key-prefix-invalid", with_change(configmap(), "metadata.labels", {"Bad_Prefix/a": "x"})),
        ("label-key-name-too-long", with_change(configmap(), "metadata.labels", {"a" * 64: "x"})),
        ("label-value-bad-characters", with_change(configmap(), "metadata.labels", {"a": "-x-"})),
        ("annotation-key-invalid", with_change(configmap(), "metadata.annotations", {"bad key": "x"})),
        ("name-too-long", with_change(configmap(), "metadata.name", "n" * 254)),
        ("name-with-slash", with_change(configmap(), "metadata.name", "a/b")),
        ("generate-name-invalid", {**configmap(), "metadata": {"generateName": "Bad_"}}),
    ]
    out = [
        Scenario(
            f"validation-{name}",
            Request("POST", CM, obj, query={"dryRun": "All"}),
            volatile=(r"\bBad_[a-z0-9]{5}\b",),  # the name generated from generateName
        )
        for name, obj in cases
    ]
    out.append(
        Scenario(
            "validation-service-name-too-long",
            Request(
                "POST",
                PATHS["Service"],
                with_change(service(), "metadata.name", "s" * 64),
                query={"dryRun": "All"},
            ),
        )
    )
    out.append(
        Scenario(
            "validation-namespace-name",
            Request(
                "POST",
                "/api/v1/namespaces",
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "Bad.Name"}},
            ),
            namespaced=False,
        )
    )
    out.append(
        Scenario(
            "validation-deployment-selector-empty",
            Request(
                "POST",
                PATHS["Deployment"],
                with_change(deployment(), "spec.selector", {}),
                query={"dryRun": "All"},
            ),
        )
    )
    return out


def _kubectl_tables() -> list[Scenario]:
    made = [
        Request("POST", CM, with_change(configmap("one"), "metadata.labels", {"app": "a", "tier": "x"})),
        Request("POST", CM, with_change(configmap("two"), "metadata.labels", {"app": "b"})),
        Request("POST", PATHS["Secret"], secret("sec")),
    ]
    return [
        Scenario(
            "kubectl-get-configmaps-show-labels",
            kubectl("get", "configmaps", "-n", "{ns}", "-l", "app", "--show-labels"),
            setup=made,
        ),
        Scenario(
            "kubectl-get-secrets",
            kubectl("get", "secrets", "-n", "{ns}", "--field-selector", "metadata.name=sec"),
            setup=made,
        ),
        Scenario(
            "kubectl-get-configmaps-label-columns",
            kubectl("get", "configmaps", "-n", "{ns}", "-l", "app", "-L", "tier"),
            setup=made,
        ),
        Scenario(
            "kubectl-get-namespace",
            kubectl("get", "namespace", "{ns}"),
        ),
        Scenario(
            "kubectl-get-not-found",
            kubectl("get", "configmap", "nothing", "-n", "{ns}"),
        ),
        Scenario(
            "table-configmaps",
            Request(
                "GET",
                CM,
                query={"labelSelector": "app", "includeObject": "None"},
                accept="application/json;as=Table;v=v1;g=meta.k8s.io",
            ),
            setup=made,
        ),
        Scenario(
            "kubectl-api-resources-apps",
            kubectl("api-resources", "--api-group=apps", "-o", "wide"),
            namespaced=False,
        ),
        Scenario(
            "kubectl-api-resources-rbac-cluster",
            kubectl("api-resources", "--api-group=rbac.authorization.k8s.io", "--namespaced=false"),
            namespaced=False,
        ),
        Scenario(
            "kubectl-api-resources-core-names",
            kubectl("api-resources", "--api-group=", "-o", "name"),
            namespaced=False,
        ),
    ]


def _openapi_index() -> list[Scenario]:
    return [
        Scenario(
            "openapi-v3-index",
            Request("GET", "/openapi/v3"),
            namespaced=False,
            volatile=(r"hash=[0-9A-F]+", r"\b[a-z0-9-]+\.example\.com\b"),
        ),
    ]


def _secrets() -> list[Scenario]:
    made = Request("POST", PATHS["Secret"], secret("s"))
    return [
        Scenario(
            "secret-data-not-base64",
            Request("POST", PATHS["Secret"], {**secret("b"), "data": {"k": "not base64!"}}),
        ),
        Scenario(
            "secret-data-bad-padding",
            Request("POST", PATHS["Secret"], {**secret("b"), "data": {"k": "YWJj="}}),
        ),
        Scenario(
            "secret-patch-not-base64",
            Request("PATCH", f"{NS}/secrets/s", {"data": {"k": "%%%"}}, MERGE),
            setup=[made],
            # The patched object is quoted: its resourceVersion and timestamps.
            volatile=(r'resourceVersion\\":\\"\d+', r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"),
        ),
        Scenario(
            "secret-type-immutable",
            Request("PATCH", f"{NS}/secrets/s", {"type": "kubernetes.io/basic-auth"}, MERGE),
            setup=[made],
        ),
    ]


def exact_scenarios() -> list[Scenario]:
    return (
        _malformed()
        + _json_patch()
        + _deletes()
        + _resource_versions()
        + _pages()
        + _managed_fields()
        + _dry_run_patch()
        + _workload_status()
        + _crds_and_discovery()
        + _scale()
        + _namespace_termination()
        + _services()
        + _names_and_labels()
        + _kubectl_tables()
        + _openapi_index()
        + _secrets()
    )
