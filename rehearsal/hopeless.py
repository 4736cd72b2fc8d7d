"""When a pod is past hope (harness library; no pytest): the rules shared by the harness's own waits
(:mod:`rehearsal.waits`) and its watch over a running ``istioctl install``/``upgrade``
(:mod:`rehearsal.istio.watch`).

A pod is hopeless when the cluster reports a state that does not heal by waiting:

- a container waiting in ``CrashLoopBackOff`` after :data:`CRASHES` crashes, ``CreateContainerConfigError``,
  ``CreateContainerError`` or ``InvalidImageName`` (kubelet: kubernetes/kubernetes
  ``pkg/kubelet/container/sync_result.go``, ``pkg/kubelet/images/types.go`` at v1.33.1);
- an image pull that still fails after one back-off (``ErrImagePull`` / ``ImagePullBackOff``; the kubelet's
  ``Failed to pull image "X": ...`` event counted twice or more);
- ``PodScheduled=False`` with reason ``Unschedulable`` (kube-scheduler,
  ``pkg/scheduler/schedule_one.go`` handleSchedulingFailure sets the condition and records a
  ``FailedScheduling`` event) for longer than :data:`UNSCHEDULABLE_GRACE` seconds on the cluster's own clock:
  a pod that waits for an old one to go, or for a cluster autoscaler, gets its node within that grace.

Each cause names the object first, then the cluster's reason and message (and the image, for images).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from .evidence import redact

Obj = dict[str, Any]

HOPELESS_AT_ONCE = (
    "CrashLoopBackOff",
    "CreateContainerConfigError",
    "CreateContainerError",
    "InvalidImageName",
)
IMAGE_PULL = ("ErrImagePull", "ImagePullBackOff")
#: Crashes before a crash loop is taken as final: an init container started while the Istio CNI agent of its
#: node restarts (during a CNI upgrade) fails until the agent is back, then passes; a real crash keeps going.
CRASHES = 3
#: Seconds (cluster clock) a pod may stay Unschedulable before that is final.
UNSCHEDULABLE_GRACE = 30.0


def container_states(pod: Obj) -> list[tuple[str, Obj]]:
    status = pod.get("status") or {}
    return [
        (s["name"], s)
        for s in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or [])
    ]


def waiting(state: Obj) -> Obj:
    return (state.get("state") or {}).get("waiting") or {}


def pull_messages(events: list[Obj], pod: str, image: str) -> list[Obj]:
    return [
        e
        for e in events
        if (e.get("involvedObject") or {}).get("name") == pod
        and e.get("reason") == "Failed"
        and str(e.get("message", "")).startswith(f'Failed to pull image "{image}"')
    ]


def pull_failures(events: list[Obj], pod: str, image: str) -> int:
    """How often the kubelet reported failing to pull ``image`` for ``pod`` (events aggregate repeats)."""
    return sum(int(e.get("count") or 1) for e in pull_messages(events, pod, image))


def moment(value: Any) -> dt.datetime | None:
    """A timestamp of the API (RFC 3339, with or without fractions; or the client's datetime), as UTC,
    truncated to the second: events' ``lastTimestamp`` has whole seconds."""
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        when = value
    else:
        try:
            when = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.astimezone(dt.UTC).replace(microsecond=0)


def unschedulable(pod: Obj) -> Obj | None:
    """The pod's ``PodScheduled=False/Unschedulable`` condition, if it has one."""
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if (
            condition.get("type") == "PodScheduled"
            and condition.get("status") == "False"
            and condition.get("reason") == "Unschedulable"
        ):
            return dict(condition)
    return None


def pod_cause(
    pod: Obj,
    events: Callable[[], list[Obj]],
    cluster_now: Callable[[], dt.datetime | None],
    grace: float = UNSCHEDULABLE_GRACE,
) -> Obj | None:
    """Why ``pod`` cannot become ready, or None while it still can. ``events`` lists the namespace's events
    and ``cluster_now`` reads the cluster's clock; both are called only when a rule needs them."""
    meta = pod["metadata"]
    if meta.get("deletionTimestamp") is not None:
        return None
    where = f"pod {meta.get('namespace')}/{meta['name']}"
    condition = unschedulable(pod)
    if condition is not None and not (pod.get("spec") or {}).get("nodeName"):
        since, now = moment(condition.get("lastTransitionTime")), cluster_now()
        if since is not None and now is not None and (now - since).total_seconds() >= grace:
            return {
                "object": where,
                "reason": "FailedScheduling",
                "message": f"{condition.get('message') or 'Unschedulable'} (unschedulable for "
                f"{(now - since).total_seconds():.0f}s)",
            }
    for name, state in container_states(pod):
        reason = waiting(state).get("reason") or ""
        obj = f"{where} container {name}"
        if reason == "CrashLoopBackOff" and int(state.get("restartCount") or 0) < CRASHES:
            continue
        if reason in HOPELESS_AT_ONCE:
            return {
                "object": obj,
                "reason": reason,
                "message": waiting(state).get("message") or "",
                "image": state.get("image"),
            }
        if reason in IMAGE_PULL:
            image = state.get("image") or ""
            listed = events()
            # One failure can be a registry hiccup; a failure after the kubelet's back-off is not.
            failures = pull_failures(listed, meta["name"], image)
            if failures >= 2:
                said = [str(e.get("message")) for e in pull_messages(listed, meta["name"], image)]
                return {
                    "object": obj,
                    "reason": "ImagePullBackOff",
                    "image": image,
                    "host": image_host(image),
                    "message": f"image {image} cannot be pulled ({failures} attempts, the last after a "
                    "back-off): "
                    f"{said[-1] if said else waiting(state).get('message') or reason}",
                }
    return None


def image_host(image: str) -> str:
    """The registry host of an image reference (Docker's rule: the first path part when it has a dot or a
    colon or is ``localhost``, else ``docker.io``)."""
    first, _, rest = image.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return first
    return "docker.io"


def involved(event: dict[str, Any]) -> dict[str, Any]:
    """The object an Event is about (``involvedObject``), or an empty dict."""
    return event.get("involvedObject") or {}


def stamp(value: Any) -> str | None:
    """A timestamp as the API writes it (RFC 3339, ``Z``), whether the client gave a datetime or a string."""
    if value is None:
        return None
    if hasattr(value, "isoformat"):
        return str(value.isoformat()).replace("+00:00", "Z")
    return str(value)


def event_row(event: dict[str, Any]) -> dict[str, Any]:
    """An Event as the evidence keeps it: the object, type, reason, message (redacted), count and times."""
    about = involved(event)
    return {
        "object": f"{about.get('kind')}/{about.get('name')}",
        "type": event.get("type"),
        "reason": event.get("reason"),
        "message": redact(str(event.get("message") or "")),
        "count": event.get("count") or 1,
        "first": stamp(event.get("firstTimestamp") or event.get("eventTime")),
        "last": stamp(event.get("lastTimestamp") or event.get("eventTime")),
    }
