"""The flags each istioctl command accepts, per version, as cobra sees them.

istioctl is a cobra program: a flag that the command (or the root's persistent flags) does not define is a
usage error, ``Error: unknown flag: --set``, exit 64 (every command gets a FlagErrorFunc that wraps the error
in ``CommandParseError``, istioctl/cmd/root.go; ``sysexits.go`` maps it to 64). The harness builds its
argument lists from this table and the emulator parses with it, so both fail where the real binary fails.
"""

from __future__ import annotations

from dataclasses import dataclass

from .catalog import Source, minor_of


@dataclass(frozen=True)
class Flag:
    name: str  # long name without dashes
    short: str = ""  # one letter, or ""
    takes_value: bool = True
    since: str = "1.20"
    until: str = "9.99"  # last minor that has it


def _f(name: str, short: str = "", value: bool = True, since: str = "1.20", until: str = "9.99") -> Flag:
    return Flag(name, short, value, since, until)


# The root's persistent flags (istioctl/pkg/cli/option.go AddRootFlags, pkg/log options, cobra's help).
ROOT_FLAGS = (
    _f("kubeconfig", "c"),
    _f("context"),
    _f("namespace", "n"),
    _f("istioNamespace", "i"),
    _f("vklog"),
    _f("log_output_level"),
    _f("log_as_json", value=False),
    _f("log_target"),
    _f("log_caller"),
    _f("log_stacktrace_level"),
    _f("log_rotate"),
    _f("help", "h", value=False),
)
ROOT_SOURCE = Source("istio/istio", "istioctl/pkg/cli/option.go", "1.30.3")

_REVISION = _f("revision", "r")
_MANIFESTS = _f("manifests", "d")
_SKIP = _f("skip-confirmation", "y", value=False)

COMMAND_FLAGS: dict[str, tuple[tuple[Flag, ...], Source]] = {
    "version": (
        (_f("short", "s", value=False), _f("output", "o"), _f("remote", value=False), _REVISION),
        Source("istio/istio", "pkg/version/cobra.go", "1.30.3"),
    ),
    "manifest generate": (
        (
            _f("filename", "f"),
            _f("set", "s"),
            _f("force", value=False),
            _f("charts"),
            _MANIFESTS,
            _REVISION,
            _f("filter", since="1.24"),
            _f("cluster-specific", value=False),
            _f("output", "o", since="1.31"),
        ),
        Source("istio/istio", "operator/cmd/mesh/manifest-generate.go", "1.30.3"),
    ),
    "install": (
        (
            _f("filename", "f"),
            _f("set", "s"),
            _f("force", value=False),
            _f("charts"),
            _MANIFESTS,
            _REVISION,
            _SKIP,
            _f("readiness-timeout"),
            _f("verify", value=False),
            _f("dry-run", value=False),
        ),
        Source("istio/istio", "operator/cmd/mesh/install.go", "1.30.3"),
    ),
    "verify-install": (
        (_f("filename", "f"), _MANIFESTS, _REVISION),
        Source("istio/istio", "operator/cmd/mesh/verify.go", "1.23.6"),
    ),
    "x precheck": (
        (
            _f("skip-controlplane", value=False),
            _f("output-threshold"),
            _f("output", "o"),
            _f("from-version", "f", since="1.21"),
            _REVISION,
        ),
        Source("istio/istio", "istioctl/pkg/precheck/precheck.go", "release-1.31"),
    ),
    "analyze": (
        (
            _f("list-analyzers", "L", value=False),
            _f("use-kube", "k", value=False),
            _f("color", value=False),
            _f("verbose", "v", value=False),
            _f("failure-threshold"),
            _f("output-threshold"),
            _f("output", "o"),
            _f("meshConfigFile"),
            _f("all-namespaces", "A", value=False),
            _f("suppress", "S"),
            _f("timeout"),
            _f("recursive", "R", value=False, until="1.24"),
            _f("ignore-unknown", value=False),
            _REVISION,
            _f("remote-contexts"),
            _f("analyzer"),
        ),
        Source("istio/istio", "istioctl/pkg/analyze/analyze.go", "1.30.3"),
    ),
    "proxy-status": (
        (
            _f("file"),
            _f("proxy-admin-port"),
            _f("output", "o", since="1.27"),
            _f("verbosity", "v"),
            _REVISION,
        ),
        Source("istio/istio", "istioctl/pkg/proxystatus/proxystatus.go", "1.30.3"),
    ),
    "tag set": (
        (
            _f("overwrite", value=False),
            _MANIFESTS,
            _SKIP,
            _REVISION,
            _f("webhook-name"),
            _f("auto-inject-namespaces", value=False),
        ),
        Source("istio/istio", "istioctl/pkg/tag/tag.go", "1.30.3"),
    ),
    "tag list": ((_f("output", "o"),), Source("istio/istio", "istioctl/pkg/tag/tag.go", "1.30.3")),
    "tag remove": ((_SKIP,), Source("istio/istio", "istioctl/pkg/tag/tag.go", "1.30.3")),
    "uninstall": (
        (
            _SKIP,
            _f("force", value=False),
            _f("purge", value=False),
            _REVISION,
            _f("filename", "f"),
            _MANIFESTS,
            _f("set", "s"),
            _f("verbose", "v", value=False),
            _f("dry-run", value=False),
        ),
        Source("istio/istio", "operator/cmd/mesh/uninstall.go", "1.30.3"),
    ),
}
COMMAND_FLAGS["upgrade"] = COMMAND_FLAGS["install"]
COMMAND_FLAGS["tag generate"] = COMMAND_FLAGS["tag set"]
COMMAND_FLAGS["ps"] = COMMAND_FLAGS["proxy-status"]


def flags_for(command: str, version: str) -> tuple[Flag, ...]:
    """The flags ``command`` (e.g. ``"x precheck"``) of istioctl ``version`` accepts, root flags included."""
    minor = minor_of(version)
    own = COMMAND_FLAGS.get(command, ((), ROOT_SOURCE))[0]
    return tuple(
        f for f in own + ROOT_FLAGS if minor.at_least(f.since) and not minor.at_least(_next_minor(f.until))
    )


def _next_minor(minor: str) -> str:
    major, number = minor.split(".")
    return f"{major}.{int(number) + 1}"


def accepts(command: str, version: str, flag: str) -> bool:
    """Whether ``--flag`` (long name) exists for ``command`` in ``version``."""
    return any(f.name == flag for f in flags_for(command, version))
