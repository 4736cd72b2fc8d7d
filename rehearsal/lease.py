"""One rehearsal at a time on a cluster: a ``coordination.k8s.io/v1`` Lease held for the length of a run.

Sits between provisioning and the first change. Kubernetes' own leader election works the same way
(``k8s.io/client-go/tools/leaderelection/resourcelock/leaselock.go``): the holder writes ``holderIdentity``,
``acquireTime`` and ``renewTime`` and renews before ``leaseDurationSeconds`` run out; anyone else may take a
lease only once it has expired. A second rehearsal finds the lease held and stops before it changes anything,
saying who holds it and since when. A killed run leaves a lease that expires on its own; the replay of
that run (same run id) may take it at once.
"""

from __future__ import annotations

import datetime as dt
import getpass
import socket
import threading
from dataclasses import dataclass, field
from typing import Any

LEASE_NAME = "istio-upgrade-rehearsal"
LEASE_NAMESPACE = "kube-system"
DURATION_SECONDS = 60


class LeaseHeld(Exception):
    """Another rehearsal holds the lease; the message says who and since when, and what to do."""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _micro_time(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(value: Any) -> dt.datetime | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    try:
        return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def identity(run_id: str) -> str:
    return f"{getpass.getuser()}@{socket.gethostname()} {run_id}"


@dataclass
class RehearsalLease:
    """The lease of one run on one cluster: :meth:`acquire`, renewed in the background, :meth:`release`."""

    api_client: Any
    run_id: str
    namespace: str = LEASE_NAMESPACE
    name: str = LEASE_NAME
    duration: int = DURATION_SECONDS
    holder: str = ""
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.holder = self.holder or identity(self.run_id)

    def _api(self) -> Any:
        from kubernetes import client

        return client.CoordinationV1Api(self.api_client)

    def _body(self, acquired: dt.datetime, resource_version: str | None = None) -> dict[str, Any]:
        metadata: dict[str, Any] = {
            "name": self.name,
            "namespace": self.namespace,
            "labels": {"app.kubernetes.io/managed-by": "istio-upgrade-rehearsal"},
        }
        if resource_version:
            metadata["resourceVersion"] = resource_version
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": metadata,
            "spec": {
                "holderIdentity": self.holder,
                "leaseDurationSeconds": self.duration,
                "acquireTime": _micro_time(acquired),
                "renewTime": _micro_time(_now()),
            },
        }

    def acquire(self) -> None:
        """Take the lease, or raise :class:`LeaseHeld` (changing nothing) when another run holds it."""
        from kubernetes.client.exceptions import ApiException

        api = self._api()
        try:
            current = api.read_namespaced_lease(self.name, self.namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise
            try:
                api.create_namespaced_lease(self.namespace, self._body(_now()))
            except ApiException as created:
                if created.status == 409:  # someone else was quicker: report them
                    return self._refuse(api.read_namespaced_lease(self.name, self.namespace))
                raise
        else:
            spec = current.spec
            renewed = _parse(spec.renew_time) or _parse(spec.acquire_time)
            expired = renewed is None or (_now() - renewed).total_seconds() > (
                spec.lease_duration_seconds or self.duration
            )
            same_run = bool(spec.holder_identity) and spec.holder_identity.endswith(f" {self.run_id}")
            if spec.holder_identity and not expired and not same_run:
                return self._refuse(current)
            # Expired, released or ours: take it over; the resourceVersion makes a race lose with 409.
            api.replace_namespaced_lease(
                self.name, self.namespace, self._body(_now(), current.metadata.resource_version)
            )
        self._thread = threading.Thread(target=self._renew, name="rehearsal-lease", daemon=True)
        self._thread.start()

    def _refuse(self, lease: Any) -> None:
        spec = lease.spec
        since = _parse(spec.acquire_time)
        raise LeaseHeld(
            f"another rehearsal is running on this cluster: lease {self.namespace}/{self.name} is held by "
            f"{spec.holder_identity or 'someone'} since "
            f"{since.strftime('%Y-%m-%d %H:%M:%S UTC') if since else 'an unknown time'}; wait for it to end "
            f"(or, if that run is dead, for the lease to expire after {spec.lease_duration_seconds}s)"
        )

    def _renew(self) -> None:
        while not self._stop.wait(self.duration / 3):
            try:
                api = self._api()
                current = api.read_namespaced_lease(self.name, self.namespace)
                if current.spec.holder_identity != self.holder:
                    return
                current.spec.renew_time = _now()
                api.replace_namespaced_lease(self.name, self.namespace, current)
            except Exception:  # the next renewal tries again; the lease outlives one missed renewal
                continue

    def release(self) -> bool:
        """Give the lease back (delete it, if still ours). True when it was released."""
        from kubernetes.client.exceptions import ApiException

        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        api = self._api()
        try:
            current = api.read_namespaced_lease(self.name, self.namespace)
            if current.spec.holder_identity != self.holder:
                return False
            api.delete_namespaced_lease(
                self.name,
                self.namespace,
                body={"preconditions": {"uid": current.metadata.uid}},
            )
        except ApiException as exc:
            return exc.status == 404
        return True
