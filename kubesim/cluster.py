"""``SimCluster``: one simulated Kubernetes cluster, started in-process.

It puts together the object store, the API server logic and its HTTPS front, the controller manager with
every controller and the kubelets, the simulated registry, the pod network and the fault set; writes a
kubeconfig the official client and kubectl use; and bootstraps what ``kind create cluster`` leaves behind
(nodes named ``<name>-control-plane``/``<name>-worker``, system namespaces, CoreDNS, kube-proxy, kindnet,
the ``kubernetes`` Service). Use it as a context manager::

    with SimCluster(time_scale=0) as cluster:
        api_client = cluster.api_client()
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from kubesim import certs
from kubesim.apiserver.admission import WebhookDispatcher
from kubesim.apiserver.api import Api, RequestOptions, rfc3339
from kubesim.apiserver.server import ApiHTTPServer, make_ssl_context
from kubesim.clock import SimClock
from kubesim.controllers.core import (
    CRDController,
    EndpointsController,
    GarbageCollector,
    HPAController,
    NamespaceController,
    NodeLeaseController,
    PDBController,
    resolve_target_port,
)
from kubesim.controllers.manager import ControllerManager
from kubesim.controllers.nodeports import NodePortController
from kubesim.controllers.workloads import (
    DaemonSetController,
    DeploymentController,
    JobController,
    ReplicaSetController,
    StatefulSetController,
)
from kubesim.faults import Faults
from kubesim.machinery.errors import ApiError
from kubesim.network import PodNetwork
from kubesim.node.images import Image, ImageRegistry
from kubesim.node.kubelet import Kubelet
from kubesim.node.nodes import new_node, node_status
from kubesim.node.programs import PROGRAMS, Program
from kubesim.store import Store, clone

Obj = dict[str, Any]
DEFAULT_K8S_VERSION = "1.33.1"

SYSTEM_IMAGES = (
    Image("registry.k8s.io/coredns/coredns:v1.12.0", program="pause", user=65532, pull_seconds=0.5),
    Image("registry.k8s.io/kube-proxy:v{v}", program="pause", pull_seconds=0.5),
    Image("docker.io/kindest/kindnetd:v20250512-df8de77b", program="pause", pull_seconds=0.5),
)


class SimCluster:
    """A simulated cluster: HTTPS Kubernetes API on 127.0.0.1 plus controllers, kubelets and faults."""

    def __init__(
        self,
        name: str = "rehearsal",
        *,
        k8s_version: str = DEFAULT_K8S_VERSION,
        nodes: int = 1,
        time_scale: float = 1.0,
        clock: SimClock | None = None,
        faults: Faults | None = None,
        kubeconfig: str | Path | None = None,
        system_workloads: bool = True,
        addons: Iterable[Callable[[SimCluster], None]] = (),
    ) -> None:
        if nodes < 1:
            raise ValueError("a cluster needs at least one node")
        self.name = name
        self.k8s_version = k8s_version.lstrip("v")
        self.clock = clock or SimClock(time_scale)
        self.faults = faults or Faults()
        self.store = Store()
        self.api = Api(self.store, self.clock, k8s_version=self.k8s_version)
        self.registry = ImageRegistry()
        if self.clock.calendar_set:
            self.registry.calendar = self.clock.now
        self.network = PodNetwork()
        self.manager = ControllerManager(self.store, self.clock)
        self.node_names = [f"{name}-control-plane"] + [
            f"{name}-worker{'' if i == 1 else i}" for i in range(1, nodes)
        ]
        self.kubeconfig_path = Path(kubeconfig) if kubeconfig else None
        self.system_workloads = system_workloads
        self.token = certs.new_token()
        self._certs = certs.generate()
        self.ca_pem = self._certs.ca_pem
        self._server: ApiHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._events: dict[tuple[str, str, str, str], tuple[str, str]] = {}
        self.extensions: dict[str, Any] = {}  # state of add-ons such as the Istio simulation
        self.programs: dict[str, type[Program]] = dict(PROGRAMS)  # what images run; add-ons add their own
        self.started = False
        webhooks = WebhookDispatcher(self)
        self.api.mutating.append(self._service_account_admission)
        self.api.mutating.append(webhooks.mutate)
        self.api.validating.append(webhooks.validate)
        self.kubelet = Kubelet(self.manager, self)
        self.node_ports = NodePortController(self.manager, self)
        for controller in (
            DeploymentController(self.manager, self),
            ReplicaSetController(self.manager, self),
            DaemonSetController(self.manager, self),
            StatefulSetController(self.manager, self),
            JobController(self.manager, self),
            EndpointsController(self.manager, self),
            GarbageCollector(self.manager, self),
            NamespaceController(self.manager, self),
            CRDController(self.manager, self),
            HPAController(self.manager, self),
            PDBController(self.manager, self),
            NodeLeaseController(self.manager, self),
            self.node_ports,
            self.kubelet,
        ):
            self.manager.register(controller)
        for image in SYSTEM_IMAGES:
            self.registry.add(
                Image(**{**image.__dict__, "reference": image.reference.format(v=self.k8s_version)})
            )
        for addon in addons:
            addon(self)  # e.g. kubesim.istio.addon: Istio's programs, and its released images in the registry

    def set_calendar(self, epoch: float) -> None:
        """Date the simulated world (seconds since 1970, UTC): the clock reads it from now on and Istio's
        registries follow their retirement dates against it (istiofacts.registries)."""
        self.clock.set_calendar(epoch)
        self.registry.calendar = self.clock.now

    # -- lifecycle -----------------------------------------------------------------------------------------
    def start(self) -> SimCluster:
        if self.started:
            return self
        self._server = ApiHTTPServer(self, make_ssl_context(self._certs.cert_pem, self._certs.key_pem))
        # A short poll interval: shutdown() waits for the serving loop to notice, which is once per interval.
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="sim-apiserver", daemon=True
        )
        self._thread.start()
        self._bootstrap()
        self.manager.start()
        self.started = True
        if self.kubeconfig_path is not None:
            self.write_kubeconfig(self.kubeconfig_path)
        return self

    def stop(self) -> None:
        if not self.started:
            return
        self.started = False
        self.store.close()
        self.manager.stop()
        self.node_ports.stop()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> SimCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- access --------------------------------------------------------------------------------------------
    @property
    def server_url(self) -> str:
        assert self._server is not None, "the cluster is not started"
        return f"https://127.0.0.1:{self._server.server_address[1]}"

    @property
    def context(self) -> str:
        return f"kind-{self.name}"

    @property
    def requests_served(self) -> int:
        return self._server.requests_served if self._server else 0

    def kubeconfig(self) -> dict[str, Any]:
        return certs.kubeconfig(self.server_url, self.ca_pem, self.token, self.name)

    def write_kubeconfig(self, path: str | Path) -> Path:
        path = Path(path)
        certs.write_kubeconfig(path, self.kubeconfig())
        self.kubeconfig_path = path
        return path

    def api_client(self) -> Any:
        """A ``kubernetes.client.ApiClient`` for this cluster (no global configuration touched)."""
        from kubernetes import config

        return config.new_client_from_config_dict(self.kubeconfig())

    def version_info(self) -> dict[str, str]:
        major, minor, *_ = self.k8s_version.split(".")
        return {
            "major": major,
            "minor": minor,
            "emulationMajor": major,
            "emulationMinor": minor,
            "minCompatibilityMajor": major,
            "minCompatibilityMinor": str(int(minor) - 1),
            "gitVersion": f"v{self.k8s_version}",
            "gitCommit": "8adc0f041b8e7ad1d30e29cc59c6ae7a15e19828",
            "gitTreeState": "clean",
            "buildDate": "2025-05-15T08:27:33Z",
            "goVersion": "go1.24.2",
            "compiler": "gc",
            "platform": "linux/amd64",
        }

    def node_ip(self, node: str) -> str:
        return f"172.18.0.{self.node_names.index(node) + 2}" if node in self.node_names else ""

    # -- helpers for controllers ---------------------------------------------------------------------------
    def mutate(self, gr: tuple[str, str], obj: Obj, change: Callable[[Obj], Any]) -> Obj | None:
        """Apply ``change`` to a fresh copy of the stored object and write it (read-modify-write)."""
        with self.store.lock:
            meta = obj["metadata"]
            current = self.store.get(gr, meta.get("namespace", ""), meta["name"])
            if current is None or current["metadata"]["uid"] != meta["uid"]:
                return None
            new = clone(current)
            change(new)
            return self.api.write(self.api.type_of(*gr), new)

    def set_status(self, gr: tuple[str, str], obj: Obj, status: Obj) -> Obj | None:
        """Replace an object's status. Stored objects are never mutated, so a shallow copy is enough."""
        with self.store.lock:
            meta = obj["metadata"]
            current = self.store.get(gr, meta.get("namespace", ""), meta["name"])
            if current is None or current["metadata"]["uid"] != meta["uid"]:
                return None
            if (current.get("status") or {}) == status:
                return current
            return self.api.write(self.api.type_of(*gr), dict(current, status=status))

    def event(
        self, obj: Obj, kind: str, reason: str, message: str, component: str, field_path: str | None = None
    ) -> None:
        """Record a core/v1 Event about ``obj``, counting repeats the way the event recorder does."""
        meta = obj["metadata"]
        namespace = meta.get("namespace") or "default"
        now = self.api.now()
        key = (meta["uid"], reason, message, component)
        rt = self.api.type_of("", "events")
        with self.store.lock:
            existing = self._events.get(key)
            if existing is not None:
                current = self.store.get(rt.gr, *existing)
                if current is not None:

                    def bump(e: Obj) -> None:
                        e["count"] = e.get("count", 1) + 1
                        e["lastTimestamp"] = now

                    self.mutate(rt.gr, current, bump)
                    return
            involved = {
                "kind": obj.get("kind"),
                "namespace": meta.get("namespace"),
                "name": meta["name"],
                "uid": meta["uid"],
                "apiVersion": obj.get("apiVersion"),
                "resourceVersion": meta.get("resourceVersion"),
            }
            if field_path:
                involved["fieldPath"] = field_path
            host = {"host": obj["spec"].get("nodeName")} if component == "kubelet" and obj.get("spec") else {}
            event = {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {
                    "name": f"{meta['name']}.{int(self.clock.now() * 1e9):x}"[:253],
                    "namespace": namespace,
                },
                "involvedObject": {k: v for k, v in involved.items() if v is not None},
                "reason": reason,
                "message": message,
                "source": {"component": component, **host},
                "firstTimestamp": now,
                "lastTimestamp": now,
                "count": 1,
                "type": kind,
                "eventTime": None,
                "reportingComponent": component,
                "reportingInstance": host.get("host", ""),
            }
            while self.store.get(rt.gr, namespace, event["metadata"]["name"]) is not None:
                event["metadata"]["name"] += "0"
            try:
                created = self.api.create(rt, event, namespace, RequestOptions(internal=True))
            except ApiError:
                return
            self._events[key] = (namespace, created["metadata"]["name"])

    def endpoints_for(self, service: Obj, port_text: str) -> tuple[str | None, int]:
        """A ready endpoint (pod IP, target port) of ``service`` for the service port named or numbered."""
        ports = service["spec"].get("ports") or []
        port = next(
            (
                p
                for p in ports
                if port_text and (str(p.get("port")) == port_text or p.get("name") == port_text)
            ),
            ports[0] if ports else None,
        )
        if port is None:
            return None, 0
        selector = service["spec"].get("selector") or {}
        namespace = service["metadata"]["namespace"]
        if not selector:
            return None, 0
        from kubesim.controllers.workloads import pod_ready

        pods = sorted(
            (
                p
                for p in self.store.items(("", "pods"), namespace)
                if all((p["metadata"].get("labels") or {}).get(k) == v for k, v in selector.items())
                and pod_ready(p)
                and not p["metadata"].get("deletionTimestamp")
                and p["status"].get("podIP")
            ),
            key=lambda p: p["metadata"]["name"],
        )
        for pod in pods:
            target = resolve_target_port(port, pod)
            if target is not None:
                return pod["status"]["podIP"], target
        return None, 0

    # -- waiting ---------------------------------------------------------------------------------------------
    def settle(self, timeout: float = 30.0) -> None:
        self.manager.settle(timeout)

    def pass_time(self, seconds: float, step: float = 1.0, until: Callable[[], bool] | None = None) -> None:
        """With a manual clock (tests): move it ``seconds`` forward, ``step`` at a time, letting controllers
        and kubelets act on what is due (``settle``) before the first move and after each; stop early once
        ``until()`` holds after a settle."""
        if not self.clock.manual:
            raise RuntimeError(
                "pass_time needs a manual clock (SimClock.manual_clock()); this one runs itself"
            )
        self.settle()
        moved = 0.0
        while moved < seconds and not (until is not None and until()):
            self.clock.advance(step)
            self.settle()
            moved += step

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
        """Block until ``predicate()`` is truthy; woken by every change, bounded by ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            with self.store.lock:
                result = predicate()
            if result:
                return result
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                errors = "\n".join(self.manager.errors[-3:])
                raise TimeoutError(
                    f"timed out after {timeout:g}s waiting for {what}"
                    + (f"\ncontroller errors:\n{errors}" if errors else "")
                )
            self.store.wait(min(remaining, 0.25))

    # -- bootstrap -------------------------------------------------------------------------------------------
    def _service_account_admission(
        self, operation: str, rt: Any, obj: Obj, old: Obj | None, opts: RequestOptions
    ) -> Obj:
        """The ServiceAccount admission plugin: mount the projected API token volume into pods."""
        if (
            rt.gr != ("", "pods")
            or operation != "CREATE"
            or obj["spec"].get("automountServiceAccountToken") is False
        ):
            return obj
        volumes = obj["spec"].setdefault("volumes", [])
        if any(v.get("name", "").startswith("kube-api-access-") for v in volumes):
            return obj
        from kubesim.apiserver.api import _random_suffix

        name = f"kube-api-access-{_random_suffix()}"
        volumes.append(
            {
                "name": name,
                "projected": {
                    "defaultMode": 420,
                    "sources": [
                        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                        {
                            "configMap": {
                                "name": "kube-root-ca.crt",
                                "items": [{"key": "ca.crt", "path": "ca.crt"}],
                            }
                        },
                        {
                            "downwardAPI": {
                                "items": [
                                    {
                                        "path": "namespace",
                                        "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"},
                                    }
                                ]
                            }
                        },
                    ],
                },
            }
        )
        for container in (obj["spec"].get("containers") or []) + (obj["spec"].get("initContainers") or []):
            container.setdefault("volumeMounts", []).append(
                {"name": name, "readOnly": True, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}
            )
        return obj

    def _bootstrap(self) -> None:
        api = self.api
        internal = RequestOptions(internal=True)
        for ns in ("default", "kube-system", "kube-public", "kube-node-lease", "local-path-storage"):
            api.create(api.type_of("", "namespaces"), {"metadata": {"name": ns}}, "", internal)
        now = api.now()
        for index, name in enumerate(self.node_names):
            node = new_node(name, self.node_ip(name), self.k8s_version, index == 0, self.name)
            node["spec"]["podCIDR"] = f"10.244.{index}.0/24"
            node["spec"]["podCIDRs"] = [node["spec"]["podCIDR"]]
            if index == 0 and len(self.node_names) > 1:
                node["spec"]["taints"] = [
                    {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}
                ]
            node["status"] = node_status(self.node_ip(name), name, self.k8s_version, now)
            api.create(api.type_of("", "nodes"), node, "", internal)
            api.create(
                api.type_of("coordination.k8s.io", "leases"),
                {
                    "metadata": {"name": name, "namespace": "kube-node-lease"},
                    "spec": {
                        "holderIdentity": name,
                        "leaseDurationSeconds": 40,
                        "renewTime": rfc3339(self.clock.now()).replace("Z", ".000000Z"),
                    },
                },
                "kube-node-lease",
                internal,
            )
        api.create(
            api.type_of("", "services"),
            {
                "metadata": {
                    "name": "kubernetes",
                    "labels": {"component": "apiserver", "provider": "kubernetes"},
                },
                "spec": {
                    "clusterIP": "10.96.0.1",
                    "ports": [{"name": "https", "port": 443, "targetPort": 6443}],
                },
            },
            "default",
            internal,
        )
        api.create(
            api.type_of("", "endpoints"),
            {
                "metadata": {
                    "name": "kubernetes",
                    "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"},
                },
                "subsets": [
                    {
                        "addresses": [{"ip": self.node_ip(self.node_names[0])}],
                        "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}],
                    }
                ],
            },
            "default",
            internal,
        )
        if self.system_workloads:
            self._system_workloads()

    def _system_workloads(self) -> None:
        api = self.api
        opts = RequestOptions(internal=True)
        tolerate_all = [{"operator": "Exists"}]
        api.create(
            api.type_of("apps", "deployments"),
            {
                "metadata": {"name": "coredns", "labels": {"k8s-app": "kube-dns"}},
                "spec": {
                    "replicas": 2,
                    "selector": {"matchLabels": {"k8s-app": "kube-dns"}},
                    "strategy": {"rollingUpdate": {"maxUnavailable": 1}},
                    "template": {
                        "metadata": {"labels": {"k8s-app": "kube-dns"}},
                        "spec": {
                            "tolerations": [
                                {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}
                            ],
                            "containers": [
                                {
                                    "name": "coredns",
                                    "image": "registry.k8s.io/coredns/coredns:v1.12.0",
                                    "args": ["-conf", "/etc/coredns/Corefile"],
                                    "ports": [
                                        {"name": "dns", "containerPort": 53, "protocol": "UDP"},
                                        {"name": "dns-tcp", "containerPort": 53},
                                        {"name": "metrics", "containerPort": 9153},
                                    ],
                                }
                            ],
                        },
                    },
                },
            },
            "kube-system",
            opts,
        )
        api.create(
            api.type_of("", "services"),
            {
                "metadata": {
                    "name": "kube-dns",
                    "labels": {"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS"},
                },
                "spec": {
                    "clusterIP": "10.96.0.10",
                    "selector": {"k8s-app": "kube-dns"},
                    "ports": [
                        {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                        {"name": "dns-tcp", "port": 53, "targetPort": 53},
                        {"name": "metrics", "port": 9153, "targetPort": 9153},
                    ],
                },
            },
            "kube-system",
            opts,
        )
        for name, image in (
            ("kube-proxy", f"registry.k8s.io/kube-proxy:v{self.k8s_version}"),
            ("kindnet", "docker.io/kindest/kindnetd:v20250512-df8de77b"),
        ):
            label = {"k8s-app": name} if name == "kube-proxy" else {"app": name}
            api.create(
                api.type_of("apps", "daemonsets"),
                {
                    "metadata": {"name": name, "labels": label},
                    "spec": {
                        "selector": {"matchLabels": label},
                        "template": {
                            "metadata": {"labels": label},
                            "spec": {
                                "hostNetwork": True,
                                "tolerations": tolerate_all,
                                "containers": [
                                    {"name": name if name != "kindnet" else "kindnet-cni", "image": image}
                                ],
                            },
                        },
                    },
                },
                "kube-system",
                opts,
            )
