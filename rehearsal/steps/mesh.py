"""Steps that set the stage: provision the cluster, install the source version, deploy the sample apps, and
the traffic and version observations every later step and validation reuses."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import requests

from .. import waits
from ..cluster import Cluster, ClusterError, KindProvider, KubeconfigProvider, SimProvider, SimRegistry
from ..istio import istioctl as istioctl_mod
from ..istio.istioctl import Istioctl, IstioctlError, IstioctlFailed
from ..kube import http_session, load_manifests, with_registry
from ..run import Run, StepFailed
from ..settings import Settings
from . import APPS_NS, ISTIO_NS, OWNED_LABEL, OWNED_VALUE, RUN_LABEL, SAMPLE_APPS, SAMPLE_HOST, Rehearsal
from .detect import InstalledMesh, detect, merged_plan, plan_document


def kind_images(settings: Settings) -> list[str]:
    """The images a rehearsal on kind pulls (Istio's of both versions, the apps'); those Docker already has
    are loaded into the nodes instead of pulled again."""
    images = []
    for version in (settings.istio_from, settings.istio_to):
        spec = settings.install_spec(version)
        hub = (
            spec.get("hub")
            or ((spec.get("values") or {}).get("global") or {}).get("hub")
            or "docker.io/istio"
        )
        components = ["pilot", "proxyv2"] + (
            ["install-cni"] if ((spec.get("components") or {}).get("cni") or {}).get("enabled") else []
        )
        images += [f"{hub}/{name}:{version}" for name in components]
    for doc in app_manifests(settings):
        pod = ((doc.get("spec") or {}).get("template") or {}).get("spec") or {}
        images += [c["image"] for c in (pod.get("containers") or []) + (pod.get("initContainers") or [])]
    return sorted(set(images))


def _sim_calendar(settings: Settings) -> float | None:
    """--sim-date as seconds since 1970 (UTC), or None."""
    from datetime import datetime

    from ..early import parse_sim_date

    moment = parse_sim_date(settings.sim_date) if settings.sim_date else None
    return moment.timestamp() if isinstance(moment, datetime) else None


def provision(settings: Settings, run: Run) -> Cluster:
    """Create (sim, kind) or connect to (kubeconfig) the cluster the rehearsal runs on."""
    with run.step("provision") as step:
        if settings.cluster == "sim":
            # The simulated world has the public registries; the user's own exist only if they say so
            # (--sim-registry), so a mistyped hub fails with ErrImagePull here as on a real cluster.
            try:
                registries = [SimRegistry.parse(text) for text in settings.sim_registries]
            except ClusterError as exc:
                raise StepFailed(str(exc)) from None
            provider: Any = SimProvider(
                k8s_version=settings.k8s_version,
                time_scale=settings.sim_time_scale,
                registries=registries,
                calendar=_sim_calendar(settings),
            )
        elif settings.cluster == "kind":
            provider = KindProvider(
                cluster_name=settings.kind_name,
                keep=settings.keep_cluster,
                preload_images=kind_images(settings),
            )
        else:
            provider = KubeconfigProvider(Path(str(settings.kubeconfig)), settings.context)
        try:
            cluster = provider.provision(run.artifacts)
        except ClusterError as exc:
            raise StepFailed(str(exc)) from None
        run.cluster_name = cluster.stable_name
        step.note(f"{cluster.stable_name}, Kubernetes v{cluster.server_version()}")
        return cluster


def make_istioctl(
    settings: Settings, run: Run, cluster: Cluster, version: str, explicit: str | None
) -> Istioctl:
    """The istioctl of ``version`` for this cluster: an explicit path, else the simulator's emulator on a
    simulated cluster, else the real one (PATH, cache or a verified download)."""
    try:
        if cluster.simulator is not None and not explicit:
            path = cluster.simulator.istioctl(version, run.dir / "bin")
        else:
            path = istioctl_mod.resolve(version, explicit)
    except (IstioctlError, ClusterError) as exc:
        raise StepFailed(str(exc)) from None
    ctl = Istioctl(version, path, cluster.kubeconfig, cluster.context, timeout=settings.timeout + 60)
    ctl.evidence.listeners.append(run.on_command)
    return ctl


def plan_files(settings: Settings) -> list[str]:
    return [settings.plan] if settings.plan else []


def detect_installed(ctx: Rehearsal) -> InstalledMesh:
    """Read what Istio already runs (only read). An existing mesh is rehearsed as it is: ``--istio-from`` must
    match it (when not given, it is taken from it) and its installed settings, with the plan over them,
    become the plan of the upgrade."""
    s = ctx.settings
    with ctx.run.step("detect installed mesh") as step:
        check_restart_namespaces(ctx)
        installed = detect(ctx)
        ctx.state["installed"] = installed
        step.add_data("installed", installed.to_dict())
        if not installed.present:
            step.note("no Istio control plane runs here yet: the rehearsal installs the source version")
            return installed
        running = sorted(set(installed.versions.values()))
        described = ", ".join(f"{v} (revision {r})" for r, v in sorted(installed.versions.items()))
        source = installed.versions.get("default") or running[0]
        if s.istio_from_given and s.istio_from not in running:
            raise StepFailed(
                f"--istio-from {s.istio_from} does not match the cluster, which runs Istio {described}, "
                f"installed by {installed.method}; pass --istio-from {source} (or leave it out)"
            )
        if len(running) > 1:
            raise StepFailed(
                f"the cluster runs several Istio versions at once ({described}): finish that canary upgrade "
                "before rehearsing the next one"
            )
        if installed.method in ("helm", "operator"):
            raise StepFailed(
                f"Istio {described} here is managed by {installed.method}; upgrading it with istioctl or a "
                "plain apply would fight its owner. Rehearse it with the tool that owns it"
            )
        merged = merged_plan(installed, s.plan_spec)
        plan_path = ctx.run.write_artifact("plan-installed-merged.yaml", plan_document(merged))
        ctx.settings = dataclasses.replace(
            s, istio_from=source, istio_from_given=True, plan=str(plan_path), plan_spec=merged
        )
        ctx.run.settings = ctx.settings
        (ctx.run.dir / "settings.json").write_text(json.dumps(ctx.settings.to_dict(), indent=2))
        step.add_artifact(plan_path, "the installed settings with the plan over them", ctx.run.dir)
        step.note(
            f"Istio {described}, installed by {installed.method}; carried over into the plan: "
            + (", ".join(sorted(installed.carried)) or "nothing beyond the defaults")
        )
        return installed


def _injection_labelled(labels: dict[str, Any]) -> bool:
    return labels.get("istio-injection") == "enabled" or bool(labels.get("istio.io/rev"))


def check_restart_namespaces(ctx: Rehearsal) -> None:
    """``--restart-namespaces`` names only namespaces whose workloads get sidecars: each exists and is
    labelled for injection (``istio-injection=enabled`` or ``istio.io/rev``), or is one the run itself
    creates so labelled (the sample apps'). A typo is one line before anything changes, not a restart scope
    that silently leaves the intended namespace on the old sidecars."""
    if not ctx.settings.restart_namespaces:
        return
    check_restart_namespaces_in(
        ctx.settings,
        {n["metadata"]["name"]: n["metadata"].get("labels") or {} for n in ctx.objects("v1", "Namespace")},
    )


def check_restart_namespaces_in(settings: Settings, existing: dict[str, dict[str, str]]) -> None:
    """:func:`check_restart_namespaces` against the cluster's namespaces (name -> labels), read before the
    run takes its Lease: a typo is refused before any request that writes."""
    asked = settings.restart_namespaces
    if not asked:
        return
    created = {
        d["metadata"]["name"]: d["metadata"].get("labels") or {}
        for d in app_manifests(settings)
        if d["kind"] == "Namespace"
    }
    problems = []
    for name in asked:
        labels = existing.get(name, created.get(name))
        if labels is None:
            problems.append(f"namespace {name} does not exist")
        elif not _injection_labelled(labels):
            problems.append(f"namespace {name} is not labelled for sidecar injection")
    if problems:
        injected = sorted(n for n, labels in existing.items() if _injection_labelled(labels))
        raise StepFailed(
            f"--restart-namespaces: {'; '.join(problems)}; injected namespaces here: "
            f"{', '.join(injected) or 'none'}"
        )


def install_source(ctx: Rehearsal) -> None:
    """Install the source version with the plan's settings, unless a mesh already runs (never over it).
    On a cluster that outlives the run, the uninstall is registered first, as the cleanup of this step."""
    s = ctx.settings
    with ctx.run.step("install source") as step:
        installed = ctx.state.get("installed")
        if installed is not None and installed.present:
            step.not_needed(f"Istio {s.istio_from} already runs here; it is rehearsed as it is")
            return
        if ctx.cluster.provider != "sim":
            ctx.journal.push(
                f"uninstall the Istio {s.istio_from} the rehearsal installed",
                "uninstall_istio",
                {"version": s.istio_from},
                registered_by="install source",
                phase="setup",
            )
        try:
            ctx.istioctl_from.install(
                plan_files(s), s.install_sets(s.istio_from), readiness_timeout=f"{int(s.timeout)}s"
            )
        except IstioctlFailed as exc:
            raise StepFailed(f"istioctl {s.istio_from} install failed: {exc}") from None
        hub = s.chosen_hub(s.istio_from)
        why = [n for n in s.hub_notes if n.startswith(f"Istio {s.istio_from} ")]
        if why:
            step.add_data("hub", {"hub": hub, "why": why[0]})
        step.note(f"Istio {s.istio_from} installed" + (f" from {hub}: {why[0]}" if why else ""))


def app_manifests(settings: Settings, run_id: str | None = None) -> list[dict[str, Any]]:
    """The apps the rehearsal serves traffic through: the user's (``--apps``) or the sample apps (in
    ``--apps-namespace``), each object labelled as the harness's, and with ``run_id`` as that run's, so that
    restores and cleanups can tell it from the user's own."""
    if settings.apps:
        docs = load_manifests(settings.apps)
    else:
        docs = with_registry(load_manifests(SAMPLE_APPS, SAMPLE_APPS / "mesh"), settings.apps_registry)
    docs = json.loads(json.dumps(docs))
    if not settings.apps and settings.apps_namespace != APPS_NS:
        for doc in docs:
            meta = doc["metadata"]
            if doc["kind"] == "Namespace" and meta["name"] == APPS_NS:
                meta["name"] = settings.apps_namespace
            elif meta.get("namespace") == APPS_NS:
                meta["namespace"] = settings.apps_namespace
            if doc["kind"] == "VirtualService":
                for route in doc["spec"].get("http") or []:
                    for target in route.get("route") or []:
                        host = target["destination"]["host"]
                        target["destination"]["host"] = host.replace(
                            f".{APPS_NS}.svc", f".{settings.apps_namespace}.svc"
                        )
    if not settings.apps:
        # The sample route matches only a host the harness owns (".invalid" can never be anyone's, RFC 6761):
        # on a gateway shared with other teams, "*" would capture /echo of every host.
        for doc in docs:
            if doc["kind"] == "VirtualService":
                doc["spec"]["hosts"] = [SAMPLE_HOST]
            elif doc["kind"] == "Gateway":
                for server in doc["spec"].get("servers") or []:
                    server["hosts"] = [SAMPLE_HOST]
    for doc in docs:
        labels = doc["metadata"].setdefault("labels", {})
        labels[OWNED_LABEL] = OWNED_VALUE
        if run_id:
            labels[RUN_LABEL] = run_id
    return docs


