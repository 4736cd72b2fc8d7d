"""The simulated container registries: which images exist, who may pull them, and what they run.

A kind node pulls from the real internet: any public image of any public registry runs. The simulated
world is the same, with its rules stated here so that a rehearsal here fails where it would fail there:

- **Public registries** (:data:`PUBLIC_REGISTRIES`: docker.io, quay.io, ghcr.io, registry.k8s.io, ...) resolve
  and hold every image a user names, unless it was made missing (:meth:`ImageRegistry.remove`, or an
  ``image-pull`` fault). An image the simulator has a model of (busybox, the echo server, Istio's) runs that
  model's program; any other runs :data:`GENERIC_PROGRAM`, which serves HTTP on the container's ports.
- **Closed repositories** (:meth:`ImageRegistry.close`: Istio's own ``docker.io/istio`` and friends, declared
  by the Istio add-on) hold exactly the images added to them: a release Istio never published is not found.
- **Hosts under ``.invalid``** never resolve (RFC 6761), nor does any other host until it is configured with
  :meth:`ImageRegistry.add_registry`: a user's own registry (``registry.example.com/mirror``) mirrors the
  public world under its path, and with credentials is private (pulls need a matching ``imagePullSecret``).

Istio's registries follow Istio's dates (:mod:`istiofacts.registries`) against the simulated calendar once
one is set (:attr:`ImageRegistry.calendar`, from ``SimClock.set_calendar``): a retired ``registry.istio.io``
answers as a host that does not resolve (its DNS goes with the Cloudflare worker), a retired
``gcr.io/istio-release`` as a repository that is not found (gcr.io itself stays), and both are down during
the scream tests.

Failures carry the reasons and messages containerd gives. Each image also says which user it runs as
(``runAsNonRoot`` checks need that) and which *program* a container of it runs.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from istiofacts import registries as istio_registries

# Registries every kind node can reach on the internet (hosts as Docker normalises them).
PUBLIC_REGISTRIES = frozenset(
    {
        "docker.io",
        "quay.io",
        "ghcr.io",
        "gcr.io",
        "k8s.gcr.io",
        "registry.k8s.io",
        "public.ecr.aws",
        "mcr.microsoft.com",
        "registry.istio.io",
        "registry.gitlab.com",
        "docker.elastic.co",
        "nvcr.io",
        "cgr.dev",
    }
)
GENERIC_PROGRAM = "generic"  # see programs.py: what an image the simulator has no model of runs


@dataclass(frozen=True)
class Image:
    reference: str  # normalised, e.g. docker.io/library/busybox:1.36
    program: str = "sleep"  # see programs.py
    user: int = 0
    port: int | None = None
    size: int = 4_000_000
    pull_seconds: float = 1.0

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.reference.encode()).hexdigest()

    @property
    def repository(self) -> str:
        return repository_of(self.reference)


class PullError(Exception):
    """A failed pull, with containerd's message."""


def normalize(reference: str) -> str:
    """Docker's reference normalisation: ``nginx`` -> ``docker.io/library/nginx:latest``."""
    ref = reference.strip()
    name, digest = (ref.split("@", 1) + [""])[:2]
    first = name.split("/", 1)[0]
    if "/" not in name:
        name = f"docker.io/library/{name}"
    elif not ("." in first or ":" in first or first == "localhost"):
        name = f"docker.io/{name}"
    if digest:
        return f"{name}@{digest}"
    if ":" not in name.rsplit("/", 1)[-1]:
        name += ":latest"
    return name


def registry_host(reference: str) -> str:
    return normalize(reference).split("/", 1)[0]


def repository_of(reference: str) -> str:
    """``docker.io/istio/pilot:1.29.5`` -> ``docker.io/istio/pilot`` (tag or digest dropped)."""
    name = reference.split("@", 1)[0]
    return name.rsplit(":", 1)[0] if ":" in name.rsplit("/", 1)[-1] else name


def _under(reference: str, prefix: str) -> bool:
    return reference.startswith(prefix.rstrip("/") + "/")


