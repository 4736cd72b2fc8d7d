"""``report.html`` is rendered from the record alone: self-contained, escaped, with every section an auditor
reads; ``python -m rehearsal report RUN_DIR`` renders it again; the CLI has its own help; JUnit carries the
verdict as properties and a precheck rejection as a failure; bad input is one line and changes nothing."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from istiofacts import catalog
from rehearsal.report import html as report_html
from tests.runs import ROOT, scenario, suites_argv


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rehearsal", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_report_of_a_rolled_back_run_shows_what_an_auditor_needs():
    run = scenario("rolled-back")
    record = run.record
    page = (run.run_dir / "report.html").read_text()
    assert 'Verdict: <span id="verdict-value">rolled-back</span>' in page
    for section in (
        "cause",
        "timeline",
        "versions",
        "validations",
        "rollback",
        "plan",
        "manifest",
        "artifacts",
    ):
        assert f"id='{section}'" in page or f'id="{section}' in page, section
    hub = catalog.default_hub(record["to"])
    assert "ImagePullBackOff" in page and f"{hub}/pilot:{record['to']}" in page
    assert "<svg id='timeline'" in page and "data-outcome='failed'" in page and "&#x2717; failed" in page
    assert "id='rollback-proof' class='ok'" in page
    # The manifest diff names the images that change from the source to the target.
    assert f"{catalog.default_hub(record['from'])}/pilot:{record['from']}" in page
    # No request leaves the page: no scripts, no remote styles, images or fonts.
    assert "<script" not in page and not re.search(r"(src|href)=['\"]?(https?:)?//", page)
    # Artifacts are relative links that exist in the run folder.
    links = re.findall(r"href='([^']+)'", page)
    assert links and all(not link.startswith("/") and (run.run_dir / link).exists() for link in links)


def test_long_outputs_are_trimmed_with_a_marker_and_a_link_to_the_full_text():
    run = scenario("upgraded")
    page = (run.run_dir / "report.html").read_text()
    markers = re.findall(
        r"\[trimmed: the last \d+ of (\d+) characters; <a href=\"([^\"]+)\">full text</a>\]", page
    )
    assert markers
    full_length, link = next((int(n), link) for n, link in markers if link.startswith("artifacts/"))
    assert len((run.run_dir / link).read_text()) == full_length


def test_the_plan_and_the_versions_are_shown(tmp_path):
    run = scenario("upgraded")
    record = run.record
    page = (run.run_dir / "report.html").read_text()
    assert f"<th>control plane</th><td>{record['from']}</td><td>{record['to']}</td>" in page
    # every proxy in the details, and one row per workload with its versions before and after
    assert all(f"<th>{p}</th>" in page for p in record["versions"]["after"]["data_plane"])
    assert (
        f"<tr class='workload'><th>rehearsal-apps/echo</th><td>{record['from']} (2 pods)</td>"
        f"<td>{record['to']} (2 pods)</td>" in page
    )


def test_report_command_renders_the_page_again_from_the_record(tmp_path):
    run = scenario("precheck-failed")
    folder = tmp_path / "copy"
    folder.mkdir()
    (folder / "rehearsal.json").write_text((run.run_dir / "rehearsal.json").read_text())
    result = _cli("report", str(folder))
    assert result.returncode == 0, result.stderr
    page = (folder / "report.html").read_text()
    assert page == report_html.render(json.loads((folder / "rehearsal.json").read_text()), folder)
    assert 'Verdict: <span id="verdict-value">failed</span>' in page and "precheck" in page


def test_report_command_on_a_folder_without_a_record_is_one_line(tmp_path):
    result = _cli("report", str(tmp_path))
    assert result.returncode == 4 and len(result.stderr.strip().splitlines()) == 1
    assert "rehearsal.json" in result.stderr and not (tmp_path / "report.html").exists()


@pytest.mark.parametrize("args", [["--help"], ["demo", "--help"], ["report", "--help"]])
def test_the_command_line_has_its_own_help(args):
    result = _cli(*args)
    assert result.returncode == 0
    assert result.stdout.startswith("usage: python -m rehearsal")
    assert "pytest [options]" not in result.stdout and "verdict:" not in result.stdout


def test_junit_has_the_verdict_and_records_a_precheck_rejection_as_a_failure():
    run = scenario("precheck-failed")
    record = run.record
    suite = ET.parse(run.run_dir / "junit.xml").getroot().find("testsuite")
    assert suite is not None
    properties = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert {k: properties[k] for k in ("verdict", "from", "to", "strategy", "cluster")} == {
        "verdict": "failed",
        "from": record["from"],
        "to": record["to"],
        "strategy": "in-place",
        "cluster": record["cluster"],
    }
    cases = suite.findall("testcase")
    precheck = next(c for c in cases if c.get("name") == "test_precheck_allows_the_upgrade")
    assert precheck.find("failure") is not None and precheck.find("error") is None
    assert "outside Istio" in precheck.find("failure").get("message", "")
    # Testcases in runbook order, with the steps that ran in each.
    order = [c.get("classname").split(".")[1] for c in cases]
    assert order == sorted(order)
    steps = [p.get("value") for c in cases for p in c.iter("property") if p.get("name") == "steps"]
    assert any("precheck" in s for s in steps)


def test_terminal_shows_a_line_per_step_then_verdict_cause_and_report_once():
    run = scenario("rolled-back")
    out = run.stdout
    assert re.search(r"^FAIL restart control plane \(\d+\.\d\ds\): .*ImagePullBackOff", out, re.M)
    assert re.search(r"^ok   precheck \(\d+\.\d\ds\): ", out, re.M)
    tail = out[out.index("verdict: rolled-back") :]
    assert tail.splitlines()[1].startswith("cause: restart control plane:")
    assert out.count(str(run.run_dir / "report.html")) == 1
    assert "     waiting for" not in out  # the live line is for terminals only (off one: a line per 15 s)


@pytest.mark.parametrize(
    "content, message",
    [
        ("istio-too: 1.30.1\n", "unknown key 'istio-too' (did you mean istio-to?)"),
        ("traffic-requests: many\n", "traffic-requests must be a whole number, not str 'many'"),
        ("set: profile=default\n", "set must be a list of KEY=VALUE strings"),
    ],
)
def test_a_bad_config_file_is_one_line_naming_the_key(tmp_path, content, message, suites_run):
    config = tmp_path / "config.yaml"
    config.write_text(content)
    result = suites_run(tmp_path, "--rehearsal-config", str(config))
    assert result.returncode == 4 and message in result.stderr
    assert "INTERNALERROR" not in result.stderr + result.stdout
    assert not (tmp_path / "reports").exists()


def test_a_faults_file_with_a_wrong_type_is_one_line(tmp_path, suites_run):
    faults = tmp_path / "faults.yaml"
    faults.write_text("faults:\n  - type: api-error\n    verb: get\n    resource: pods\n    times: many\n")
    result = suites_run(tmp_path, "--sim-faults", str(faults))
    assert result.returncode == 4 and "--sim-faults" in result.stderr and "many" in result.stderr
    assert "INTERNALERROR" not in result.stderr + result.stdout


def test_a_downgrade_is_named_as_one_with_the_catalogs_policy(tmp_path, suites_run):
    from istiofacts import catalog

    source, target = catalog.default_pair()
    result = suites_run(tmp_path, "--istio-from", target, "--istio-to", source)
    assert result.returncode == 4
    assert f"--istio-to {source} is older than --istio-from {target}: that is a downgrade" in result.stderr
    assert "a downgrade may go back at most one minor" in result.stderr


def test_a_report_folder_that_cannot_be_written_is_one_line(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    result = subprocess.run(
        suites_argv("--report-dir", str(blocked / "reports")),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 4 and "INTERNALERROR" not in result.stderr + result.stdout
    assert f"--report-dir {blocked / 'reports'}: cannot write run folders there" in result.stderr
    assert blocked.read_text() == "not a folder"


def test_trimmed_escapes_and_marks_the_cut():
    text = "<b>" + "x" * 50
    out = report_html.trimmed(text, "artifacts/full.txt", limit=10)
    assert '[trimmed: the last 10 of 53 characters; <a href="artifacts/full.txt">full text</a>]' in out
    assert "<b>" not in out.replace('<p class="trim">', "")
    assert report_html.trimmed("<i>", None) == "<pre>&lt;i&gt;</pre>"


def test_the_page_is_escaped_everywhere_for_a_hostile_record(tmp_path):
    record = json.loads(scenario("precheck-failed").run_dir.joinpath("rehearsal.json").read_text())
    evil = "<script>alert(1)</script>"
    record["failure"] = evil
    record["cause"] = {"step": evil, "summary": evil, "object": evil, "reason": evil, "message": evil}
    record["steps"][0]["name"] = evil
    record["steps"][0]["reason"] = evil
    record["validations"][0]["findings"] = {evil: evil}
    record["plan"]["sets"] = [evil]
    page = report_html.render(record, tmp_path)
    assert "<script>" not in page and page.count("&lt;script&gt;") >= 8
    Path(tmp_path / "report.html").write_text(page)


def test_the_manifest_diff_of_an_upgrade_compares_the_backup_with_what_was_installed():
    run = scenario("upgraded")
    record = run.record
    page = (run.run_dir / "report.html").read_text()
    section = page[page.index("<section id='manifest'>") :]
    section = section[: section.index("</section>")]
    assert (run.run_dir / "artifacts" / "installed" / "istio-system.yaml").is_file()
    assert "what was installed once the upgrade's restarts ended" in section
    # istiod's image, read back from the cluster after the restarts: the target's, beside the source's.
    hub = catalog.default_hub(record["to"])
    assert f"{hub}/pilot:{record['to']}" in section
    assert f"/pilot:{record['from']}" in section