def _ref(doc: dict[str, Any], default_namespace: str) -> list[str]:
    namespaced = doc["kind"] not in (
        "Namespace",
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
    )
    return [
        doc["apiVersion"],
        doc["kind"],
        (doc["metadata"].get("namespace") or default_namespace) if namespaced else "",
        doc["metadata"]["name"],
    ]


def taken_names(ctx: Rehearsal, docs: list[dict[str, Any]]) -> list[str]:
    """The objects of ``docs`` whose names are already taken by an object this run did not create (the
    user's, or one a rehearsal run left behind): applying over them would adopt them, and the cleanup would
    then delete them."""
    taken = []
    for doc in docs:
        if doc["kind"] == "Namespace":
            continue
        api_version, kind, namespace, name = _ref(doc, "default")
        try:
            resource = ctx.kube.resource(api_version, kind)
        except Exception:
            continue  # a kind the cluster does not serve: no object of it can hold the name
        try:
            found = resource.get(name=name, namespace=namespace or None).to_dict()
        except Exception as exc:
            if getattr(exc, "status", None) == 404:
                continue
            raise
        labels = found["metadata"].get("labels") or {}
        if labels.get(RUN_LABEL) == ctx.run.run_id:
            continue  # this run's own (a retried deploy)
        owner = (
            f"left by rehearsal run {labels[RUN_LABEL]}" if labels.get(RUN_LABEL) else "not the rehearsal's"
        )
        taken.append(f"{kind} {namespace + '/' if namespace else ''}{name} ({owner})")
    return taken


