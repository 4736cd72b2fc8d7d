"""Go's ``encoding/json`` syntax errors for a body Python's ``json`` refused, as kube-apiserver quotes them.

The server decodes bodies with Go, so a client sending ``{not json`` reads ``invalid character 'n' looking
for beginning of object key string``; Python's message (``Expecting property name enclosed in double
quotes``) is mapped to the scanner state Go reports (encoding/json/scanner.go, Go 1.24: ``stateBeginValue``,
``stateBeginStringOrEmpty``, ``stateEndValue`` ...), and an input that ends early to ``unexpected end of
JSON input``.
"""

from __future__ import annotations

import json


def _quote_char(char: str) -> str:
    """encoding/json's quoteChar."""
    if char == "'":
        return "'\\''"
    if char == '"':
        return "'\"'"
    quoted = json.dumps(char)[1:-1]
    return f"'{quoted}'"


def _innermost(text: str, pos: int) -> str:
    """The innermost open bracket before ``pos`` (strings skipped): ``{``, ``[`` or ``""``."""
    stack: list[str] = []
    in_string = escaped = False
    for char in text[:pos]:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "{[":
            stack.append(char)
        elif char in "}]" and stack:
            stack.pop()
    return stack[-1] if stack else ""


def syntax_error(text: str) -> str:
    """Go's error for ``text`` (which ``json.loads`` refused)."""
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        pos, message = exc.pos, exc.msg
    else:
        return ""
    if (
        message.startswith("Unterminated string")
        or pos >= len(text.rstrip())
        and not message.startswith("Extra data")
    ):
        return "unexpected end of JSON input"
    char = text[pos]
    if message.startswith("Invalid control character"):
        return f"invalid character {_quote_char(char)} in string literal"
    if message.startswith("Expecting property name"):
        return f"invalid character {_quote_char(char)} looking for beginning of object key string"
    if message.startswith("Expecting ':'"):
        return f"invalid character {_quote_char(char)} after object key"
    if message.startswith("Expecting ','"):
        where = "object key:value pair" if _innermost(text, pos) == "{" else "array element"
        return f"invalid character {_quote_char(char)} after {where}"
    if message.startswith("Extra data"):
        return f"invalid character {_quote_char(char)} after top-level value"
    if message.startswith("Invalid \\escape"):
        escaped = text[pos + 1] if pos + 1 < len(text) else char
        return f"invalid character {_quote_char(escaped)} in string escape code"
    return f"invalid character {_quote_char(char)} looking for beginning of value"


def summarize(data: bytes, limit: int = 30) -> str:
    """apimachinery's summarizeData: the body as quoted in a decoding error."""
    if len(data) <= limit:
        return data.decode(errors="replace")
    return data[:limit].decode(errors="replace") + " ..."
