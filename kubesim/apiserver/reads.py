"""Reads of the simulated API server's request logic: get and list (selectors, pages and continue tokens)."""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING

from kubesim.apiserver.objects import ListResult, Obj
from kubesim.machinery import errors
from kubesim.machinery.resources import ResourceType
from kubesim.machinery.selectors import parse_field_selector, parse_label_selector

if TYPE_CHECKING:
    from kubesim.apiserver.api import Api


class ReadsMixin:
    """get, list and how an object is presented at a version; mixed into ``api.Api``.

    Methods take ``self: Api`` so that they see all of ``Api`` (mypy calls a mixin's self type a
    ``misc`` error, hence the ignores)."""

    def present(self: Api, rt: ResourceType, obj: Obj, version: str | None = None) -> Obj:  # type: ignore[misc]
        """The object as served at ``version`` (custom resources convert with strategy None)."""
        if version and version != rt.version and rt.custom:
            obj = dict(obj, apiVersion=rt.api_version(version))
        return obj

    def get(self: Api, rt: ResourceType, namespace: str, name: str) -> Obj:  # type: ignore[misc]
        obj = self.store.get(rt.gr, namespace if rt.namespaced else "", name)
        if obj is None:
            raise errors.not_found(rt.plural, rt.group, name)
        return obj

    def list(  # type: ignore[misc]
        self: Api,
        rt: ResourceType,
        namespace: str | None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int = 0,
        continue_token: str = "",
    ) -> ListResult:
        match_labels = parse_label_selector(label_selector)
        match_fields = parse_field_selector(field_selector, None if rt.custom else rt.gr)
        with self.store.lock:
            rv = str(self.store.resource_version)
            items = self.store.items(rt.gr, namespace if rt.namespaced else None)
        selected = [o for o in items if match_labels(o["metadata"].get("labels") or {}) and match_fields(o)]
        selected.sort(key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
        start = ""
        if continue_token:
            try:
                token = json.loads(base64.urlsafe_b64decode(continue_token.encode()))
                start, rv = token["start"], token["rv"]
            except (ValueError, KeyError):
                raise errors.bad_request("continue key is not valid: illegal base64 data") from None
            selected = [
                o
                for o in selected
                if (o["metadata"].get("namespace", "") + "/" + o["metadata"]["name"]) > start
            ]
        if limit and len(selected) > limit:
            page, rest = selected[:limit], selected[limit:]
            last = page[-1]["metadata"]
            token = {"rv": rv, "start": last.get("namespace", "") + "/" + last["name"]}
            return ListResult(
                page, rv, base64.urlsafe_b64encode(json.dumps(token).encode()).decode(), len(rest)
            )
        return ListResult(selected, rv)
