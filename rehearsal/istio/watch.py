"""The harness's watch over a running ``istioctl install``/``upgrade`` (harness library; no pytest).

istioctl waits for each component with the whole ``--readiness-timeout`` (1.31
``operator/pkg/install/install.go`` applyManifestSet -> WaitForResources), silently about why: an istiod
whose image cannot be pulled holds it for the full 300 s and its error names only "resources not ready".
While it runs, :class:`PodWatch` looks at the pods of the Istio namespace and the gateways' namespaces
with the rules of the harness's own waits (:mod:`rehearsal.hopeless`); once a pod is past hope the
harness stops istioctl (:meth:`rehearsal.istio.istioctl.Istioctl.run` with ``watch``), and the cause
names that pod and the cluster's reason first, istioctl's own words next, the command last
(:func:`stopped_message`). Between looks it says what the pods are doing (:meth:`PodWatch.states`) for
the progress line.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from .. import hopeless
from ..evidence import redact
from ..kube import Kube

Obj = dict[str, Any]


class PodWatch:
    """``watch()`` -> the cause (with ``evidence``) once a pod in ``namespaces`` is hopeless, else None."""

    def __init__(
        self, kube: Kube, namespaces: Sequence[str], grace: float = hopeless.UNSCHEDULABLE_GRACE
    ) -> None:
        self.kube = kube
        self.namespaces = list(dict.fromkeys(namespaces))
        self.grace = grace
        self.last_pods: dict[str, list[Obj]] = {}
        self.since: Any = None  # the cluster's clock when istioctl started: older pods are not its doing

    def start(self) -> None:
        """Note the cluster's clock before istioctl runs: a pod that was broken before (a user's, in a shared
        namespace) is not a reason to stop this istioctl."""
        from ..waits import cluster_time

        self.since = hopeless.moment(cluster_time(self.kube, "default"))

    def _pods(self, namespace: str) -> list[Obj]:
        try:
            items = self.kube.resource("v1", "Pod").get(namespace=namespace).items
        except Exception:  # a namespace istioctl has not created yet, or a hiccup: look again next time
            return []
        return [i.to_dict() for i in items]

    def _events(self, namespace: str) -> list[Obj]:
        try:
            return [e.to_dict() for e in self.kube.resource("v1", "Event").get(namespace=namespace).items]
        except Exception:
            return []

    def __call__(self) -> Obj | None:
        from ..waits import cluster_time

        for namespace in self.namespaces:
            pods = self._pods(namespace)
            self.last_pods[namespace] = pods
            events = functools.cache(functools.partial(self._events, namespace))  # once per look

            def now(ns: str = namespace) -> Any:
                return hopeless.moment(cluster_time(self.kube, ns))

            for pod in pods:
                created = hopeless.moment(pod["metadata"].get("creationTimestamp"))
                if self.since is not None and created is not None and created < self.since:
                    continue
                cause = hopeless.pod_cause(pod, events, now, self.grace)
                if cause is not None:
                    cause["evidence"] = evidence(pod, events(), cluster_time(self.kube, namespace))
                    return cause
        return None

    def states(self) -> str:
        """The pods as last seen, in a few words: ``istiod-5d4f Pending (ErrImagePull)``."""
        words = []
        for pods in self.last_pods.values():
            for pod in pods:
                words.append(f"{pod['metadata']['name']} {pod_state(pod)}")
        return ", ".join(words[:6]) + (f" (+{len(words) - 6} more)" if len(words) > 6 else "")


def pod_state(pod: Obj) -> str:
    phase = (pod.get("status") or {}).get("phase") or "Pending"
    reasons: list[str] = [
        str(hopeless.waiting(s).get("reason"))
        for _, s in hopeless.container_states(pod)
        if hopeless.waiting(s).get("reason")
    ]
    if hopeless.unschedulable(pod):
        reasons.insert(0, "Unschedulable")
    ready = all(s.get("ready") for _, s in hopeless.container_states(pod)) and phase == "Running"
    return f"{phase}{' Ready' if ready else ''}" + (
        f" ({', '.join(dict.fromkeys(reasons))})" if reasons else ""
    )


def evidence(pod: Obj, events: list[Obj], clock: str | None) -> Obj:
    """What the cluster showed about the hopeless pod: its conditions, container states and events."""
    name = pod["metadata"]["name"]
    owners = {o.get("name") for o in pod["metadata"].get("ownerReferences") or []}
    about = [
        e
        for e in events
        if (e.get("involvedObject") or {}).get("name") in {name, *owners}
        or ((e.get("involvedObject") or {}).get("kind") == "Pod" and e.get("type") == "Warning")
    ]
    shown = [hopeless.event_row(e) for e in about]
    shown.sort(key=lambda e: str(e["last"] or ""))
    return {
        "pod": f"{pod['metadata'].get('namespace')}/{name}",
        "conditions": (pod.get("status") or {}).get("conditions") or [],
        "containers": [
            {
                "container": n,
                "image": s.get("image"),
                "ready": s.get("ready"),
                "restarts": s.get("restartCount", 0),
                "state": s.get("state"),
            }
            for n, s in hopeless.container_states(pod)
        ],
        "events": shown[-15:],
        "declared_at": clock,
    }


def stopped_message(cause: Obj, stderr: str, command: str) -> str:
    """The pod and the cluster's reason first, istioctl's words next, the command last."""
    reason = cause["reason"]
    if reason in hopeless.IMAGE_PULL:
        reason = "ErrImagePull, then ImagePullBackOff after one back-off"
    text = f"{cause['object']}: {reason}"
    if cause.get("image") and cause["reason"] in (*hopeless.IMAGE_PULL, "InvalidImageName"):
        host = cause.get("host") or hopeless.image_host(cause["image"])
        text += f": image {cause['image']} from registry host {host}"
    if cause.get("message"):
        text += f": {cause['message']}"
    said = [line.strip() for line in stderr.splitlines() if line.strip()][-3:]
    if said:
        text += "; istioctl said: " + " | ".join(said)
    text += f"; the harness stopped `{command}`, which would have waited for its readiness timeout"
    return redact(text)


def namespaces_of(spec: Obj, istio_namespace: str = "istio-system") -> list[str]:
    """Where an install of ``spec`` (an IstioOperator spec) runs pods: the Istio namespace and each gateway's
    (``components.ingressGateways[].namespace``, ``egressGateways``) and CNI's."""
    components = spec.get("components") or {}
    out = [str(spec.get("namespace") or istio_namespace)]
    for key in ("ingressGateways", "egressGateways"):
        for gateway in components.get(key) or []:
            if isinstance(gateway, dict) and gateway.get("namespace"):
                out.append(str(gateway["namespace"]))
    cni = components.get("cni") or {}
    if cni.get("enabled") and cni.get("namespace"):
        out.append(str(cni["namespace"]))
    return list(dict.fromkeys(out))


