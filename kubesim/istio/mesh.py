"""The Istio control plane and data plane as programs of the simulated cluster.

* ``istiod`` (image ``pilot``): ready on ``:8080/ready``; serves ``:15014/version`` and ``/debug/syncz`` (the
  proxies connected to it, which is what ``istioctl version`` and ``proxy-status`` report); answers the
  sidecar injection webhook (``:15017/inject``, a real AdmissionReview) from its revision's
  ``istio-sidecar-injector`` ConfigMap, so pods get the hub/tag of the injector that serves them when they are
  created; validates Istio config (``/validate``).
* ``istio-proxy`` (image ``proxyv2``): connects to a ready istiod of its revision and reports its own version
  (the image tag) to it; ready on ``:15021/healthz/ready`` only while connected. As a sidecar it intercepts
  inbound traffic to the app and counts ``istio_requests_total`` and ``istio_request_duration_milliseconds``
  (``:15020/stats/prometheus``). As the ingress gateway it routes by Gateway and VirtualService (host and path
  prefix) to ready endpoints, answering ``503 no healthy upstream`` or ``404`` as Envoy does.
* ``install-cni`` (the CNI DaemonSet), and the ``istio-init`` / ``istio-validation`` init containers, the
  latter failing on a node whose CNI agent is not ready.
"""

from __future__ import annotations

import base64
import functools
import json
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from istiofacts.catalog import DOCKER_HUB, default_hub, known_versions, minor_of
from kubesim.network import ConnectionRefused, HttpRequest, HttpResponse
from kubesim.node.images import Image, normalize
from kubesim.node.programs import ContainerContext, Program

if TYPE_CHECKING:
    from kubesim.cluster import SimCluster

Obj = dict[str, Any]
NS = "istio-system"
NO_INTERCEPT = {15000, 15001, 15006, 15020, 15021, 15090}


def image_version(image: str) -> str:
    """The Istio version an image runs: its tag without a variant suffix (1.28.2-distroless -> 1.28.2)."""
    ref = normalize(image)
    tag = ref.rsplit(":", 1)[-1] if "@" not in ref else ""
    return tag.split("-")[0] if tag else "unknown"


@dataclass
class ProxyInfo:
    id: str  # <pod>.<namespace>
    version: str
    type: str  # sidecar | gateway
    connected_at: float = field(default_factory=time.time)


class MeshState:
    """Cluster-wide Istio runtime state: running istiods, connected proxies, telemetry."""

    def __init__(self, cluster: SimCluster) -> None:
        self.cluster = cluster
        self.istiods: dict[str, Istiod] = {}  # pod IP -> istiod
        self.proxies: dict[str, Proxy] = {}  # proxy id -> running proxy
        # node -> pod UIDs of the CNI agents running there: during a DaemonSet rollout the old agent stops
        # after the new one started, and must not take the node's readiness with it.
        self.cni_agents: dict[str, set[str]] = {}
        self.lock = threading.Lock()

    def istiod_at(self, ip: str) -> Istiod | None:
        return self.istiods.get(ip)

    def reconnect_all(self) -> None:
        """Proxies whose istiod went away reconnect to a ready one (Envoy retries its xDS stream at once)."""
        for proxy in list(self.proxies.values()):
            proxy.connect()


def mesh_of(cluster: SimCluster) -> MeshState:
    state = cluster.extensions.get("istio")
    if state is None:
        state = cluster.extensions["istio"] = MeshState(cluster)
    return state


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> HttpResponse:
    return HttpResponse(
        status, json.dumps(body).encode(), {"Content-Type": "application/json", **(headers or {})}
    )


