"""``istioctl analyze``'s analyzers a rehearsal relies on (IST0101, IST0102, IST0103, IST0139, IST0158), over
the live cluster state, for the emulator (``istioctl.py``)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from .manifests import NS

if TYPE_CHECKING:
    from .istioctl import Emulator

Obj = dict[str, Any]
SYSTEM_NAMESPACES = {"kube-system", "kube-public", "kube-node-lease", "local-path-storage", NS}


def analyze(ctl: Emulator, namespace: str | None) -> list[tuple[str, str, str, str]]:
    """The analyzers a rehearsal relies on, over the live cluster state."""
    msgs: list[tuple[str, str, str, str]] = []
    namespaces = ctl.list_objects("v1", "Namespace")
    pods = ctl.list_objects("v1", "Pod", namespace)
    services = ctl.list_objects("v1", "Service")
    gateways = ctl.list_objects("networking.istio.io/v1beta1", "Gateway")
    virtual_services = ctl.list_objects("networking.istio.io/v1beta1", "VirtualService", namespace)
    mwcs = ctl.list_objects("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration")
    configmaps = {c["metadata"]["name"]: c for c in ctl.list_objects("v1", "ConfigMap", NS)}

    def injected_ns(ns: Obj) -> bool:
        labels = ns["metadata"].get("labels") or {}
        return labels.get("istio-injection") == "enabled" or "istio.io/rev" in labels

    ns_by_name = {n["metadata"]["name"]: n for n in namespaces}
    for ns in namespaces:
        name = ns["metadata"]["name"]
        if name in SYSTEM_NAMESPACES or (namespace and name != namespace):
            continue
        labels = ns["metadata"].get("labels") or {}
        if "istio-injection" not in labels and "istio.io/rev" not in labels:
            msgs.append(
                (
                    "Info",
                    "IST0102",
                    f"Namespace {name}",
                    "The namespace is not enabled for Istio injection. "
                    f"Run 'kubectl label namespace {name} istio-injection=enabled' to enable it, or 'kubectl "
                    f"label namespace {name} istio-injection=disabled' to explicitly mark it as not needing "
                    "injection.",
                )
            )
    mismatched: dict[str, list[str]] = {}
    for pod in pods:
        meta, spec = pod["metadata"], pod["spec"]
        pod_ns = ns_by_name.get(meta["namespace"])
        if pod_ns is None or meta["namespace"] in SYSTEM_NAMESPACES or not injected_ns(pod_ns):
            continue
        if (
            (meta.get("annotations") or {}).get("sidecar.istio.io/inject") == "false"
            or spec.get("hostNetwork")
            or (meta.get("labels") or {}).get("sidecar.istio.io/inject") == "false"
        ):
            continue
        proxies = [
            c
            for c in (spec.get("containers") or []) + (spec.get("initContainers") or [])
            if c["name"] == "istio-proxy"
        ]
        if not proxies:
            msgs.append(
                (
                    "Warning",
                    "IST0103",
                    f"Pod {meta['namespace']}/{meta['name']}",
                    f"The pod {meta['name']} is missing the Istio proxy. This can often be resolved by "
                    "restarting "
                    "or redeploying the workload.",
                )
            )
            continue
        revision = (meta.get("annotations") or {}).get("istio.io/rev", "default")
        cm = configmaps.get("istio-sidecar-injector" + ("" if revision == "default" else f"-{revision}"))
        if cm is None:
            continue
        values = json.loads((cm.get("data") or {}).get("values") or "{}").get("global", {})
        variant = values.get("variant") or ""
        expected = (
            f"{values.get('hub')}/{(values.get('proxy') or {}).get('image', 'proxyv2')}:{values.get('tag')}"
            + (f"-{variant}" if variant else "")
        )
        if proxies[0]["image"] != expected:
            mismatched.setdefault(meta["namespace"], []).append(meta["name"])
    for mismatched_ns, names in sorted(mismatched.items()):
        msgs.append(
            (
                "Warning",
                "IST0158",
                f"Namespace {mismatched_ns}",
                "The Istio proxy images of the pods running in the "
                f"namespace do not match the image defined in the injection configuration (pod names: "
                f"[{' '.join(sorted(names))}]). This often happens after upgrading the Istio "
                "control-plane and "
                "can be fixed by redeploying the pods.",
            )
        )
    gateway_names = {f"{g['metadata']['namespace']}/{g['metadata']['name']}" for g in gateways}
    service_hosts = {f"{s['metadata']['name']}.{s['metadata']['namespace']}" for s in services}
    for vs in virtual_services:
        meta, spec = vs["metadata"], vs.get("spec") or {}
        origin = f"VirtualService {meta['namespace']}/{meta['name']}"
        for ref in spec.get("gateways") or []:
            if ref == "mesh":
                continue
            full = ref if "/" in ref else f"{meta['namespace']}/{ref}"
            if full not in gateway_names:
                msgs.append(("Error", "IST0101", origin, f'Referenced gateway not found: "{ref}"'))
        for rule in spec.get("http") or []:
            for route in rule.get("route") or []:
                host = (route.get("destination") or {}).get("host", "")
                name, _, rest = host.partition(".")
                ns_part = rest.split(".")[0] if rest else meta["namespace"]
                if f"{name}.{ns_part}" not in service_hosts:
                    msgs.append(("Error", "IST0101", origin, f'Referenced host not found: "{host}"'))
    from kubesim.machinery.selectors import match_label_selector_object

    injection_hooks = []
    for mwc in mwcs:
        for hook in mwc.get("webhooks") or []:
            if "sidecar-injector.istio.io" not in hook.get("name", ""):
                continue
            service = (hook.get("clientConfig") or {}).get("service") or {}
            if service and f"{service.get('name')}.{service.get('namespace')}" not in service_hosts:
                msgs.append(
                    (
                        "Error",
                        "IST0139",
                        f"MutatingWebhookConfiguration {mwc['metadata']['name']}",
                        f"Injector refers to a control plane service that does not exist: "
                        f"{service.get('namespace')}/{service.get('name')}.",
                    )
                )
            injection_hooks.append((mwc["metadata"]["name"], hook))
    # Overlaps are judged on the namespaces that exist, for a pod with no labels, as Istio's analyzer does.
    overlaps: dict[str, set[str]] = {}
    for ns in namespaces:
        ns_labels = ns["metadata"].get("labels") or {}
        matching = [
            (config, hook["name"])
            for config, hook in injection_hooks
            if match_label_selector_object(hook.get("namespaceSelector") or {}, ns_labels)
            and match_label_selector_object(hook.get("objectSelector") or {}, {})
        ]
        if len({config for config, _ in matching}) > 1:
            for config, _ in matching:
                overlaps.setdefault(config, set()).update(f"{c}/{h}" for c, h in matching if c != config)
    for config, others in sorted(overlaps.items()):
        msgs.append(
            (
                "Error",
                "IST0139",
                f"MutatingWebhookConfiguration {config}",
                f"Webhook overlaps with others: [{' '.join(sorted(others))}]. This may cause injection "
                "to occur "
                "twice.",
            )
        )
    return msgs
