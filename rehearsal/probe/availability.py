"""The availability verdict: what the prober's record says about the upgrade, and whether it met the SLO.

Harness library (no pytest). :func:`summarize` turns samples and phases into the figures ``rehearsal.json``
keeps under ``availability``: per target and per phase the success ratio, the outages (a run of consecutive
failed requests: how many, the longest, the total), latency p50/p95/p99 of the answered requests, the largest
gap between two requests, and the moments the answering proxy version flipped; then the SLO
(``--slo-success``, ``--slo-max-outage``) judged over the whole record, with one sentence per breach.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from .prober import Phase, Prober, Sample


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile (``p`` in 0..100) of ``values``; None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def outages(samples: Sequence[Sample], interval: float) -> list[dict[str, Any]]:
    """Runs of consecutive failures of one target's samples (in time order). An outage lasts from its first
    failed request to the next request that succeeded (one interval when the run ended inside it), so a
    single failed request is an outage of one interval: the prober cannot tell it shorter."""
    found: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    for sample in samples:
        if not sample.ok:
            if current is None:
                current = {"start": sample.t, "requests": 0, "statuses": {}}
            current["requests"] += 1
            current["statuses"][sample.status] = current["statuses"].get(sample.status, 0) + 1
            current["last"] = sample.t
        elif current is not None:
            current["end"] = sample.t
            found.append(current)
            current = None
    if current is not None:
        current["end"] = current["last"] + interval
        current["ongoing"] = True
        found.append(current)
    for outage in found:
        outage.pop("last", None)
        outage["seconds"] = round(max(interval, outage["end"] - outage["start"]), 3)
        outage["start"], outage["end"] = round(outage["start"], 3), round(outage["end"], 3)
    return found


def figures(samples: Sequence[Sample], interval: float) -> dict[str, Any]:
    """Success ratio, outages, latency and the largest gap of one target's samples."""
    ok = [s for s in samples if s.ok]
    found = outages(samples, interval)
    statuses: dict[str, int] = {}
    for s in samples:
        statuses[s.status] = statuses.get(s.status, 0) + 1
    latencies = [s.latency_ms for s in ok]
    gaps = [b.t - a.t for a, b in zip(samples, samples[1:], strict=False)]
    return {
        "requests": len(samples),
        "succeeded": len(ok),
        "success_ratio": round(len(ok) / len(samples), 6) if samples else None,
        "statuses": dict(sorted(statuses.items())),
        "outages": {
            "count": len(found),
            "longest_seconds": max((o["seconds"] for o in found), default=0.0),
            "total_seconds": round(sum(o["seconds"] for o in found), 3),
        },
        "latency_ms": {
            f"p{p}": (round(v, 2) if (v := percentile(latencies, p)) is not None else None)
            for p in (50, 95, 99)
        },
        "max_gap_seconds": round(max(gaps), 3) if gaps else None,
    }


def version_flips(samples: Iterable[Sample], settle: int = 5) -> list[dict[str, Any]]:
    """Each moment a target's answers moved to proxies of another version and stayed there: the first of
    ``settle`` answers in a row from that version (during a rolling restart old and new pods answer in turn;
    that mix is not a flip each time)."""
    stable: dict[str, str] = {}
    run: dict[str, tuple[str, float, int]] = {}  # target -> (version, first t, answers in a row)
    flips = []
    for s in samples:
        if s.version is None:
            continue
        version, first, count = run.get(s.target, (s.version, s.t, 0))
        if version != s.version:
            version, first, count = s.version, s.t, 0
        count += 1
        run[s.target] = (version, first, count)
        if count == settle:
            before = stable.get(s.target)
            if before is not None and before != version:
                flips.append({"t": round(first, 3), "target": s.target, "from": before, "to": version})
            stable[s.target] = version
    return flips


def _within(samples: Sequence[Sample], phase: Phase, end: float) -> list[Sample]:
    stop = phase.end if phase.end is not None else end
    return [s for s in samples if phase.start <= s.t <= stop]


def summarize(
    prober: Prober, slo_success: float, slo_max_outage: float, samples: Sequence[Sample] | None = None
) -> dict[str, Any]:
    """The availability section of the record: figures overall, per target and per phase, and the SLO."""
    samples = prober.snapshot() if samples is None else samples
    interval = prober.interval
    end = samples[-1].t if samples else (prober.started or 0.0)
    targets = sorted(
        {s.target for s in samples},
        key=lambda name: (
            [t.name for t in prober.targets].index(name) if name in [t.name for t in prober.targets] else 99
        ),
    )
    by_target = {name: [s for s in samples if s.target == name] for name in targets}
    overall = {name: figures(group, interval * _every(prober, name)) for name, group in by_target.items()}
    phases = []
    for phase in prober.phases:
        phases.append(
            {
                "name": phase.name,
                "start": round(phase.start, 3),
                "end": round(phase.end, 3) if phase.end is not None else None,
                "seconds": round((phase.end if phase.end is not None else end) - phase.start, 3),
                "targets": {
                    name: figures(_within(group, phase, end), interval * _every(prober, name))
                    for name, group in by_target.items()
                },
            }
        )
    all_outages = [
        {"target": name, **o}
        for name, group in by_target.items()
        for o in outages(group, interval * _every(prober, name))
    ]
    succeeded = sum(f["succeeded"] for f in overall.values())
    ratio = round(succeeded / len(samples), 6) if samples else None
    longest = max((o["seconds"] for o in all_outages), default=0.0)
    breaches = []
    if ratio is None:
        breaches.append("the prober recorded no request, so availability was not measured")
    else:
        if ratio < slo_success:
            breaches.append(
                f"{len(samples) - succeeded} of {len(samples)} requests failed: success ratio "
                f"{ratio:.4%} is below the SLO of {slo_success:.3%}"
            )
        if longest > slo_max_outage:
            worst = max(all_outages, key=lambda o: o["seconds"])
            breaches.append(
                f"the longest outage lasted {longest:g} s ({worst['requests']} failed {worst['target']} "
                f"request(s) in a row from t={worst['start'] - (prober.started or 0):.1f} s, answered "
                f"{_statuses(worst['statuses'])}), more than the SLO's {slo_max_outage:g} s"
            )
    return {
        "rate_per_second": prober.rate,
        "pacing": prober.pacing,
        "clock": "simulated seconds" if prober.pacing == "simulated clock ticks" else "wall seconds",
        "started": round(prober.started, 3) if prober.started is not None else None,
        "ended": round(prober.stopped if prober.stopped is not None else end, 3),
        "requests": len(samples),
        "success_ratio": ratio,
        "longest_outage_seconds": longest,
        "targets": overall,
        "phases": phases,
        "outages": all_outages[:50],
        "version_flips": version_flips(samples),
        "marks": [{"t": round(t, 3), "what": what} for t, what in prober.marks],
        "dropped_from_record": prober.dropped,
        "missed_ticks": prober.missed,
        "slo": {
            "success_ratio": slo_success,
            "max_outage_seconds": slo_max_outage,
            "met": not breaches,
            "breaches": breaches,
        },
    }


def _every(prober: Prober, name: str) -> int:
    return next((max(1, t.every) for t in prober.targets if t.name == name), 1)


def _statuses(statuses: dict[str, int]) -> str:
    return ", ".join(f"{code} x{n}" for code, n in sorted(statuses.items()))