class Istiod(Program):
    """The istiod discovery container."""

    def start(self) -> None:
        ctx = self.ctx
        self.mesh = mesh_of(ctx.services)
        labels = ctx.pod["metadata"].get("labels") or {}
        self.revision = labels.get("istio.io/rev", "default")
        self.component = labels.get("istio", "pilot")
        self.version = image_version(ctx.container["image"])
        self.proxies: dict[str, ProxyInfo] = {}
        self.started = time.time()
        for port in (8080, 15010, 15012, 15014, 15017):
            ctx.network.listen(ctx.pod_ip, port, self.handle)
        with self.mesh.lock:
            self.mesh.istiods[ctx.pod_ip] = self
        self._ensure_ca_secret()
        ctx.log(f"info\tistio version: {self.version}")
        ctx.log("info\tads\tAll caches have been synced up, ready to serve")

    def exited(self) -> None:
        """istiod's process is gone: its xDS streams close and the proxies reconnect elsewhere."""
        with self.mesh.lock:
            self.mesh.istiods.pop(self.ctx.pod_ip, None)
        self.proxies.clear()

    def stop(self) -> None:
        self.exited()
        for port in (8080, 15010, 15012, 15014, 15017):
            self.ctx.network.close(self.ctx.pod_ip, port)
        self.proxies.clear()

    def _ensure_ca_secret(self) -> None:
        """istiod's self-signed root CA (istio-ca-secret), created on first start as the real istiod does."""
        from kubesim.apiserver.api import RequestOptions
        from kubesim.machinery.errors import ApiError

        cluster = self.ctx.services
        if cluster.store.get(("", "secrets"), NS, "istio-ca-secret") is not None:
            return
        import secrets as token

        fake_pem = base64.b64encode(
            b"-----BEGIN CERTIFICATE-----\n" + token.token_hex(48).encode() + b"\n-----END CERTIFICATE-----\n"
        ).decode()
        key = base64.b64encode(
            b"-----BEGIN PRIVATE KEY-----\n" + token.token_hex(48).encode() + b"\n-----END PRIVATE KEY-----\n"
        ).decode()
        try:
            cluster.api.create(
                cluster.api.type_of("", "secrets"),
                {
                    "metadata": {"name": "istio-ca-secret", "namespace": NS},
                    "type": "istio.io/ca-root",
                    "data": {
                        "ca-cert.pem": fake_pem,
                        "ca-key.pem": key,
                        "cert-chain.pem": "",
                        "key.pem": "",
                        "root-cert.pem": "",
                    },
                },
                NS,
                RequestOptions(internal=True),
            )
        except ApiError:
            pass

    @property
    def pod_name(self) -> str:
        return str(self.ctx.pod["metadata"]["name"])

    def build_info(self) -> Obj:
        return {
            "version": self.version,
            "revision": _git_sha(self.version),
            "golang_version": minor_of(self.version).go_version if _known(self.version) else "",
            "status": "Clean",
            "tag": self.version,
        }

    def handle(self, request: HttpRequest) -> HttpResponse:
        path = request.path.split("?", 1)[0]
        if path == "/ready":
            return HttpResponse(200, b"")
        if path == "/version":
            return _json(200, self.build_info())
        if path == "/debug/syncz":
            self.mesh.reconnect_all()
            return _json(
                200,
                [
                    {
                        "proxy": p.id,
                        "istio_version": p.version,
                        "proxy_type": p.type,
                        "cluster_id": "Kubernetes",
                        "cds": "SYNCED",
                        "lds": "SYNCED",
                        "eds": "SYNCED",
                        "rds": "SYNCED",
                        "ecds": "NOT SENT",
                        "istiod": self.pod_name,
                        "connected_at": p.connected_at,
                    }
                    for p in self.proxies.values()
                ],
            )
        if path == "/debug/identity":
            return _json(
                200,
                {
                    "Component": "istiod",
                    "ID": self.pod_name,
                    "Info": self.build_info(),
                    "revision": self.revision,
                },
            )
        if path == "/inject":
            return self._inject(request)
        if path == "/validate":
            review = json.loads(request.body or b"{}")
            return _json(
                200,
                {
                    "apiVersion": "admission.k8s.io/v1",
                    "kind": "AdmissionReview",
                    "response": {"uid": review.get("request", {}).get("uid", ""), "allowed": True},
                },
            )
        return HttpResponse(404, b"404 page not found\n")

    def connect(self, proxy: ProxyInfo) -> None:
        self.proxies[proxy.id] = proxy

    def disconnect(self, proxy_id: str) -> None:
        self.proxies.pop(proxy_id, None)

    # -- sidecar injection ----------------------------------------------------------------------------------
    def _inject(self, request: HttpRequest) -> HttpResponse:
        review = json.loads(request.body or b"{}")
        req = review.get("request") or {}
        pod = req.get("object") or {}
        response: Obj = {"uid": req.get("uid", ""), "allowed": True}
        patch = self.injection_patch(
            pod, req.get("namespace") or pod.get("metadata", {}).get("namespace", "")
        )
        if patch:
            response["patchType"] = "JSONPatch"
            response["patch"] = base64.b64encode(json.dumps(patch).encode()).decode()
        return _json(
            200, {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}
        )

    def injection_patch(self, pod: Obj, namespace: str) -> list[Obj]:
        meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
        annotations = meta.get("annotations") or {}
        if annotations.get("sidecar.istio.io/inject") == "false" or any(
            c.get("name") == "istio-proxy"
            for c in (spec.get("containers") or []) + (spec.get("initContainers") or [])
        ):
            return []
        store = self.ctx.services.store
        suffix = "" if self.revision == "default" else f"-{self.revision}"
        cm = store.get(("", "configmaps"), NS, f"istio-sidecar-injector{suffix}")
        values = json.loads((cm or {}).get("data", {}).get("values") or "{}")
        g = values.get("global") or {}
        hub = g.get("hub") or (default_hub(self.version) if _known(self.version) else DOCKER_HUB)
        tag, variant = g.get("tag", self.version), g.get("variant", "")
        proxy_image = annotations.get(
            "sidecar.istio.io/proxyImage"
        ) or f"{hub}/{(g.get('proxy') or {}).get('image', 'proxyv2')}:{tag}" + (
            f"-{variant}" if variant else ""
        )
        cni = bool(
            (values.get("istio_cni") or {}).get("enabled")
            or ((values.get("pilot") or {}).get("cni") or {}).get("enabled")
        )
        injector_version = values.get("version") or self.version
        native = self._native_sidecars(injector_version, spec)
        labels = meta.get("labels") or {}
        app = (
            labels.get("app")
            or labels.get("app.kubernetes.io/name")
            or (meta.get("generateName") or "").rstrip("-")
        )
        canonical_revision = labels.get("version") or labels.get("app.kubernetes.io/version") or "latest"
        discovery = f"istiod{suffix}.{NS}.svc:15012"
        proxy = {
            "name": "istio-proxy",
            "image": proxy_image,
            "args": [
                "proxy",
                "sidecar",
                "--domain",
                "$(POD_NAMESPACE).svc.cluster.local",
                "--proxyLogLevel=warning",
                "--proxyComponentLogLevel=misc:error",
                "--log_output_level=default:info",
            ],
            "ports": [{"containerPort": 15090, "protocol": "TCP", "name": "http-envoy-prom"}],
            "env": [
                {"name": "PROXY_CONFIG", "value": json.dumps({"discoveryAddress": discovery})},
                {
                    "name": "ISTIO_META_APP_CONTAINERS",
                    "value": ",".join(c["name"] for c in spec.get("containers") or []),
                },
                {"name": "ISTIO_META_CLUSTER_ID", "value": "Kubernetes"},
                {"name": "ISTIO_META_WORKLOAD_NAME", "value": app},
                {"name": "ISTIO_META_MESH_ID", "value": "cluster.local"},
            ],
            "readinessProbe": {
                "httpGet": {"path": "/healthz/ready", "port": 15021},
                "initialDelaySeconds": 0,
                "periodSeconds": 15,
                "timeoutSeconds": 3,
                "failureThreshold": 4,
            },
            "securityContext": {
                "allowPrivilegeEscalation": False,
                "privileged": False,
                "readOnlyRootFilesystem": True,
                "runAsGroup": 1337,
                "runAsNonRoot": True,
                "runAsUser": 1337,
                "capabilities": {"drop": ["ALL"]},
            },
            "resources": {
                "requests": {"cpu": "100m", "memory": "128Mi"},
                "limits": {"cpu": "2", "memory": "1Gi"},
            },
            "volumeMounts": [
                {"mountPath": "/var/run/secrets/workload-spiffe-uds", "name": "workload-socket"},
                {"mountPath": "/var/run/secrets/istio", "name": "istiod-ca-cert"},
                {"mountPath": "/var/lib/istio/data", "name": "istio-data"},
                {"mountPath": "/etc/istio/proxy", "name": "istio-envoy"},
                {"mountPath": "/var/run/secrets/tokens", "name": "istio-token"},
                {"mountPath": "/etc/istio/pod", "name": "istio-podinfo"},
            ],
        }
        init_name = "istio-validation" if cni else "istio-init"
        init = {
            "name": init_name,
            "image": proxy_image,
            "args": [
                "istio-iptables",
                "-p",
                "15001",
                "-z",
                "15006",
                "-u",
                "1337",
                "-m",
                "REDIRECT",
                "-i",
                "*",
                "-x",
                "",
                "-b",
                "*",
                "-d",
                "15090,15021,15020",
                "--log_output_level=default:info",
            ]
            + (["--run-validation", "--skip-rule-apply"] if cni else []),
            "securityContext": {
                "allowPrivilegeEscalation": False,
                "privileged": False,
                "readOnlyRootFilesystem": True,
                "runAsGroup": 1337 if cni else 0,
                "runAsNonRoot": bool(cni),
                "runAsUser": 1337 if cni else 0,
                "capabilities": {"drop": ["ALL"]}
                if cni
                else {"add": ["NET_ADMIN", "NET_RAW"], "drop": ["ALL"]},
            },
        }
        volumes = [
            {"name": "workload-socket", "emptyDir": {}},
            {"name": "credential-socket", "emptyDir": {}},
            {"name": "workload-certs", "emptyDir": {}},
            {"name": "istio-envoy", "emptyDir": {"medium": "Memory"}},
            {"name": "istio-data", "emptyDir": {}},
            {
                "name": "istio-podinfo",
                "downwardAPI": {
                    "items": [
                        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                        {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}},
                    ]
                },
            },
            {
                "name": "istio-token",
                "projected": {
                    "sources": [
                        {
                            "serviceAccountToken": {
                                "audience": "istio-ca",
                                "expirationSeconds": 43200,
                                "path": "istio-token",
                            }
                        }
                    ]
                },
            },
            {"name": "istiod-ca-cert", "configMap": {"name": "istio-ca-root-cert"}},
        ]
        status = {
            "initContainers": [init_name, "istio-proxy"] if native else [init_name],
            "containers": None if native else ["istio-proxy"],
            "volumes": [v["name"] for v in volumes],
            "imagePullSecrets": g.get("imagePullSecrets") or None,
            "revision": self.revision,
        }
        ops: list[Obj] = []
        if "initContainers" not in spec:
            ops.append({"op": "add", "path": "/spec/initContainers", "value": []})
        ops.append({"op": "add", "path": "/spec/initContainers/-", "value": init})
        if native:
            ops.append(
                {"op": "add", "path": "/spec/initContainers/-", "value": dict(proxy, restartPolicy="Always")}
            )
        else:
            ops.append({"op": "add", "path": "/spec/containers/-", "value": proxy})
        if "volumes" not in spec:
            ops.append({"op": "add", "path": "/spec/volumes", "value": []})
        ops += [{"op": "add", "path": "/spec/volumes/-", "value": v} for v in volumes]
        secrets = [s for s in g.get("imagePullSecrets") or [] if s]
        if secrets:
            existing = {s.get("name") for s in spec.get("imagePullSecrets") or []}
            if "imagePullSecrets" not in spec:
                ops.append({"op": "add", "path": "/spec/imagePullSecrets", "value": []})
            ops += [
                {"op": "add", "path": "/spec/imagePullSecrets/-", "value": {"name": s}}
                for s in secrets
                if s not in existing
            ]
        new_annotations = dict(annotations)
        new_annotations.update(
            {
                "sidecar.istio.io/status": json.dumps(status, separators=(",", ":")),
                "istio.io/rev": self.revision,
                "kubectl.kubernetes.io/default-container": (spec.get("containers") or [{}])[0].get(
                    "name", ""
                ),
                "kubectl.kubernetes.io/default-logs-container": (spec.get("containers") or [{}])[0].get(
                    "name", ""
                ),
                "prometheus.io/path": "/stats/prometheus",
                "prometheus.io/port": "15020",
                "prometheus.io/scrape": "true",
            }
        )
        ops.append({"op": "add", "path": "/metadata/annotations", "value": new_annotations})
        new_labels = dict(
            labels,
            **{
                "security.istio.io/tlsMode": "istio",
                "service.istio.io/canonical-name": app,
                "service.istio.io/canonical-revision": canonical_revision,
            },
        )
        ops.append({"op": "add", "path": "/metadata/labels", "value": new_labels})
        return ops

    def _native_sidecars(self, injector_version: str, spec: Obj) -> bool:
        """ENABLE_NATIVE_SIDECARS=auto (1.27+): on when the pod's node, or every node, runs kubelet
        >= 1.33."""
        if not _known(injector_version) or not minor_of(injector_version).native_sidecars_default:
            return False
        store = self.ctx.services.store
        node = spec.get("nodeName")
        nodes = [store.get(("", "nodes"), "", node)] if node else store.items(("", "nodes"))

        def new_enough(n: Obj | None) -> bool:
            version = ((n or {}).get("status", {}).get("nodeInfo") or {}).get("kubeletVersion", "v0.0")
            major, minor = version.lstrip("v").split(".")[:2]
            return (int(major), int(minor)) >= (1, 33)

        return bool(nodes) and all(new_enough(n) for n in nodes)