# Images the sample apps, kubectl examples and tests use; more are added by the Istio add-on and by users.
DEFAULT_IMAGES: tuple[Image, ...] = (
    Image("registry.k8s.io/pause:3.10", program="pause", user=65535, size=320_000, pull_seconds=0.3),
    Image("docker.io/library/busybox:1.36", program="shell", size=2_100_000, pull_seconds=0.5),
    Image("docker.io/library/busybox:latest", program="shell", size=2_100_000, pull_seconds=0.5),
    Image("docker.io/library/nginx:1.27", program="http-echo", port=80, size=70_000_000, pull_seconds=2.0),
    Image("docker.io/library/nginx:latest", program="http-echo", port=80, size=70_000_000, pull_seconds=2.0),
    Image("docker.io/curlimages/curl:8.11.1", program="shell", user=100, size=12_000_000, pull_seconds=0.8),
    Image(
        "docker.io/mendhak/http-https-echo:37",
        program="http-echo",
        user=1000,
        port=8080,
        size=60_000_000,
        pull_seconds=1.5,
    ),
    Image(
        "registry.k8s.io/e2e-test-images/agnhost:2.53",
        program="http-echo",
        port=8080,
        size=50_000_000,
        pull_seconds=1.5,
    ),
)


@dataclass(frozen=True)
class Registry:
    """A registry a user configured: ``location`` is a host, optionally with the path it mirrors under."""

    location: str
    credentials: tuple[str, str] | None = None  # private: (username, password)

    @property
    def host(self) -> str:
        return self.location.split("/", 1)[0]


