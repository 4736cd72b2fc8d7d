"""Regenerate ``values_schema.json`` from Istio's own ``values_types.proto`` (a developer tool, not run in
CI).

istioctl decodes ``spec.values`` strictly into ``istio.operator.v1alpha1.Values`` (golang/protobuf jsonpb), so
which fields exist, and of which type, at each release is exactly what that proto says at the release tag.
This reads the proto from a git clone of istio/istio at the newest tag of each minor and writes one merged
table: for every message, every field with its JSON kind and the minors that have it (runs of minors per
kind). The project keeps these facts (with the tag each came from), not the proto.

Usage: ``python -m istiofacts.values_schema_gen /path/to/istio.git`` (a clone with the release tags).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

# The newest patch tag of each minor that the catalog covers, and where the proto lived at that tag.
PROTO_PATHS = (
    ("1.20", "operator/pkg/apis/istio/v1alpha1/values_types.proto"),
    ("1.21", "operator/pkg/apis/istio/v1alpha1/values_types.proto"),
    ("1.22", "operator/pkg/apis/istio/v1alpha1/values_types.proto"),
    ("1.23", "operator/pkg/apis/istio/v1alpha1/values_types.proto"),
    ("1.24", "operator/pkg/apis/values_types.proto"),
    ("1.25", "operator/pkg/apis/values_types.proto"),
    ("1.26", "operator/pkg/apis/values_types.proto"),
    ("1.27", "operator/pkg/apis/values_types.proto"),
    ("1.28", "operator/pkg/apis/values_types.proto"),
    ("1.29", "operator/pkg/apis/values_types.proto"),
    ("1.30", "operator/pkg/apis/values_types.proto"),
    ("1.31", "operator/pkg/apis/values_types.proto"),
)

SCALARS = {
    "bool": "bool",
    "google.protobuf.BoolValue": "bool",
    "string": "string",
    "google.protobuf.StringValue": "string",
    "int32": "int",
    "uint32": "int",
    "int64": "int",
    "uint64": "int",
    "google.protobuf.Int32Value": "int",
    "google.protobuf.UInt32Value": "int",
    "google.protobuf.Int64Value": "int",
    "float": "number",
    "double": "number",
    "google.protobuf.FloatValue": "number",
    "google.protobuf.DoubleValue": "number",
    "google.protobuf.Struct": "struct",
    "google.protobuf.Value": "any",
    "google.protobuf.Any": "any",
    "google.protobuf.Duration": "duration",
    "IntOrString": "intorstring",
}

_FIELD = re.compile(
    r"^(?P<repeated>repeated\s+)?(?P<type>map<[^>]+>|[A-Za-z_][\w.]*)\s+(?P<name>\w+)\s*=\s*\d+\s*"
    r"(?:\[(?P<options>[^\]]*)\])?\s*;"
)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def parse(text: str) -> dict[str, dict[str, Any]]:
    """Messages of a proto file: ``{message: {json name: kind}}``; kind is a scalar kind, a message name,
    ``["list", kind]``, ``["map", kind]`` or ``"enum"``; proto names are accepted too (jsonpb reads both)."""
    text = re.sub(r"//[^\n]*", "", text)
    messages: dict[str, dict[str, Any]] = {}
    enums: set[str] = set()
    stack: list[tuple[str, str]] = []  # (kind, name)
    pending_fields: list[tuple[str, str, str, str, bool]] = []
    for raw in re.split(r"(?<=[;{}])", text):
        line = " ".join(raw.split())
        if not line:
            continue
        opened = re.match(r"^(message|enum|oneof)\s+(\w+)\s*\{$", line)
        if opened:
            stack.append((opened.group(1), opened.group(2)))
            if opened.group(1) == "enum":
                enums.add(opened.group(2))
            elif opened.group(1) == "message":
                messages.setdefault(opened.group(2), {})
            continue
        if line == "}":
            if stack:
                stack.pop()
            continue
        message = next((name for kind, name in reversed(stack) if kind == "message"), None)
        if message is None or (stack and stack[-1][0] == "enum"):
            continue
        field = _FIELD.match(line)
        if field:
            options = field.group("options") or ""
            explicit = re.search(r'json_name\s*=\s*"([^"]+)"', options)
            pending_fields.append(
                (
                    message,
                    field.group("name"),
                    explicit.group(1) if explicit else _camel(field.group("name")),
                    field.group("type"),
                    bool(field.group("repeated")),
                )
            )
    for message, proto_name, json_name, type_name, repeated in pending_fields:
        if type_name.startswith("map<"):
            value_type = type_name[4:-1].split(",")[1].strip()
            kind: Any = ["map", _kind(value_type, enums)]
        else:
            kind = _kind(type_name, enums)
            if repeated:
                kind = ["list", kind]
        messages[message][json_name] = kind
        if proto_name != json_name:
            messages[message][proto_name] = kind
    return messages


def _kind(type_name: str, enums: set[str]) -> Any:
    if type_name in SCALARS:
        return SCALARS[type_name]
    short = type_name.rsplit(".", 1)[-1]
    if short in enums:
        return "enum"
    return short


def merge(per_minor: dict[str, dict[str, dict[str, Any]]]) -> dict[str, dict[str, list[list[Any]]]]:
    """``{message: {field: [[kind, first minor, last minor], ...]}}``: one segment per run of minors in which
    the field has the same kind (a message may be renamed, e.g. CPUTargetUtilizationConfig in 1.20)."""
    merged: dict[str, dict[str, list[list[Any]]]] = {}
    previous: str | None = None
    for minor, messages in per_minor.items():
        for message, fields in messages.items():
            for name, kind in fields.items():
                segments = merged.setdefault(message, {}).setdefault(name, [])
                last = segments[-1] if segments else None
                if last is not None and last[0] == kind and last[2] == previous:
                    last[2] = minor
                else:
                    segments.append([kind, minor, minor])
        previous = minor
    return merged


def newest_tag(repo: Path, minor: str) -> str:
    tags = subprocess.run(
        ["git", "-C", str(repo), "tag", "--list", f"{minor}.*"], capture_output=True, text=True, check=True
    ).stdout.split()
    releases = [t for t in tags if re.fullmatch(r"\d+\.\d+\.\d+", t)]
    if releases:
        return max(releases, key=lambda t: tuple(int(x) for x in t.split(".")))
    candidates = [t for t in tags if "-rc." in t]
    return max(candidates) if candidates else f"release-{minor}"


def main(repo: Path) -> None:
    per_minor: dict[str, dict[str, dict[str, Any]]] = {}
    sources: dict[str, str] = {}
    for minor, path in PROTO_PATHS:
        tag = newest_tag(repo, minor)
        text = subprocess.run(
            ["git", "-C", str(repo), "show", f"{tag}:{path}"], capture_output=True, text=True, check=True
        ).stdout
        per_minor[minor] = parse(text)
        sources[minor] = f"istio/istio {tag}:{path}"
    merged = merge(per_minor)
    target = Path(__file__).with_name("values_schema.json")
    target.write_text(json.dumps({"sources": sources, "messages": merged}, indent=1, sort_keys=True) + "\n")
    print(f"wrote {target} ({len(merged)} messages)")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