class Telemetry:
    """Istio standard metrics of one proxy, in Prometheus text format."""

    BUCKETS = (
        0.5,
        1,
        5,
        10,
        25,
        50,
        100,
        250,
        500,
        1000,
        2500,
        5000,
        10000,
        30000,
        60000,
        300000,
        600000,
        1800000,
        3600000,
    )

    def __init__(self) -> None:
        self.requests: dict[tuple[tuple[str, str], ...], int] = defaultdict(int)
        self.durations: dict[tuple[tuple[str, str], ...], list[float]] = defaultdict(list)
        self.lock = threading.Lock()

    def record(self, labels: dict[str, str], millis: float) -> None:
        key = tuple(sorted(labels.items()))
        with self.lock:
            self.requests[key] += 1
            self.durations[key].append(millis)

    def render(self) -> str:
        lines = ["# TYPE istio_requests_total counter"]
        with self.lock:
            for key, count in sorted(self.requests.items()):
                lines.append(f"istio_requests_total{{{_labels(key)}}} {count}")
            lines.append("# TYPE istio_request_duration_milliseconds histogram")
            for key, values in sorted(self.durations.items()):
                for bound in self.BUCKETS:
                    n = sum(1 for v in values if v <= bound)
                    lines.append(
                        f'istio_request_duration_milliseconds_bucket{{{_labels(key)},le="{bound:g}"}} {n}'
                    )
                lines.append(
                    f'istio_request_duration_milliseconds_bucket{{{_labels(key)},le="+Inf"}} {len(values)}'
                )
                lines.append(f"istio_request_duration_milliseconds_sum{{{_labels(key)}}} {sum(values):.3f}")
                lines.append(f"istio_request_duration_milliseconds_count{{{_labels(key)}}} {len(values)}")
        return "\n".join(lines) + "\n"


