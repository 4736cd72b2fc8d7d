"""An istioctl emulator for the simulated cluster: ``python -m kubesim istioctl --as-version X.Y.Z ARGS``.

It behaves like the istioctl of version X.Y.Z for the commands a rehearsal uses: ``version``, ``x precheck``,
``manifest generate``, ``install``/``upgrade``, ``verify-install`` (only up to 1.23), ``analyze``,
``proxy-status``, ``tag set|list|remove`` and ``uninstall``, with that version's output shapes, messages,
stdout/stderr split and exit codes (64 for usage errors and unknown commands, 79 when analyze finds errors).
Like the real binary it reads ``--kubeconfig``/``KUBECONFIG`` and ``--context``, and talks to the cluster
only through the Kubernetes API: istiod's debug endpoints (``/version``, ``/debug/syncz``) are reached through
the pod proxy subresource.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import yaml

from istiofacts import catalog, operator
from istiofacts.catalog import UnknownVersion, minor_of
from kubesim.istio import kubeops, manifests
from kubesim.istio.istioctl_analyze import analyze
from kubesim.istio.istioctl_args import Args, CommandError, UsageError, command_of, parse
from kubesim.istio.istioctl_format import _duration, _tabulate, human_duration
from kubesim.istio.istioctl_install import install_objects, installed_state, prune, uninstall
from kubesim.istio.mesh import _git_sha

NS = "istio-system"
EXIT_USAGE, EXIT_ANALYZE_PARSE, EXIT_ANALYZE_ISSUES = 64, 65, 79
LEVELS = {"Info": 0, "Warning": 1, "Error": 2}
Obj = dict[str, Any]


class Emulator:
    def __init__(self, version: str, out: TextIO, err: TextIO, stdin: TextIO | None = None) -> None:
        self.version = version
        self.minor = minor_of(version)
        self.out, self.err, self.stdin = out, err, stdin
        self._client: Any = None
        self.args = Args()

    # -- cluster access ----------------------------------------------------------------------------------
    def client(self) -> Any:
        if self._client is None:
            from kubernetes import config

            path = (
                self.args.get("--kubeconfig", "-c")
                or os.environ.get("KUBECONFIG")
                or os.path.expanduser("~/.kube/config")
            )
            try:
                self._client = config.new_client_from_config(
                    config_file=path.split(os.pathsep)[0], context=self.args.get("--context")
                )
            except Exception as exc:
                raise CommandError(f"failed to create API client: {exc}") from None
        return self._client

    def rest(
        self, method: str, path: str, query: list[tuple[str, str]] | None = None, body: Any = None
    ) -> Any:
        """One API request, its JSON answer parsed. Raw REST rather than the typed APIs: importing those
        builds hundreds of model classes, which would cost every emulated command most of a second."""
        api = self.client()
        request = api.param_serialize(
            method,
            path,
            query_params=query or [],
            header_params={"Accept": "application/json", "Content-Type": "application/json"},
            body=body,
            auth_settings=["BearerToken"],
        )
        response = api.call_api(*request, _request_timeout=30)
        response.read()
        if not 200 <= response.status <= 299:
            api.response_deserialize(response, {})  # raises the client's ApiException with status and body
        return json.loads(response.data)

    def dynamic(self) -> Any:
        from kubernetes import dynamic

        return dynamic.DynamicClient(self.client())

    def istiod_get(self, pod: Obj, path: str) -> Any:
        """GET ``path`` of istiod's debug port (15014) through the API server's pod proxy, as istioctl
        does."""
        from kubernetes.client.exceptions import ApiException

        try:
            name = pod["metadata"]["name"]
            return self.rest("GET", f"/api/v1/namespaces/{NS}/pods/{name}:15014/proxy/{path.lstrip('/')}")
        except ApiException as exc:
            raise CommandError(f"failed to reach istiod: {exc.status} {str(exc.body)[:200]}") from None

    def ready_istiods(self, revision: str | None = None) -> list[Obj]:
        items = self.rest("GET", f"/api/v1/namespaces/{NS}/pods", [("labelSelector", "app=istiod")])["items"]
        ready = [
            p
            for p in items
            if p["status"].get("phase") == "Running"
            and not p["metadata"].get("deletionTimestamp")
            and any(
                c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions") or []
            )
        ]
        if revision:
            ready = [p for p in ready if (p["metadata"].get("labels") or {}).get("istio.io/rev") == revision]
        return ready

    def list_objects(self, api_version: str, kind: str, namespace: str | None = None) -> list[Obj]:
        try:
            resource = self.dynamic().resources.get(api_version=api_version, kind=kind)
        except Exception:
            return []
        return [i.to_dict() for i in resource.get(namespace=namespace).items]

    # -- output -------------------------------------------------------------------------------------------
    def say(self, text: str = "") -> None:
        self.out.write(text + "\n")

    def warn(self, text: str) -> None:
        self.err.write(text + "\n")

    def flush(self) -> None:
        """istioctl's progress reaches a pipe as it is written (Go's os.Stdout is unbuffered)."""
        for stream in (self.out, self.err):
            try:
                stream.flush()
            except (AttributeError, ValueError, OSError):
                pass

    # -- dispatch -----------------------------------------------------------------------------------------
    def run(self, argv: list[str]) -> int:
        try:
            self.args = parse(argv, self.version, command_of(argv, self.version))
            words = self.args.positional
            if not words:
                raise UsageError("Istio configuration command line utility.\n\nUsage:\n  istioctl [command]")
            command = words[0]
            handlers: dict[str, Callable[[], int]] = {
                "version": self.cmd_version,
                "manifest": self.cmd_manifest,
                "install": self.cmd_install,
                "upgrade": self.cmd_upgrade,
                "analyze": self.cmd_analyze,
                "proxy-status": self.cmd_proxy_status,
                "ps": self.cmd_proxy_status,
                "tag": self.cmd_tag,
                "uninstall": self.cmd_uninstall,
                "x": self.cmd_experimental,
                "experimental": self.cmd_experimental,
            }
            if self.minor.verify_install:
                handlers["verify-install"] = self.cmd_verify_install
            if command not in handlers:
                self.warn(
                    f'Error: unknown command "{command}" for "istioctl"\nRun \'istioctl --help\' for usage.'
                )
                return EXIT_USAGE
            return handlers[command]()
        except UsageError as exc:
            self.warn(f"Error: {exc}")
            return EXIT_USAGE
        except CommandError as exc:
            self.warn(f"Error: {exc}")
            return 1
        except operator.OperatorError as exc:
            self.warn(f"Error: {exc}")
            return 1

    # -- version ------------------------------------------------------------------------------------------
    def client_info(self) -> Obj:
        return {
            "version": self.version,
            "revision": _git_sha(self.version),
            "golang_version": self.minor.go_version,
            "status": "Clean",
            "tag": self.version,
        }

    def default_revision(self) -> str:
        hooks = self.list_objects("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration")
        for hook in hooks:
            if hook["metadata"]["name"] == "istio-revision-tag-default":
                return (hook["metadata"].get("labels") or {}).get("istio.io/rev", "default")
        return "default"

    def cmd_version(self) -> int:
        output = self.args.get("-o", "--output", default="")
        remote = (self.args.get("--remote", default="true") or "true").lower() != "false"
        revision = self.args.get("-r", "--revision")
        result: Obj = {"clientVersion": self.client_info()}
        if remote:
            if revision is None and self.minor.version_default_revision_only:
                revision = self.default_revision()
            istiods = self.ready_istiods(revision)
            if not istiods:
                self.warn(f'Istio is not present in the cluster: no running Istio pods in "{NS}"')
            else:
                result["meshVersion"] = []
                proxies: dict[str, Obj] = {}
                for pod in istiods:
                    labels = pod["metadata"].get("labels") or {}
                    info = self.istiod_get(pod, "/version")
                    result["meshVersion"].append(
                        {
                            "Component": labels.get("istio", "pilot"),
                            "Revision": labels.get("istio.io/rev", "default"),
                            "Info": info,
                        }
                    )
                    for proxy in self.istiod_get(pod, "/debug/syncz"):
                        proxies[proxy["proxy"]] = {
                            "ID": proxy["proxy"],
                            "IstioVersion": proxy["istio_version"],
                            "Type": proxy["proxy_type"],
                        }
                if proxies:
                    result["dataPlaneVersion"] = sorted(proxies.values(), key=lambda p: p["ID"])
        if output == "json":
            self.say(json.dumps(result, indent=2))
        elif output == "yaml":
            self.say(yaml.safe_dump(result, sort_keys=False).rstrip())
        elif output in ("", "short") or self.args.bool("--short"):
            self.say(f"client version: {self.version}")
            if "meshVersion" in result:
                versions = sorted({m["Info"]["version"] for m in result["meshVersion"]})
                self.say(f"control plane version: {', '.join(versions)}")
                counts: dict[str, int] = {}
                for proxy in result.get("dataPlaneVersion", []):
                    counts[proxy["IstioVersion"]] = counts.get(proxy["IstioVersion"], 0) + 1
                summary = ", ".join(f"{v} ({n} proxies)" for v, n in sorted(counts.items()))
                self.say(f"data plane version: {summary or 'none'}")
        else:
            raise UsageError("--output must be 'yaml' or 'json' or 'short'")
        return 0

    # -- manifest generate ----------------------------------------------------------------------------------
    def cluster_specific_sets(self) -> list[str]:
        """What ``--cluster-specific`` (manifest generate) and every install detect from the cluster: on GKE
        (a server gitVersion with ``-gke``) CNI goes to kube-system, and from 1.24 the gke platform without
        a CNI ResourceQuota (1.30.3 operator/pkg/render/manifest.go clusterSpecificSettings, lines 425-445;
        up to 1.23 operator/pkg/manifest/shared.go getCNISettings: only the namespace)."""
        if "-gke" not in str(self.rest("GET", "/version").get("gitVersion", "")):
            return []
        if not self.minor.at_least("1.24"):
            return ["components.cni.namespace=kube-system"]
        return [
            "components.cni.namespace=kube-system",
            "values.global.platform=gke",
            "values.cni.resourceQuotas.enabled=false",
        ]

    def spec(self, cluster_specific: bool = False) -> Obj:
        detected = self.cluster_specific_sets() if cluster_specific else []
        spec = operator.build_spec(self.args.all("-f", "--filename"), detected + self.args.all("-s", "--set"))
        revision = self.args.get("-r", "--revision")
        if revision:
            spec["revision"] = revision
        return spec

    def cmd_manifest(self) -> int:
        words = self.args.positional
        if len(words) < 2 or words[1] != "generate":
            sub = words[1] if len(words) > 1 else ""
            if sub in ("diff", "profile") and self.minor.at_least("1.24"):
                self.warn(f'Error: unknown command "{sub}" for "istioctl manifest"')
                return EXIT_USAGE
            raise UsageError('manifest requires a subcommand: "generate"')
        objs = manifests.render(self.version, self.spec(self.args.bool("--cluster-specific")))
        self.out.write(manifests.to_yaml(objs))
        return 0

    # -- precheck -------------------------------------------------------------------------------------------
    def cmd_experimental(self) -> int:
        words = self.args.positional
        if len(words) > 1 and words[1] == "precheck":
            return self.cmd_precheck()
        self.warn(f'Error: unknown command "{words[1] if len(words) > 1 else ""}" for "istioctl x"')
        return EXIT_USAGE

    def server_version(self) -> str:
        return str(self.rest("GET", "/version")["gitVersion"]).lstrip("v")

    def cmd_precheck(self) -> int:
        """``x precheck`` as istioctl/pkg/precheck/precheck.go: the Kubernetes version (IST0142), create
        permissions (IST0141, cluster-wide and in the Istio namespace), Gateway API CRD versions (IST0156;
        IST0172 from 1.26), and with ``--from-version 1.N`` the upgrade checks (the zipkin default, N <= 21).
        Messages go to stdout (``Level [CODE] (Origin) text``); when clean, only the success line, on
        stderr."""
        messages: list[tuple[str, str, str, str]] = []  # level, code, origin, text
        from_version = self.args.get("--from-version")
        if from_version is not None:
            major, dot, minor = from_version.partition(".")
            if not dot:
                raise CommandError(f"invalid version {from_version}, expected format like '1.0'")
            if major != "1":
                raise CommandError(f"expected major version 1, got {from_version}")
            if not minor.isdigit():
                raise CommandError(f"minor version is not a number: {minor}")
        if not self.args.bool("--skip-controlplane"):
            messages += self._precheck_cluster()
        if from_version is not None and int(from_version.split(".")[1]) <= 21:
            zipkin = [s for s in self.list_objects("v1", "Service", NS) if s["metadata"]["name"] == "zipkin"]
            if zipkin:
                messages.append(
                    (
                        "Warning",
                        "IST0169",
                        f"Service {NS}/zipkin",
                        "The configuration meshConfig.defaultConfig.tracer changed in release 1.21: tracing "
                        "is no longer by default enabled to send to 'zipkin.istio-system.svc'; follow "
                        "https://istio.io/latest/docs/tasks/observability/distributed-tracing/telemetry-api/ "
                        "[use --set compatibilityVersion=1.21 to keep the old default]",
                    )
                )
        threshold = LEVELS.get(self.args.get("--output-threshold", default="Warning") or "Warning", 1)
        shown = [m for m in messages if LEVELS[m[0]] >= threshold]
        output = self.args.get("-o", "--output", default="log")
        if not shown:
            self.warn(
                "\u2714 No issues found when checking the cluster. Istio is safe to install or upgrade!\n"
                "  To get started, check out https://istio.io/latest/docs/setup/getting-started/."
            )
        elif output == "json":
            self.say(json.dumps([self._message_json(*m) for m in shown], indent=2))
        elif output == "yaml":
            self.say(yaml.safe_dump([self._message_json(*m) for m in shown]).rstrip())
        else:
            for level, code, origin, text in shown:
                self.say(f"{level} [{code}] ({origin}) {text}")
        if any(LEVELS[m[0]] >= LEVELS["Warning"] for m in messages):
            raise CommandError(
                "Issues found when checking the cluster. Istio may not be safe to install or upgrade.\n"
                f"See https://istio.io/v{self.minor.minor}/docs/reference/config/analysis for more "
                "information about causes and resolutions."
            )
        return 0

    def _precheck_cluster(self) -> list[tuple[str, str, str, str]]:
        messages: list[tuple[str, str, str, str]] = []
        git_version = str(self.rest("GET", "/version")["gitVersion"])
        k8s = git_version.lstrip("v")
        minimum = catalog.precheck_min_k8s(self.version)
        if tuple(int(x) for x in k8s.split(".")[:2]) < tuple(int(x) for x in minimum.split(".")):
            messages.append(
                (
                    "Error",
                    "IST0142",
                    "Cluster",
                    f'The Kubernetes Version "{git_version}" is lower than the minimum version: {minimum}',
                )
            )
        namespace = self.args.get("--istioNamespace", "-i", default=NS) or NS
        for group, resource, namespaced in catalog.PRECHECK_PERMISSIONS:
            attributes = {"verb": "create", "group": group, "version": "v1", "resource": resource}
            if namespaced:
                attributes["namespace"] = namespace
            review = self.rest(
                "POST",
                "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                body={
                    "apiVersion": "authorization.k8s.io/v1",
                    "kind": "SelfSubjectAccessReview",
                    "spec": {"resourceAttributes": attributes},
                },
            )
            status = review.get("status") or {}
            if not status.get("allowed"):
                messages.append(
                    (
                        "Error",
                        "IST0141",
                        "Cluster",
                        f"Missing required permission to create resource {resource} "
                        f"({status.get('reason') or 'permission denied'})",
                    )
                )
        for crd in self.list_objects("apiextensions.k8s.io/v1", "CustomResourceDefinition"):
            spec = crd.get("spec") or {}
            if spec.get("group") != "gateway.networking.k8s.io":
                continue
            served = sorted(v["name"] for v in spec.get("versions") or [] if v.get("served"))
            has = ",".join(served) or "none"
            kind = (spec.get("names") or {}).get("kind")
            origin = f"CustomResourceDefinition {crd['metadata']['name']}"
            if kind in catalog.GATEWAY_API_BETA_KINDS and "v1beta1" not in served:
                messages.append(
                    (
                        "Error",
                        "IST0156",
                        origin,
                        f"The Gateway API CRD version {has} is lower than the minimum version: v1beta1",
                    )
                )
            if (
                self.minor.precheck_gateway_api_v1_warning
                and kind in catalog.GATEWAY_API_STABLE_KINDS
                and "v1" not in served
            ):
                messages.append(
                    (
                        "Warning",
                        "IST0172",
                        origin,
                        f"The Gateway API CRD version {has} is lower than the minimum version: v1",
                    )
                )
        return messages

    def _message_json(self, level: str, code: str, origin: str, text: str) -> Obj:
        entry: Obj = {
            "code": code,
            "documentationUrl": f"https://istio.io/v{self.minor.minor}/docs/reference/"
            f"config/analysis/{code.lower()}/?ref=istioctl-analyze",
            "level": level,
            "message": text,
        }
        if origin:
            entry["origin"] = origin
        return entry

    # -- install ---------------------------------------------------------------------------------------------
    def installed_version(self, revision: str) -> str | None:
        for pod in self.ready_istiods(revision or "default"):
            for c in pod["spec"]["containers"]:
                if c["name"] == "discovery":
                    return c["image"].rsplit(":", 1)[-1].split("-")[0]
        return None

    def cmd_upgrade(self) -> int:
        return self.cmd_install(upgrade=True)

    def cmd_install(self, upgrade: bool = False) -> int:
        spec = self.spec(cluster_specific=True)  # install always detects (operator/cmd/mesh/install.go)
        operator.validate(spec, self.version)
        settings = manifests.Settings(self.version, spec)
        k8s = self.server_version()
        minimum = catalog.precheck_min_k8s(self.version)
        if tuple(int(x) for x in k8s.split(".")[:2]) < tuple(int(x) for x in minimum.split(".")):
            self.warn(
                f"! The Kubernetes version {k8s} is not supported by Istio {self.version}. The minimum "
                "supported "
                f"Kubernetes version is {minimum}.\n  Proceeding with the installation, "
                "but you might experience problems. See https://istio.io/latest/docs/releases/supported-releases/"
                " for a list of supported versions."
            )
        current = self.installed_version(settings.revision)
        if not self.args.bool("-y", "--skip-confirmation"):
            prompt = (
                f'This will install the Istio {self.version} profile "{settings.profile}" into the cluster. '
                "Proceed? (y/N) "
            )
            self.out.write(prompt)
            self.out.flush()
            answer = (self.stdin.readline() if self.stdin else "").strip().lower()
            if answer not in ("y", "yes"):
                self.say("Cancelled.")
                return 1
        if current and current != self.version:
            self.warn(
                f"! Istio is being upgraded from {current} to {self.version}.\n"
                "  Running this command will overwrite it; use revisions to upgrade alongside the existing "
                "version.\n  Before upgrading, you may wish to use 'istioctl x precheck' to check for "
                "upgrade "
                "warnings."
            )
        rendered = manifests.render(self.version, spec)
        hooks = self.list_objects("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration")
        default_exists = any(h["metadata"]["name"] == "istio-revision-tag-default" for h in hooks)
        previous_install = any(
            (h["metadata"].get("labels") or {}).get("app") == "sidecar-injector" for h in hooks
        )
        objs = manifests.with_owner_labels(rendered, self.version, spec)
        timeout = _duration(self.args.get("--readiness-timeout", default="5m0s") or "5m0s")
        install_objects(self, objs, settings, timeout)
        for line in prune(self, rendered, settings):
            self.say(f"  Removed {line}.")
        client = self.dynamic()
        for obj in manifests.default_tag_webhooks(rendered, self.version, spec, previous_install):
            kubeops.apply(client, obj)
        installed_state(self, spec, settings)
        self.say("\u2714 Installation complete")
        if not default_exists and not settings.revision:
            self.say("Made this installation the default for cluster-wide operations.")
        return 0

    # -- verify-install (<= 1.23) ---------------------------------------------------------------------------
    def cmd_verify_install(self) -> int:
        objs = manifests.render(self.version, self.spec())
        problems = 0
        for obj in objs:
            kind, name = obj["kind"], obj["metadata"]["name"]
            ns = obj["metadata"].get("namespace")
            where = f"{name}.{ns}" if ns else name
            found = [
                o for o in self.list_objects(obj["apiVersion"], kind, ns) if o["metadata"]["name"] == name
            ]
            if not found:
                self.say(f'\u2718 {kind}: {where}: {kind.lower()}s "{name}" not found')
                problems += 1
                continue
            if kind in ("Deployment", "DaemonSet"):
                if not kubeops.workload_ready(found[0]):
                    status = found[0].get("status") or {}
                    self.say(
                        f"\u2718 {kind}: {where}: {kind} is not ready: {status.get('readyReplicas', 0)}/"
                        f"{(found[0].get('spec') or {}).get('replicas', 1)} ready"
                    )
                    problems += 1
                    continue
            self.say(f"\u2714 {kind}: {where} checked successfully")
        if problems:
            raise CommandError(
                "Istio installation failed, incomplete or does not match "
                f'"{self.args.get("-f", "--filename") or "default profile"}": '
                f"{problems} Istio resources could not be verified"
            )
        self.say(
            f"Checked {len([o for o in objs if o['kind'] == 'CustomResourceDefinition'])} custom resource "
            f"definitions\nChecked {len([o for o in objs if o['kind'] == 'Deployment'])} Istio Deployments"
        )
        self.say("\u2714 Istio is installed and verified successfully")
        return 0

    # -- analyze ---------------------------------------------------------------------------------------------
    def cmd_analyze(self) -> int:
        all_ns = self.args.bool("-A", "--all-namespaces")
        namespace = self.args.get("-n", "--namespace", default="default")
        messages = analyze(self, None if all_ns else namespace)
        threshold = LEVELS.get(self.args.get("--output-threshold", default="Info") or "Info", 0)
        failure = LEVELS.get(self.args.get("--failure-threshold", default="Error") or "Error", 2)
        shown = sorted([m for m in messages if LEVELS[m[0]] >= threshold], key=lambda m: (m[2], m[1]))
        output = self.args.get("-o", "--output", default="log")
        if output in ("json", "yaml"):
            data = [self._message_json(*m) for m in shown]
            self.say(json.dumps(data, indent=2) if output == "json" else yaml.safe_dump(data).rstrip())
            return 0
        if output != "log":
            raise UsageError("--output must be one of: log, json, yaml")
        for level, code, origin, text in shown:
            self.say(f"{level} [{code}] ({origin}) {text}")
        if not shown:
            scope = "all namespaces" if all_ns else f"namespace: {namespace}"
            self.warn(f"\u2714 No validation issues found when analyzing {scope}.")
        if any(LEVELS[m[0]] >= failure for m in messages):
            self.warn(
                "Error: Analyzers found issues when analyzing "
                + ("all namespaces." if all_ns else f"namespace: {namespace}.")
                + f"\nSee https://istio.io/v{self.minor.minor}/docs/reference/config/analysis for more "
                "information about causes and resolutions."
            )
            return EXIT_ANALYZE_ISSUES
        return 0

    # -- proxy-status ----------------------------------------------------------------------------------------
    def cmd_proxy_status(self) -> int:
        output = self.args.get("-o", "--output")
        revision = self.args.get("-r", "--revision")
        rows = []
        responses = []
        for pod in self.ready_istiods(revision):
            proxies = self.istiod_get(pod, "/debug/syncz")
            responses.append((pod, proxies))
            rows += proxies
        if output in ("json", "yaml") and self.minor.proxy_status_json:
            for pod, proxies in responses:
                doc = {
                    "versionInfo": str(int(time.time())),
                    "typeUrl": "type.googleapis.com/envoy.service.status.v3.ClientConfig",
                    "resources": [
                        {
                            "@type": "type.googleapis.com/envoy.service.status.v3.ClientConfig",
                            "node": {
                                "id": p["proxy"],
                                "metadata": {"CLUSTER_ID": "Kubernetes", "ISTIO_VERSION": p["istio_version"]},
                            },
                            "genericXdsConfigs": [
                                {"typeUrl": f"type.googleapis.com/envoy.config.{t}", "configStatus": "SYNCED"}
                                for t in (
                                    "cluster.v3.Cluster",
                                    "listener.v3.Listener",
                                    "endpoint.v3.ClusterLoadAssignment",
                                    "route.v3.RouteConfiguration",
                                )
                            ],
                        }
                        for p in proxies
                    ],
                    "controlPlane": {
                        "identifier": json.dumps(
                            {
                                "Component": "istiod",
                                "ID": pod["metadata"]["name"],
                                "Info": self.istiod_get(pod, "/version"),
                            }
                        )
                    },
                }
                self.say(json.dumps(doc, indent=2) if output == "json" else yaml.safe_dump(doc).rstrip())
            return 0
        if not rows and self.minor.minor == "1.27":
            raise CommandError("no proxies found")
        rows.sort(key=lambda p: p["proxy"])
        if self.minor.proxy_status_columns == "subscribed":
            table = [["NAME", "CLUSTER", "ISTIOD", "VERSION", "SUBSCRIBED TYPES"]] + [
                [p["proxy"], p["cluster_id"], p["istiod"], p["istio_version"], "4 (CDS,LDS,EDS,RDS)"]
                for p in rows
            ]
        else:
            # From 1.23 a synced type carries its age (istioctl/pkg/writer/pilot/status.go formatStatus, with
            # k8s.io/apimachinery duration.HumanDuration).
            def cell(p: Obj, key: str) -> str:
                status = str(p[key])
                if self.minor.at_least("1.23") and status not in ("NOT SENT", "IGNORED"):
                    status += (
                        f" ({human_duration(time.time() - float(p.get('connected_at') or time.time()))})"
                    )
                return status

            table = [["NAME", "CLUSTER", "CDS", "LDS", "EDS", "RDS", "ECDS", "ISTIOD", "VERSION"]] + [
                [
                    p["proxy"],
                    p["cluster_id"],
                    cell(p, "cds"),
                    cell(p, "lds"),
                    cell(p, "eds"),
                    cell(p, "rds"),
                    cell(p, "ecds"),
                    p["istiod"],
                    p["istio_version"],
                ]
                for p in rows
            ]
        self.out.write(_tabulate(table))
        return 0

    # -- tags and uninstall ----------------------------------------------------------------------------------
    def cmd_tag(self) -> int:
        words = self.args.positional
        sub = words[1] if len(words) > 1 else ""
        hooks = self.dynamic().resources.get(
            api_version="admissionregistration.k8s.io/v1", kind="MutatingWebhookConfiguration"
        )
        if sub == "list":
            return self._tag_list()
        if sub in ("set", "generate"):
            # istioctl/pkg/tag/tag.go tagSetCommand: Args, and MarkPersistentFlagRequired("revision") (cobra's
            # own message).
            if len(words) < 3:
                raise UsageError("must provide a tag for modification")
            if len(words) > 3:
                raise UsageError("must provide a single tag for creation")
            tag = words[2]
            revision = self.args.get("-r", "--revision")
            if not revision:
                raise UsageError('required flag(s) "revision" not set')
            if not self.ready_istiods(revision) and not self.list_objects("v1", "Service", NS):
                raise CommandError(f"cannot find MutatingWebhookConfiguration with revision {revision}")
            name = f"istio-revision-tag-{tag}"
            exists = any(
                h["metadata"]["name"] == name
                for h in self.list_objects("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration")
            )
            if exists and not self.args.bool("--overwrite"):
                raise CommandError(f'revision tag "{tag}" already exists, and --overwrite is false')
            settings = manifests.Settings(
                self.version, {"revision": "" if revision == "default" else revision}
            )
            body = {
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "MutatingWebhookConfiguration",
                "metadata": {
                    "name": name,
                    "labels": {"istio.io/rev": revision, "istio.io/tag": tag, "app": "sidecar-injector"},
                },
                "webhooks": manifests.injector_webhooks(settings, tag=tag),
            }
            if sub == "generate":
                self.out.write(yaml.safe_dump(body, sort_keys=False))
                return 0
            if tag == "default":
                # DeactivateIstioInjectionWebhook: the default revision's own injector stops matching.
                for hook in self.list_objects(
                    "admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration"
                ):
                    labels = hook["metadata"].get("labels") or {}
                    if labels.get("istio.io/rev") == "default" and "istio.io/tag" not in labels:
                        off = manifests.deactivated(hook)
                        hooks.patch(
                            name=hook["metadata"]["name"],
                            body={"webhooks": off["webhooks"]},
                            content_type="application/merge-patch+json",
                        )
            hooks.server_side_apply(body=body, field_manager="istio-operator", force_conflicts=True)
            if tag == "default":
                # Generate: the default tag also validates cluster-wide (istiod-default-validator, rendered
                # from the base chart for the revision; istio/istio 1.30.0 istioctl/pkg/tag/generate.go
                # Generate, generateValidatingWebhook).
                validators = self.dynamic().resources.get(
                    api_version="admissionregistration.k8s.io/v1", kind="ValidatingWebhookConfiguration"
                )
                validator = manifests.default_validator(
                    settings, {"istio.io/rev": revision, "istio.io/tag": tag}
                )
                validators.server_side_apply(
                    body=validator, field_manager="istio-operator", force_conflicts=True
                )
            self.say(
                f'Revision tag "{tag}" created, referencing control plane revision "{revision}". To enable '
                f"injection using this\nrevision tag, use 'kubectl label namespace <NAMESPACE> "
                f"istio.io/rev={tag}'"
            )
            return 0
        if sub == "remove":
            return self._tag_remove(words[2] if len(words) > 2 else "")
        raise UsageError(f'unknown command "{sub}" for "istioctl tag"')

    def _tag_list(self) -> int:
        """``tag list`` (istioctl/pkg/tag/tag.go listTags at each tag): up to 1.20 the tag webhooks in the
        API's order; from 1.21 every webhook labelled ``istio.io/rev`` as (tag, revision), a revision's
        untagged row dropped when it has a tag, sorted by revision then tag. NAMESPACES: those labelled
        ``istio.io/rev=<tag>`` (GetNamespacesWithTag). Nothing to list: 1.28 changed the message."""
        hooks = self.list_objects("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration")
        labelled = [h["metadata"].get("labels") or {} for h in hooks]
        if self.minor.at_least("1.21"):
            rows = {
                (lab.get("istio.io/tag", ""), lab["istio.io/rev"])
                for lab in labelled
                if "istio.io/rev" in lab
            }
            tagged = {rev for tag, rev in rows if tag}
            pairs = sorted(
                ((tag, rev) for tag, rev in rows if tag or rev not in tagged), key=lambda p: (p[1], p[0])
            )
        else:
            pairs = [
                (lab["istio.io/tag"], lab.get("istio.io/rev", ""))
                for lab in labelled
                if "istio.io/tag" in lab
            ]
        if not pairs:
            self.say(
                "No Istio revision tags found."
                if self.minor.at_least("1.28")
                else "No Istio revision tag MutatingWebhookConfigurations to list"
            )
            return 0
        namespaces = self.list_objects("v1", "Namespace")
        table = [["TAG", "REVISION", "NAMESPACES"]]
        for tag, rev in pairs:
            names = [
                n["metadata"]["name"]
                for n in namespaces
                if tag and (n["metadata"].get("labels") or {}).get("istio.io/rev") == tag
            ]
            table.append([tag, rev, ",".join(names)])
        self.out.write(_tabulate(table))
        return 0

    def _tag_remove(self, tag: str) -> int:
        """``tag remove`` (istioctl/pkg/tag/tag.go removeTag): the tag's MutatingWebhookConfigurations; from
        1.31 also its ValidatingWebhookConfigurations, which for ``default`` is istiod-default-validator
        (istio/istio 730a2b4, release-1.31 DeleteTagValidatingWebhooks). No such tag is an error, worded as
        each version does (1.28 added tag Services to the lookup)."""
        if not tag:
            raise UsageError("must provide a tag for removal")
        selector = f"istio.io/tag={tag}"
        dyn = self.dynamic()
        mutating = dyn.resources.get(
            api_version="admissionregistration.k8s.io/v1", kind="MutatingWebhookConfiguration"
        )
        found = mutating.get(label_selector=selector).items
        if not found:
            what = (
                "MutatingWebhookConfiguration or Service"
                if self.minor.at_least("1.28")
                else "MutatingWebhookConfiguration"
            )
            raise CommandError(f'cannot remove tag "{tag}": cannot find {what} for tag')
        for hook in found:
            mutating.delete(name=hook.metadata.name)
        if self.minor.at_least("1.31"):
            validating = dyn.resources.get(
                api_version="admissionregistration.k8s.io/v1", kind="ValidatingWebhookConfiguration"
            )
            for hook in validating.get(label_selector=selector).items:
                validating.delete(name=hook.metadata.name)
        self.say(f"Revision tag {tag} removed")
        return 0

    def cmd_uninstall(self) -> int:
        revision = self.args.get("-r", "--revision")
        purge = self.args.bool("--purge")
        if not revision and not purge:
            raise UsageError(
                "at least one of the --revision (or --set revision=<revision>), --filename or --purge "
                "flags should be set"
            )
        removed = uninstall(self, revision or "", purge)
        for line in removed:
            self.say(f"  Removed {line}.")
        self.say("\u2714 Uninstall complete")
        return 0


def main(
    version: str,
    argv: list[str],
    out: TextIO | None = None,
    err: TextIO | None = None,
    stdin: TextIO | None = None,
) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    try:
        emulator = Emulator(version, out, err, stdin if stdin is not None else sys.stdin)
    except UnknownVersion as exc:
        err.write(f"Error: {exc}\n")
        return EXIT_USAGE
    return emulator.run(argv)


def write_executable(version: str, directory: Path) -> Path:
    """An ``istioctl-<version>`` executable in ``directory`` that runs this emulator, for tools that run
    istioctl
    as a program (the rehearsal harness does). Unknown versions are refused here, with the versions known."""
    from istiofacts.catalog import check_known

    check_known(version)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"istioctl-{version}"
    root = Path(__file__).resolve().parent.parent.parent
    path.write_text(
        f"#!{sys.executable}\n# istioctl {version} emulator of the simulated cluster (kubesim)\n"
        f"import sys\nsys.path.insert(0, {str(root)!r})\n"
        f"from kubesim.istio.istioctl import main\nsys.exit(main({version!r}, sys.argv[1:]))\n"
    )
    path.chmod(0o755)
    return path
