"""Reads of the simulated API server's request logic: get and list (selectors, pages and continue tokens)."""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Any

from kubesim.apiserver.objects import ListResult, Obj
from kubesim.machinery import errors
from kubesim.machinery.gojson import syntax_error
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
        exact_rv: int | None = None,
    ) -> ListResult:
        """The objects (a page of them with ``limit``) as of now, as of ``exact_rv`` (an Exact list reads
        etcd at that revision: etcd3/store.go GetList ranges at withRev and stamps the list with it), or
        as of a continue token's revision (the pages of one list are one snapshot)."""
        match_labels = parse_label_selector(label_selector)
        match_fields = parse_field_selector(field_selector, None if rt.custom else rt.gr)
        store, scope = self.store, namespace if rt.namespaced else None
        start = ""
        if continue_token:
            start, token_rv = _decode_continue(continue_token)
        with store.lock:
            rv = str(store.resource_version)
            items = store.items(rt.gr, scope)
            if exact_rv is not None:
                past = store.items_at(rt.gr, scope, exact_rv)
                if past is None:
                    # etcd3/errors.go interpretListError: ErrCompacted on a list.
                    raise errors.gone("The resourceVersion for the provided list is too old.")
                items, rv = past, str(exact_rv)
            elif continue_token and int(token_rv) > 0:
                past = store.items_at(rt.gr, scope, int(token_rv))
                if past is None and int(token_rv) < store.compacted_revision():
                    raise _ExpiredContinue(start)
                # A revision the simulator's history no longer reaches (only compaction bounds etcd's):
                # the page comes from the current state.
                items, rv = (past if past is not None else items), token_rv
        selected = [o for o in items if match_labels(o["metadata"].get("labels") or {}) and match_fields(o)]
        selected.sort(key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
        if continue_token:
            selected = [
                o
                for o in selected
                if (o["metadata"].get("namespace", "") + "/" + o["metadata"]["name"]) > start
            ]
        if limit > 0 and len(selected) > limit:
            page, rest = selected[:limit], selected[limit:]
            last = page[-1]["metadata"]
            token = {
                "v": "meta.k8s.io/v1",
                "rv": int(rv),
                "start": last.get("namespace", "") + "/" + last["name"],
            }
            # The remaining count is known only when no selector filtered the items (the storage counts
            # keys); with one, the real server leaves remainingItemCount out.
            remaining = None if label_selector or field_selector else len(rest)
            encoded = base64.urlsafe_b64encode(json.dumps(token, separators=(",", ":")).encode())
            return ListResult(page, rv, encoded.decode().rstrip("="), remaining)
        return ListResult(selected, rv)


class _ExpiredContinue(errors.ApiError):
    """etcd3/errors.go handleCompactedErrorForPaging: a continue token whose revision was compacted is 410,
    and the Status carries a token (revision -1) that continues from the latest revision."""

    MESSAGE = (
        "The provided continue parameter is too old to display a consistent list result. You can start a new "
        "list without the continue parameter, or use the continue token in this response to retrieve the "
        "remainder of the results. Continuing with the provided token results in an inconsistent list - "
        "objects that were created, modified, or deleted between the time the first chunk was returned and "
        "now may show up in the list."
    )

    def __init__(self, start: str) -> None:
        super().__init__(410, "Expired", self.MESSAGE)
        token = {"v": "meta.k8s.io/v1", "rv": -1, "start": start}
        raw = base64.urlsafe_b64encode(json.dumps(token, separators=(",", ":")).encode())
        self.token = raw.decode().rstrip("=")

    def status(self) -> dict[str, Any]:
        body = super().status()
        body["metadata"] = {"continue": self.token}
        return body


def _decode_continue(text: str) -> tuple[str, str]:
    """A continue token: base64 of {"v": "meta.k8s.io/v1", "rv": N, "start": key}, refused as
    apiserver/pkg/storage/continue.go (v1.36) does."""

    def refuse(problem: str) -> errors.ApiError:
        return errors.bad_request(f"invalid continue token: continue key is not valid: {problem}")

    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError:
        raise refuse("illegal base64 data at input byte 0") from None
    try:
        token = json.loads(raw)
    except ValueError:
        raise refuse(syntax_error(raw.decode(errors="replace"))) from None
    if not isinstance(token, dict):
        raise refuse(f"json: cannot unmarshal {_go_type(token)} into Go value of type storage.continueToken")
    for key, wanted in (("v", str), ("rv", int), ("start", str)):
        if key in token and not isinstance(token[key], wanted):
            go_type = "string" if wanted is str else "int64"
            raise refuse(
                f"json: cannot unmarshal {_go_type(token[key])} into Go struct field continueToken.{key} "
                f"of type {go_type}"
            )
    if token.get("v") != "meta.k8s.io/v1":
        raise refuse("got invalid continue key version")
    return str(token.get("start", "")), str(token.get("rv", 0))


def _go_type(value: object) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, dict):
        return "object"
    return "array" if isinstance(value, list) else "string"
