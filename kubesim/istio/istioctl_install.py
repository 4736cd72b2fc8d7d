"""What ``istioctl install``, ``upgrade`` and ``uninstall`` do to the cluster once the manifest is rendered,
for the emulator (``istioctl.py``) and the simulator's ``serve --istio``: apply component by component with
a readiness wait, prune by ownership labels, uninstall."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from istiofacts import catalog, operator

from . import kubeops, manifests
from .istioctl_args import CommandError
from .manifests import NS

if TYPE_CHECKING:
    from .istioctl import Emulator

Obj = dict[str, Any]


COMPONENT_LINES = [
    ("Base", "Istio core installed \u26f5\ufe0f"),
    ("Pilot", "Istiod installed \U0001f9e0"),
    ("Cni", "CNI installed \U0001faa2"),
    ("IngressGateways", "Ingress gateways installed \U0001f6ec"),
]


def install_objects(ctl: Emulator, objs: list[Obj], settings: manifests.Settings, timeout: float) -> None:
    client = ctl.dynamic()
    try:
        ctl.rest("GET", f"/api/v1/namespaces/{NS}")
    except Exception:
        ctl.rest(
            "POST",
            "/api/v1/namespaces",
            body={
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": NS, "labels": {"topology.istio.io/network": ""}},
            },
        )
    crds = [o for o in objs if o["kind"] == "CustomResourceDefinition"]
    rest = [o for o in objs if o["kind"] != "CustomResourceDefinition"]
    for obj in crds:
        kubeops.apply(client, obj)
    client.resources.invalidate_cache()
    by_component: dict[str, list[Obj]] = {}
    for obj in rest:
        component = (obj["metadata"].get("labels") or {}).get("operator.istio.io/component", "Base")
        by_component.setdefault(component, []).append(obj)
    failures = []
    for component, line in COMPONENT_LINES:
        if component == "Base":
            items = by_component.get("Base", []) + [
                o
                for o in rest
                if o["kind"] in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")
                and "operator.istio.io/component" not in (o["metadata"].get("labels") or {})
            ]
        else:
            items = by_component.get(component, [])
        if not items and component != "Base":
            continue
        name = USER_FACING.get(component, component)
        try:
            for obj in items:
                kubeops.apply(client, obj)
            # Each component waits for its own resources with the whole --readiness-timeout (1.31
            # operator/pkg/install/install.go applyManifestSet -> WaitForResources(..., i.WaitTimeout, ...)).
            deadline = time.monotonic() + timeout
            waiting = [
                f"{o['kind']}/{o['metadata']['namespace']}/{o['metadata']['name']}"
                for o in items
                if o["kind"] in ("Deployment", "DaemonSet")
            ]
            if waiting:
                # Off a terminal istioctl writes its status line once per change, prefixed "- "
                # (operator/pkg/util/progress/progress.go createStatus and SetMessage).
                ctl.say(f"- Processing resources for {name}. Waiting for {', '.join(sorted(waiting))}")
                ctl.flush()
            for obj in items:
                if obj["kind"] in ("Deployment", "DaemonSet"):
                    kubeops.wait_ready(
                        client,
                        obj["kind"],
                        obj["metadata"]["name"],
                        obj["metadata"]["namespace"],
                        max(1.0, deadline - time.monotonic()),
                    )
            ctl.say(f"\u2714 {line}")
            ctl.flush()
        except kubeops.NotReady as exc:
            ctl.say(
                f"\u2718 {name} encountered an error: failed to wait for resource: resources not ready after "
                f"{_go_duration(timeout)}: context deadline exceeded\n  {exc}"
            )
            failures.append(name)
        except Exception as exc:
            raise CommandError(f"failed to install manifests: {exc}") from None
    if failures:
        raise CommandError(
            f"failed to install manifests: errors occurred during operation: {', '.join(failures)} "
            "did not become ready"
        )


USER_FACING = {"Pilot": "Istiod", "IngressGateways": "Ingress gateways", "Cni": "CNI"}


def _go_duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


def prune(ctl: Emulator, rendered: list[Obj], settings: manifests.Settings) -> list[str]:
    """What ``istioctl install`` prunes after applying (1.24+ operator/pkg/install/install.go prune): objects
    carrying this install's ownership labels (this istioctl's version, the revision, a component label) that
    the install no longer renders, unless labelled owning-resource-not-pruned. Returns what it removed, in
    istioctl's ``<group/version, Kind=K>/<name>.<namespace>`` form."""
    owner = operator.apply_time_labels(ctl.version, NS, settings.rev_label)
    selector = ",".join(f"{k}={v}" for k, v in sorted(owner.items())) + ",operator.istio.io/component"
    keep = {(o["kind"], o["metadata"].get("namespace") or "", o["metadata"]["name"]) for o in rendered}
    removed = []
    dyn = ctl.dynamic()
    for api_version, kind in catalog.PRUNED_KINDS:
        resource = dyn.resources.get(api_version=api_version, kind=kind)
        for obj in resource.get(label_selector=selector).items:
            meta = obj.metadata
            labels = dict(meta.labels or {})
            if (kind, meta.namespace or "", meta.name) in keep:
                continue
            if labels.get("install.operator.istio.io/owning-resource-not-pruned") == "true":
                continue
            resource.delete(
                name=meta.name, namespace=meta.namespace, body={"propagationPolicy": "Foreground"}
            )
            gvk = f"{api_version}, Kind={kind}" if "/" in api_version else f"/{api_version}, Kind={kind}"
            removed.append(f"{gvk}/{meta.name}.{meta.namespace or ''}")
    return removed


