"""The simulated kubelet and container runtime of every node (the scheduler is in scheduler.py, the log store
in logs.py, the registry in images.py, what containers run in programs.py).

The kubelet walks each pod through what a real node does, in simulated time: sandbox and pod IP, init
containers one after another (native sidecars stay running), image pulls from the simulated registry (with
``ErrImagePull`` / ``ImagePullBackOff`` and exponential back-off), container creation (refused with
``CreateContainerConfigError`` when ``runAsNonRoot`` meets a root image), start, readiness probes, crash loops
with ``CrashLoopBackOff``, jobs that finish, and graceful termination. Every transition is written to the
pod's status and announced with the same events and messages as a real kubelet.
"""

from __future__ import annotations

import functools
import random
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kubesim.apiserver.api import Api, RequestOptions
from kubesim.controllers.manager import Controller, ControllerManager
from kubesim.machinery.errors import ApiError
from kubesim.network import HttpRequest
from kubesim.node.images import Image, PullError, normalize
from kubesim.node.logs import LogBook
from kubesim.node.programs import ContainerContext, Program
from kubesim.node.scheduler import Scheduler
from kubesim.store import WatchEvent

if TYPE_CHECKING:
    from kubesim.cluster import SimCluster

Obj = dict[str, Any]
PODS = ("", "pods")
BACKOFF_START, BACKOFF_MAX = 10.0, 300.0


# -- runtime state ---------------------------------------------------------------------------------------
@dataclass
class ContainerState:
    spec: Obj
    init: bool = False
    sidecar: bool = False
    state: str = "waiting"
    reason: str = "ContainerCreating"
    message: str = ""
    started_at: str = ""
    finished_at: str = ""
    exit_code: int = 0
    restarts: int = 0
    ready: bool = False
    started: bool = False
    image: Image | None = None
    program: Program | None = None
    last: Obj | None = None
    container_id: str = ""
    epoch: int = 0  # bumps on every (re)start; stale timers check it
    signalled: bool = False  # SIGTERM sent (pod shutting down)
    pull_failures: int = 0
    crash_backoff: float = 0.0

    @property
    def name(self) -> str:
        return str(self.spec["name"])


@dataclass
class PodState:
    uid: str
    namespace: str
    name: str
    node: str
    ip: str
    containers: list[ContainerState]
    started: str
    phase: str = "Pending"
    init_done: bool = False
    terminating: bool = False
    conditions: dict[str, tuple[str, str]] = field(default_factory=dict)  # type -> (status, since)

    @property
    def inits(self) -> list[ContainerState]:
        return [c for c in self.containers if c.init]

    @property
    def mains(self) -> list[ContainerState]:
        return [c for c in self.containers if not c.init]


