"""Retrying what real API servers answer when busy: 429 (honouring Retry-After), 500, 502, 503, 504 and
connection resets, with capped exponential backoff inside a deadline.

Sits under every API call the harness makes: :func:`install` wraps the REST layer of one ``kubernetes``
``ApiClient`` (the official client's generated APIs, the dynamic client and watches all go through it), and
:func:`transient_istioctl_error` tells which istioctl failures are worth running again. Trusted clients do the
same: client-go retries 429 and 5xx answers that carry Retry-After (``k8s.io/client-go/rest/request.go``,
``checkWait``) and GETs whose connection was reset (``IsRetryableError``).

A retry never repeats a change that took effect: the API server rejects a 429 before doing anything; a create
retried after an answer that may have come after the change (500, 504, a reset) meets 409 AlreadyExists and a
delete ``404``, which :func:`already_done` tells callers to take as done; server-side apply and the harness's
patches carry the whole wanted state, so applying them twice changes nothing more. Each retry is reported to a
listener (the run records it as evidence of the step in flight).

A retry budget covers a whole step or check (:func:`budget`), not one call: a check that makes many calls to
an API server that keeps failing spends the budget once, then every call fails at once. And an answer the
API server gives *about a backend* is not the API server being busy: its service and pod proxy answer 503
when the Service has no endpoints or the pod refused the connection (``no endpoints available for service``,
``pkg/registry/core/service/storage``; ``error trying to reach service: dial tcp ...: connect: connection
refused``, ``k8s.io/apimachinery/pkg/util/proxy/transport.go`` RoundTrip; both checked against a real
kube-apiserver v1.36.2), which waiting does not change: those are answers, returned at once.
"""

from __future__ import annotations

import contextvars
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import urllib3

TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})
# Answers after which a non-idempotent change may or may not have been made.
AMBIGUOUS_STATUSES = frozenset({500, 502, 504})

Listener = Callable[[dict[str, Any]], None]

_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "rehearsal_retry_deadline", default=None
)


@dataclass
class Budget:
    """Seconds of retrying (failed attempts and the pauses between them) one step or check may spend in all,
    over every call it makes."""

    total: float
    spent: float = 0.0

    def allows(self, seconds: float) -> bool:
        return self.spent + seconds <= self.total


_budget: contextvars.ContextVar[Budget | None] = contextvars.ContextVar(
    "rehearsal_retry_budget", default=None
)


@contextmanager
def budget(seconds: float) -> Iterator[Budget]:
    """Every call inside this block shares one retry budget of ``seconds`` (an enclosing budget still
    counts: a check inside a step spends from both)."""
    own = Budget(seconds)
    outer = _budget.get()
    token = _budget.set(own)
    try:
        yield own
    finally:
        _budget.reset(token)
        if outer is not None:
            outer.spent += own.spent


def current_budget() -> Budget | None:
    return _budget.get()


# The API server's proxy answering about the backend it proxies to (see the module's docstring).
_BACKEND_ANSWER = re.compile(
    r"no endpoints available for service|error trying to reach service:.*connection refused"
)


def backend_answer(url: str, status: int, body: bytes | str | None) -> bool:
    """A 502/503 from a service or pod ``proxy`` subresource that says the backend has no endpoints or
    refused the connection: the backend's state, not a busy API server."""
    if status not in (502, 503) or "/proxy" not in url.split("?", 1)[0]:
        return False
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body or "")
    return bool(_BACKEND_ANSWER.search(text))


def _body(response: Any) -> bytes | str | None:
    try:
        return response.read() if hasattr(response, "read") else getattr(response, "data", None)
    except Exception:  # a body that cannot be read says nothing either way
        return None