def components_of(spec: Obj) -> int:
    """How many components an install of ``spec`` waits for, one after another at worst: base and istiod,
    then the gateways, CNI and ztunnel (1.31 operator/pkg/install/install.go componentDependencies); the
    default profile's ingress gateway is counted unless disabled."""
    components = spec.get("components") or {}
    count = 2
    ingress = components.get("ingressGateways")
    if ingress is None or any(isinstance(g, dict) and g.get("enabled", True) for g in ingress or []):
        count += 1
    if any(isinstance(g, dict) and g.get("enabled") for g in components.get("egressGateways") or []):
        count += 1
    for key in ("cni", "ztunnel"):
        if (components.get(key) or {}).get("enabled"):
            count += 1
    return count


def ticker_for(watch: PodWatch, what: str) -> Any:
    """Progress while istioctl runs: the harness's wait observers hear the elapsed time, the deadline and
    the pods' states (the live line on a terminal, a plain line every so often off one)."""
    from ..waits import WaitStatus, tell

    def tick(elapsed: float, deadline: float) -> None:
        states = watch.states()
        tell(WaitStatus(f"{what}" + (f" ({states})" if states else ""), elapsed, deadline))

    return tick


def install_watched(
    ctl: Any,
    kube: Kube,
    spec: Obj,
    files: Sequence[str],
    sets: Sequence[str],
    readiness_timeout: str,
    upgrade: bool = False,
) -> Any:
    """``istioctl install``/``upgrade`` of ``ctl`` (an :class:`~rehearsal.istio.istioctl.Istioctl`) with the
    pods of ``spec``'s namespaces watched: a hopeless pod stops it (``IstioctlStopped``), and progress is
    told to the harness's wait observers as it goes."""
    from ..waits import WaitStatus, tell

    watch = PodWatch(kube, namespaces_of(spec))
    watch.start()
    what = f"istioctl {ctl.version} {'upgrade' if upgrade else 'install'}"
    try:
        return ctl.install(
            files,
            sets,
            readiness_timeout=readiness_timeout,
            upgrade=upgrade,
            watch=watch,
            components=components_of(spec),
            ticker=ticker_for(watch, what),
        )
    finally:
        tell(WaitStatus(what, 0.0, 0.0, done=True))