class ImageRegistry:
    """Every registry the simulated nodes can reach, and the images in them."""

    def __init__(self) -> None:
        self._images: dict[str, Image] = {}
        self._missing: set[str] = set()  # references made missing on public registries
        self._closed: set[str] = set()  # repository prefixes that hold only the images added to them
        self._registries: dict[str, Registry] = {}  # configured registries by location
        self._private_hosts: dict[str, tuple[str, str]] = {}
        self._image_hosts: set[str] = set()  # a registry that was given images exists, with just those
        self._lock = threading.Lock()
        # The simulated calendar (seconds since 1970) Istio's registry dates are judged against; None: no date
        # is applied (the registries are there, as before the retirement).
        self.calendar: Callable[[], float] | None = None
        for image in DEFAULT_IMAGES:
            self.add(image)

    # -- configuring the world ------------------------------------------------------------------------------
    def add(self, image: Image) -> Image:
        image = replace(image, reference=normalize(image.reference))
        with self._lock:
            self._images[image.reference] = image
            self._missing.discard(image.reference)
            self._image_hosts.add(registry_host(image.reference))
        return image

    def add_image(self, reference: str, **kw: Any) -> Image:
        return self.add(Image(reference, **kw))

    def remove(self, reference: str) -> None:
        """Make an image missing: pulls of it fail with "not found" (a deleted tag, a typo in a chart)."""
        ref = normalize(reference)
        with self._lock:
            self._images.pop(ref, None)
            self._missing.add(ref)

    def close(self, prefix: str) -> None:
        """Declare a repository prefix (``docker.io/istio``) that holds only the images added to it."""
        with self._lock:
            self._closed.add(prefix.rstrip("/"))

    def add_registry(self, location: str, username: str | None = None, password: str | None = None) -> None:
        """Make ``location`` (a host, optionally with a path) a registry of this world, mirroring the public
        ones: ``<location>/<image>`` holds what ``<image>`` names publicly. With credentials the host is
        private, and a pull needs an ``imagePullSecret`` holding them."""
        registry = Registry(location.rstrip("/"), (username, password or "") if username else None)
        with self._lock:
            self._registries[registry.location] = registry
            if registry.credentials is not None:
                self._private_hosts[registry.host] = registry.credentials

    def resolves(self, host: str) -> bool:
        if host.endswith(".invalid"):
            return False
        with self._lock:
            return (
                host in PUBLIC_REGISTRIES
                or host in self._image_hosts
                or any(r.host == host for r in self._registries.values())
            )

    # -- resolving ------------------------------------------------------------------------------------------
    def lookup(self, reference: str) -> Image | None:
        """The image ``reference`` names in this world, ignoring credentials; None if there is none."""
        ref = normalize(reference)
        if not self.resolves(ref.split("/", 1)[0]):
            return None
        with self._lock:
            return self._lookup_locked(ref, mirrored=True)

    def has(self, reference: str) -> bool:
        return self.lookup(reference) is not None

    def _lookup_locked(self, ref: str, mirrored: bool) -> Image | None:
        image = self._images.get(ref)
        if image is not None:
            return image
        if "@" in ref:
            digest = ref.split("@", 1)[1]
            known = next((i for i in self._images.values() if i.digest == digest), None)
            if known is not None:
                return known
        if ref in self._missing:
            return None
        host = ref.split("/", 1)[0]
        if mirrored:
            for location in sorted(self._registries, key=len, reverse=True):
                if _under(ref, location):
                    return self._mirrored_locked(ref, ref[len(location) + 1 :])
        if host not in PUBLIC_REGISTRIES or any(_under(ref, closed) for closed in self._closed):
            return None
        return Image(ref, program=GENERIC_PROGRAM, **_generic_traits(ref))

    def _mirrored_locked(self, ref: str, rest: str) -> Image | None:
        """What a mirror holds at ``<location>/<rest>``: users push public images under paths of their own
        (``mirror/mendhak/http-https-echo:37``, ``istio/pilot:1.29.5``), so the first known public image
        that ``rest`` ends with, else an image of a closed repository with the same name and tag (Istio's
        images under the mirror's own hub), else the public image ``rest`` names (an app we have no model
        of)."""
        parts = rest.split("/")
        found = None
        for start in range(len(parts)):
            found = self._images.get(normalize("/".join(parts[start:])))
            if found is not None:
                break
        if found is None:
            found = next(
                (i for closed in sorted(self._closed) if (i := self._images.get(f"{closed}/{parts[-1]}"))),
                None,
            )
        if found is None:
            found = self._lookup_locked(normalize(rest), mirrored=False)
        return replace(found, reference=ref) if found is not None else None

    def pull(self, reference: str, pull_secrets: list[dict[str, Any]]) -> Image:
        """Resolve ``reference`` as a node would, or raise :class:`PullError` with containerd's message."""
        ref = normalize(reference)
        host = ref.split("/", 1)[0]
        if not self.resolves(host):
            raise self.failure(ref, "unresolvable")
        gone = self.retired(ref)
        if gone is not None:
            raise self.failure(ref, "unresolvable" if gone.host_goes else "missing")
        with self._lock:
            credentials = self._private_hosts.get(host)
        if credentials is not None and not _authorized(host, credentials, pull_secrets):
            raise self.failure(ref, "unauthorized")
        image = self.lookup(ref)
        if image is None:
            raise self.failure(ref, "missing")
        return image

    def retired(self, reference: str) -> istio_registries.Registry | None:
        """Istio's registry record when ``reference`` is in one that is unavailable on the calendar."""
        if self.calendar is None:
            return None
        record = istio_registries.registry_of(normalize(reference))
        at = datetime.fromtimestamp(self.calendar(), UTC)
        return record if record is not None and not record.available(at) else None

    @staticmethod
    def failure(reference: str, why: str) -> PullError:
        """containerd's error for a pull of ``reference`` that fails because the host does not resolve
        (``unresolvable``), refuses our credentials (``unauthorized``) or has no such image (``missing``)."""
        ref = normalize(reference)
        host, path = ref.split("/", 1)
        repo, _, tag = path.partition("@") if "@" in path else path.rpartition(":")
        prefix = f'failed to pull and unpack image "{ref}": failed to resolve reference "{ref}"'
        if why == "unresolvable":
            return PullError(
                f'{prefix}: failed to do request: Head "https://{host}/v2/{repo}/manifests/{tag}": '
                f"dial tcp: lookup {host} on 127.0.0.11:53: no such host"
            )
        if why == "unauthorized":
            return PullError(
                f"{prefix}: unexpected status from HEAD request to https://{host}/v2/{repo}/manifests/"
                f"{tag}: 401 Unauthorized"
            )
        if host == "docker.io":
            return PullError(
                f"{prefix}: pull access denied, repository does not exist or may require "
                "authorization: server message: insufficient_scope: authorization failed"
            )
        return PullError(f"{prefix}: {ref}: not found")


def _generic_traits(ref: str) -> dict[str, Any]:
    """Size and pull time of an image we know nothing about: stable per reference, typical of app images."""
    seed = int(hashlib.sha256(ref.encode()).hexdigest()[:8], 16)
    size = 8_000_000 + seed % 120_000_000
    return {"size": size, "pull_seconds": round(0.5 + size / 60_000_000, 2)}


def _authorized(host: str, credentials: tuple[str, str], pull_secrets: list[dict[str, Any]]) -> bool:
    for secret in pull_secrets:
        raw = (secret.get("data") or {}).get(".dockerconfigjson")
        if not raw:
            continue
        try:
            auths = json.loads(base64.b64decode(raw)).get("auths", {})
        except ValueError:
            continue
        for server, entry in auths.items():
            if server.replace("https://", "").rstrip("/").split("/")[0] != host:
                continue
            user, password = entry.get("username"), entry.get("password")
            if entry.get("auth"):
                user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
            if (user, password) == credentials:
                return True
    return False
