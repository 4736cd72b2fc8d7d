"""The simulated container registry: which images exist, who may pull them, and what they run.

A real node pulls from real registries; here every pull is answered by :class:`ImageRegistry`, so an image
that does not exist, a registry host that does not resolve, or a private repository pulled without the
right ``imagePullSecrets`` fails with the same reasons and messages containerd gives. Each image also says
which user it runs as (``runAsNonRoot`` checks need that) and which *program* a container of it runs.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from dataclasses import dataclass
from typing import Any


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
        return (
            self.reference.rsplit(":", 1)[0] if ":" in self.reference.rsplit("/", 1)[-1] else self.reference
        )


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


# Images the sample apps, kubectl examples and tests use; more are added by the Istio catalog and by users.
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


@dataclass
class _Host:
    credentials: tuple[str, str] | None = None  # private registry: (username, password)


class ImageRegistry:
    """All registries the simulated nodes can reach, and the images in them."""

    def __init__(self) -> None:
        self._images: dict[str, Image] = {}
        self._hosts: dict[str, _Host] = {
            "docker.io": _Host(),
            "registry.k8s.io": _Host(),
            "gcr.io": _Host(),
            "quay.io": _Host(),
            "ghcr.io": _Host(),
        }
        self._mirrors: dict[str, tuple[str, ...]] = {}
        self._lock = threading.Lock()
        for image in DEFAULT_IMAGES:
            self.add(image)

    def add(self, image: Image) -> Image:
        image = Image(**{**image.__dict__, "reference": normalize(image.reference)})
        with self._lock:
            self._images[image.reference] = image
            self._hosts.setdefault(registry_host(image.reference), _Host())
        return image

    def add_image(self, reference: str, **kw: Any) -> Image:
        return self.add(Image(reference, **kw))

    def remove(self, reference: str) -> None:
        with self._lock:
            self._images.pop(normalize(reference), None)

    def add_registry(self, host: str, username: str | None = None, password: str | None = None) -> None:
        """Make a registry host resolvable; with credentials, pulls need a matching pull secret."""
        with self._lock:
            self._hosts[host] = _Host((username, password) if username else None)

    def add_mirror(self, prefix: str, upstreams: tuple[str, ...] = ("",)) -> None:
        """A registry (or a path in one) that mirrors others, as a private mirror does: pulling
        ``<prefix>/<rest>`` gets the image ``<upstream>/<rest>`` of the first upstream that has it (an empty
        upstream means ``<rest>`` is a whole reference, e.g. ``mendhak/http-https-echo:37``)."""
        prefix = prefix.rstrip("/")
        with self._lock:
            self._mirrors[prefix] = upstreams
            self._hosts.setdefault(prefix.split("/", 1)[0], _Host())

    def _mirrored(self, ref: str) -> Image | None:
        for prefix, upstreams in self._mirrors.items():
            if not ref.startswith(prefix + "/"):
                continue
            rest = ref[len(prefix) + 1 :]
            for upstream in upstreams:
                image = self._images.get(normalize(f"{upstream}/{rest}" if upstream else rest))
                if image is not None:
                    return Image(**{**image.__dict__, "reference": ref})
        return None

    def has(self, reference: str) -> bool:
        return normalize(reference) in self._images

    def pull(self, reference: str, pull_secrets: list[dict[str, Any]]) -> Image:
        """Resolve ``reference`` as a node would, or raise :class:`PullError` with containerd's message."""
        ref = normalize(reference)
        host = registry_host(ref)
        path = ref.split("/", 1)[1]
        repo, _, tag = (
            path.rpartition(":") if "@" not in path else (path.split("@")[0], "", path.split("@")[1])
        )
        with self._lock:
            registry = self._hosts.get(host)
            image = self._images.get(ref) or self._mirrored(ref)
            if image is None and "@" in ref:
                image = next((i for i in self._images.values() if i.digest == ref.split("@", 1)[1]), None)
        prefix = f'failed to pull and unpack image "{ref}": failed to resolve reference "{ref}"'
        if registry is None:
            raise PullError(
                f'{prefix}: failed to do request: Head "https://{host}/v2/{repo}/manifests/{tag}": '
                f"dial tcp: lookup {host} on 127.0.0.11:53: no such host"
            )
        if registry.credentials is not None and not _authorized(host, registry.credentials, pull_secrets):
            raise PullError(
                f"{prefix}: unexpected status from HEAD request to https://{host}/v2/{repo}/manifests/"
                f"{tag}: 401 Unauthorized"
            )
        if image is None:
            if host == "docker.io":
                raise PullError(
                    f"{prefix}: pull access denied, repository does not exist or may require "
                    "authorization: server message: insufficient_scope: authorization failed"
                )
            raise PullError(f"{prefix}: {ref}: not found")
        return image


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