# The components ``uninstall --revision`` removes: never Base, nor what has no component label
# (operator/pkg/uninstall/prune.go GetPrunedResources, 1.30.0: includeCN).
UNINSTALLED_COMPONENTS = ("Pilot", "IngressGateways", "EgressGateways", "Cni", "Ztunnel")


def uninstall(ctl: Emulator, revision: str, purge: bool) -> list[str]:
    """Delete what an install of ``revision`` created (``--purge``: every revision and the CRDs), as
    operator/pkg/uninstall/prune.go GetPrunedResources (1.30.0): with a revision, the objects labelled
    ``istio.io/rev=<revision>`` of the control plane's components, in every namespace, revision tags left
    alone; a revision that does not exist is refused (operator/cmd/mesh/uninstall.go runUninstall: "could
    not find target revision")."""
    removed = []
    dyn = ctl.dynamic()
    rev_label = revision or "default"
    if revision and not purge:
        known = {
            (o.metadata.labels or {}).get("istio.io/rev")
            for kind in ("MutatingWebhookConfiguration",)
            for o in dyn.resources.get(api_version="admissionregistration.k8s.io/v1", kind=kind).get().items
        } | {
            (o.metadata.labels or {}).get("istio.io/rev", "default")
            for o in dyn.resources.get(api_version="apps/v1", kind="Deployment")
            .get(namespace=NS, label_selector="app=istiod")
            .items
        }
        if rev_label not in known:
            raise CommandError("could not find target revision")
    # uninstall deletes the same kinds install prunes (both from operator/pkg/uninstall/prune.go).
    for api_version, kind in catalog.PRUNED_KINDS:
        resource = dyn.resources.get(api_version=api_version, kind=kind)
        for obj in resource.get().items:
            labels = dict(obj.metadata.labels or {})
            component = labels.get("operator.istio.io/component")
            if purge:
                chosen = component is not None or "istio.io/tag" in labels
            else:
                chosen = component in UNINSTALLED_COMPONENTS and labels.get("istio.io/rev") == rev_label
            if chosen:
                resource.delete(name=obj.metadata.name, namespace=obj.metadata.namespace)
                removed.append(
                    f"{kind}:{obj.metadata.namespace + ':' if obj.metadata.namespace else ''}"
                    f"{obj.metadata.name}"
                )
    if purge:
        crds = dyn.resources.get(api_version="apiextensions.k8s.io/v1", kind="CustomResourceDefinition")
        for crd in crds.get().items:
            if crd.metadata.name.endswith(".istio.io"):
                crds.delete(name=crd.metadata.name)
                removed.append(f"CustomResourceDefinition::{crd.metadata.name}")
    return removed


def installed_state(ctl: Emulator, spec: Obj, settings: manifests.Settings) -> None:
    """The ``installed-state`` IstioOperator: istioctl up to 1.20 saves the install's spec in the Istio
    namespace, named ``installed-state[-<name>][-<revision>]`` (1.20.8 operator/cmd/mesh/install.go
    saveIOPToCluster, operator/pkg/name/name.go InstalledSpecCRPrefix); 1.21 to 1.23 delete the one an older
    istioctl left (1.23.6 operator/cmd/mesh/install.go savedIOPName, DeleteIOPInClusterIfExists);
    1.24+ neither
    save nor delete it."""
    if ctl.minor.at_least("1.24"):
        return
    name = "installed-state" + (f"-{settings.revision}" if settings.revision else "")
    path = f"/apis/install.istio.io/v1alpha1/namespaces/{NS}/istiooperators"
    if ctl.minor.at_least("1.21"):
        try:
            ctl.rest("DELETE", f"{path}/{name}")
        except Exception:  # none was left: nothing to delete
            pass
        return
    body = {
        "apiVersion": "install.istio.io/v1alpha1",
        "kind": "IstioOperator",
        "metadata": {"name": name, "namespace": NS},
        "spec": dict(spec, profile=settings.profile, hub=settings.hub, tag=settings.tag),
    }
    kubeops.apply(ctl.dynamic(), body)
