"""Scriptable faults of the simulated cluster, from a YAML file or from Python.

Kinds (YAML ``type``):

``image-pull``      an ``image`` is missing, or a ``registry`` (a host, or host/path) does not resolve; with
                    ``private: true`` either answers 401 Unauthorized instead. Pods end in ErrImagePull and
                    ImagePullBackOff with containerd's message for that failure. With ``skip: N`` the first
                    N matching pulls succeed (a registry that starts failing mid-run: a rate limit reached, a
                    scream test beginning), and a node that has the image pulls it again.
``api-error``       the API answers ``code`` (429 with Retry-After, 500, or 504 for a timeout) for a ``verb``
                    and ``resource`` (optionally ``namespace``/``name``), ``times`` times (default 1; -1 =
                    always), after letting ``skip`` matching requests through (default 0); with ``every: N``,
                    every Nth matching request instead (one in N); ``userAgent`` limits it to clients whose
                    User-Agent starts with that text.
``readiness``       containers of matching pods become ready only after ``delay`` seconds, or ``never``.
``crash-loop``      containers of matching pods exit with ``exitCode`` ``after`` seconds, and keep doing so.
``proxy-reject``    Istio proxies running ``image`` answer inbound requests with ``code`` (default 503) and
                    Envoy's reset message, while staying ready: the kind of failure only traffic shows.

Pods are matched by ``namespace``, ``labelSelector`` and/or ``image`` (a container image, normalised).
"""

from __future__ import annotations

import difflib
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kubesim.machinery import errors
from kubesim.machinery.errors import ApiError
from kubesim.machinery.resources import ResourceType
from kubesim.machinery.selectors import parse_label_selector
from kubesim.node.images import normalize

VERBS = ("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection", "*")


class FaultSpecError(ValueError):
    """A fault description that cannot be used."""


@dataclass
class PodMatch:
    namespace: str | None = None
    label_selector: str | None = None
    image: str | None = None
    container: str | None = None

    def matches(self, pod: dict[str, Any], container: dict[str, Any]) -> bool:
        if self.namespace and pod["metadata"].get("namespace") != self.namespace:
            return False
        if self.label_selector and not parse_label_selector(self.label_selector)(
            pod["metadata"].get("labels") or {}
        ):
            return False
        if self.image and normalize(container.get("image", "")) != normalize(self.image):
            return False
        if self.container and container.get("name") != self.container:
            return False
        return True


@dataclass
class ImagePullFault:
    image: str = ""  # one image (normalised when compared) ...
    registry: str = ""  # ... or every image under a registry host or host/path
    private: bool = False  # 401 Unauthorized rather than missing / unresolvable
    skip: int = 0  # let this many matching pulls through first
    seen: int = 0

    def matches(self, reference: str) -> bool:
        ref = normalize(reference)
        if self.image:
            return normalize(self.image) == ref
        return ref == self.registry or ref.startswith(self.registry.rstrip("/") + "/")

    @property
    def why(self) -> str:
        """The registry's failure (see ``ImageRegistry.failure``)."""
        if self.private:
            return "unauthorized"
        return "missing" if self.image or "/" in self.registry.rstrip("/") else "unresolvable"


@dataclass
class ApiErrorFault:
    verb: str
    resource: str  # plural, optionally "plural.group"
    code: int = 500
    times: int = 1
    namespace: str | None = None
    name: str | None = None
    retry_after: int = 1
    delay: float = 0.0  # for 504: how long the request hangs before timing out (wall seconds, bounded)
    skip: int = 0  # let this many matching requests through first
    every: int = 0  # fail one matching request in this many (0: the first ``times`` after ``skip``)
    user_agent: str | None = None  # only requests whose User-Agent starts with this
    hits: int = 0
    seen: int = 0

    def matches(self, verb: str, rt: ResourceType, namespace: str, name: str, user_agent: str = "") -> bool:
        if self.user_agent and not user_agent.startswith(self.user_agent):
            return False
        if self.verb not in ("*", verb):
            return False
        plural, _, group = self.resource.partition(".")
        if plural not in ("*", rt.plural) or (group and group != rt.group):
            return False
        if self.namespace and self.namespace != namespace:
            return False
        if self.name and self.name != name:
            return False
        return self.times < 0 or self.hits < self.times

    def error(self) -> ApiError:
        if self.code == 429:
            return errors.too_many_requests(self.retry_after)
        if self.code == 504:
            return errors.timeout()
        if self.code == 503:
            return ApiError(
                503, "ServiceUnavailable", "the server is currently unable to handle the request", {}
            )
        return errors.internal_error("rehearsal-sim: injected fault")


@dataclass
class ReadinessFault:
    match: PodMatch
    delay: float = 0.0
    never: bool = False


@dataclass
class CrashLoopFault:
    match: PodMatch
    after: float = 1.0
    exit_code: int = 1


@dataclass
class ProxyRejectFault:
    image: str
    code: int = 503