def _labels(key: tuple[tuple[str, str], ...]) -> str:
    return ",".join(f'{k}="{v}"' for k, v in key)


class Proxy(Program):
    """istio-proxy: a sidecar, or the ingress gateway (``proxy router``)."""

    STATUS_PORT = 15021

    def start(self) -> None:
        ctx = self.ctx
        self.mesh = mesh_of(ctx.services)
        meta = ctx.pod["metadata"]
        self.id = f"{meta['name']}.{meta['namespace']}"
        self.version = image_version(ctx.container["image"])
        self.kind = "gateway" if "router" in (ctx.container.get("args") or []) else "sidecar"
        config = json.loads(ctx.env("PROXY_CONFIG", "{}") or "{}")
        self.discovery = config.get("discoveryAddress", f"istiod.{NS}.svc:15012")
        self.drain_seconds = _duration(config.get("terminationDrainDuration", "5s"))
        self.istiod: Istiod | None = None
        self.had_config = False  # Envoy keeps serving its last config when istiod goes away
        self.telemetry = Telemetry()
        labels = meta.get("labels") or {}
        self.workload = labels.get("service.istio.io/canonical-name") or labels.get("app") or meta["name"]
        self.revision = labels.get("service.istio.io/canonical-revision", "latest")
        for port in (15000, 15020, 15021, 15090):
            ctx.network.listen(ctx.pod_ip, port, self.admin)
        if self.kind == "gateway":
            for port in ctx.ports:
                if port not in NO_INTERCEPT:
                    ctx.network.listen(ctx.pod_ip, port, functools.partial(self.route, port=port))
        else:
            ctx.network.intercept(ctx.pod_ip, self.inbound)
        ctx.log(f"info\tVersion {self.version}-{_git_sha(self.version)}-Clean")
        self.mesh.proxies[self.id] = self
        self.connect()

    def on_sigterm(self) -> float | None:
        """pilot-agent drains Envoy for terminationDrainDuration (ProxyConfig, default 5s: istio/api
        mesh/v1alpha1/proxy.proto), still connected to istiod, then exits. As a native sidecar it only gets
        SIGTERM once the app containers have exited (the kubelet's order)."""
        return self.drain_seconds

    def exited(self) -> None:
        """pilot-agent exited: its xDS stream to istiod closes at once."""
        if self.mesh.proxies.get(self.id) is self:
            del self.mesh.proxies[self.id]
        if self.istiod is not None:
            self.istiod.disconnect(self.id)
        self.istiod = None

    def stop(self) -> None:
        self.exited()
        self.ctx.network.intercept(self.ctx.pod_ip, None)
        for port in (15000, 15020, 15021, 15090, *self.ctx.ports):
            if self.kind == "gateway" or port in (15000, 15020, 15021, 15090):
                self.ctx.network.close(self.ctx.pod_ip, port)

    def connect(self) -> bool:
        """Find a ready istiod behind the discovery address and subscribe to it."""
        if (
            self.istiod is not None
            and self.istiod.ctx.pod_ip in self.mesh.istiods
            and self.istiod.proxies.get(self.id) is not None
        ):
            return True
        host = self.discovery.split(":")[0]
        service_name, _, namespace = host.partition(".")
        namespace = namespace.split(".")[0] or NS
        svc = self.ctx.services.store.get(("", "services"), namespace, service_name)
        if svc is None:
            self.istiod = None
            return False
        ip, _ = self.ctx.services.endpoints_for(svc, "15012")
        istiod = self.mesh.istiod_at(ip) if ip else None
        if istiod is None:
            if self.istiod is not None:
                self.ctx.log(f"warning\txds\tdisconnected from {self.discovery}: connection refused")
            self.istiod = None
            return False
        istiod.connect(ProxyInfo(self.id, self.version, self.kind))
        self.had_config = True
        if self.istiod is not istiod:
            self.ctx.log(
                f"info\txds\tconnected to upstream XDS server[1]: {self.discovery} ({istiod.pod_name})"
            )
        self.istiod = istiod
        return True

    def ready(self) -> bool:
        return self.connect() or self.had_config

    def admin(self, request: HttpRequest) -> HttpResponse:
        path = request.path.split("?", 1)[0]
        if path == "/healthz/ready":
            if self.connect() or self.had_config:
                return HttpResponse(200, b"")
            return HttpResponse(
                503,
                b"Envoy proxy is NOT ready: config not received from XDS server "
                b"(is Istiod running?): cds updates: 0 successful, 0 rejected; lds updates: 0 "
                b"successful, 0 rejected\n",
            )
        if path == "/stats/prometheus":
            return HttpResponse(
                200, self.telemetry.render().encode(), {"Content-Type": "text/plain; version=0.0.4"}
            )
        if path == "/server_info":
            return _json(
                200,
                {
                    "version": f"{_git_sha(self.version)}/1.3x/Clean/RELEASE/BoringSSL",
                    "state": "LIVE" if self.istiod else "PRE_INITIALIZING",
                    "node": {"id": self.id, "metadata": {"ISTIO_VERSION": self.version}},
                },
            )
        return HttpResponse(404, b"")

    # -- metadata exchange -----------------------------------------------------------------------------------
    def node_metadata(self) -> dict[str, str]:
        meta = self.ctx.pod["metadata"]
        return {
            "NAME": meta["name"],
            "NAMESPACE": meta["namespace"],
            "WORKLOAD_NAME": self.workload,
            "CLUSTER_ID": "Kubernetes",
            "MESH_ID": "cluster.local",
        }

    def peer_metadata(self) -> str:
        return encode_peer_metadata(self.node_metadata())

    def peer_id(self) -> str:
        """The proxy's node ID, as Envoy's ``--service-node``:
        ``<type>~<ip>~<pod>.<ns>~<ns>.svc.cluster.local``."""
        meta = self.ctx.pod["metadata"]
        kind = "router" if self.kind == "gateway" else "sidecar"
        pod, ns = meta["name"], meta["namespace"]
        return f"{kind}~{self.ctx.pod_ip}~{pod}.{ns}~{ns}.svc.cluster.local"

    def _inbound_service(self, port: int) -> str:
        """The Service (FQDN) whose selector picks this pod and which targets ``port``: what the inbound
        listener's cluster knows as the destination service."""
        meta = self.ctx.pod["metadata"]
        labels = meta.get("labels") or {}
        for svc in self.ctx.services.store.items(("", "services"), meta["namespace"]):
            spec = svc.get("spec") or {}
            selector = spec.get("selector") or {}
            if not selector or any(labels.get(k) != v for k, v in selector.items()):
                continue
            for p in spec.get("ports") or []:
                target = p.get("targetPort", p.get("port"))
                if target == port or self._named_port(target) == port:
                    return f"{svc['metadata']['name']}.{meta['namespace']}.svc.cluster.local"
        return "unknown"

    def _named_port(self, target: Any) -> int | None:
        for container in self.ctx.pod["spec"].get("containers") or []:
            for p in container.get("ports") or []:
                if p.get("name") == target:
                    return int(p["containerPort"])
        return None

    # -- sidecar: inbound interception -----------------------------------------------------------------------
    def inbound(self, request: HttpRequest, port: int, forward: Any) -> HttpResponse:
        started = time.perf_counter()
        request.headers = dict(request.headers)
        # Metadata exchange: read the calling proxy's node metadata, and strip the headers before the app sees
        # them, as Istio's metadata_exchange filter does (istio/proxy extensions/metadata_exchange).
        peer = decode_peer_metadata(request.headers.pop(PEER_METADATA, ""))
        request.headers.pop(PEER_METADATA_ID, None)
        request.headers.setdefault("x-request-id", f"{time.time_ns():x}")
        reject = self.ctx.services.faults.proxy_reject_for(self.ctx.container["image"])
        try:
            if reject is not None:
                response, flags = (
                    HttpResponse(
                        reject.code,
                        b"upstream connect error or disconnect/reset before "
                        b"headers. reset reason: connection termination",
                    ),
                    "UC",
                )
            else:
                response = forward(request)
                flags = "-"
        except ConnectionRefused:
            response, flags = (
                HttpResponse(
                    503,
                    b"upstream connect error or disconnect/reset before headers. "
                    b"reset reason: connection failure",
                ),
                "UF",
            )
        response.headers = dict(
            response.headers,
            server="istio-envoy",
            **{"x-envoy-upstream-service-time": str(int((time.perf_counter() - started) * 1000))},
        )
        source = peer.get("WORKLOAD_NAME", "unknown")
        source_ns = peer.get("NAMESPACE", "unknown")
        meta = self.ctx.pod["metadata"]
        self.telemetry.record(
            {
                "reporter": "destination",
                "source_workload": source,
                "source_workload_namespace": source_ns,
                "source_canonical_service": source,
                "destination_workload": self.workload,
                "destination_workload_namespace": meta["namespace"],
                "destination_canonical_service": self.workload,
                "destination_canonical_revision": self.revision,
                "destination_service": self._inbound_service(port),
                "destination_service_namespace": meta["namespace"],
                "response_code": str(response.status),
                "response_flags": flags,
                "request_protocol": "http",
                "connection_security_policy": "mutual_tls",
            },
            (time.perf_counter() - started) * 1000,
        )
        return response

    # -- gateway: routing ---------------------------------------------------------------------------------
    def route(self, request: HttpRequest, port: int) -> HttpResponse:
        started = time.perf_counter()
        store = self.ctx.services.store
        meta = self.ctx.pod["metadata"]
        host = (request.headers.get("Host") or request.headers.get("host") or "").split(":")[0]
        path = request.path.split("?", 1)[0]

        def done(
            response: HttpResponse, destination: str = "unknown", flags: str = "-", dest_ns: str = "unknown"
        ) -> HttpResponse:
            response.headers = dict(response.headers, server="istio-envoy")
            self.telemetry.record(
                {
                    "reporter": "source",
                    "source_workload": self.workload,
                    "source_workload_namespace": meta["namespace"],
                    "source_canonical_service": self.workload,
                    "destination_service": destination,
                    "destination_service_namespace": dest_ns,
                    "destination_workload": destination.split(".")[0],
                    "destination_workload_namespace": dest_ns,
                    "response_code": str(response.status),
                    "response_flags": flags,
                    "request_protocol": "http",
                    "connection_security_policy": "unknown",
                },
                (time.perf_counter() - started) * 1000,
            )
            return response

        if self.istiod is None and not self.connect():
            return done(HttpResponse(503, b"no healthy upstream"), flags="NR")
        destination = self._match(store, host, path, port)
        if destination is None:
            return done(HttpResponse(404, b""), flags="NR")
        svc_host, svc_port, vs_namespace = destination
        name, _, rest = svc_host.partition(".")
        namespace = rest.split(".")[0] if rest else vs_namespace
        fqdn = f"{name}.{namespace}.svc.cluster.local"
        svc = store.get(("", "services"), namespace, name)
        if svc is None:
            return done(HttpResponse(503, b"no healthy upstream"), fqdn, "UH", namespace)
        ip, target = self.ctx.services.endpoints_for(svc, str(svc_port) if svc_port else "")
        if ip is None:
            return done(HttpResponse(503, b"no healthy upstream"), fqdn, "UH", namespace)
        forwarded = HttpRequest(
            request.method,
            request.path,
            dict(
                request.headers,
                **{
                    PEER_METADATA: self.peer_metadata(),
                    PEER_METADATA_ID: self.peer_id(),
                    "x-forwarded-proto": "http",
                    "x-envoy-external-address": "127.0.0.1",
                },
            ),
            request.body,
        )
        try:
            response = self.ctx.network.request(ip, target, forwarded)
        except ConnectionRefused:
            return done(
                HttpResponse(
                    503,
                    b"upstream connect error or disconnect/reset before headers. reset reason: "
                    b"connection failure",
                ),
                fqdn,
                "UF",
                namespace,
            )
        return done(response, fqdn, "-", namespace)

    def _match(self, store: Any, host: str, path: str, port: int) -> tuple[str, int | None, str] | None:
        labels = self.ctx.pod["metadata"].get("labels") or {}
        service_port = port
        for svc in store.items(("", "services"), self.ctx.pod["metadata"]["namespace"]):
            for p in svc["spec"].get("ports") or []:
                if p.get("targetPort") == port:
                    service_port = p["port"]
        gateways = []
        for gw in store.items(("networking.istio.io", "gateways")):
            selector = (gw.get("spec") or {}).get("selector") or {}
            if selector and all(labels.get(k) == v for k, v in selector.items()):
                for server in (gw.get("spec") or {}).get("servers") or []:
                    if (server.get("port") or {}).get("number") in (service_port, port):
                        gateways.append((gw, server))
        for gw, server in gateways:
            gw_ref = {f"{gw['metadata']['namespace']}/{gw['metadata']['name']}", gw["metadata"]["name"]}
            for vs in sorted(
                store.items(("networking.istio.io", "virtualservices")),
                key=lambda v: v["metadata"]["creationTimestamp"],
            ):
                spec = vs.get("spec") or {}
                refs = set(spec.get("gateways") or [])
                ns = vs["metadata"]["namespace"]
                if not any(r in gw_ref or (ns == gw["metadata"]["namespace"] and r in gw_ref) for r in refs):
                    continue
                if not _host_matches(spec.get("hosts") or [], host) or not _host_matches(
                    server.get("hosts") or [], host, strip_ns=True
                ):
                    continue
                for rule in spec.get("http") or []:
                    matches = rule.get("match") or [{}]
                    if any(_uri_matches(m.get("uri"), path) for m in matches):
                        routes = rule.get("route") or []
                        if not routes:
                            continue
                        dest = routes[0].get("destination") or {}
                        return dest.get("host", ""), (dest.get("port") or {}).get("number"), ns
        return None


