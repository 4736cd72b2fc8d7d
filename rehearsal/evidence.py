"""Evidence: what each step did, as plain data (commands, arguments, exit codes, output, durations, artifacts).

Reports are views of these records; nothing here knows about HTML or pytest. Secret material never enters a
record: :func:`redact` strips bearer tokens, passwords and Secret data from text before it is stored.
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass, field
from typing import Any

_PATTERNS = [
    (re.compile(r"(?i)(authorization:\s*bearer\s+)[A-Za-z0-9._~+/=-]+"), r"\1<redacted>"),
    (
        re.compile(
            r"(?i)(\"?(?:token|password|client-key-data|client-certificate-data|\.dockerconfigjson)\"?\s*[:=]\s*)"
            r"\"?[^\s\",}]+\"?"
        ),
        r"\1<redacted>",
    ),
]


def redact(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


@dataclass(frozen=True)
class CommandRecord:
    """One external command: argument list, exit code, stdout/stderr apart, timing."""

    argv: tuple[str, ...]
    exit_code: int
    stdout: str
    stderr: str
    started: float
    duration: float

    @property
    def command(self) -> str:
        return " ".join(self.argv)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["argv"] = list(self.argv)
        return data


@dataclass
class EvidenceLog:
    """The evidence of one run, appended to as steps happen."""

    commands: list[CommandRecord] = field(default_factory=list)
    listeners: list[Any] = field(default_factory=list)

    def record_command(
        self, argv: list[str], exit_code: int, stdout: str, stderr: str, started: float
    ) -> CommandRecord:
        record = CommandRecord(
            tuple(argv), exit_code, redact(stdout), redact(stderr), started, round(time.time() - started, 3)
        )
        self.commands.append(record)
        for listener in self.listeners:
            listener(record)
        return record
