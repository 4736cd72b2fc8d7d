"""What the index and the CI summary read from one run record (harness library; no pytest).

One place turns a ``rehearsal.json`` into the few facts an auditor scans across nights: the pair, the
strategy, the night, the verdict, the cause in one line, the duration and the availability. The
``availability`` section is written by the continuous prober when the record has one; a record without it
(an older harness, or a run that never reached the apply) says "not measured" rather than guessing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..report.progress import phrase

NOT_MEASURED = "not measured"


@dataclass(frozen=True)
class Availability:
    text: str  # one line for a table cell: "99.95% answered; longest outage 0.4s" or "not measured"
    downtime_seconds: float | None  # total time without answers, when the record says


def _number(data: dict[str, Any], *names: str) -> float | None:
    for name in names:
        value = data.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return None


def _first(*values: float | None) -> float | None:
    return next((v for v in values if v is not None), None)


def availability(record: dict[str, Any]) -> Availability:
    """The record's availability figures, if it has any: the success ratio, the outages (longest and total)
    and whether the SLO was met. The section may nest its figures under ``overall`` and ``outages``."""
    section = record.get("availability")
    if not isinstance(section, dict) or not section:
        return Availability(NOT_MEASURED, None)
    nested = section.get("overall")
    overall: dict[str, Any] = nested if isinstance(nested, dict) else section
    nested = overall.get("outages")
    outages: dict[str, Any] = nested if isinstance(nested, dict) else {}
    ratio = _number(overall, "success_ratio", "ratio")
    longest = _first(
        _number(outages, "longest_seconds", "longest"), _number(overall, "longest_outage_seconds")
    )
    total = _first(
        _number(outages, "total_seconds", "total"),
        _number(overall, "downtime_seconds", "total_outage_seconds"),
    )
    parts = []
    if ratio is not None:
        parts.append(f"{ratio * 100:.2f}% answered")
    if longest is not None:
        parts.append(f"longest outage {longest:.1f}s")
    slo = section.get("slo")
    met = slo.get("met") if isinstance(slo, dict) else section.get("slo_met")
    if isinstance(met, bool):
        parts.append("SLO met" if met else "SLO missed")
    if not parts and total is None:
        return Availability(NOT_MEASURED, None)
    if not parts:
        parts.append(f"downtime {total:.1f}s")
    return Availability("; ".join(parts), total)


def cause(record: dict[str, Any]) -> str:
    """The cause in one line: the record's summary of it, else its first failure; empty when upgraded."""
    if record.get("verdict") == "upgraded":
        return ""
    structured = record.get("cause")
    if isinstance(structured, dict) and structured.get("summary"):
        return phrase(str(structured["summary"]), 300)
    return phrase(str(record.get("failure") or ""), 300)


def verdict(record: dict[str, Any]) -> str:
    return str(record.get("verdict") or "interrupted")


def pair(record: dict[str, Any]) -> str:
    return f"{record.get('from')} \u2192 {record.get('to')}"


def night(record: dict[str, Any]) -> str:
    """The UTC date the run started (the record's ISO 8601 time)."""
    return str(record.get("started") or "")[:10]


def upgraded(record: dict[str, Any]) -> bool:
    return record.get("verdict") == "upgraded"
