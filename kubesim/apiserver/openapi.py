"""The OpenAPI v2 and v3 documents of the served resources.

Built-in group-versions are served with the real v1.36.2 documents (``published.openapi_v3()``, and the whole
v2 document at ``/openapi/v2``), so ``kubectl explain`` prints the real field documentation; groups of
custom resources get a document generated here from their CRD's schema.

kubectl reads ``/openapi/v3`` to decide whether the server validates fields itself (a ``fieldValidation``
parameter on each resource's PATCH operation, tagged with ``x-kubernetes-group-version-kind``); when it does,
kubectl sends ``fieldValidation=Strict`` and skips client-side schema validation. Custom resources carry
their CRD's schema, so tools that read it see the real structure.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from functools import cache
from typing import Any

from kubesim.apiserver import schema as published
from kubesim.apiserver.api import Api

_QUERY = ("dryRun", "fieldManager", "fieldValidation", "force", "pretty")


def _gv_paths(api: Api) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for rt in api.types():
        for version in rt.versions:
            key = f"apis/{rt.group}/{version}" if rt.group else f"api/{version}"
            out.setdefault(key, []).append((rt, version))
    return out


def v3_index(api: Api) -> dict[str, Any]:
    """``/openapi/v3``: every document the real v1.36.2 server lists (its group-versions, and the roots:
    ``api``, ``apis``, each built-in group's ``apis/<group>``, ``version``,
    ``.well-known/openid-configuration`` and ``openid/v1/jwks``; kube-openapi's handler3 lists every web
    service the server registered), plus the
    group-versions of custom resources (a CRD adds its group-version's document, not a group root: the
    apiextensions server publishes one spec per group-version, staging/src/k8s.io/apiextensions-apiserver/pkg/
    controller/openapiv3/controller.go). The real documents are served whole, so the index also lists the
    group-versions whose resources the simulator does not serve (apiregistration.k8s.io/v1, autoscaling/v1,
    flowcontrol.apiserver.k8s.io/v1, resource.k8s.io/v1): their schemas are real, discovery does not list
    their resources."""
    keys = set(_gv_paths(api)) | set(published.openapi_v3()) | set(_roots())
    paths = {}
    for key in sorted(keys):
        doc = v3_document(api, key)
        if doc is published.openapi_v3().get(key) or doc is _roots().get(key):
            digest = _real_digest(key)
        else:
            digest = _digest(doc)
        paths[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash={digest}"}
    return {"paths": paths}


@cache
def _roots() -> dict[str, dict[str, Any]]:
    """The real server's documents that are not a group-version's (see ``v3_index``), as recorded."""
    with (published._DATA / f"openapi-v3-roots-v{published.K8S_VERSION}.json.gz").open("rb") as raw:
        loaded: dict[str, dict[str, Any]] = json.loads(gzip.decompress(raw.read()))
        return loaded


def _digest(doc: Any) -> str:
    return hashlib.sha512(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:32].upper()


@cache
def _real_digest(key: str) -> str:
    return _digest(published.openapi_v3().get(key) or _roots()[key])


def v2_document() -> dict[str, Any]:
    return published.openapi_v2()


def v3_document(api: Api, key: str) -> dict[str, Any] | None:
    entries = _gv_paths(api).get(key)
    real = published.openapi_v3().get(key)
    if entries is None:
        return real or _roots().get(key)
    if real is not None and not any(rt.custom for rt, _ in entries):
        return real
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for rt, version in entries:
        gvk = {"group": rt.group, "version": version, "kind": rt.kind}
        prefix = f"/{key}/namespaces/{{namespace}}/{rt.plural}" if rt.namespaced else f"/{key}/{rt.plural}"
        schema_name = f"{rt.group or 'core'}.{version}.{rt.kind}"
        ref = {"$ref": f"#/components/schemas/{schema_name}"}
        body = {"content": {"application/json": {"schema": ref}}}
        params = [{"name": p, "in": "query", "schema": {"type": "string"}} for p in _QUERY]
        operation = {
            "x-kubernetes-group-version-kind": gvk,
            "parameters": params,
            "requestBody": body,
            "responses": {"200": body},
        }
        item: dict[str, Any] = {
            "get": {
                "x-kubernetes-action": "get",
                "x-kubernetes-group-version-kind": gvk,
                "responses": {"200": body},
            }
        }
        if "update" in rt.verbs:
            item["put"] = dict(operation, **{"x-kubernetes-action": "put"})
        if "patch" in rt.verbs:
            item["patch"] = dict(operation, **{"x-kubernetes-action": "patch"})
        if "delete" in rt.verbs:
            item["delete"] = {
                "x-kubernetes-action": "delete",
                "x-kubernetes-group-version-kind": gvk,
                "responses": {"200": body},
            }
        paths[f"{prefix}/{{name}}"] = item
        if "create" in rt.verbs:
            paths[prefix] = {"post": dict(operation, **{"x-kubernetes-action": "post"})}
        schema = dict(rt.schemas.get(version) or {"type": "object"})
        schema["x-kubernetes-group-version-kind"] = [gvk]
        schemas[schema_name] = schema
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": f"v{api.k8s_version}"},
        "paths": paths,
        "components": {"schemas": schemas},
    }
