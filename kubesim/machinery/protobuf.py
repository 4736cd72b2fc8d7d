"""Kubernetes' protobuf request bodies, decoded for the few kinds kubectl's imperative commands send.

``kubectl create namespace|configmap|secret|serviceaccount`` (and client-go generally) send
``application/vnd.kubernetes.protobuf``: the 4-byte magic ``k8s\\x00`` then a ``runtime.Unknown``
(typeMeta=1 {apiVersion=1, kind=2}, raw=2, contentEncoding=3, contentType=4) whose ``raw`` is the object's
own message. The field numbers below are those of kubernetes/kubernetes (v1.36)
``staging/src/k8s.io/api/core/v1/generated.proto`` and ``apimachinery/pkg/apis/meta/v1/generated.proto``.
No well-kept PyPI package ships Kubernetes' compiled protos, and the wire format is small, so this is a
hand-written reader for exactly these messages; any other kind gets a 415 saying to send JSON.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

MAGIC = b"k8s\x00"


class ProtobufError(ValueError):
    pass


class UnsupportedKind(ProtobufError):
    """A well-formed body of a kind this module has no decoder for."""


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ProtobufError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def fields(data: bytes) -> list[tuple[int, int | bytes]]:
    """(field number, value) pairs: ints for varints, bytes for length-delimited fields."""
    out: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
            out.append((number, value))
        elif wire == 2:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise ProtobufError("truncated field")
            out.append((number, data[pos : pos + length]))
            pos += length
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise ProtobufError(f"unsupported wire type {wire}")
    return out


def _str(value: int | bytes) -> str:
    if not isinstance(value, bytes):
        raise ProtobufError("expected a string")
    return value.decode()


def _map(entries: list[bytes], binary: bool = False) -> dict[str, str]:
    out = {}
    for entry in entries:
        parts = dict(fields(entry))
        key = _str(parts.get(1, b""))
        raw = parts.get(2, b"")
        if not isinstance(raw, bytes):
            raise ProtobufError("expected bytes")
        out[key] = base64.b64encode(raw).decode() if binary else raw.decode()
    return out


def _time(data: bytes) -> str:
    seconds = dict(fields(data)).get(1, 0)
    assert isinstance(seconds, int)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _grouped(data: bytes) -> dict[int, list[Any]]:
    grouped: dict[int, list[Any]] = {}
    for number, value in fields(data):
        grouped.setdefault(number, []).append(value)
    return grouped


def _object_meta(data: bytes) -> dict[str, Any]:
    f = _grouped(data)
    meta: dict[str, Any] = {}
    for number, key in (
        (1, "name"),
        (2, "generateName"),
        (3, "namespace"),
        (5, "uid"),
        (6, "resourceVersion"),
    ):
        if number in f and f[number][-1]:
            meta[key] = _str(f[number][-1])
    if 8 in f and f[8][-1]:
        meta["creationTimestamp"] = _time(f[8][-1])
    if 11 in f:
        meta["labels"] = _map(f[11])
    if 12 in f:
        meta["annotations"] = _map(f[12])
    if 14 in f:
        meta["finalizers"] = [_str(v) for v in f[14]]
    return meta


def _namespace(f: dict[int, list[Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    if 2 in f:
        finalizers = [_str(v) for v in _grouped(f[2][-1]).get(1, [])]
        obj["spec"] = {"finalizers": finalizers} if finalizers else {}
    return obj


def _configmap(f: dict[int, list[Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    if 2 in f:
        obj["data"] = _map(f[2])
    if 3 in f:
        obj["binaryData"] = _map(f[3], binary=True)
    if 4 in f:
        obj["immutable"] = bool(f[4][-1])
    return obj


def _secret(f: dict[int, list[Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    if 2 in f:
        obj["data"] = _map(f[2], binary=True)
    if 3 in f:
        obj["type"] = _str(f[3][-1])
    if 4 in f:
        obj["stringData"] = _map(f[4])
    if 5 in f:
        obj["immutable"] = bool(f[5][-1])
    return obj


def _serviceaccount(f: dict[int, list[Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    if 4 in f:
        obj["automountServiceAccountToken"] = bool(f[4][-1])
    return obj


def _token_request(f: dict[int, list[Any]]) -> dict[str, Any]:
    if 2 not in f:
        return {}
    spec = _grouped(f[2][-1])
    out: dict[str, Any] = {}
    if 1 in spec:
        out["audiences"] = [_str(v) for v in spec[1]]
    if 4 in spec:
        out["expirationSeconds"] = spec[4][-1]
    return {"spec": out}


def _empty(f: dict[int, list[Any]]) -> dict[str, Any]:
    return {}


_KINDS = {
    ("authentication.k8s.io/v1", "TokenRequest"): _token_request,
    ("authentication.k8s.io/v1", "SelfSubjectReview"): _empty,
    ("authorization.k8s.io/v1", "SelfSubjectAccessReview"): _empty,
    ("v1", "Namespace"): _namespace,
    ("v1", "ConfigMap"): _configmap,
    ("v1", "Secret"): _secret,
    ("v1", "ServiceAccount"): _serviceaccount,
}


def _int64(value: int | bytes) -> int:
    if not isinstance(value, int):
        raise ProtobufError("expected a varint")
    return value - (1 << 64) if value >= 1 << 63 else value


def _unknown(body: bytes) -> tuple[str, str, bytes]:
    """apiVersion, kind and raw message of a ``runtime.Unknown`` envelope."""
    if not body.startswith(MAGIC):
        raise ProtobufError(
            "provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]"
        )
    unknown = dict(fields(body[len(MAGIC) :]))
    type_meta = dict(fields(unknown.get(1, b"")))  # type: ignore[arg-type]
    raw = unknown.get(2, b"")
    if not isinstance(raw, bytes):
        raise ProtobufError("expected raw bytes")
    return _str(type_meta.get(1, b"")), _str(type_meta.get(2, b"")), raw


def decode_delete_options(body: bytes) -> dict[str, Any]:
    """The JSON form of a protobuf ``DeleteOptions`` body (client-go sends one with every DELETE it encodes as
    protobuf, e.g. helm 4 purging its release Secrets): gracePeriodSeconds=1, preconditions=2 {uid=1,
    resourceVersion=2}, orphanDependents=3, propagationPolicy=4, dryRun=5 (apimachinery
    ``pkg/apis/meta/v1/generated.proto``)."""
    _, kind, raw = _unknown(body)
    if kind != "DeleteOptions":
        raise UnsupportedKind(kind)
    f = _grouped(raw)
    options: dict[str, Any] = {}
    if 1 in f:
        options["gracePeriodSeconds"] = _int64(f[1][-1])
    if 2 in f:
        pre = _grouped(f[2][-1])
        keys = ((1, "uid"), (2, "resourceVersion"))
        options["preconditions"] = {key: _str(pre[number][-1]) for number, key in keys if number in pre}
    if 3 in f:
        options["orphanDependents"] = bool(f[3][-1])
    if 4 in f and f[4][-1]:
        options["propagationPolicy"] = _str(f[4][-1])
    if 5 in f:
        options["dryRun"] = [_str(v) for v in f[5]]
    return options


def decode(body: bytes) -> dict[str, Any]:
    """The JSON form of a protobuf-encoded object; ProtobufError when it is not one this module reads."""
    api_version, kind, raw = _unknown(body)
    decoder = _KINDS.get((api_version, kind))
    if decoder is None:
        raise UnsupportedKind(kind)
    message = _grouped(raw)
    obj: dict[str, Any] = {"apiVersion": api_version, "kind": kind}
    obj["metadata"] = _object_meta(message[1][-1]) if 1 in message else {}
    obj.update(decoder(message))
    return obj
