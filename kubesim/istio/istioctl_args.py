"""istioctl's command line as cobra (pflag) parses it, for the emulator (``istioctl.py``): the command words,
long and short flags of each command and version, and cobra's usage errors (exit 64)."""

from __future__ import annotations

from dataclasses import dataclass, field

from istiofacts import istioctl_cli
from istiofacts.istioctl_cli import Flag


class UsageError(Exception):
    """A cobra usage error (exit 64)."""


class CommandError(Exception):
    """``Error: <message>`` on stderr, exit 1."""


@dataclass
class Args:
    positional: list[str] = field(default_factory=list)
    flags: dict[str, list[str]] = field(default_factory=dict)

    def get(self, *names: str, default: str | None = None) -> str | None:
        for name in names:
            if name in self.flags:
                return self.flags[name][-1]
        return default

    def all(self, *names: str) -> list[str]:
        # Every spelling of a flag holds all its values; the first spelling present has them all.
        for name in names:
            if name in self.flags:
                return list(self.flags[name])
        return []

    def bool(self, *names: str) -> bool:
        value = self.get(*names)
        return value is not None and value.lower() not in ("false", "0")


# Words that name a command with subcommands: the command key is these plus the next word.
_GROUPS = ("manifest", "tag", "x", "experimental", "exp")


def _all_flags(version: str) -> dict[str, Flag]:
    """Every flag of every command (to find the command words before the command is known)."""
    out: dict[str, Flag] = {}
    for command in istioctl_cli.COMMAND_FLAGS:
        for f in istioctl_cli.flags_for(command, version):
            out.setdefault(f"--{f.name}", f)
            if f.short:
                out.setdefault(f"-{f.short}", f)
    return out


def command_of(argv: list[str], version: str) -> str:
    """The command an argument list runs (``x precheck``, ``install``...), as cobra finds it: the leading
    words that are not flags or flag values."""
    known = _all_flags(version)
    words: list[str] = []
    i = 0
    while i < len(argv) and len(words) < 2:
        token = argv[i]
        if token.startswith("-") and token != "-":
            flag = known.get(token.split("=", 1)[0])
            if flag is not None and flag.takes_value and "=" not in token and not _glued_short(token):
                i += 1
        else:
            words.append(token)
            if words[0] not in _GROUPS:
                break
        i += 1
    if words and words[0] in ("experimental", "exp"):
        words[0] = "x"
    return " ".join(words)


def _glued_short(token: str) -> bool:
    return not token.startswith("--") and len(token) > 2


def parse(argv: list[str], version: str, command: str) -> Args:
    """Parse ``argv`` as cobra (pflag) parses it for ``command`` of istioctl ``version``: a flag the command
    does not define is ``unknown flag: --x`` / ``unknown shorthand flag: 'x' in -x`` (a usage error, exit
    64)."""
    flags = istioctl_cli.flags_for(command, version)
    longs = {f.name: f for f in flags}
    shorts = {f.short: f for f in flags if f.short}
    args = Args()
    i = 0
    while i < len(argv):
        token = argv[i]
        if token == "--":
            args.positional += argv[i + 1 :]
            break
        if token.startswith("--"):
            name, eq, value = token[2:].partition("=")
            flag = longs.get(name)
            if flag is None:
                raise UsageError(f"unknown flag: --{name}")
            if not flag.takes_value:
                value = value if eq else "true"
                if value.lower() not in ("true", "false", "1", "0", "t", "f"):
                    raise UsageError(
                        f'invalid argument "{value}" for "--{name}" flag: strconv.ParseBool: parsing '
                        f'"{value}": invalid syntax'
                    )
            elif not eq:
                if i + 1 >= len(argv):
                    raise UsageError(f"flag needs an argument: --{name}")
                i += 1
                value = argv[i]
            _store(args, flag, value)
        elif token.startswith("-") and token != "-":
            letter, rest = token[1], token[2:]
            flag = shorts.get(letter)
            if flag is None:
                raise UsageError(f"unknown shorthand flag: '{letter}' in {token}")
            if not flag.takes_value:
                _store(args, flag, "true")
                if rest:  # -yv: more booleans glued on
                    argv = argv[: i + 1] + [f"-{rest}"] + argv[i + 1 :]
            else:
                value = rest[1:] if rest.startswith("=") else rest
                if not value:
                    if i + 1 >= len(argv):
                        raise UsageError(f"flag needs an argument: '{letter}' in -{letter}")
                    i += 1
                    value = argv[i]
                _store(args, flag, value)
        else:
            args.positional.append(token)
        i += 1
    return args


def _store(args: Args, flag: Flag, value: str) -> None:
    """Store under every spelling, so lookups by ``--long`` or ``-s`` both find it."""
    for spelling in (f"--{flag.name}",) + ((f"-{flag.short}",) if flag.short else ()):
        args.flags.setdefault(spelling, []).append(value)
