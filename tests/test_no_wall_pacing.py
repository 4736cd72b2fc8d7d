"""No test paces itself or a simulated clock by wall time: simulated time moves only by explicit steps
(``SimCluster.pass_time``) and waits are on conditions, so the suite's outcome does not depend on the
machine's speed. This reads the tests' source and fails on a new sleep, a new thread, a clock moved by hand,
a clock scaled to wall time, or a short pacing wait, unless the allow-list below names it with its reason."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parent
PATTERNS = {
    "sleep": re.compile(r"\bsleep\("),
    "thread": re.compile(r"\bThread\(|\bTimer\("),
    "clock moved by hand": re.compile(r"\.advance(_to)?\("),
    "clock scaled to wall time": re.compile(
        r"\b(sim_)?time_scale[\"']?\s*[=:]\s*(?!0(?![.\d]))[0-9.]+|SimClock\(\s*(?!0(?![.\d]))[0-9.]"
    ),
    "short pacing wait": re.compile(r"\.wait\(\s*0?\.[0-9]+\s*\)"),
}
#: (file, kind) -> (how many, why it is not pacing). Keep it tiny: a new entry needs a reason a reviewer
#: accepts.
ALLOWED: dict[tuple[str, str], tuple[int, str]] = {
    ("test_istioctl_binary.py", "thread"): (1, "a thread that serves HTTP (a fake istio download server)"),
    ("test_sim_client.py", "thread"): (1, "a watch consumer, joined through an event with a hang bound"),
    ("test_termination.py", "thread"): (
        1,
        "the skew check blocks while it waits; time moves only once it has looked (an event), by pass_time",
    ),
    ("test_fail_fast.py", "thread"): (
        1,
        "the harness's wait blocks; the clock moves only by pass_time and stops at the second failed pull",
    ),
    ("test_istio_sim.py", "thread"): (1, "sends traffic during restarts; no clock, no pacing"),
    ("test_probe.py", "clock moved by hand"): (
        5,
        "the manual SimClock's tickers and the EDS debounce are what is tested: explicit steps, no wall",
    ),
    ("test_scheduling.py", "thread"): (
        1,
        "the harness's wait blocks; the clock moves only by pass_time, past the Unschedulable grace",
    ),
    ("test_report_browser.py", "sleep"): (
        1,
        "Chromium announces its DevTools port only in a file: a deadline-bound poll for it (a condition)",
    ),
}


def _uses() -> tuple[Counter[tuple[str, str]], dict[tuple[str, str], list[str]]]:
    counts: Counter[tuple[str, str]] = Counter()
    where: dict[tuple[str, str], list[str]] = {}
    for path in sorted(TESTS.rglob("*.py")):
        if "conformance" in path.relative_to(TESTS).parts or path.name == Path(__file__).name:
            continue  # recordings and their replay, and this file's own patterns
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            for kind, pattern in PATTERNS.items():
                if pattern.search(code):
                    key = (path.name, kind)
                    counts[key] += 1
                    where.setdefault(key, []).append(f"{path.relative_to(TESTS.parent)}:{number}")
    return counts, where


def test_no_test_paces_itself_or_a_clock_by_wall_time():
    counts, where = _uses()
    unexplained = [
        f"{kind} at {', '.join(where[(name, kind)])}"
        for (name, kind), n in sorted(counts.items())
        if n > ALLOWED.get((name, kind), (0, ""))[0]
    ]
    assert not unexplained, (
        "wall-clock pacing in tests (move simulated time with SimCluster.pass_time and wait on a "
        "condition, or add the use to ALLOWED in tests/test_no_wall_pacing.py with its reason): "
        + "; ".join(unexplained)
    )


def test_the_allow_list_names_only_uses_that_exist():
    counts, _ = _uses()
    stale = [f"{name} {kind}" for (name, kind), (n, _) in ALLOWED.items() if counts[(name, kind)] < n]
    assert not stale, f"allowed uses no longer in the tests (shrink ALLOWED): {stale}"