@dataclass
class Faults:
    """The active faults of one cluster. Thread-safe; the API server and kubelet consult it."""

    image_pull: list[ImagePullFault] = field(default_factory=list)
    api_errors: list[ApiErrorFault] = field(default_factory=list)
    readiness: list[ReadinessFault] = field(default_factory=list)
    crash_loops: list[CrashLoopFault] = field(default_factory=list)
    proxy_rejects: list[ProxyRejectFault] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    # -- adding ------------------------------------------------------------------------------------------
    def add(self, fault: Any) -> Any:
        buckets: dict[type, list[Any]] = {
            ImagePullFault: self.image_pull,
            ApiErrorFault: self.api_errors,
            ReadinessFault: self.readiness,
            CrashLoopFault: self.crash_loops,
            ProxyRejectFault: self.proxy_rejects,
        }
        with self._lock:
            buckets[type(fault)].append(fault)
        return fault

    def extend(self, other: Faults) -> None:
        """Arm every fault of ``other`` as well (faults armed mid-run, after a baseline was taken)."""
        for bucket in (
            other.image_pull,
            other.api_errors,
            other.readiness,
            other.crash_loops,
            other.proxy_rejects,
        ):
            for fault in bucket:
                self.add(fault)

    def fail_image(self, image: str) -> ImagePullFault:
        return self.add(ImagePullFault(image))

    def fail_api(self, verb: str, resource: str, code: int = 500, times: int = 1, **kw: Any) -> ApiErrorFault:
        return self.add(ApiErrorFault(verb, resource, code, times, **kw))

    def delay_ready(self, delay: float = 0.0, never: bool = False, **match: Any) -> ReadinessFault:
        return self.add(ReadinessFault(PodMatch(**match), delay, never))

    def crash_loop(self, after: float = 1.0, exit_code: int = 1, **match: Any) -> CrashLoopFault:
        return self.add(CrashLoopFault(PodMatch(**match), after, exit_code))

    def clear(self) -> None:
        with self._lock:
            self.image_pull.clear()
            self.api_errors.clear()
            self.readiness.clear()
            self.crash_loops.clear()
            self.proxy_rejects.clear()

    def remove(self, fault: Any) -> None:
        with self._lock:
            for bucket in (
                self.image_pull,
                self.api_errors,
                self.readiness,
                self.crash_loops,
                self.proxy_rejects,
            ):
                if fault in bucket:
                    bucket.remove(fault)

    # -- consulting ----------------------------------------------------------------------------------------
    def api_fault(
        self, verb: str, rt: ResourceType, namespace: str, name: str, user_agent: str = ""
    ) -> ApiError | None:
        with self._lock:
            for fault in self.api_errors:
                if fault.matches(verb, rt, namespace, name, user_agent):
                    fault.seen += 1
                    if fault.seen <= fault.skip:
                        continue
                    if fault.every and (fault.seen - fault.skip) % fault.every:
                        continue
                    fault.hits += 1
                    hit = fault
                    break
            else:
                return None
        if hit.code == 504 and hit.delay > 0:
            threading.Event().wait(min(hit.delay, 60.0))  # the request hangs, then times out
        return hit.error()

    def image_pull_for(self, image: str) -> ImagePullFault | None:
        with self._lock:
            fault = next((f for f in self.image_pull if f.matches(image)), None)
            if fault is not None and fault.seen < fault.skip:
                fault.seen += 1
                return None
            return fault

    def readiness_for(self, pod: dict[str, Any], container: dict[str, Any]) -> ReadinessFault | None:
        with self._lock:
            return next((f for f in self.readiness if f.match.matches(pod, container)), None)

    def proxy_reject_for(self, image: str) -> ProxyRejectFault | None:
        ref = normalize(image)
        with self._lock:
            return next((f for f in self.proxy_rejects if normalize(f.image) == ref), None)

    def crash_for(self, pod: dict[str, Any], container: dict[str, Any]) -> CrashLoopFault | None:
        with self._lock:
            return next((f for f in self.crash_loops if f.match.matches(pod, container)), None)

    # -- loading -------------------------------------------------------------------------------------------
    @classmethod
    def from_yaml(cls, text: str, source: str = "faults") -> Faults:
        try:
            doc = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise FaultSpecError(f"{source} is not valid YAML: {exc}") from None
        entries = doc.get("faults") if isinstance(doc, dict) else doc
        if isinstance(doc, dict) and set(doc) - {"faults"}:
            extra = ", ".join(sorted(str(k) for k in set(doc) - {"faults"}))
            raise FaultSpecError(f"{source}: unknown top-level key(s) {extra} (only 'faults:' is read)")
        if not isinstance(entries, list):
            raise FaultSpecError(f"{source} must hold a list under 'faults:'")
        faults = cls()
        for n, entry in enumerate(entries):
            faults.add(_parse(entry, f"{source}: fault #{n + 1}"))
        return faults

    @classmethod
    def from_file(cls, path: str | Path) -> Faults:
        p = Path(path)
        try:
            text = p.read_text()
        except OSError as exc:
            raise FaultSpecError(f"cannot read faults file {p}: {exc.strerror}") from None
        return cls.from_yaml(text, str(p))


