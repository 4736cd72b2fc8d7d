"""Images proven pullable before anything changes (harness library, a step of the runbook).

Before the source install and before the apply, every image the render pulls (its Deployments' and DaemonSets'
containers, and the sidecar template's proxy image) is pulled on every node by a short-lived DaemonSet in
istio-system, through the cluster's own credentials: the pull secrets the plan names
(``values.global.imagePullSecrets``) and those on istio-system's ServiceAccounts, as Istio's charts put them.
Each container runs its binary's ``version`` subcommand (pilot-discovery, pilot-agent, install-cni: cobra's
version command in istio/istio pkg/version/cobra.go), so no component starts. An image still failing after the
kubelet's first back-off (``ImagePullBackOff``) stops the run before anything changes, naming the image, its
host, the kubelet's reason and message, and the registry's retirement when that is the cause
(istiofacts.registries). The DaemonSet (and any namespace it needed) carry the run's label (RUN_LABEL) and are
deleted when the check ends; on kind the pulls also warm the nodes for the apply.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from istiofacts import operator, registries

from ..run import StepFailed
from . import ISTIO_NS, OWNED_LABEL, OWNED_VALUE, RUN_LABEL, Rehearsal, wait_for

Obj = dict[str, Any]
NAME = "rehearsal-pull-check"
# The binary each of Istio's images carries (what `<binary> version` runs).
BINARIES = {"pilot": "pilot-discovery", "proxyv2": "pilot-agent", "install-cni": "install-cni"}
FINAL = ("ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull")
PULLED = ("CrashLoopBackOff", "RunContainerError", "CreateContainerError", "CreateContainerConfigError")


def rendered_images(docs: list[Obj]) -> list[str]:
    """Istio's images a render pulls: its workloads' containers and the sidecar template's proxy image."""
    images: list[str] = []
    for doc in docs:
        if doc.get("kind") in ("Deployment", "DaemonSet"):
            pod = doc["spec"]["template"]["spec"]
            images += [c["image"] for c in (pod.get("initContainers") or []) + (pod.get("containers") or [])]
        if doc.get("kind") == "ConfigMap" and doc["metadata"]["name"].startswith("istio-sidecar-injector"):
            values = json.loads((doc.get("data") or {}).get("values") or "{}")
            glob = values.get("global") or {}
            image = (glob.get("proxy") or {}).get("image") or "proxyv2"
            if glob.get("hub") and glob.get("tag"):
                images.append(image if "/" in image else f"{glob['hub']}/{image}:{glob['tag']}")
    return sorted({i for i in images if _binary(i)})


def _binary(image: str) -> str | None:
    name = image.rsplit("/", 1)[-1].split("@")[0].split(":")[0]
    return BINARIES.get(name)


def _host(image: str) -> str:
    first = image.split("/", 1)[0]
    return first if "/" in image and ("." in first or ":" in first) else "docker.io"


def plan_pull_secrets(ctx: Rehearsal, version: str) -> list[str]:
    spec = ctx.settings.install_spec(version)
    return [str(n) for n in operator.get(spec, "values.global.imagePullSecrets") or []]


def cluster_pull_secrets(ctx: Rehearsal) -> list[str]:
    names = []
    for sa in ctx.objects("v1", "ServiceAccount", ISTIO_NS):
        names += [s.get("name") for s in sa.get("imagePullSecrets") or [] if s.get("name")]
    return names


def daemonset(run_id: str, images: list[str], pull_secrets: list[str]) -> Obj:
    labels = {"app": NAME, RUN_LABEL: run_id, OWNED_LABEL: OWNED_VALUE}
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": NAME, "namespace": ISTIO_NS, "labels": labels},
        "spec": {
            "selector": {"matchLabels": {"app": NAME, RUN_LABEL: run_id}},
            "template": {
                "metadata": {"labels": labels, "annotations": {"sidecar.istio.io/inject": "false"}},
                "spec": {
                    "automountServiceAccountToken": False,
                    "terminationGracePeriodSeconds": 0,
                    "tolerations": [{"operator": "Exists"}],  # every node, the control plane's too
                    "imagePullSecrets": [{"name": n} for n in sorted(set(pull_secrets))],
                    "containers": [
                        {
                            "name": f"pull-{i}",
                            "image": image,
                            "imagePullPolicy": "IfNotPresent",
                            "command": [_binary(image), "version"],
                            "resources": {"requests": {"cpu": "1m", "memory": "8Mi"}},
                        }
                        for i, image in enumerate(images)
                    ],
                },
            },
        },
    }