def ensure_injection(ctx: Rehearsal, namespaces: list[str], existing: dict[str, Any], step: Any) -> list[str]:
    """Namespaces the apps go into that the run did not create must inject sidecars, or the sample apps run
    without one and every mesh check judges nothing. A namespace without any injection label gets
    ``istio-injection=enabled`` (journaled first, removed at cleanup); one that says ``disabled`` is the
    owner's choice, and the run stops naming it."""
    labelled = []
    for name in namespaces:
        labels = existing[name]["metadata"].get("labels") or {}
        if _injection_labelled(labels):
            continue
        if "istio-injection" in labels:
            raise StepFailed(
                f"namespace {name} exists with istio-injection={labels['istio-injection']}: the sample apps "
                f"there would run without sidecars; pass --apps-namespace with another name"
            )
        ctx.journal.push(
            f"remove the injection label the rehearsal put on namespace {name}",
            "remove_injection_label",
            {"namespace": name},
            registered_by=step.name,
            phase="setup",
        )
        ctx.kube.resource("v1", "Namespace").patch(
            name=name,
            body={"metadata": {"labels": {"istio-injection": "enabled"}}},
            content_type="application/merge-patch+json",
        )
        labelled.append(name)
    return labelled


def deploy_apps(ctx: Rehearsal) -> None:
    """Deploy the apps; first register their removal (and of namespaces the run creates) as this step's
    cleanup, so the cluster is left as found. Namespaces that already exist are not relabelled or taken
    (except for the injection label the apps need, recorded and removed at cleanup), and a name the user's
    objects already hold stops the run before any change."""
    with ctx.run.step("deploy sample apps" if not ctx.settings.apps else "deploy your apps") as step:
        docs = app_manifests(ctx.settings, ctx.run.run_id)
        existing = {n["metadata"]["name"]: n for n in ctx.objects("v1", "Namespace")}
        taken = taken_names(ctx, docs)
        if taken:
            how = (
                "pass --apps-namespace with a namespace name not in use (the sample apps are created there), "
                "or remove " + ("them" if len(taken) > 1 else "it")
                if not ctx.settings.apps
                else "rename or remove " + ("them" if len(taken) > 1 else "it")
            )
            raise StepFailed(
                f"the apps' names are already taken on this cluster by objects this run did not create: "
                f"{', '.join(taken)}; deploying would take them over and the cleanup would delete them. {how}"
            )
        created_namespaces = [
            d["metadata"]["name"]
            for d in docs
            if d["kind"] == "Namespace" and d["metadata"]["name"] not in existing
        ]
        # An existing namespace stays as its owner has it: applying our Namespace object to it would add
        # labels (and field ownership) the user never asked for.
        docs = [d for d in docs if not (d["kind"] == "Namespace" and d["metadata"]["name"] in existing)]
        objects = [_ref(d, "default") for d in docs if d["kind"] != "Namespace"]
        ctx.journal.push(
            "remove the apps the rehearsal deployed",
            "delete_objects",
            {"objects": objects, "namespaces": created_namespaces, "run": ctx.run.run_id},
            registered_by=step.name,
            phase="setup",
        )
        ctx.state["created"] = [" ".join(o[1:]).strip() for o in objects] + [
            f"Namespace {n}" for n in created_namespaces
        ]
        workload_namespaces = [
            ns
            for ns in dict.fromkeys(
                d["metadata"].get("namespace") or "default"
                for d in docs
                if d["kind"] in ("Deployment", "StatefulSet", "DaemonSet")
            )
            if ns in existing
        ]
        labelled = ensure_injection(ctx, workload_namespaces, existing, step) if not ctx.settings.apps else []
        ctx.kube.invalidate_discovery()
        ctx.kube.apply(docs)
        workloads = [
            (d.get("metadata", {}).get("namespace") or "default", d["kind"], d["metadata"]["name"])
            for d in docs
            if d["kind"] in ("Deployment", "StatefulSet", "DaemonSet")
        ]
        for ns in dict.fromkeys(ns for ns, _, _ in workloads):
            waits.rollouts(ctx.kube, [(k, n) for w, k, n in workloads if w == ns], ns, ctx.settings.timeout)
        step.add_data("created", {"objects": ctx.state["created"], "injection labelled": labelled})
        step.note(
            f"{len(docs)} objects from {ctx.settings.apps or 'sample_apps/'} applied and rolled out"
            + (f" (images from {ctx.settings.apps_registry})" if ctx.settings.apps_registry else "")
            + (f"; namespaces created: {', '.join(created_namespaces)}" if created_namespaces else "")
            + (
                f"; istio-injection=enabled put on existing namespace(s) {', '.join(labelled)} (removed at "
                "cleanup)"
                if labelled
                else ""
            )
        )


