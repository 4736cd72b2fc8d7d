"""Waits that end as soon as the cluster says they cannot succeed (harness library; no pytest).

A rollout wait watches the workload *and* its pods: it returns when the rollout is complete (the rule of
``kubectl rollout status``), and fails at once, in the cluster's own words, when the cluster reports a state
that does not heal by waiting: ``ProgressDeadlineExceeded`` (deployment controller), an image pull still
failing after one back-off (``ErrImagePull`` / ``ImagePullBackOff``, kubelet), a crash again after the first
back-off (``CrashLoopBackOff``), ``CreateContainerConfigError`` / ``CreateContainerError`` /
``InvalidImageName``, a pod ``Unschedulable`` (``FailedScheduling``) past a grace on the cluster's clock, or a
``ReplicaFailure`` condition / ``FailedCreate`` event (a pod refused by admission); the pod rules are
:mod:`rehearsal.hopeless`'s.
Reasons and their meaning are those of kubernetes/kubernetes ``pkg/kubelet/images/types.go``,
``pkg/kubelet/container/sync_result.go`` and ``pkg/controller/deployment/util/deployment_util.go``
(tag v1.33.1).

Whatever the cause, the failure carries the evidence gathered at that moment (workload conditions, container
states, warning events with their timestamps, the last log lines of failing containers, and the cluster's
clock read through a server-side dry run), and every wait states its deadline. Observers (the terminal
progress line) hear about every wait as it goes.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from . import hopeless
from .evidence import redact, remember_secret_values
from .kube import Kube, rollout_complete, rollout_message
from .run import StepFailed

Obj = dict[str, Any]

# The pod-level rules live in rehearsal.hopeless (shared with the watch over a running istioctl).
HOPELESS_AT_ONCE = hopeless.HOPELESS_AT_ONCE
IMAGE_PULL = hopeless.IMAGE_PULL
CRASHES = hopeless.CRASHES
LOG_LINES = 20


@dataclass
class WaitStatus:
    """What a wait is waiting for, how long it has waited and its deadline (seconds)."""

    what: str
    elapsed: float
    deadline: float
    done: bool = False


Observer = Callable[[WaitStatus], None]
observers: list[Observer] = []


def _tell(status: WaitStatus) -> None:
    for observer in list(observers):
        try:
            observer(status)
        except Exception:  # a broken progress line must never break a wait
            pass


tell = _tell  # for waits kept elsewhere (rehearsal.istio.watch: a running istioctl)


class WaitFailed(StepFailed):
    """A wait ended without success: the cluster said it cannot succeed, or the deadline passed.

    ``evidence`` is what the cluster showed at that moment; ``cause`` names object, reason and message."""

    def __init__(self, message: str, cause: Obj, evidence: Obj) -> None:
        super().__init__(message)
        self.cause = cause
        self.evidence = evidence


def poll(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    """Deadline-bound poll for conditions no single watch expresses; a timeout states the deadline."""
    started = time.monotonic()
    deadline = started + timeout
    while True:
        result = predicate()
        elapsed = time.monotonic() - started
        if result:
            _tell(WaitStatus(what, elapsed, timeout, done=True))
            return result
        if time.monotonic() >= deadline:
            _tell(WaitStatus(what, elapsed, timeout, done=True))
            raise TimeoutError(f"timed out after {timeout:.0f}s (the deadline) waiting for {what}")
        _tell(WaitStatus(what, elapsed, timeout))
        time.sleep(interval)


def _pods_of(kube: Kube, workload: Obj) -> list[Obj]:
    selector = (workload.get("spec") or {}).get("selector", {}).get("matchLabels") or {}
    text = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
    namespace = workload["metadata"]["namespace"]
    items = kube.resource("v1", "Pod").get(namespace=namespace, label_selector=text or None).items
    return [i.to_dict() for i in items]


def _events(kube: Kube, namespace: str) -> list[Obj]:
    try:
        return [e.to_dict() for e in kube.resource("v1", "Event").get(namespace=namespace).items]
    except Exception:
        return []


_container_states = hopeless.container_states
_waiting = hopeless.waiting
_pull_failures = hopeless.pull_failures


def cluster_time(kube: Kube, namespace: str) -> str | None:
    """The cluster's clock: the creationTimestamp the API server gives a server-side dry-run create (nothing
    is stored). Event timestamps come from the same clock, so the two compare."""
    try:
        created = (
            kube.resource("v1", "ConfigMap")
            .create(
                body={
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"generateName": "rehearsal-clock-", "namespace": namespace},
                },
                namespace=namespace,
                dry_run="All",
            )
            .to_dict()
        )
        return str(created["metadata"].get("creationTimestamp") or "") or None
    except Exception:
        return None


_moment = hopeless.moment


def _verdict_of(
    kube: Kube, workload: Obj, pods: list[Obj], check_events: bool, since: dt.datetime | None = None
) -> Obj | None:
    """The cluster's reason this rollout cannot succeed, or None while it still can. ``since`` is the
    cluster's clock when the wait began: events older than it are not about this wait."""
    kind, meta = workload.get("kind", ""), workload["metadata"]
    where = f"{kind.lower()} {meta['namespace']}/{meta['name']}"
    for condition in (workload.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Progressing" and condition.get("reason") == "ProgressDeadlineExceeded":
            return {
                "object": where,
                "reason": "ProgressDeadlineExceeded",
                "message": condition.get("message"),
            }
        if condition.get("type") == "ReplicaFailure" and condition.get("status") == "True":
            return {"object": where, "reason": condition.get("reason"), "message": condition.get("message")}
    events: list[Obj] | None = None

    def listed() -> list[Obj]:
        nonlocal events
        if events is None:
            events = _events(kube, meta["namespace"])
        return events

    for pod in pods:
        cause = hopeless.pod_cause(pod, listed, lambda: _moment(cluster_time(kube, meta["namespace"])))
        if cause is not None:
            cause.pop("host", None)
            return cause
    if check_events:
        current = _current_controllers(kube, workload)
        for event in _events(kube, meta["namespace"]) if events is None else events:
            involved = event.get("involvedObject") or {}
            if event.get("reason") != "FailedCreate":
                continue
            # Only the controller of the pods this rollout makes (the Deployment's current ReplicaSet, the
            # StatefulSet or DaemonSet itself), never a workload whose name merely starts with this one's, and
            # not an old ReplicaSet's leftover events.
            about_this = (
                involved.get("uid") in current
                if involved.get("uid")
                else involved.get("name") in current.values()
            )
            if not about_this:
                continue
            # Newer than the wait, and still failing after the controller's back-off (the event repeats:
            # k8s.io/kubernetes pkg/controller/replicaset/replica_set.go requeues a failed create with the
            # rate-limited queue; the recorder aggregates the repeats into count).
            last = _moment(
                event.get("lastTimestamp") or event.get("eventTime") or event.get("firstTimestamp")
            )
            if since and last and last < since:
                continue
            if int(event.get("count") or 1) < 2:
                continue
            return {
                "object": f"{str(involved.get('kind', '')).lower()} {meta['namespace']}/"
                f"{involved.get('name')}",
                "reason": "FailedCreate",
                "message": event.get("message"),
            }
    return None


def _current_controllers(kube: Kube, workload: Obj) -> dict[str, str]:
    """uid -> name of the objects whose FailedCreate events are about this rollout: a Deployment's current
    ReplicaSet (the one of its revision, ``deployment.kubernetes.io/revision``), or the workload itself."""
    meta = workload["metadata"]
    if workload.get("kind") != "Deployment":
        return {str(meta.get("uid")): meta["name"]}
    revision = (meta.get("annotations") or {}).get("deployment.kubernetes.io/revision")
    selector = (workload.get("spec") or {}).get("selector", {}).get("matchLabels") or {}
    try:
        sets = [
            r.to_dict()
            for r in kube.resource("apps/v1", "ReplicaSet")
            .get(
                namespace=meta["namespace"],
                label_selector=",".join(f"{k}={v}" for k, v in sorted(selector.items())) or None,
            )
            .items
        ]
    except Exception:
        return {}
    owned = [
        r
        for r in sets
        if any(o.get("uid") == meta.get("uid") for o in r["metadata"].get("ownerReferences") or [])
    ]

    def rev(r: Obj) -> int:
        value = (r["metadata"].get("annotations") or {}).get("deployment.kubernetes.io/revision") or "0"
        return int(value) if str(value).isdigit() else 0

    current = [r for r in owned if revision and str(rev(r)) == str(revision)] or sorted(owned, key=rev)[-1:]
    return {str(r["metadata"].get("uid")): r["metadata"]["name"] for r in current}


def gather(kube: Kube, workload: Obj, pods: list[Obj] | None = None) -> Obj:
    """What the cluster shows about ``workload`` now: conditions, container states, warnings, last logs."""
    meta = workload["metadata"]
    namespace = meta["namespace"]
    _learn_secrets(kube, namespace)
    pods = _pods_of(kube, workload) if pods is None else pods
    # The workload, its pods and their ReplicaSets (events of pods replaced earlier are not about this).
    names = {p["metadata"]["name"] for p in pods} | {meta["name"]}
    names |= {o.get("name") for p in pods for o in p["metadata"].get("ownerReferences") or []}
    events = [
        hopeless.event_row(e)
        for e in _events(kube, namespace)
        if (e.get("involvedObject") or {}).get("name") in names
        or (
            (e.get("involvedObject") or {}).get("kind") == "ReplicaSet"
            and e.get("type") == "Warning"
            and str((e.get("involvedObject") or {}).get("name", "")).startswith(meta["name"] + "-")
        )
    ]
    events.sort(key=lambda e: str(e["last"] or ""))
    containers = []
    logs: dict[str, str] = {}
    for pod in pods:
        for name, state in _container_states(pod):
            entry = {
                "pod": pod["metadata"]["name"],
                "container": name,
                "image": state.get("image"),
                "ready": state.get("ready"),
                "restarts": state.get("restartCount", 0),
                "state": state.get("state"),
                "last_state": state.get("lastState") or state.get("last_state"),
            }
            containers.append(entry)
            now_state = state.get("state") or {}
            failing = (
                entry["restarts"]
                or ((now_state.get("terminated") or {}).get("exitCode") or 0) != 0
                or (now_state.get("waiting") or {}).get("reason") in HOPELESS_AT_ONCE
            )
            if failing and len(logs) < 4:
                try:
                    text = kube.get_text(
                        f"/api/v1/namespaces/{namespace}/pods/{pod['metadata']['name']}/log",
                        [
                            ("container", name),
                            ("tailLines", str(LOG_LINES)),
                            ("previous", "true" if entry["restarts"] else "false"),
                        ],
                    )
                    logs[f"{pod['metadata']['name']}/{name}"] = redact(str(text))
                except Exception:
                    pass
    return {
        "workload": f"{workload.get('kind')}/{namespace}/{meta['name']}",
        "conditions": (workload.get("status") or {}).get("conditions") or [],
        "containers": containers,
        "events": events[-15:],
        "logs": logs,
    }


def _learn_secrets(kube: Kube, namespace: str) -> None:
    """Logs and events can quote a Secret's value (an app logging its password): learn this namespace's
    Secret values so :func:`~rehearsal.evidence.redact` removes them from what is kept (only in memory)."""
    import base64

    try:
        secrets = kube.resource("v1", "Secret").get(namespace=namespace).items
    except Exception:
        return
    values: list[bytes | str] = []
    for secret in secrets:
        for value in (secret.to_dict().get("data") or {}).values():
            try:
                values.append(base64.b64decode(value))
            except (ValueError, TypeError):
                continue
    remember_secret_values(values)


def rollout(kube: Kube, kind: str, name: str, namespace: str, timeout: float) -> Obj:
    """Wait until a Deployment, DaemonSet or StatefulSet is rolled out, or fail as soon as the cluster says it
    cannot be; the failure (:class:`WaitFailed`) names object, reason and message and carries the evidence."""
    return rollouts(kube, [(kind, name)], namespace, timeout)[0]


def rollouts(kube: Kube, workloads: Sequence[tuple[str, str]], namespace: str, timeout: float) -> list[Obj]:
    """:func:`rollout` for several (kind, name) of one namespace at once, under one deadline: the first that
    cannot succeed ends the wait, however long the others still take (a control plane whose istiod cannot pull
    its image fails while its gateway is still rolling out)."""
    names = ", ".join(f"{kind.lower()} {name}" for kind, name in workloads)
    what = f"{names} in {namespace} to roll out"
    resources = {kind: kube.resource("apps/v1", kind) for kind, _ in workloads}
    started = time.monotonic()
    deadline = started + timeout
    since = _moment(cluster_time(kube, namespace))
    last_event_check = 0.0
    interval = 0.05
    done: dict[tuple[str, str], Obj] = {}
    while True:
        now = time.monotonic()
        # FailedCreate events need a list of events; look every few seconds, not on every poll.
        check_events = now - last_event_check > 2.0
        if check_events:
            last_event_check = now
        troubled = False
        for kind, name in workloads:
            if (kind, name) in done:
                continue
            workload = resources[kind].get(name=name, namespace=namespace).to_dict()
            workload.setdefault("kind", kind)
            if rollout_complete(workload):
                done[(kind, name)] = workload
                continue
            pods = _pods_of(kube, workload)
            cause = _verdict_of(kube, workload, pods, check_events, since)
            if cause is None and now >= deadline:
                cause = {
                    "object": f"{kind.lower()} {namespace}/{name}",
                    "reason": "DeadlineExceeded",
                    "message": f"did not finish rolling out within {timeout:.0f}s (the deadline): "
                    f"{rollout_message(workload)}",
                }
            if cause is not None:
                _tell(WaitStatus(what, now - started, timeout, done=True))
                clock = cluster_time(kube, namespace)
                evidence = gather(kube, workload, pods)
                evidence["cause"] = cause
                evidence["declared_at"] = clock
                evidence["waited_seconds"] = round(now - started, 3)
                evidence["deadline_seconds"] = timeout
                raise WaitFailed(describe(cause, evidence), cause, evidence)
            # Close polling while a container is in trouble, so the moment it turns final is seen at once.
            troubled = troubled or any(
                _waiting(state).get("reason") in (*IMAGE_PULL, "CrashLoopBackOff")
                for pod in pods
                for _, state in _container_states(pod)
            )
        if len(done) == len(workloads):
            _tell(WaitStatus(what, time.monotonic() - started, timeout, done=True))
            return [done[w] for w in workloads]
        _tell(WaitStatus(what, now - started, timeout))
        time.sleep(interval)
        # Fast at first (a failure is seen within moments), then gentle on a real API server.
        interval = 0.05 if troubled else min(1.0, interval * 1.25)


def describe(cause: Obj, evidence: Obj) -> str:
    """One sentence: object, reason, message, and the newest warning the cluster gave about it."""
    text = f"{cause['object']}: {cause['reason']}"
    if cause.get("message"):
        text += f": {cause['message']}"
    warnings = [e for e in evidence.get("events", []) if e.get("type") == "Warning"]
    # A container's state already quotes the kubelet; for workload-level causes the newest warning says more.
    if warnings and not cause["object"].startswith("pod ") and warnings[-1]["message"] not in text:
        last = warnings[-1]
        text += f" (last warning: {last['object']} {last['reason']}: {last['message']})"
    # The failing container's own last words, when it left any.
    for key, lines in (evidence.get("logs") or {}).items():
        pod, _, container = key.partition("/")
        if f"/{pod} container {container}" not in cause["object"]:
            continue
        tail = [line for line in lines.splitlines() if line.strip()][-3:]
        if tail:
            text += f"; last log lines of {key}: " + " | ".join(tail)
    return redact(text)