def leaves_as_found(ctx: Rehearsal) -> bool:
    """Whether the cleanup removes what these steps create: on an existing cluster (kubeconfig) it must be
    left as found; a kind cluster is deleted or kept with its mesh (--keep-cluster)."""
    return ctx.cluster.provider == "kubeconfig"


def prove_pullable(ctx: Rehearsal, step: Any, images: list[str], pull_secrets: list[str]) -> None:
    """Pull ``images`` on every node (inside ``step``); raise StepFailed naming what cannot be pulled."""
    if not images:
        step.note("no Istio image to pull")
        return
    namespaces = ctx.kube.resource("v1", "Namespace")
    created_ns = False
    if ISTIO_NS not in {n["metadata"]["name"] for n in ctx.objects("v1", "Namespace")}:
        labels = {RUN_LABEL: ctx.run.run_id, OWNED_LABEL: OWNED_VALUE}
        if leaves_as_found(ctx):
            ctx.journal.push(
                f"delete the {ISTIO_NS} namespace the image pull check created",
                "delete_objects",
                {"objects": [], "namespaces": [ISTIO_NS], "run": ctx.run.run_id},
                registered_by=step.name,
                phase="setup",
            )
        namespaces.create(
            body={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ISTIO_NS, "labels": labels}}
        )
        created_ns = True
    resource = ctx.kube.resource("apps/v1", "DaemonSet")
    body = daemonset(ctx.run.run_id, images, pull_secrets)
    resource.create(namespace=ISTIO_NS, body=body)
    step.add_data("pull check", {"images": images, "pull secrets": sorted(set(pull_secrets))})
    try:
        outcome = wait_for(
            lambda: _judge(ctx, images),
            ctx.settings.timeout,
            f"the images to be pulled on every node ({NAME})",
        )
    finally:
        try:
            resource.delete(name=NAME, namespace=ISTIO_NS, body={"propagationPolicy": "Background"})
        except Exception:
            pass
    # Gone before anything else looks at istio-system's pods (the validations count restarts there).
    wait_for(
        lambda: not ctx.objects("v1", "Pod", ISTIO_NS, f"app={NAME},{RUN_LABEL}={ctx.run.run_id}"),
        ctx.settings.timeout,
        f"the pods of {NAME} to be deleted",
    )
    failures = outcome["failed"]
    step.add_data("pulled", outcome["pulled"])
    if failures:
        raise StepFailed("; ".join(failures))
    step.note(
        f"{len(images)} image(s) pulled on {outcome['nodes']} node(s): {', '.join(images)}"
        + (f" (created namespace {ISTIO_NS})" if created_ns else "")
    )


def _judge(ctx: Rehearsal, images: list[str]) -> dict[str, Any] | None:
    """None while pulls go on; else what was pulled where and what failed (final)."""
    ds = next(iter(ctx.objects("apps/v1", "DaemonSet", ISTIO_NS, f"app={NAME}")), None)
    desired = ((ds or {}).get("status") or {}).get("desiredNumberScheduled") or 0
    pods = [
        p
        for p in ctx.objects("v1", "Pod", ISTIO_NS, f"app={NAME},{RUN_LABEL}={ctx.run.run_id}")
        if not p["metadata"].get("deletionTimestamp")
    ]
    if not desired or len(pods) < desired:
        return None
    pulled: dict[str, list[str]] = {}
    failed: list[str] = []
    pending = False
    for pod in pods:
        node = pod["spec"].get("nodeName") or "?"
        by_name = {s["name"]: s for s in (pod.get("status") or {}).get("containerStatuses") or []}
        for container in pod["spec"]["containers"]:
            status = by_name.get(container["name"]) or {}
            state = status.get("state") or {}
            waiting = (state.get("waiting") or {}).get("reason")
            if "running" in state or "terminated" in state or waiting in PULLED or status.get("lastState"):
                pulled.setdefault(node, []).append(container["image"])
            elif waiting in FINAL:
                failed.append(_failure(ctx, pod, container["image"], node, waiting, state["waiting"]))
            else:
                pending = True
    if pending and not failed:
        return None
    return {"pulled": pulled, "failed": failed, "nodes": len(pods)}


