"""The command line's conventions: stable exit statuses (one module, pytest's own numbers, the README's
table), the choices in --help, a suggestion for a misspelled option, numeric options named in their errors,
``--version``, ``python -m rehearsal run`` as ``pytest suites``, and ``--junitxml`` keeping the run folder's
``junit.xml``."""

from __future__ import annotations

import re
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from rehearsal import exitcodes
from tests.runs import ROOT, scenario, suites_argv


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rehearsal", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_the_exit_statuses_are_pytests_own_and_the_readmes_table():
    assert exitcodes.NOT_UPGRADED == pytest.ExitCode.TESTS_FAILED
    assert exitcodes.INTERRUPTED == pytest.ExitCode.INTERRUPTED
    assert exitcodes.BAD_OPTION == pytest.ExitCode.USAGE_ERROR
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("| exit status | meaning |") :].split("\n\n")[0]
    rows = re.findall(r"^\| `(\d+)` \| (.+?) \|$", table, re.M)
    assert [(int(code), text) for code, text in rows] == list(exitcodes.TABLE)


def test_runs_end_with_the_documented_statuses():
    assert scenario("upgraded").returncode == exitcodes.UPGRADED
    assert scenario("precheck-failed").returncode == exitcodes.NOT_UPGRADED
    assert scenario("rolled-back").returncode == exitcodes.NOT_UPGRADED


def test_help_shows_the_choices_and_what_each_value_is(tmp_path):
    result = subprocess.run(suites_argv("--help"), cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0
    assert "--cluster={sim,kind,kubeconfig}" in result.stdout
    assert "--strategy={in-place,istioctl,canary}" in result.stdout
    assert "--rollback={on-failure,always,never}" in result.stdout
    assert "--step-timeout=SECONDS" in result.stdout
    assert "REHEARSAL_" not in result.stdout.split("[pytest] ini-options")[0]


def test_a_misspelled_option_gets_the_closest_one_and_touches_nothing(tmp_path):
    result = _cli("run", "--istio-form", "1.30.5", "--report-dir", str(tmp_path / "reports"))
    assert result.returncode == exitcodes.BAD_OPTION
    assert "--istio-form: did you mean --istio-from?" in result.stderr
    assert not (tmp_path / "reports").exists()


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("--step-timeout", "abc", "--step-timeout 'abc': not a number of seconds"),
        ("--traffic-requests", "many", "--traffic-requests 'many': not a whole number"),
        ("--sim-time-scale", "fast", "--sim-time-scale 'fast': not a number of wall seconds"),
        ("--step-timeout", "0", "--step-timeout 0: must be more than 0 seconds"),
    ],
)
def test_a_numeric_option_is_named_in_its_error(tmp_path, suites_run, option, value, message):
    result = suites_run(tmp_path, option, value)
    assert result.returncode == exitcodes.BAD_OPTION
    assert message in result.stderr and "INTERNALERROR" not in result.stderr + result.stdout
    assert not (tmp_path / "reports").exists()


def test_version_names_the_harness_and_its_commit():
    result = _cli("--version")
    assert result.returncode == 0
    assert re.fullmatch(
        r"istio-upgrade-rehearsal \S+( \(commit [0-9a-f]{12}(, modified)?\))?\n", result.stdout
    )


def test_a_misspelled_command_is_named_with_the_closest_one():
    result = _cli("sumary", "reports/latest")
    assert result.returncode == exitcodes.BAD_OPTION
    assert result.stderr.strip() == (
        "error: unknown command 'sumary': did you mean summary? (python -m rehearsal --help)"
    )


def test_a_user_junitxml_leaves_the_run_folders_junit_in_place():
    run = scenario("precheck-failed")  # run with --junitxml <work>/ci.xml, as CI does
    theirs, ours = run.work / "ci.xml", run.run_dir / "junit.xml"
    assert theirs.read_bytes() == ours.read_bytes()
    properties = {p.get("name"): p.get("value") for p in ET.parse(ours).getroot().iter("property")}
    assert properties["verdict"] == "failed" == run.record["verdict"]


def test_summary_is_markdown_with_the_verdict_cause_and_availability(tmp_path):
    run = scenario("rolled-back")
    result = _cli("summary", str(run.run_dir))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"### \u274c Istio {run.record['from']} \u2192 {run.record['to']}: rolled-back"
    cells = dict(re.findall(r"^\| (\w+) \| (.*) \|$", result.stdout, re.M))
    assert "ImagePullBackOff" in cells["cause"]
    expected = "not measured" if "availability" not in run.record else None
    assert expected is None or cells["availability"] == expected
    missing = _cli("summary", str(tmp_path))
    assert missing.returncode == exitcodes.BAD_OPTION and "rehearsal.json" in missing.stderr