# Istio's HTTP metadata exchange headers (istio/proxy extensions/metadata_exchange): the sending proxy's node
# metadata as a base64 serialized google.protobuf.Struct, and its node ID.
PEER_METADATA = "x-envoy-peer-metadata"
PEER_METADATA_ID = "x-envoy-peer-metadata-id"


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def encode_peer_metadata(values: dict[str, str]) -> str:
    """A google.protobuf.Struct of string values in protobuf wire format, base64: Struct.fields (1) is a map
    of entries {key (1), value (2): Value{string_value (3)}}."""
    struct = b"".join(
        _field(1, _field(1, k.encode()) + _field(2, _field(3, v.encode()))) for k, v in sorted(values.items())
    )
    return base64.b64encode(struct).decode()


def decode_peer_metadata(text: str) -> dict[str, str]:
    """The string values of an encoded peer metadata Struct (others skipped); {} when absent or malformed."""

    def fields(data: bytes) -> list[tuple[int, bytes]]:
        out, i = [], 0
        while i < len(data):
            key, i = _read_varint(data, i)
            if key & 7 != 2:
                raise ValueError("only length-delimited fields are expected")
            size, i = _read_varint(data, i)
            out.append((key >> 3, data[i : i + size]))
            i += size
        return out

    try:
        values = {}
        for number, entry in fields(base64.b64decode(text)):
            if number != 1:
                continue
            parts = dict(fields(entry))
            value = dict(fields(parts.get(2, b"")))
            if 3 in value:
                values[parts.get(1, b"").decode()] = value[3].decode()
        return values
    except (ValueError, IndexError, UnicodeDecodeError):
        return {}