def _failure(ctx: Rehearsal, pod: Obj, image: str, node: str, reason: str, waiting: Obj) -> str:
    """``image`` cannot be pulled: host, the kubelet's reason and message, and the registry's retirement."""
    messages = [
        e.get("message") or ""
        for e in ctx.objects("v1", "Event", ISTIO_NS)
        if (e.get("involvedObject") or {}).get("name") == pod["metadata"]["name"]
        and e.get("reason") in ("Failed", "ErrImagePull")
        and image in (e.get("message") or "")
    ]
    message = (messages[-1] if messages else waiting.get("message") or "").strip()
    retired = registries.unavailable(image, datetime.now(UTC)) if ctx.settings.cluster != "sim" else ""
    if ctx.settings.sim_date:
        from ..early import parse_sim_date

        moment = parse_sim_date(ctx.settings.sim_date)
        retired = registries.unavailable(image, moment) if isinstance(moment, datetime) else ""
    return f"image {image} (host {_host(image)}) cannot be pulled on node {node}: {reason}: {message}" + (
        f" ({retired})" if retired else ""
    )


def check_source(ctx: Rehearsal) -> None:
    """Before the source install (and so for a rollback to it): the source render's images pull."""
    s = ctx.settings
    with ctx.run.step("pull check: source images") as step:
        installed = ctx.state.get("installed")
        if installed is not None and installed.present:
            step.not_needed(f"Istio {s.istio_from} already runs here; its images are on the nodes")
            return
        from ..istio.istioctl import IstioctlFailed
        from .mesh import plan_files

        try:
            text = ctx.istioctl_from.manifest_generate(plan_files(s), s.install_sets(s.istio_from))
        except IstioctlFailed as exc:
            raise StepFailed(f"istioctl {s.istio_from} manifest generate: {exc}") from None
        import yaml

        docs = [d for d in yaml.safe_load_all(text) if d]
        prove_pullable(ctx, step, rendered_images(docs), plan_pull_secrets(ctx, s.istio_from))


def check_target(ctx: Rehearsal, docs: list[Obj]) -> None:
    """Before the apply: the target render's images pull, through the pull secrets on the cluster."""
    s = ctx.settings
    with ctx.run.step("pull check: target images") as step:
        secrets = plan_pull_secrets(ctx, s.istio_to) + cluster_pull_secrets(ctx)
        prove_pullable(ctx, step, rendered_images(docs), secrets)


def create_pull_secrets(ctx: Rehearsal) -> None:
    """``--pull-secret NAME=FILE``: the kubernetes.io/dockerconfigjson Secrets in istio-system and the apps'
    namespace, before the source install, labelled as the run's and journaled for the cleanup. Their data is
    never written to the record, the log or the report (only names)."""
    s = ctx.settings
    if not s.pull_secrets:
        return
    from ..early import pull_secret_body

    with ctx.run.step("pull secrets") as step:
        labels = {RUN_LABEL: ctx.run.run_id, OWNED_LABEL: OWNED_VALUE}
        existing = {n["metadata"]["name"] for n in ctx.objects("v1", "Namespace")}
        created_ns = [ns for ns in dict.fromkeys((ISTIO_NS, s.apps_namespace)) if ns not in existing]
        objects = [
            ["v1", "Secret", ns, text.partition("=")[0]]
            for ns in dict.fromkeys((ISTIO_NS, s.apps_namespace))
            for text in s.pull_secrets
        ]
        if leaves_as_found(ctx):
            ctx.journal.push(
                "delete the pull secrets the rehearsal created",
                "delete_objects",
                {"objects": objects, "namespaces": created_ns, "run": ctx.run.run_id},
                registered_by=step.name,
                phase="setup",
            )
        from .mesh import app_manifests

        # The apps' namespace as the apps declare it (its injection label), labelled as the run's.
        declared = {
            d["metadata"]["name"]: d for d in app_manifests(s, ctx.run.run_id) if d["kind"] == "Namespace"
        }
        namespaces = ctx.kube.resource("v1", "Namespace")
        for ns in created_ns:
            meta = dict((declared.get(ns) or {}).get("metadata") or {"name": ns})
            meta["labels"] = {**(meta.get("labels") or {}), **labels}
            namespaces.create(body={"apiVersion": "v1", "kind": "Namespace", "metadata": meta})
        secrets = ctx.kube.resource("v1", "Secret")
        for _, _, ns, name in objects:
            text = next(t for t in s.pull_secrets if t.partition("=")[0] == name)
            secrets.create(namespace=ns, body=pull_secret_body(text, ns, labels))
        step.note(
            f"Secret(s) {', '.join(t.partition('=')[0] for t in s.pull_secrets)} "
            "(kubernetes.io/dockerconfigjson) "
            f"in {', '.join(dict.fromkeys((ISTIO_NS, s.apps_namespace)))}"
            + (f"; created namespace(s) {', '.join(created_ns)}" if created_ns else "")
        )
