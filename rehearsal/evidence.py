"""Evidence: what each step did, as plain data (commands, arguments, exit codes, output, durations,
artifacts).

Reports are views of these records; nothing here knows about HTML or pytest. Secret material never enters a
record: :func:`redact` strips bearer tokens, passwords and Secret data from text before it is stored,
including the values of every Secret the harness has seen (:func:`remember_secret_values`), in clear and in
base64, since an application may well log its own password.
"""

from __future__ import annotations

import base64
import re
import threading
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


_known_secrets: set[str] = set()
_known_lock = threading.Lock()
#: Shorter values (``true``, ``1``) would redact ordinary words; Secret values worth hiding are longer.
MIN_SECRET_LENGTH = 6


def remember_secret_values(values: list[bytes | str]) -> None:
    """Values of Secrets (decoded) that must never appear in a record, in clear or base64-encoded."""
    forms = set()
    for value in values:
        raw = value.encode() if isinstance(value, str) else value
        try:
            clear = raw.decode()
        except UnicodeDecodeError:
            clear = ""
        if len(raw) < MIN_SECRET_LENGTH:
            continue
        forms.add(base64.b64encode(raw).decode())
        if clear:
            forms.add(clear)
            forms.update(
                line.strip() for line in clear.splitlines() if len(line.strip()) >= MIN_SECRET_LENGTH
            )
    with _known_lock:
        _known_secrets.update(forms)


def redact(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return redact_known(text)


def redact_known(text: str) -> str:
    """Only the values of Secrets seen (safe on serialised JSON, which the patterns above are not)."""
    with _known_lock:
        known = sorted(_known_secrets, key=len, reverse=True)
    for value in known:
        if value in text:
            text = text.replace(value, "<redacted>")
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
