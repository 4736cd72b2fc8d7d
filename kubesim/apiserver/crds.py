"""CustomResourceDefinitions served as new resources by the simulated API server once established."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kubesim.apiserver.objects import Obj, _version_priority
from kubesim.machinery.resources import ResourceType

if TYPE_CHECKING:
    from kubesim.apiserver.api import Api


class CrdMixin:
    """The resource types of CRDs, and discovery listeners told of changes; mixed into ``api.Api``.

    Methods take ``self: Api`` so that they see all of ``Api`` (mypy calls a mixin's self type a
    ``misc`` error, hence the ignores)."""

    def _crd_changed(self: Api, crd: Obj) -> None:  # type: ignore[misc]
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        served = [v for v in spec.get("versions") or [] if v.get("served", True)]
        if not served or crd["metadata"].get("deletionTimestamp"):
            return
        storage = next((v for v in served if v.get("storage")), served[0])
        ordered = [storage["name"]] + [v["name"] for v in served if v is not storage]
        # kubectl and the dynamic client prefer the newest stable version, as discovery sorts them.
        ordered.sort(key=_version_priority)
        subresources = served[0].get("subresources") or {}
        scale = subresources.get("scale")
        rt = ResourceType(
            group=spec.get("group", ""),
            versions=tuple(ordered),
            kind=names.get("kind", ""),
            plural=names.get("plural", ""),
            namespaced=spec.get("scope", "Namespaced") == "Namespaced",
            short_names=tuple(names.get("shortNames") or ()),
            categories=tuple(names.get("categories") or ()),
            subresources=tuple(k for k in ("status", "scale") if k in subresources),
            singular=names.get("singular", ""),
            schemas={v["name"]: (v.get("schema") or {}).get("openAPIV3Schema") or {} for v in served},
            scale_paths=(
                scale["specReplicasPath"],
                scale["statusReplicasPath"],
                scale.get("labelSelectorPath", ""),
            )
            if scale
            else None,
            custom=True,
            columns=tuple(served[0].get("additionalPrinterColumns") or ()),
        )
        with self._lock:
            if rt.gr not in self._types:
                # The CRD's storage and its watch cache start now, from a list at the current revision
                # (apiextensions-apiserver pkg/apiserver/customresource_handler.go getOrCreateServingInfoFor).
                self.store.start_watch_cache(rt.gr)
            self._types[rt.gr] = rt
        self._notify_discovery()

    def _crd_removed(self: Api, crd: Obj) -> None:  # type: ignore[misc]
        spec = crd.get("spec") or {}
        gr = (spec.get("group", ""), (spec.get("names") or {}).get("plural", ""))
        with self._lock:
            rt = self._types.get(gr)
            if rt is not None and rt.custom:
                del self._types[gr]
                self.store.drop_resource(gr)
        self._notify_discovery()

    def _notify_discovery(self: Api) -> None:  # type: ignore[misc]
        for listener in self.discovery_changed:
            listener()


# Fields the real server sets after it has recorded the creating manager's fields: by admission plugins
# (ServiceAccount, Priority, DefaultTolerationSeconds), the registry strategy (a namespace's finalizer) or the
