"""The report of a rolled-back run in a real browser: headless Chromium (Debian's ``chromium``, which
``.ci/run`` installs) opens it with no console errors and no network request, and the test reads the verdict,
the cause, the timeline and the rollback proof through the DOM, then keeps a screenshot as a test artifact
(``reports/test-artifacts/``). Chromium is driven over the DevTools protocol with websocket-client.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from istiofacts import catalog
from tests.runs import ROOT, scenario

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-port=0",
    "--window-size=1280,2000",
]
ARTIFACTS = ROOT / "reports" / "test-artifacts"


def _chromium() -> str:
    if os.path.exists(CHROMIUM):
        return CHROMIUM
    if os.environ.get("CI") == "true":
        pytest.fail(f"{CHROMIUM} is missing on CI: .ci/run installs it with apt-get install -y chromium")
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install -y chromium); CI runs this test")


class DevTools:
    """A minimal DevTools protocol client for one page: commands by id, events kept as they come."""

    def __init__(self, url: str) -> None:
        import websocket

        self.ws = websocket.create_connection(url, timeout=60, suppress_origin=True)
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def wait_for(self, method: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in self.events:
                if event.get("method") == method:
                    return event
            self.events.append(json.loads(self.ws.recv()))
        raise TimeoutError(f"no {method} within {timeout}s")

    def evaluate(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")

    def close(self) -> None:
        self.ws.close()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[str]:
    """A fresh headless Chromium; yields its DevTools address (host:port)."""
    profile = tmp_path / "profile"
    process = subprocess.Popen(
        [_chromium(), *FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        active = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (active.exists() and active.read_text().strip()):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"chromium did not start (exit code {process.poll()})")
            time.sleep(0.1)
        yield f"127.0.0.1:{active.read_text().split()[0]}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def _page(address: str) -> DevTools:
    import urllib.request

    request = urllib.request.Request(f"http://{address}/json/new?about:blank", method="PUT")
    with urllib.request.urlopen(request, timeout=30) as response:
        target = json.loads(response.read())
    return DevTools(target["webSocketDebuggerUrl"])


def test_the_report_of_a_rolled_back_run_reads_right_in_a_browser(browser):
    run = scenario("rolled-back")
    record = run.record
    page = _page(browser)
    try:
        for domain in ("Page", "Runtime", "Log", "Network"):
            page.send(f"{domain}.enable")
        page.send("Page.navigate", url=(run.run_dir / "report.html").as_uri())
        page.wait_for("Page.loadEventFired")
        verdict = page.evaluate("document.getElementById('verdict-value').textContent")
        banner = page.evaluate("getComputedStyle(document.getElementById('verdict')).backgroundColor")
        cause = page.evaluate("document.querySelector('#cause .cause-text').textContent")
        steps = page.evaluate(
            "Array.from(document.querySelectorAll('#timeline g.step'))"
            ".map(g => [g.getAttribute('data-step'), g.getAttribute('data-outcome')])"
        )
        checks = page.evaluate(
            "Array.from(document.querySelectorAll('#timeline g.check'))"
            ".map(g => [g.getAttribute('data-check'), g.getAttribute('data-outcome')])"
        )
        failed_marks = page.evaluate("document.querySelectorAll('#timeline g.step .fail-mark').length")
        proof = page.evaluate(
            "(() => { const p = document.getElementById('rollback-proof');"
            " return [p.className, p.textContent]; })()"
        )
        chart = page.evaluate(
            "(() => { const s = document.getElementById('availability-chart'); if (!s) return null;"
            " const r = s.getBoundingClientRect();"
            " return [r.width, r.height, s.querySelectorAll('polyline.success').length,"
            " Array.from(s.querySelectorAll('rect.phase title')).map(t => t.textContent)]; })()"
        )
        shot = page.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        screenshot = ARTIFACTS / "report-rolled-back.png"
        screenshot.write_bytes(base64.b64decode(shot["data"]))
        errors = [
            e
            for e in page.events
            if e.get("method") == "Runtime.exceptionThrown"
            or (e.get("method") == "Runtime.consoleAPICalled" and e["params"].get("type") == "error")
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
    assert not errors, errors
    assert not requests, requests
    assert verdict == "rolled-back" == record["verdict"]
    assert banner == "rgb(154, 103, 0)"  # the rolled-back colour
    hub = catalog.default_hub(record["to"])
    assert "ImagePullBackOff" in cause and f"{hub}/pilot:{record['to']}" in cause
    # The timeline: every step of the record, in runbook order, the failed one marked.
    assert sorted(name for name, _ in steps) == sorted(s["name"] for s in record["steps"])
    assert ["restart control plane", "failed"] in steps and failed_marks == 1
    # the checks are in the timeline too, in the order they ran: the one the failed step made error is marked
    assert checks and ["test_control_plane_rolled_out", "error"] in checks
    names = [name for name, _ in steps]
    assert (
        names.index("precheck")
        < names.index("apply")
        < names.index("restart control plane")
        < names.index("rollback: verify")
    )
    assert proof[0] == "ok" and "traffic answers" in proof[1]
    # The availability chart is drawn (inline SVG, visible) with a line per prober target and the phases.
    assert chart is not None, "no #availability-chart in the report"
    width, height, lines, phases = chart
    assert width > 500 and height > 150, chart
    assert lines == len(record["availability"]["targets"]) >= 1
    assert any(p.startswith("apply") for p in phases) and any(p.startswith("rollback") for p in phases), (
        phases
    )
    assert screenshot.stat().st_size > 10_000
    shutil.copy(screenshot, run.run_dir / "report-screenshot.png")
