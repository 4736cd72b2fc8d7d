"""API errors of the simulated API server, shaped exactly like the ``Status`` bodies of kube-apiserver.

Everything below the HTTP layer raises :class:`ApiError`; the server turns it into the status code,
the JSON body and (for 429) the ``Retry-After`` header that clients such as kubectl and client-go parse.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An error answered to the client as a ``metav1.Status``."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        details: dict[str, Any] | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.retry_after = retry_after

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
        }
        if (
            self.reason
        ):  # kube-apiserver leaves it out for failures it has no reason for (StatusReasonUnknown)
            body["reason"] = self.reason
        if self.details is not None:
            body["details"] = self.details
        body["code"] = self.code
        return body


def _qualified(resource: str, group: str) -> str:
    return f"{resource}.{group}" if group else resource


def _details(name: str, group: str, kind: str) -> dict[str, Any]:
    details: dict[str, Any] = {"name": name}
    if group:
        details["group"] = group
    details["kind"] = kind
    return details


def not_found(resource: str, group: str, name: str) -> ApiError:
    return ApiError(
        404, "NotFound", f'{_qualified(resource, group)} "{name}" not found', _details(name, group, resource)
    )


def resource_not_found() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})


def already_exists(resource: str, group: str, name: str) -> ApiError:
    return ApiError(
        409,
        "AlreadyExists",
        f'{_qualified(resource, group)} "{name}" already exists',
        _details(name, group, resource),
    )


def conflict(resource: str, group: str, name: str, why: str) -> ApiError:
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {_qualified(resource, group)} "{name}": {why}',
        _details(name, group, resource),
    )


STALE = "the object has been modified; please apply your changes to the latest version and try again"


def invalid(kind: str, group: str, name: str, causes: list[tuple[str, str, str]]) -> ApiError:
    """A 422 with one cause per ``(reason, field, message)``: ``("FieldValueRequired", "spec.x", ...)``."""
    what = f"{kind}.{group}" if group else kind
    text = "; ".join(f"{field}: {message}" for _, field, message in causes)
    if len(causes) > 1:
        text = "[" + ", ".join(f"{field}: {message}" for _, field, message in causes) + "]"
    details = _details(name, group, kind)
    if not name:
        del details["name"]
    if not kind:
        del details["kind"]  # omitempty: a patch's decoding error names no kind
    details["causes"] = [{"reason": r, "message": m, "field": f} for r, f, m in causes]
    return ApiError(422, "Invalid", f'{what} "{name}" is invalid: {text}', details)


def invalid_options(options_kind: str, field: str, reason: str, message: str) -> ApiError:
    """A 422 about a query parameter, as the server reports ``CreateOptions``/``ListOptions`` errors."""
    return ApiError(
        422,
        "Invalid",
        f'{options_kind}.meta.k8s.io "" is invalid: {field}: {message}',
        {
            "group": "meta.k8s.io",
            "kind": options_kind,
            "causes": [{"reason": reason, "message": message, "field": field}],
        },
    )


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def method_not_allowed(method: str, resource: str = "") -> ApiError:
    return ApiError(
        405, "MethodNotAllowed", "the server does not allow this method on the requested resource", {}
    )


def unsupported_media_type(content_type: str, patch: bool = True) -> ApiError:
    if not patch:
        return ApiError(
            415,
            "UnsupportedMediaType",
            "the body of the request was in an unknown format - accepted media types include: "
            "application/json, application/yaml, application/vnd.kubernetes.protobuf",
        )
    return ApiError(
        415,
        "UnsupportedMediaType",
        "the body of the request was in an unknown format - "
        "accepted media types include: application/json-patch+json, "
        "application/merge-patch+json, application/apply-patch+yaml",
        {},
    )


def gone(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")


def too_many_requests(retry_after: int) -> ApiError:
    return ApiError(
        429,
        "TooManyRequests",
        "Too many requests, please try again later.",
        {"retryAfterSeconds": retry_after},
        retry_after=retry_after,
    )


def internal_error(message: str) -> ApiError:
    return ApiError(
        500, "InternalError", f"Internal error occurred: {message}", {"causes": [{"message": message}]}
    )


def timeout() -> ApiError:
    return ApiError(
        504,
        "Timeout",
        "Timeout: request did not complete within requested timeout - context deadline exceeded",
        {},
    )