def _read_varint(data: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        byte = data[i]
        result |= (byte & 0x7F) << shift
        i += 1
        if not byte & 0x80:
            return result, i
        shift += 7


def _host_matches(hosts: list[str], host: str, strip_ns: bool = False) -> bool:
    for pattern in hosts:
        if strip_ns and "/" in pattern:
            pattern = pattern.split("/", 1)[1]
        if pattern == "*" or pattern == host or (pattern.startswith("*.") and host.endswith(pattern[1:])):
            return True
    return False


def _uri_matches(uri: Obj | None, path: str) -> bool:
    if not uri:
        return True
    if "prefix" in uri:
        return path.startswith(uri["prefix"])
    if "exact" in uri:
        return path == uri["exact"]
    if "regex" in uri:
        import re

        return re.fullmatch(uri["regex"], path) is not None
    return True


class IstioInit(Program):
    """istio-init: sets up iptables redirection and exits."""

    def start(self) -> None:
        self.ctx.log("Istio iptables environment:\nENVOY_PORT=\nINBOUND_CAPTURE_PORT=15006")
        self.ctx.log("iptables-restore --noflush")

    def exit_after(self) -> tuple[float, int] | None:
        return (0.2, 0)


class IstioValidation(Program):
    """istio-validation (with CNI): succeeds only if the node's CNI agent has set up the pod's redirection."""

    def start(self) -> None:
        node = self.ctx.pod["spec"].get("nodeName", "")
        self.ok = bool(mesh_of(self.ctx.services).cni_agents.get(node))
        if self.ok:
            self.ctx.log("info\tValidation passed, iptables rules established")
        else:
            self.ctx.log(
                "error\tValidation failed: iptables rules not established, is the Istio CNI agent "
                f"running on node {node}?"
            )

    def exit_after(self) -> tuple[float, int] | None:
        return (0.2, 0) if self.ok else (0.5, 126)


class InstallCNI(Program):
    """The istio-cni-node agent. A node counts as ready while any agent runs on it: during a DaemonSet update
    the new agent may start before the old one has finished stopping, and the old one's exit must not undo
    it."""

    def start(self) -> None:
        node = self.ctx.pod["spec"].get("nodeName", "")
        mesh_of(self.ctx.services).cni_agents.setdefault(node, set()).add(self.ctx.pod["metadata"]["uid"])
        self.ctx.network.listen(self.ctx.pod_ip, 8000, lambda req: HttpResponse(200, b"ok"))
        self.ctx.log(f"info\tinstall\tInstalled CNI binaries on node {node}")

    def stop(self) -> None:
        node = self.ctx.pod["spec"].get("nodeName", "")
        mesh_of(self.ctx.services).cni_agents.get(node, set()).discard(self.ctx.pod["metadata"]["uid"])
        self.ctx.network.close(self.ctx.pod_ip, 8000)


def proxyv2(ctx: ContainerContext) -> Program:
    """The proxyv2 image runs istio-init, istio-validation or the proxy, by container."""
    name = ctx.container.get("name")
    if name == "istio-init":
        return IstioInit(ctx)
    if name == "istio-validation":
        return IstioValidation(ctx)
    return Proxy(ctx)


def _duration(text: Any) -> float:
    """A protobuf Duration as ProxyConfig writes it (``5s``, ``1.5s``, ``500ms``); 5s when unreadable."""
    value = str(text).strip()
    try:
        return float(value[:-2]) / 1000 if value.endswith("ms") else float(value.rstrip("s"))
    except ValueError:
        return 5.0


def _known(version: str) -> bool:
    try:
        minor_of(version)
        return True
    except ValueError:
        return False


def _git_sha(version: str) -> str:
    import hashlib

    return hashlib.sha1(f"istio-{version}".encode()).hexdigest()


class VersionCommand(Program):
    """``pilot-discovery version``, ``pilot-agent version``, ``install-cni version``: each binary's cobra
    ``version`` subcommand (istio/istio pkg/version/cobra.go, CobraCommand) prints the build info and exits 0
    without starting the component; the harness's image pull check runs the images this way."""

    def start(self) -> None:
        version = image_version(self.ctx.container["image"])
        self.ctx.log(
            f'version.BuildInfo{{Version:"{version}", GitRevision:"{_git_sha(version)}", Status:"Clean"}}'
        )

    def exit_after(self) -> tuple[float, int] | None:
        return (0.1, 0)


def _or_version(program: Any) -> Any:
    def make(ctx: ContainerContext) -> Program:
        argv = [*(ctx.container.get("command") or []), *(ctx.container.get("args") or [])]
        return VersionCommand(ctx) if argv[-1:] == ["version"] else program(ctx)

    return make


def register(cluster: SimCluster, hubs: tuple[str, ...] | None = None) -> None:
    """Teach a cluster to run Istio: the programs, and every known release's images where Istio publishes them
    (catalog ``published_hubs``: Docker Hub for every release, registry.istio.io/release up to 1.30), or in
    ``hubs`` when given."""
    cluster.programs["istiod"] = _or_version(Istiod)
    cluster.programs["proxyv2"] = _or_version(proxyv2)
    cluster.programs["install-cni"] = _or_version(InstallCNI)
    mesh_of(cluster)
    if hubs is not None:
        for hub in hubs:
            mirror(cluster, hub)
        return
    by_hub: dict[str, list[str]] = defaultdict(list)
    for version in known_versions():
        for hub in minor_of(version).published_hubs:
            by_hub[hub].append(version)
    for hub, versions in by_hub.items():
        mirror(cluster, hub, versions)


def mirror(cluster: SimCluster, hub: str, versions: list[str] | None = None) -> None:
    """Put Istio images of ``versions`` (default: all known) in registry ``hub`` (a private mirror, say)."""
    for version in versions or known_versions():
        for variant in ("", "-distroless"):
            cluster.registry.add(
                Image(
                    f"{hub}/pilot:{version}{variant}",
                    program="istiod",
                    user=1337,
                    size=80_000_000,
                    pull_seconds=2.0,
                )
            )
            cluster.registry.add(
                Image(
                    f"{hub}/proxyv2:{version}{variant}",
                    program="proxyv2",
                    user=1337,
                    size=95_000_000,
                    pull_seconds=2.5,
                )
            )
            cluster.registry.add(
                Image(
                    f"{hub}/install-cni:{version}{variant}",
                    program="install-cni",
                    user=0,
                    size=60_000_000,
                    pull_seconds=1.5,
                )
            )