class Kubelet(Controller):
    """Kubelet, container runtime and scheduler for every node of the cluster."""

    name = "kubelet"
    watches = (PODS, ("", "nodes"))

    def __init__(self, manager: ControllerManager, cluster: SimCluster) -> None:
        super().__init__(manager)
        self.cluster = cluster
        self.api: Api = cluster.api
        self.pods: dict[str, PodState] = {}
        self.uid_of: dict[tuple[str, str], str] = {}  # (namespace, name) -> uid of the pod we run
        self.pods_on: dict[str, int] = {}  # node -> pods the scheduler has placed there
        self.logs = LogBook()
        self.scheduler = Scheduler(self.api.store, cluster.mutate, cluster.event, self.api.now, self.pods_on)
        self.images_on_node: dict[str, set[str]] = {}
        self._next_ip: dict[str, int] = {}

    # -- events ---------------------------------------------------------------------------------------------
    def on_event(self, event: WatchEvent) -> None:
        if event.gr == ("", "nodes"):
            for pod in self.api.store.items(PODS):
                if not pod["spec"].get("nodeName"):
                    self.enqueue((pod["metadata"]["namespace"], pod["metadata"]["name"]))
            return
        self.enqueue((event.namespace, event.name))

    def resync(self) -> None:
        for pod in self.api.store.items(PODS):
            self.enqueue((pod["metadata"]["namespace"], pod["metadata"]["name"]))

    def reconcile(self, key: tuple[str, str]) -> None:
        pod = self.api.store.get(PODS, *key)
        known = self.uid_of.get(key)
        if pod is None:
            if known is not None:
                self._forget(known)
            return
        uid = pod["metadata"]["uid"]
        if known is not None and known != uid:
            self._forget(known)
        node = pod["spec"].get("nodeName")
        if not node:
            if not pod["metadata"].get("deletionTimestamp"):
                self._schedule(pod)
            return
        state = self.pods.get(uid)
        if pod["metadata"].get("deletionTimestamp"):
            self._terminate(pod, state)
            return
        if (
            state is None
            and pod["status"].get("phase") in ("Pending", None)
            and node in self.cluster.node_names
        ):
            self._start_pod(pod)

    def _schedule(self, pod: Obj) -> None:
        self.scheduler.schedule(pod)

    # -- pod lifecycle --------------------------------------------------------------------------------------
    def _allocate_ip(self, node: str) -> str:
        """The next address of the node's pod range (10.244.<node>.x, then further /24s): never reused."""
        index = self.cluster.node_names.index(node)
        n = self._next_ip.get(node, 1) + 1
        self._next_ip[node] = n
        block, host = divmod(n, 254)
        return f"10.244.{index + 16 * block}.{host + 1}"

    def _start_pod(self, pod: Obj) -> None:
        meta, spec = pod["metadata"], pod["spec"]
        containers = [
            ContainerState(c, init=True, sidecar=c.get("restartPolicy") == "Always")
            for c in spec.get("initContainers") or []
        ]
        containers += [ContainerState(c) for c in spec["containers"]]
        for c in containers:
            c.reason = (
                "PodInitializing"
                if (c.init and c is not containers[0]) or (not c.init and spec.get("initContainers"))
                else "ContainerCreating"
            )
        ip = (
            self.cluster.node_ip(spec["nodeName"])
            if spec.get("hostNetwork")
            else self._allocate_ip(spec["nodeName"])
        )
        state = PodState(
            meta["uid"], meta["namespace"], meta["name"], spec["nodeName"], ip, containers, self.api.now()
        )
        self.pods[state.uid] = state
        self.uid_of[(state.namespace, state.name)] = state.uid
        self.pods_on[state.node] = self.pods_on.get(state.node, 0) + 1
        now = self.api.now()
        state.conditions = {
            "PodReadyToStartContainers": ("True", now),
            "Initialized": ("False", now),
            "Ready": ("False", now),
            "ContainersReady": ("False", now),
        }
        if not state.inits:
            state.conditions["Initialized"] = ("True", now)
            state.init_done = True
        self._write(state)
        self._advance(state)

    def _advance(self, state: PodState) -> None:
        """Start whatever container is next: the first unfinished init container, else all main ones."""
        if state.terminating or self.pods.get(state.uid) is not state:
            return
        if not state.init_done:
            for c in state.inits:
                if c.sidecar and c.started:
                    continue
                if not c.sidecar and c.state == "terminated" and c.exit_code == 0:
                    continue
                if c.state == "waiting" and c.image is None and not c.message:
                    self._pull(state, c)
                return
            state.init_done = True
            state.conditions["Initialized"] = ("True", self.api.now())
            for c in state.mains:
                c.reason = "ContainerCreating"
            self._write(state)
        for c in state.mains:
            if c.state == "waiting" and c.image is None and not c.message:
                self._pull(state, c)

    def _pod(self, state: PodState) -> Obj | None:
        pod = self.api.store.get(PODS, state.namespace, state.name)
        return pod if pod is not None and pod["metadata"]["uid"] == state.uid else None

    def _pull_secrets(self, pod: Obj) -> list[Obj]:
        names = [s.get("name") for s in pod["spec"].get("imagePullSecrets") or []]
        sa = self.api.store.get(
            ("", "serviceaccounts"),
            pod["metadata"]["namespace"],
            pod["spec"].get("serviceAccountName", "default"),
        )
        names += [s.get("name") for s in (sa or {}).get("imagePullSecrets") or []]
        found = [self.api.store.get(("", "secrets"), pod["metadata"]["namespace"], n) for n in names if n]
        return [s for s in found if s is not None]

    def _pull(self, state: PodState, c: ContainerState) -> None:
        pod = self._pod(state)
        if pod is None:
            return
        ref = c.spec["image"]
        cache = self.images_on_node.setdefault(state.node, set())
        policy = c.spec.get("imagePullPolicy", "IfNotPresent")
        registry = self.cluster.registry
        fault = self.cluster.faults.image_pull_for(ref)
        known = registry.lookup(ref)
        cached = normalize(ref) in cache and known is not None
        if policy != "Always" and cached and known is not None and fault is None:
            # Present on the node: no pull, so no registry (nor credentials) involved.
            c.image = known
            self.cluster.event(
                pod,
                "Normal",
                "Pulled",
                f'Container image "{ref}" already present on machine',
                "kubelet",
                field_path=self._field_path(pod, c),
            )
            self._create(state, c)
            return
        if policy == "Never":
            c.reason, c.message = (
                "ErrImageNeverPull",
                (f'Container image "{ref}" is not present with pull policy of Never'),
            )
            self.cluster.event(
                pod, "Warning", "ErrImageNeverPull", c.message, "kubelet", field_path=self._field_path(pod, c)
            )
            self._write(state)
            return
        self.cluster.event(
            pod, "Normal", "Pulling", f'Pulling image "{ref}"', "kubelet", field_path=self._field_path(pod, c)
        )
        try:
            if fault is not None:
                raise registry.failure(ref, fault.why)
            image = registry.pull(ref, self._pull_secrets(pod))
        except PullError as exc:
            self._pull_failed(state, c, pod, str(exc))
            return
        epoch = c.epoch
        seconds = image.pull_seconds if not cached else 0.1

        def pulled() -> None:
            if c.epoch != epoch or state.terminating:
                return
            p = self._pod(state)
            if p is None:
                return
            cache.add(image.reference)
            c.image = image
            self.cluster.event(
                p,
                "Normal",
                "Pulled",
                f'Successfully pulled image "{ref}" in {seconds:.3g}s '
                f"({seconds:.3g}s including waiting). Image size: {image.size} bytes.",
                "kubelet",
                field_path=self._field_path(p, c),
            )
            self._create(state, c)

        self.manager.after(seconds, pulled)

    def _pull_failed(self, state: PodState, c: ContainerState, pod: Obj, message: str) -> None:
        ref = c.spec["image"]
        c.pull_failures += 1
        c.reason, c.message = "ErrImagePull", message
        where = self._field_path(pod, c)
        self.cluster.event(
            pod, "Warning", "Failed", f'Failed to pull image "{ref}": {message}', "kubelet", field_path=where
        )
        self.cluster.event(pod, "Warning", "Failed", "Error: ErrImagePull", "kubelet", field_path=where)
        self._write(state)
        backoff = min(BACKOFF_START * 2 ** (c.pull_failures - 1), BACKOFF_MAX)
        epoch = c.epoch

        def back_off() -> None:
            if c.epoch != epoch or state.terminating or self._pod(state) is None:
                return
            c.reason, c.message = "ImagePullBackOff", f'Back-off pulling image "{ref}"'
            p = self._pod(state)
            if p is None:
                return
            self.cluster.event(
                p, "Normal", "BackOff", f'Back-off pulling image "{ref}"', "kubelet", field_path=where
            )
            self.cluster.event(p, "Warning", "Failed", "Error: ImagePullBackOff", "kubelet", field_path=where)
            self._write(state)

        def retry() -> None:
            if c.epoch != epoch or state.terminating:
                return
            c.message = ""
            self._pull(state, c)

        self.manager.after(1.0, back_off)
        self.manager.after(backoff, retry, repeat=True)

    def _create(self, state: PodState, c: ContainerState) -> None:
        pod = self._pod(state)
        if pod is None or state.terminating:
            return
        refusal = self._security_refusal(pod, c)
        where = self._field_path(pod, c)
        if refusal:
            first = c.reason != "CreateContainerConfigError"
            c.reason, c.message = "CreateContainerConfigError", refusal
            if first:
                self.cluster.event(pod, "Warning", "Failed", f"Error: {refusal}", "kubelet", field_path=where)
                self._write(state)
            epoch = c.epoch

            def retry_create() -> None:
                if c.epoch == epoch:
                    self._create(state, c)

            self.manager.after(10.0, retry_create, repeat=True)
            return
        c.epoch += 1
        c.container_id = "containerd://" + f"{random.getrandbits(256):064x}"
        self.cluster.event(
            pod, "Normal", "Created", f"Created container: {c.name}", "kubelet", field_path=where
        )
        self.cluster.event(
            pod, "Normal", "Started", f"Started container {c.name}", "kubelet", field_path=where
        )
        self._run(state, c, pod)

    def _run(self, state: PodState, c: ContainerState, pod: Obj) -> None:
        key = (state.namespace, state.name, c.name)
        self.logs.begin(key, state.uid, restart=c.restarts > 0)
        c.state, c.reason, c.message = "running", "", ""
        c.started_at, c.started, c.ready = self.api.now(), True, False
        assert c.image is not None
        programs = self.cluster.programs
        program_type = programs.get(c.image.program, programs["pause"])

        def log(text: str, k: tuple[str, str, str] = key, uid: str = state.uid) -> None:
            self.logs.write(k, uid, self.api.now(), text)

        ctx = ContainerContext(
            pod,
            c.spec,
            state.ip,
            self.cluster.network,
            log,
            c.image.port,
            self.cluster,
        )
        c.program = program_type(ctx)
        try:
            c.program.start()
        except Exception as exc:
            self.logs.write(key, state.uid, self.api.now(), f"fatal: {exc}")
            self._exited(state, c, c.epoch, 1)
            return
        epoch = c.epoch
        crash = self.cluster.faults.crash_for(pod, c.spec)
        ends = (crash.after, crash.exit_code) if crash else c.program.exit_after()
        if ends is not None:
            self.manager.after(ends[0], lambda: self._exited(state, c, epoch, ends[1]))
        if c.init and not c.sidecar:
            self._write(state)
            return
        probe = c.spec.get("readinessProbe") or (c.spec.get("startupProbe") if c.sidecar else None)
        delay = float((probe or {}).get("initialDelaySeconds", 0))
        fault = self.cluster.faults.readiness_for(pod, c.spec)
        if fault is not None and not fault.never:
            delay = max(delay, fault.delay)
        self._write(state)
        self.manager.after(delay, lambda: self._probe(state, c, epoch))
        if c.sidecar:
            self._advance(state)

    def _probe(self, state: PodState, c: ContainerState, epoch: int) -> None:
        if c.epoch != epoch or state.terminating or c.state != "running":
            return
        pod = self._pod(state)
        if pod is None:
            return
        fault = self.cluster.faults.readiness_for(pod, c.spec)
        probe = c.spec.get("readinessProbe")
        ok = not (fault is not None and fault.never)
        message = ""
        if ok and probe and "httpGet" in probe and c.program is not None:
            ok, message = self._http_probe(state, c, probe)
        elif ok and probe and "tcpSocket" in probe:
            port = self._probe_port(c, probe["tcpSocket"].get("port"))
            ok = port is not None and self.cluster.network.listening(state.ip, port)
            message = "" if ok else f"dial tcp {state.ip}:{port}: connect: connection refused"
        elif ok:
            ok = c.program.ready() if c.program is not None else True
        if ok != c.ready:
            c.ready = ok
            self._write(state)
        if not ok:
            if message:
                self.cluster.event(
                    pod,
                    "Warning",
                    "Unhealthy",
                    f"Readiness probe failed: {message}",
                    "kubelet",
                    field_path=self._field_path(pod, c),
                )
        period = float((probe or {}).get("periodSeconds", 10))
        self.manager.after(
            period if not ok else max(period, 10.0), lambda: self._probe(state, c, epoch), repeat=True
        )

    def _http_probe(self, state: PodState, c: ContainerState, probe: Obj) -> tuple[bool, str]:
        get = probe["httpGet"]
        port = self._probe_port(c, get.get("port"))
        if port is None or not self.cluster.network.listening(state.ip, port):
            # Nothing of ours answers on that port: the program's own notion of readiness decides.
            return (c.program.ready() if c.program else True), ""
        try:
            # Like Istio's probe rewrite, the probe reaches the app from inside the pod, not through the
            # sidecar.
            response = self.cluster.network.request_in_pod(
                state.ip, int(port), HttpRequest("GET", get.get("path", "/"))
            )
        except Exception as exc:
            return False, f'Get "http://{state.ip}:{port}{get.get("path", "/")}": {exc}'
        if 200 <= response.status < 400:
            return True, ""
        return False, f"HTTP probe failed with statuscode: {response.status}"

    @staticmethod
    def _probe_port(c: ContainerState, port: Any) -> int | None:
        """A probe's port: a number, or the name of one of the container's ports."""
        if isinstance(port, str) and not port.isdigit():
            return next(
                (int(p["containerPort"]) for p in c.spec.get("ports") or [] if p.get("name") == port), None
            )
        return int(port) if port is not None else None

    def _exited(self, state: PodState, c: ContainerState, epoch: int, code: int) -> None:
        if c.epoch != epoch or state.terminating or c.state != "running":
            return
        pod = self._pod(state)
        if pod is None:
            return
        self._stop_program(state, c)
        c.state, c.exit_code, c.ready = "terminated", code, False
        c.reason = "Completed" if code == 0 else "Error"
        c.finished_at = self.api.now()
        c.last = {
            "terminated": {
                "exitCode": code,
                "reason": c.reason,
                "startedAt": c.started_at,
                "finishedAt": c.finished_at,
                "containerID": c.container_id,
            }
        }
        policy = pod["spec"].get("restartPolicy", "Always")
        restart = c.sidecar or policy == "Always" or (policy == "OnFailure" and code != 0)
        if c.init and not c.sidecar:
            restart = code != 0 and policy != "Never"
            if code == 0:
                self._write(state)
                self._advance(state)
                return
        if not restart:
            self._write(state)
            return
        c.restarts += 1
        c.crash_backoff = BACKOFF_START if c.crash_backoff == 0 else min(c.crash_backoff * 2, BACKOFF_MAX)
        c.state, c.reason = "waiting", "CrashLoopBackOff"
        c.message = (
            f"back-off {int(c.crash_backoff)}s restarting failed container={c.name} "
            f"pod={state.name}_{state.namespace}({state.uid})"
        )
        self.cluster.event(
            pod,
            "Warning",
            "BackOff",
            f"Back-off restarting failed container {c.name} in pod "
            f"{state.name}_{state.namespace}({state.uid})",
            "kubelet",
            field_path=self._field_path(pod, c),
        )
        self._write(state)

        def restart_container() -> None:
            if c.epoch != epoch or state.terminating:
                return
            p = self._pod(state)
            if p is not None:
                c.epoch += 1
                c.container_id = "containerd://" + f"{random.getrandbits(256):064x}"
                self.cluster.event(
                    p,
                    "Normal",
                    "Pulled",
                    f'Container image "{c.spec["image"]}" already present on machine',
                    "kubelet",
                    field_path=self._field_path(p, c),
                )
                self.cluster.event(
                    p,
                    "Normal",
                    "Created",
                    f"Created container: {c.name}",
                    "kubelet",
                    field_path=self._field_path(p, c),
                )
                self.cluster.event(
                    p,
                    "Normal",
                    "Started",
                    f"Started container {c.name}",
                    "kubelet",
                    field_path=self._field_path(p, c),
                )
                self._run(state, c, p)

        self.manager.after(c.crash_backoff, restart_container, repeat=True)

    def _stop_program(self, state: PodState, c: ContainerState) -> None:
        if c.program is not None:
            try:
                c.program.stop()
            except Exception:
                pass
            c.program = None
        self.logs.end((state.namespace, state.name, c.name))

    def _terminate(self, pod: Obj, state: PodState | None) -> None:
        if state is None:
            self.api.delete(
                self.api.type_of(*PODS),
                pod["metadata"]["namespace"],
                pod["metadata"]["name"],
                RequestOptions(internal=True),
                grace_seconds=0,
            )
            return
        if state.terminating:
            return
        state.terminating = True
        grace = float(pod["metadata"].get("deletionGracePeriodSeconds") or 0)
        for c in state.containers:
            c.ready = False
        self._write(state)
        # The graceful shutdown of a pod (kubelet's killPod, KEP-753 for native sidecars): regular containers
        # get SIGTERM first, the sidecars once every regular container has exited; each program decides how
        # long it takes to exit (Program.on_sigterm); whatever still runs at the grace deadline is SIGKILLed.
        self._signal_next(state, pod)
        self.manager.after(grace, lambda: self._grace_over(state))

    def _signal_next(self, state: PodState, pod: Obj) -> None:
        running = [c for c in state.containers if c.state == "running"]
        if not running:
            self._finish_termination(state)
            return
        regular = [c for c in running if not c.sidecar]
        for c in regular or list(reversed(running)):
            if c.signalled:
                continue
            c.signalled = True
            self.cluster.event(
                pod,
                "Normal",
                "Killing",
                f"Stopping container {c.name}",
                "kubelet",
                field_path=self._field_path(pod, c),
            )
            seconds = c.program.on_sigterm() if c.program is not None else 0.0
            if seconds is not None:
                self.manager.after(seconds, functools.partial(self._exited_on_signal, state, c, 0))

    def _exited_on_signal(self, state: PodState, c: ContainerState, code: int) -> None:
        if self.pods.get(state.uid) is not state or c.state != "running":
            return
        c.state, c.exit_code, c.finished_at = "terminated", code, self.api.now()
        c.reason = "Completed" if code == 0 else "Error"
        self._process_exited(c)
        # Requests already routed to the container finish: its servers stay up for a short wall-clock drain,
        # even when simulated time jumps.
        self._stop_later(state, [c])
        pod = self._pod(state)
        if pod is None or not any(other.state == "running" for other in state.containers):
            self._finish_termination(state)  # the pod object goes now: no status write for it first
            return
        self._write(state)
        self._signal_next(state, pod)

    def _grace_over(self, state: PodState) -> None:
        """SIGKILL (exit code 137) for every container still running at the end of the grace period."""
        if self.pods.get(state.uid) is not state:
            return
        for c in state.containers:
            if c.state == "running":
                c.state, c.exit_code, c.finished_at, c.reason = "terminated", 137, self.api.now(), "Error"
                self._process_exited(c)
                self._stop_later(state, [c])
        self._finish_termination(state)

    def _finish_termination(self, state: PodState) -> None:
        if self.pods.get(state.uid) is not state:
            return
        if self._pod(state) is not None:
            try:
                self.api.delete(
                    self.api.type_of(*PODS),
                    state.namespace,
                    state.name,
                    RequestOptions(internal=True),
                    grace_seconds=0,
                )
            except ApiError:
                pass
        self._forget(state.uid)

    @staticmethod
    def _process_exited(c: ContainerState) -> None:
        if c.program is not None:
            try:
                c.program.exited()
            except Exception:
                pass

    DRAIN_WALL_SECONDS = 0.5

    def _stop_later(self, state: PodState, containers: list[ContainerState]) -> None:
        def stop() -> None:
            with self.api.store.lock:
                for c in containers:
                    self._stop_program(state, c)
                if state.uid not in self.pods and state.ip != self.cluster.node_ip(state.node):
                    self.cluster.network.close(state.ip)

        timer = threading.Timer(self.DRAIN_WALL_SECONDS, stop)
        timer.daemon = True
        timer.start()

    def _forget(self, uid: str) -> None:
        state = self.pods.pop(uid, None)
        if state is None:
            return
        if self.uid_of.get((state.namespace, state.name)) == uid:
            del self.uid_of[(state.namespace, state.name)]
        self.pods_on[state.node] = max(0, self.pods_on.get(state.node, 1) - 1)
        draining = any(c.program is not None and c.state == "terminated" for c in state.containers)
        for c in state.containers:
            if c.state != "terminated" or not draining:
                self._stop_program(state, c)
        if state.ip != self.cluster.node_ip(state.node) and not draining:
            self.cluster.network.close(state.ip)
        # Pod IPs are not reused: a draining pod's servers must never answer for a newer pod.
        self.logs.forget_pod(state.namespace, state.name)

    # -- status ----------------------------------------------------------------------------------------------
    def waiting_reason(self, pod: Obj, container: str) -> str:
        state = self.pods.get(pod["metadata"]["uid"])
        if state is None:
            return "ContainerCreating"
        c = next((c for c in state.containers if c.name == container), None)
        return c.reason if c and c.state == "waiting" else ""

    def _write(self, state: PodState) -> None:
        pod = self._pod(state)
        if pod is None:
            return
        now = self.api.now()
        mains = state.mains
        all_ready = all(c.ready for c in mains) and all(
            c.ready or not c.spec.get("readinessProbe") for c in state.inits if c.sidecar and c.started
        )
        sidecars_ok = all(c.started for c in state.inits if c.sidecar)
        ready = all_ready and sidecars_ok and state.init_done and not state.terminating
        for kind, value in (("Ready", ready), ("ContainersReady", ready)):
            status = "True" if value else "False"
            if state.conditions.get(kind, ("", ""))[0] != status:
                state.conditions[kind] = (status, now)
        phase = state.phase
        if all(c.state == "terminated" for c in mains) and mains:
            phase = "Succeeded" if all(c.exit_code == 0 for c in mains) else "Failed"
        elif state.init_done and any(c.state == "running" for c in mains):
            phase = "Running"
        elif any(c.state == "terminated" for c in mains) and all(
            c.state != "waiting" or c.reason == "CrashLoopBackOff" for c in mains
        ):
            phase = "Running"
        state.phase = phase

        def status_of(c: ContainerState) -> Obj:
            if c.state == "running":
                current: Obj = {"running": {"startedAt": c.started_at}}
            elif c.state == "terminated":
                current = {
                    "terminated": {
                        "exitCode": c.exit_code,
                        "reason": c.reason,
                        "startedAt": c.started_at,
                        "finishedAt": c.finished_at,
                        "containerID": c.container_id,
                    }
                }
            else:
                current = {"waiting": {"reason": c.reason, **({"message": c.message} if c.message else {})}}
            entry: Obj = {
                "name": c.name,
                "state": current,
                "lastState": c.last or {},
                "ready": c.ready,
                "restartCount": c.restarts,
                "image": c.spec["image"],
                "imageID": (c.image.repository + "@" + c.image.digest) if c.image else "",
                "started": c.state == "running",
            }
            if c.container_id:
                entry["containerID"] = c.container_id
            return entry

        def update(status: Obj) -> None:
            status["phase"] = phase
            status["hostIP"] = self.cluster.node_ip(state.node)
            status["hostIPs"] = [{"ip": status["hostIP"]}]
            status["podIP"] = state.ip
            status["podIPs"] = [{"ip": state.ip}]
            status["startTime"] = state.started
            scheduled = [c for c in status.get("conditions") or [] if c["type"] == "PodScheduled"]
            status["conditions"] = [
                {"type": kind, "status": value, "lastProbeTime": None, "lastTransitionTime": since}
                for kind, (value, since) in state.conditions.items()
            ] + scheduled
            status["containerStatuses"] = [status_of(c) for c in mains]
            if state.inits:
                status["initContainerStatuses"] = [status_of(c) for c in state.inits]

        new_status: Obj = dict(pod.get("status") or {})
        update(new_status)
        self.cluster.set_status(PODS, pod, new_status)

    @staticmethod
    def _field_path(pod: Obj, c: ContainerState) -> str:
        kind = "initContainers" if c.init else "containers"
        return f"spec.{kind}{{{c.name}}}"

    # -- securityContext -----------------------------------------------------------------------------------
    @staticmethod
    def _security_refusal(pod: Obj, c: ContainerState) -> str:
        pod_sc = pod["spec"].get("securityContext") or {}
        sc = c.spec.get("securityContext") or {}
        non_root = sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))
        if not non_root:
            return ""
        explicit = sc.get("runAsUser", pod_sc.get("runAsUser"))
        where = (
            f'(pod: "{pod["metadata"]["name"]}_{pod["metadata"]["namespace"]}({pod["metadata"]["uid"]})", '
            f"container: {c.name})"
        )
        if explicit == 0:
            return f"container's runAsUser breaks non-root policy {where}"
        if explicit is None and c.image is not None and c.image.user == 0:
            return f"container has runAsNonRoot and image will run as root {where}"
        return ""