def pod_problems(ctx: Rehearsal, namespace: str) -> str:
    """Why pods in ``namespace`` are not ready, in the kubelet's words."""
    reasons = []
    for pod in ctx.objects("v1", "Pod", namespace):
        for status in (pod.get("status") or {}).get("containerStatuses", []) + (pod.get("status") or {}).get(
            "initContainerStatuses", []
        ):
            waiting = (status.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") and waiting["reason"] not in ("PodInitializing", "ContainerCreating"):
                reasons.append(
                    f"{pod['metadata']['name']}/{status['name']}: {waiting['reason']}"
                    + (f" ({waiting.get('message')})" if waiting.get("message") else "")
                )
    events = [e for e in ctx.objects("v1", "Event", namespace) if e.get("type") == "Warning"]
    for event in events[-3:]:
        reasons.append(f"{event.get('reason')}: {event.get('message')}")
    return "; ".join(reasons[:6]) or "no pod reported a reason"


def send_traffic(ctx: Rehearsal, count: int, path: str = "/echo/rehearsal") -> dict[str, Any]:
    """``count`` requests through the ingress gateway (via the API server's service proxy, which reaches a
    ClusterIP gateway as well as a LoadBalancer one, on any cluster), for the host the apps' route matches:
    the sample apps' own host, or ``--probe``/``--probe-host`` for the user's apps. The echo app reports
    which pod answered (mendhak/http-https-echo: ``os.hostname``, the pod's name); no Istio proxy adds a
    header naming itself."""
    session = http_session(ctx.kube.api_client)
    if ctx.settings.probe:
        path = ctx.settings.probe.rstrip("/") + (path[len("/echo") :] if path.startswith("/echo") else "")
        host = ctx.settings.probe_host
    else:
        host = SAMPLE_HOST
    if host:
        session.headers["Host"] = host
    base = (
        f"{ctx.kube.api_client.configuration.host}/api/v1/namespaces/{ISTIO_NS}/services/"
        "istio-ingressgateway:http2/proxy"
    )
    codes: dict[str, int] = {}
    answered_by: dict[str, int] = {}
    failures: list[str] = []
    started = time.monotonic()
    for n in range(count):
        try:
            response = session.get(f"{base}{path}/{n}", timeout=10)
            code = str(response.status_code)
            if response.status_code == 200:
                pod = _answering_pod(response)
                if pod:
                    answered_by[pod] = answered_by.get(pod, 0) + 1
            elif len(failures) < 5:
                failures.append(f"{code}: {response.text[:120]}")
        except requests.RequestException as exc:
            code = type(exc).__name__
            if len(failures) < 5:
                failures.append(code)
        codes[code] = codes.get(code, 0) + 1
    return {
        "requests": count,
        "codes": codes,
        "answered_by": answered_by,
        "failures": failures,
        "seconds": round(time.monotonic() - started, 3),
    }


def _answering_pod(response: requests.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    hostname = (body.get("os") or {}).get("hostname") if isinstance(body, dict) else None
    return str(hostname) if hostname else None


def answering_proxies(ctx: Rehearsal, istioctl: Istioctl, answered_by: dict[str, int]) -> dict[str, Any]:
    """Which proxy served each answering pod, two ways a real cluster tells: the pod's spec (the istio-proxy
    image tag, in containers or, with native sidecars, initContainers) and istioctl's view (the proxy
    ``<pod>.<namespace>`` in ``istioctl version``'s data plane, and the version it reports)."""
    info = istioctl.version_info()
    connected = {p["ID"]: p["IstioVersion"] for p in info.get("dataPlaneVersion", [])}
    pods = {p["metadata"]["name"]: p for p in ctx.objects("v1", "Pod", ctx.apps_ns)}
    by_pod: dict[str, dict[str, Any]] = {}
    for name, requests_served in sorted(answered_by.items()):
        pod = pods.get(name)
        spec_version = None
        if pod is not None:
            for c in (pod["spec"].get("containers") or []) + (pod["spec"].get("initContainers") or []):
                if c["name"] == "istio-proxy":
                    spec_version = c["image"].rsplit(":", 1)[-1].split("-")[0]
        by_pod[name] = {
            "requests": requests_served,
            "pod_spec": spec_version,
            "istioctl": connected.get(f"{name}.{ctx.apps_ns}"),
            "gone": pod is None,
        }
    return by_pod


def echo_request_count(ctx: Rehearsal, problems: list[str] | None = None) -> int:
    """istio_requests_total (reporter=destination, 200) summed over the echo pods, from :15020. A pod that
    cannot be read is named in ``problems`` (no sidecar, so nothing listens on :15020; or the API server's
    one-line answer), at once: nothing that waiting would change is retried."""
    from ..retry import api_error_line, is_api_error

    total = 0
    for pod in ctx.objects("v1", "Pod", ctx.apps_ns, label_selector="app=echo"):
        if pod["metadata"].get("deletionTimestamp") or (pod.get("status") or {}).get("phase") != "Running":
            continue
        name = pod["metadata"]["name"]
        proxies = [
            c
            for c in (pod["spec"].get("containers") or []) + (pod["spec"].get("initContainers") or [])
            if c["name"] == "istio-proxy"
        ]
        if not proxies:
            if problems is not None:
                problems.append(
                    f"pod {ctx.apps_ns}/{name} has no istio-proxy sidecar, so nothing serves its telemetry "
                    f"on :15020 (is namespace {ctx.apps_ns} labelled for injection?)"
                )
            continue
        try:
            text = ctx.kube.get_text(
                f"/api/v1/namespaces/{ctx.apps_ns}/pods/{name}:15020/proxy/stats/prometheus"
            )
        except Exception as exc:
            if problems is not None:
                said = api_error_line(exc) if is_api_error(exc) else str(exc).splitlines()[0]
                problems.append(f"pod {ctx.apps_ns}/{name}: reading :15020/stats/prometheus: {said}")
            continue
        for line in text.splitlines():
            if (
                line.startswith("istio_requests_total{")
                and 'reporter="destination"' in line
                and 'response_code="200"' in line
                and 'destination_workload="echo"' in line
            ):
                total += int(float(line.rsplit(" ", 1)[1]))
    return total


def observe_versions(ctx: Rehearsal, istioctl: Istioctl) -> dict[str, Any]:
    """Control plane and data plane versions, from ``istioctl version -o json`` and from the pod specs."""
    info = istioctl.version_info()
    pods = {}
    for pod in ctx.objects("v1", "Pod"):
        for c in (pod["spec"].get("containers") or []) + (pod["spec"].get("initContainers") or []):
            if c["name"] == "istio-proxy" and not pod["metadata"].get("deletionTimestamp"):
                pods[f"{pod['metadata']['name']}.{pod['metadata']['namespace']}"] = (
                    c["image"].rsplit(":", 1)[-1].split("-")[0]
                )
    return {
        "control_plane": sorted({m["Info"]["version"] for m in info.get("meshVersion", [])}),
        "data_plane": {p["ID"]: p["IstioVersion"] for p in info.get("dataPlaneVersion", [])},
        "pod_specs": pods,
    }


def restart_counts(ctx: Rehearsal) -> dict[str, int]:
    counts = {}
    for ns in (ISTIO_NS, ctx.apps_ns):
        for pod in ctx.objects("v1", "Pod", ns):
            statuses = (pod.get("status") or {}).get("containerStatuses", []) + (pod.get("status") or {}).get(
                "initContainerStatuses", []
            )
            counts[f"{ns}/{pod['metadata']['name']}"] = sum(s.get("restartCount", 0) for s in statuses)
    return counts


def baseline(ctx: Rehearsal) -> dict[str, Any]:
    """Prove the source mesh works before anything changes: versions, traffic, telemetry."""
    with ctx.run.step("baseline") as step:
        versions = observe_versions(ctx, ctx.istioctl_from)
        ctx.run.versions["before"] = versions
        traffic = send_traffic(ctx, ctx.settings.traffic_requests)
        step.add_data("traffic", traffic)
        if traffic["codes"] != {"200": traffic["requests"]}:
            raise StepFailed(
                f"the sample app does not answer through the ingress before the upgrade: "
                f"{json.dumps(traffic['codes'])} {traffic['failures']}"
            )
        # What istioctl analyze already finds before the upgrade is the user's, not the upgrade's doing: only
        # new errors count against it.
        analyze_before = sorted(
            f"{m.level} [{m.code}] ({m.origin}) {m.message}"
            for m in ctx.istioctl_from.analyze()
            if m.level == "Error"
        )
        ctx.state["analyze_before"] = analyze_before
        step.add_data("analyze before the upgrade", analyze_before)
        step.note(
            f"control plane {versions['control_plane']}, {len(versions['data_plane'])} proxies, "
            f"{traffic['requests']} requests answered 200"
            + (f"; {len(analyze_before)} analyze error(s) already present" if analyze_before else "")
        )
        return {"versions": versions, "traffic": traffic, "analyze_before": analyze_before}


def new_analyze_errors(ctx: Rehearsal, errors: list[str]) -> list[str]:
    """The analyze errors that were not there before the upgrade."""
    before = set(ctx.state.get("analyze_before") or [])
    return [e for e in errors if e not in before]
