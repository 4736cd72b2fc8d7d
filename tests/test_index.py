"""One index over many runs: every run found (schema-checked), the table by pair and night, the trend chart,
links to each report; it renders in headless Chromium with no script error and no network request, and lists
every run with its verdict. The runs are the shared end-to-end scenarios, copied as three nights of CI
artifacts."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from rehearsal import exitcodes
from rehearsal.index import facts
from tests.runs import ROOT, scenario
from tests.test_report_browser import _page, browser  # noqa: F401 - the browser fixture

NIGHTS = ("2026-11-29", "2026-11-30", "2026-12-01")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rehearsal", "index", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _artifacts(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """Three nights of downloaded artifacts, one folder per job: the three scenarios each night (the record's
    night and run id changed, as another night's run of the same job would have them)."""
    artifacts = tmp_path / "artifacts"
    verdicts: dict[str, str] = {}
    for n, night in enumerate(NIGHTS):
        for name in ("upgraded", "rolled-back", "precheck-failed"):
            source = scenario(name).run_dir
            record = json.loads((source / "rehearsal.json").read_text())
            run_id = f"run-{night.replace('-', '')}-0{n}0000-{len(verdicts):04x}"
            folder = artifacts / f"{night}-{name}" / run_id
            shutil.copytree(source, folder, ignore=shutil.ignore_patterns("artifacts", "bin"))
            record["run_id"] = run_id
            record["started"] = f"{night}T0{n}:00:00.000Z"
            if name == "rolled-back" and n == 2:
                record["failure"] = record["cause"]["summary"] = "<script>alert(1)</script> & broke"
            (folder / "rehearsal.json").write_text(json.dumps(record))
            verdicts[run_id] = record["verdict"]
    return artifacts, verdicts


def test_the_index_lists_every_run_by_pair_and_night(tmp_path):
    artifacts, verdicts = _artifacts(tmp_path)
    broken = artifacts / "broken" / "run-20261201-000000-dead"
    broken.mkdir(parents=True)
    (broken / "rehearsal.json").write_text(json.dumps({"schema_version": "1.0", "verdict": "upgraded"}))
    out = tmp_path / "site" / "index.html"
    result = _cli(str(artifacts), "-o", str(out))
    assert result.returncode == exitcodes.NOT_UPGRADED  # one record is not a run record
    assert "not indexed: " in result.stderr and "does not match the run record schema" in result.stderr
    data = json.loads(out.with_suffix(".json").read_text())
    assert {r["run_id"]: r["verdict"] for r in data["runs"]} == verdicts
    assert [i["record"] for i in data["invalid"]] == [
        "../artifacts/broken/run-20261201-000000-dead/rehearsal.json"
    ]
    for row in data["runs"]:
        assert (out.parent / row["report"]).is_file()
        assert row["availability"] == "not measured" or "availability" in json.loads(
            (out.parent / row["record"]).read_text()
        )
        assert row["verdict"] == "upgraded" or row["cause"]
    page = out.read_text()
    assert "<script" not in page and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; broke" in page
    assert page.count("<g class='night'") == len(NIGHTS)


def test_the_index_renders_in_chromium_and_shows_each_verdict(tmp_path, browser):  # noqa: F811
    artifacts, verdicts = _artifacts(tmp_path)
    out = tmp_path / "index.html"
    assert _cli(str(artifacts), "-o", str(out)).returncode == 0
    page = _page(browser)
    try:
        for domain in ("Page", "Runtime", "Log", "Network"):
            page.send(f"{domain}.enable")
        page.send("Page.navigate", url=out.as_uri())
        page.wait_for("Page.loadEventFired")
        shown = page.evaluate(
            "Array.from(document.querySelectorAll('#runs tr[data-run]'))"
            ".map(tr => [tr.dataset.run, tr.querySelector('.verdict').textContent])"
        )
        cells = page.evaluate(
            "Array.from(document.querySelectorAll('#by-night a.run'))"
            ".map(a => [a.dataset.run, a.dataset.verdict, a.href])"
        )
        nights = page.evaluate(
            "Array.from(document.querySelectorAll('#trend g.night'))"
            ".map(g => [g.dataset.night, +g.dataset.upgraded, +g.dataset.notUpgraded])"
        )
        heading = page.evaluate("document.querySelector('#by-night tr').textContent")
        errors = [
            e
            for e in page.events
            if e.get("method") == "Runtime.exceptionThrown"
            or (e.get("method") == "Log.entryAdded" and e["params"]["entry"].get("level") == "error")
        ]
        requests = [
            e["params"]["request"]["url"]
            for e in page.events
            if e.get("method") == "Network.requestWillBeSent"
            and not e["params"]["request"]["url"].startswith(("file:", "data:", "about:"))
        ]
    finally:
        page.close()
    assert not errors and not requests, (errors, requests)
    assert dict(shown) == verdicts
    assert {run: verdict for run, verdict, _ in cells} == verdicts
    assert all(Path(href.removeprefix("file://")).is_file() for _, _, href in cells)
    assert nights == [[night, 1, 2] for night in NIGHTS]
    assert heading.index(NIGHTS[2]) < heading.index(NIGHTS[0])  # newest night first


def test_availability_is_read_when_the_record_has_it_and_not_measured_otherwise():
    assert facts.availability({}) == facts.Availability("not measured", None)
    measured = facts.availability(
        {
            "availability": {
                "success_ratio": 0.9995,
                "outages": {"longest_seconds": 0.4, "total_seconds": 0.0},
                "slo": {"met": True},
            }
        }
    )
    assert measured == facts.Availability("99.95% answered; longest outage 0.4s; SLO met", 0.0)
    assert facts.availability({"availability": {"downtime_seconds": 3}}).downtime_seconds == 3.0


def test_a_folder_that_is_not_there_is_one_line(tmp_path):
    result = _cli(str(tmp_path / "nope"))
    assert result.returncode == exitcodes.BAD_OPTION
    assert result.stderr.strip() == f"error: not a folder: {tmp_path / 'nope'}"