@dataclass(frozen=True)
class Backoff:
    """Capped exponential backoff: ``base * 2**attempt`` seconds, at most ``cap``; ``budget`` seconds in all
    unless a step deadline (:func:`deadline`) is nearer."""

    base: float = 0.2
    cap: float = 5.0
    budget: float = 300.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        computed = min(self.cap, self.base * (2**attempt))
        return max(computed, min(retry_after, 60.0)) if retry_after is not None else computed


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Retries inside this block end by ``seconds`` from now (the step's own deadline)."""
    token = _deadline.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _deadline.reset(token)


def _retry_after(headers: Any) -> float | None:
    value = headers.get("Retry-After") if headers is not None else None
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _wait(seconds: float) -> None:
    # The backoff between two attempts; Ctrl-C during it raises KeyboardInterrupt (rehearsal.interrupts).
    time.sleep(seconds)


class _RetryingRequest:
    """Replaces ``rest_client.request`` of one ApiClient."""

    def __init__(self, request: Callable[..., Any], backoff: Backoff, listeners: list[Listener]) -> None:
        self.request = request
        self.backoff = backoff
        self.listeners = listeners

    def __call__(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        started = time.monotonic()
        limit = started + self.backoff.budget
        step_deadline = _deadline.get()
        if step_deadline is not None:
            limit = min(limit, step_deadline)
        attempt = 0
        ambiguous = False
        while True:
            try:
                response = self.request(method, url, *args, **kwargs)
            except (urllib3.exceptions.ProtocolError, urllib3.exceptions.MaxRetryError) as exc:
                if not _reset(exc):
                    raise  # refused or unresolvable: the server is not there, which waiting does not cure
                # A reset connection: the request may have reached the server.
                status, reason, retry_after = 0, f"connection reset ({type(exc).__name__})", None
                ambiguous = ambiguous or method.upper() != "GET"
                if not self._again(method, url, attempt, status, reason, retry_after, limit):
                    raise
                attempt += 1
                continue
            status = int(getattr(response, "status", 200))
            if status not in TRANSIENT_STATUSES:
                if attempt and ambiguous and status in (404, 409):
                    self._report(method, url, attempt, status, "the change had already taken effect", 0.0)
                return response
            if status in (502, 503) and "/proxy" in url and backend_answer(url, status, _body(response)):
                return response  # the backend's state, as the API server's proxy reports it
            retry_after = _retry_after(getattr(response, "headers", None))
            if not self._again(method, url, attempt, status, response.reason or "", retry_after, limit):
                return response  # the caller turns it into the usual ApiException
            _drain(response)
            ambiguous = ambiguous or (status in AMBIGUOUS_STATUSES and method.upper() != "GET")
            attempt += 1

    def _again(
        self,
        method: str,
        url: str,
        attempt: int,
        status: int,
        reason: str,
        retry_after: float | None,
        limit: float,
    ) -> bool:
        pause = self.backoff.delay(attempt, retry_after)
        if time.monotonic() + pause > limit:
            return False
        shared = _budget.get()
        if shared is not None:
            if not shared.allows(pause):
                return False  # the step's budget is spent: this call fails at once, as will the next
            shared.spent += pause
        self._report(method, url, attempt + 1, status, reason, pause)
        _wait(pause)
        return True

    def _report(self, method: str, url: str, attempt: int, status: int, reason: str, pause: float) -> None:
        path = re.sub(r"^https?://[^/]+", "", url).split("?", 1)[0]
        event = {
            "method": method.upper(),
            "path": path,
            "status": status,
            "reason": reason[:200],
            "attempt": attempt,
            "waited_seconds": round(pause, 3),
        }
        for listener in list(self.listeners):
            listener(event)


def _reset(exc: BaseException) -> bool:
    reason = getattr(exc, "reason", None) if isinstance(exc, urllib3.exceptions.MaxRetryError) else exc
    return isinstance(reason, (urllib3.exceptions.ProtocolError, urllib3.exceptions.ReadTimeoutError))


def _drain(response: Any) -> None:
    try:
        response.read()
    except Exception:  # the body of an error we are about to retry does not matter
        pass


def install(api_client: Any, listeners: list[Listener] | None = None, backoff: Backoff | None = None) -> Any:
    """Make every request of ``api_client`` retry transient failures; idempotent. Returns the client."""
    rest = api_client.rest_client
    current = rest.request
    if isinstance(current, _RetryingRequest):
        if listeners is not None:
            current.listeners = listeners
        if backoff is not None:
            current.backoff = backoff
        return api_client
    rest.request = _RetryingRequest(current, backoff or Backoff(), listeners if listeners is not None else [])
    return api_client


def api_error_line(exc: BaseException) -> str:
    """An API error as one line: the API server's own message (its ``Status``), with the code, never the
    client's multi-line dump of headers and body."""
    import json

    status = getattr(exc, "status", None)
    body = getattr(exc, "body", None)
    message = None
    if body:
        try:
            data = json.loads(body)
            message = data.get("message") if isinstance(data, dict) else None
        except (ValueError, TypeError):
            message = str(body).strip().splitlines()[0] if str(body).strip() else None
    if not message:
        message = getattr(exc, "reason", None) or str(exc).strip().splitlines()[0]
    return f"the API server answered {status}: {message}" if status else str(message)


def is_api_error(exc: BaseException) -> bool:
    """An error of the Kubernetes client carrying an HTTP answer (ApiException and the dynamic client's)."""
    return hasattr(exc, "status") and hasattr(exc, "body") and hasattr(exc, "reason")


def already_done(exc: BaseException, verb: str) -> bool:
    """True when a create met AlreadyExists or a delete NotFound: what was asked is (already) the case."""
    status = getattr(exc, "status", None)
    return (verb == "create" and status == 409) or (verb == "delete" and status == 404)


# What client-go prints for the answers above (k8s.io/apimachinery/pkg/api/errors and net/http), as istioctl
# shows them when a call to the API server failed.
_ISTIOCTL_TRANSIENT = re.compile(
    r"the server has received too many requests|Too Many Requests|"
    r"the server is currently unable to handle the request|ServiceUnavailable|"
    r"Internal error occurred|InternalError|"
    r"the server was unable to return a response in the time allotted|Timeout: request did not complete|"
    r"Gateway Timeout|Bad Gateway|connection reset by peer|http2: client connection lost|"
    r"unexpected EOF|i/o timeout|TLS handshake timeout",
    re.IGNORECASE,
)


def transient_istioctl_error(stderr: str, stdout: str = "") -> bool:
    """istioctl failed because of a transient answer of the API server (worth running again)."""
    return bool(_ISTIOCTL_TRANSIENT.search(stderr) or _ISTIOCTL_TRANSIENT.search(stdout[-2000:]))