def _match(entry: dict[str, Any]) -> PodMatch:
    return PodMatch(
        entry.get("namespace"), entry.get("labelSelector"), entry.get("image"), entry.get("container")
    )


def _seconds(value: Any, where: str) -> float:
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        for suffix, factor in (("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)):
            if text.endswith(suffix) and text[: -len(suffix)].replace(".", "", 1).isdigit():
                return float(text[: -len(suffix)]) * factor
    raise FaultSpecError(f"{where}: '{value}' is not a duration (use seconds, or e.g. 500ms, 30s, 2m)")


_MATCH_KEYS: dict[str, tuple[type, ...]] = {
    "namespace": (str,),
    "labelSelector": (str,),
    "image": (str,),
    "container": (str,),
}
_DURATION = (int, float, str)
# The keys each type of fault takes, with the YAML types each may have (bool is not an int here).
FAULT_KEYS: dict[str, dict[str, tuple[type, ...]]] = {
    "image-pull": {"image": (str,), "registry": (str,), "private": (bool,), "skip": (int,)},
    "api-error": {
        "verb": (str,),
        "resource": (str,),
        "code": (int,),
        "times": (int,),
        "namespace": (str,),
        "name": (str,),
        "retryAfter": (int,),
        "delay": _DURATION,
        "skip": (int,),
        "every": (int,),
        "userAgent": (str,),
    },
    "readiness": {**_MATCH_KEYS, "delay": _DURATION, "never": (bool,)},
    "crash-loop": {**_MATCH_KEYS, "after": _DURATION, "exitCode": (int,)},
    "proxy-reject": {"image": (str,), "code": (int,)},
}


def _check_keys(entry: dict[str, Any], kind: str, where: str) -> None:
    """A misspelled key is an error that names it (a fault silently not armed would make a rehearsal pass
    for the wrong reason), and so is a value of the wrong type."""
    allowed = FAULT_KEYS[kind]
    for key, value in entry.items():
        if key == "type":
            continue
        if key not in allowed:
            close = difflib.get_close_matches(str(key), list(allowed), n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise FaultSpecError(
                f"{where}: unknown key '{key}' for type {kind} ({hint}keys: {', '.join(allowed)})"
            )
        types = allowed[key]
        if isinstance(value, bool) and bool not in types or not isinstance(value, types):
            wanted = (
                "a duration (seconds, or e.g. 500ms, 30s, 2m)"
                if types == _DURATION
                else {str: "a string", int: "an integer", bool: "true or false"}[types[0]]
            )
            raise FaultSpecError(f"{where}: '{key}' must be {wanted}, not {value!r}")


def _parse(entry: Any, where: str) -> Any:
    if not isinstance(entry, dict) or "type" not in entry:
        raise FaultSpecError(
            f"{where} needs a 'type' (image-pull, api-error, readiness, crash-loop, proxy-reject)"
        )
    kind = entry["type"]
    if kind in FAULT_KEYS:
        _check_keys(entry, kind, where)
    if kind == "image-pull":
        if bool(entry.get("image")) == bool(entry.get("registry")):
            raise FaultSpecError(
                f"{where}: image-pull needs either 'image' (one image) or 'registry' (a host, e.g. "
                "registry.example.com, or a host/path)"
            )
        return ImagePullFault(
            str(entry.get("image") or ""),
            str(entry.get("registry") or ""),
            bool(entry.get("private")),
            int(entry.get("skip") or 0),
        )
    if kind == "api-error":
        verb, resource = entry.get("verb", "*"), entry.get("resource")
        if verb not in VERBS:
            raise FaultSpecError(f"{where}: verb '{verb}' is not one of {', '.join(VERBS)}")
        if not resource:
            raise FaultSpecError(f"{where}: api-error needs 'resource' (a plural such as deployments, or *)")
        code = int(entry.get("code", 500))
        if code not in (429, 500, 503, 504):
            raise FaultSpecError(f"{where}: code {code} is not one of 429, 500, 503, 504")
        return ApiErrorFault(
            verb,
            str(resource),
            code,
            int(entry.get("times", 1)),
            entry.get("namespace"),
            entry.get("name"),
            int(entry.get("retryAfter", 1)),
            _seconds(entry.get("delay", 0), where),
            int(entry.get("skip", 0)),
            int(entry.get("every", 0)),
            entry.get("userAgent"),
        )
    if kind == "readiness":
        return ReadinessFault(_match(entry), _seconds(entry.get("delay", 0), where), bool(entry.get("never")))
    if kind == "crash-loop":
        return CrashLoopFault(
            _match(entry), _seconds(entry.get("after", 1), where), int(entry.get("exitCode", 1))
        )
    if kind == "proxy-reject":
        if not entry.get("image"):
            raise FaultSpecError(f"{where}: proxy-reject needs 'image' (a proxyv2 image)")
        return ProxyRejectFault(str(entry["image"]), int(entry.get("code", 503)))
    raise FaultSpecError(
        f"{where}: unknown type '{kind}' (use image-pull, api-error, readiness, crash-loop, proxy-reject)"
    )
