"""Patches in the simulated API server's request logic: JSON, merge and strategic merge patches, and
server-side apply (field managers, conflicts, kubectl's last-applied annotation).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from kubesim.apiserver import schema
from kubesim.apiserver.objects import Obj, RequestOptions
from kubesim.machinery import errors, ssa
from kubesim.machinery.errors import ApiError
from kubesim.machinery.patch import json_merge_patch, json_patch, strategic_merge_patch
from kubesim.machinery.resources import ResourceType
from kubesim.store import clone

if TYPE_CHECKING:
    from kubesim.apiserver.api import Api


class PatchMixin:
    """patch and apply; mixed into ``api.Api``.

    Methods take ``self: Api`` so that they see all of ``Api`` (mypy calls a mixin's self type a
    ``misc`` error, hence the ignores)."""

    def patch(  # type: ignore[misc]
        self: Api,
        rt: ResourceType,
        namespace: str,
        name: str,
        patch_type: str,
        body: Any,
        opts: RequestOptions | None = None,
        subresource: str = "",
    ) -> Obj:
        opts = opts or RequestOptions()
        ns = namespace if rt.namespaced else ""
        with self._lock:
            old = self.store.get(rt.gr, ns, name)
            if patch_type == "apply":
                return self._apply(rt, ns, name, old, body, opts, subresource)
            if old is None:
                raise errors.not_found(rt.plural, rt.group, name)
            if patch_type == "merge":
                new = json_merge_patch(old, body)
            elif patch_type == "strategic":
                if rt.custom:
                    raise ApiError(
                        415,
                        "UnsupportedMediaType",
                        "the body of the request was in an unknown "
                        "format - accepted media types include: application/json-patch+json, "
                        "application/merge-patch+json, application/apply-patch+yaml",
                        {},
                    )
                new = strategic_merge_patch(old, body)
            elif patch_type == "json":
                if not isinstance(body, list):
                    raise errors.bad_request(
                        "json: cannot unmarshal object into Go value of type jsonpatch.Patch"
                    )
                new = json_patch(old, body)
            else:
                raise errors.unsupported_media_type(patch_type)
            if not isinstance(new, dict):
                raise errors.bad_request("the patch produced an object that is not a JSON object")
            if not isinstance(new.get("metadata"), dict):  # kube-apiserver v1.36's words (patch.go)
                patched = json.dumps(new, separators=(",", ":"), sort_keys=True)
                raise ApiError(
                    422,
                    "Invalid",
                    f' "" is invalid: patch: Invalid value: {json.dumps(patched)}: json: cannot unmarshal '
                    f"{'string' if isinstance(new.get('metadata'), str) else 'value'} into Go struct field "
                    f"{rt.kind}.metadata of type v1.ObjectMeta",
                )
            expected = (new.get("metadata") or {}).get("resourceVersion")
            if expected and expected != old["metadata"]["resourceVersion"]:
                raise errors.conflict(rt.plural, rt.group, name, errors.STALE)
            self._decode_patched(rt, new, opts)
            return self._replace(rt, old, new, opts, subresource)

    def _apply(  # type: ignore[misc]
        self: Api,
        rt: ResourceType,
        ns: str,
        name: str,
        old: Obj | None,
        body: Any,
        opts: RequestOptions,
        subresource: str,
    ) -> Obj:
        if not isinstance(body, dict):
            raise errors.bad_request("error decoding YAML: the apply configuration must be an object")
        node = None if rt.custom else schema.root(rt.group, rt.version, rt.kind)
        undeclared = schema.apply_schema_error(body, node) if node is not None else None
        if undeclared:
            body_ns = (body.get("metadata") or {}).get("namespace", "")
            raise ApiError(
                500,
                "",
                f"failed to create typed patch object ({body_ns}/{name}; "
                f"{rt.group}/{rt.version}, Kind={rt.kind}): " + undeclared,
            )
        if not opts.manager:
            raise ApiError(
                422,
                "Invalid",
                'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required '
                "value: is required for apply patch",
                {
                    "kind": "PatchOptions",
                    "group": "meta.k8s.io",
                    "causes": [
                        {
                            "reason": "FieldValueRequired",
                            "message": "Required value: is required for apply patch",
                            "field": "fieldManager",
                        }
                    ],
                },
            )
        for key in ("apiVersion", "kind"):
            if not body.get(key):
                raise errors.bad_request(
                    f"{key} must be set in an apply configuration"
                    if key == "kind"
                    else "invalid object type: /, Kind="
                )
        body_meta = body.get("metadata") or {}
        if body_meta.get("name") and body_meta["name"] != name:
            raise errors.bad_request(
                f"the name of the object ({body_meta['name']}) does not match the name on the URL ({name})"
            )
        applied = clone(body)
        applied.setdefault("metadata", {})["name"] = name
        if rt.namespaced:
            applied["metadata"]["namespace"] = ns
        expected = body_meta.get("resourceVersion")
        if expected and (old is None or expected != old["metadata"]["resourceVersion"]):
            raise errors.conflict(rt.plural, rt.group, name, errors.STALE)
        result = ssa.apply(
            old, applied, opts.manager, body["apiVersion"], opts.force, self.now(), subresource
        )
        annotations = (result.get("metadata") or {}).get("annotations") or {}
        if opts.manager == "kubectl" and ssa.LAST_APPLIED in annotations:
            # lastAppliedUpdater: kubectl's server-side apply keeps a client-side apply annotation in step.
            last = clone(body)
            last_annotations = (last.get("metadata") or {}).get("annotations") or {}
            last_annotations.pop(ssa.LAST_APPLIED, None)
            if not last_annotations:
                (last.get("metadata") or {}).pop("annotations", None)
            annotations = dict(annotations)
            annotations[ssa.LAST_APPLIED] = json.dumps(last, sort_keys=True, separators=(",", ":")) + "\n"
            result["metadata"]["annotations"] = annotations
        if old is None:
            created = self.create(
                rt,
                result,
                ns,
                RequestOptions(
                    opts.dry_run, "", opts.field_validation, user=opts.user, warnings=opts.warnings
                ),
            )
            return created
        return self._replace(rt, old, result, opts, "apply" if not subresource else subresource)
