"""``rehearsal.json``: the run record is valid against its shipped JSON Schema, and its content for an
upgraded, a rolled-back and a precheck-failed run matches golden files (ids, times, hashes, generated pod
names and versions normalised). ``UPDATE_GOLDEN=1`` rewrites the golden files after a deliberate change."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from rehearsal.record import load_schema, verdict
from tests.runs import scenario

GOLDEN = Path(__file__).resolve().parent / "golden"

# Generated names use this alphabet (no vowels, no 0/1/3: k8s.io/apimachinery rand.SafeEncodeString).
_SAFE = "bcdfghjklmnpqrstvwxz2456789"
_PATTERNS = [
    (re.compile(r"run-\d{8}-\d{6}-[0-9a-f]{4}"), "<run-id>"),
    # The Lease holder is user@host of the machine that ran the rehearsal.
    (re.compile(r"held by \S+@\S+ "), "held by <user>@<host> "),
    (re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z"), "<time>"),
    (re.compile(r"\b[0-9a-f]{64}\b"), "<sha256>"),
    (re.compile(r"\b[0-9a-f]{40}\b"), "<commit>"),
    (re.compile(r"/tmp/[^\s'\",)]*"), "<path>"),
    (re.compile(rf"-[{_SAFE}]{{6,10}}-[{_SAFE}]{{5}}\b"), "-<hash>-<id>"),
    (re.compile(rf"(istio-cni-node|ztunnel)-[{_SAFE}]{{5}}\b"), r"\1-<id>"),
    (re.compile(r"\b\d+(\.\d+)?s\b"), "<n>s"),
    (re.compile(r"\(\d+ attempts"), "(<n> attempts"),
]


def normalise_text(text: str, versions: dict[str, str]) -> str:
    for version, name in versions.items():
        text = text.replace(version, name)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def projection(record: dict[str, Any]) -> dict[str, Any]:
    """What the golden files hold: the record's meaning, without what differs from run to run by nature
    (command output, durations, traffic timings, findings that count live objects)."""
    return {
        "schema_version": record["schema_version"],
        "verdict": record["verdict"],
        "verdict_meaning": record["verdict_meaning"],
        "cause": record["cause"],
        "strategy": record["strategy"],
        "cluster": record["cluster"],
        "environment": {
            "cluster_kind": record["environment"]["cluster_kind"],
            "kubernetes_version": record["environment"]["kubernetes_version"],
            "istioctl": [i["version"] for i in record["environment"]["istioctl"]],
        },
        "plan": {k: v for k, v in record["plan"].items() if k != "install_spec_to"},
        "steps": [
            {
                "name": s["name"],
                "outcome": s["outcome"],
                "reason": s["reason"],
                "evidence": [
                    e["title"]
                    if e["type"] == "data"
                    else " ".join(e["argv"][1:3])
                    if e["type"] == "command"
                    else e["type"]
                    for e in s["evidence"]
                ],
                "artifacts": [a["path"] for a in s["artifacts"]],
            }
            for s in record["steps"]
        ],
        "validations": [
            {k: v[k] for k in ("name", "suite", "outcome", "reason")} for v in record["validations"]
        ],
        "versions": {
            when: None
            if seen is None
            else {"control_plane": seen["control_plane"], "proxies": sorted(seen["data_plane"])}
            for when, seen in record["versions"].items()
        },
        "traffic": [{k: t[k] for k in ("when", "requests", "codes")} for t in record["traffic"]],
        "rollback": {k: record["rollback"].get(k) for k in ("mode", "ran", "verified", "reason", "errors")},
    }


def normalised(record: dict[str, Any]) -> dict[str, Any]:
    versions = {record["to"]: "<to>", record["from"]: "<from>"}
    text = json.dumps(projection(record), indent=2, sort_keys=True)
    return json.loads(normalise_text(text, versions))


@pytest.mark.parametrize("name", ["upgraded", "rolled-back", "precheck-failed"])
def test_record_is_valid_and_matches_its_golden_file(name):
    run = scenario(name)
    record = run.record
    jsonschema.Draft202012Validator(load_schema(), format_checker=jsonschema.FormatChecker()).validate(record)
    golden = GOLDEN / f"{name}.json"
    actual = normalised(record)
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(json.dumps(actual, indent=2, sort_keys=True) + "\n")
    assert actual == json.loads(golden.read_text())


def test_the_shipped_schema_is_a_valid_json_schema_and_rejects_a_wrong_record():
    schema = load_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    record = scenario("upgraded").record
    validator = jsonschema.Draft202012Validator(schema)
    for broken in (
        {**record, "verdict": "fine"},
        {**record, "started": "yesterday"},
        {**record, "extra": 1},
        {**record, "steps": [{**record["steps"][0], "outcome": "maybe"}]},
    ):
        assert list(validator.iter_errors(broken))


@pytest.mark.parametrize(
    "concluded, cause, rollback, reached, expected",
    [
        (False, None, {}, False, None),
        (True, None, {"ran": False}, True, "upgraded"),
        (True, None, {"ran": False}, False, None),
        (True, None, {"ran": True, "verified": False}, True, "rollback-failed"),
        (True, "apply: refused", {"ran": True, "verified": True}, False, "rolled-back"),
        (True, "apply: refused", {"ran": True, "verified": False}, False, "rollback-failed"),
        (True, "precheck: no", {"ran": False, "verified": True}, False, "failed"),
    ],
)
def test_the_verdict_is_computed_from_the_data(concluded, cause, rollback, reached, expected):
    assert verdict.compute(concluded, cause, rollback, reached) == expected
