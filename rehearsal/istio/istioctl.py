"""istioctl of a given Istio version, run as a subprocess, with every call recorded as evidence.

An :class:`Istioctl` is resolved once per version: from an explicit path, from ``istioctl`` on PATH when its
version matches, from the cache folder, or downloaded from the official release archive for this OS and
architecture with its published SHA-256 verified (a progress bar on a terminal; a clear error when offline;
the cache never holds a half-written file). On the simulated cluster the sim provider hands out the
emulator as such a binary. Typed methods cover what the suites use and parse the outputs.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import stat
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from istiofacts import istioctl_cli
from istiofacts.catalog import minor_of

from ..evidence import CommandRecord, EvidenceLog

RELEASE_URL = os.environ.get(
    "REHEARSAL_ISTIO_RELEASE_URL", "https://github.com/istio/istio/releases/download"
)
DEFAULT_CACHE = Path(os.environ.get("REHEARSAL_CACHE", Path.home() / ".cache" / "istio-upgrade-rehearsal"))


class IstioctlError(Exception):
    """istioctl could not be found, downloaded or run; the message says what to do."""


class IstioctlFailed(Exception):
    """An istioctl command exited non-zero."""

    def __init__(self, record: CommandRecord) -> None:
        super().__init__(
            f"istioctl {' '.join(record.argv[1:])} exited {record.exit_code}: "
            f"{(record.stderr or record.stdout).strip()[:2000]}"
        )
        self.record = record


class IstioctlStopped(IstioctlFailed):
    """The harness stopped istioctl: a pod it waited for was past hope (see :mod:`rehearsal.istio.watch`).
    ``cause`` names the pod and the cluster's reason; ``evidence`` is what the cluster showed then."""

    def __init__(self, record: CommandRecord, cause: dict[str, Any], message: str) -> None:
        Exception.__init__(self, message)
        self.record = record
        self.cause = {k: v for k, v in cause.items() if k != "evidence"}
        self.evidence = dict(cause.get("evidence") or {}, cause=self.cause)


#: Looks at the cluster while an istioctl command runs: the cause once it cannot succeed, else None.
Watch = Callable[[], "dict[str, Any] | None"]
#: Told every few seconds while a watched command runs: (elapsed, deadline) in seconds.
Ticker = Callable[[float, float], None]
#: Wall seconds between two looks at the cluster while istioctl runs.
WATCH_INTERVAL = 1.0


def platform_suffix() -> str:
    system = platform.system().lower()
    machine = platform.machine().lower()
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(machine)
    if arch is None:
        raise IstioctlError(f"no istioctl release is published for {system}/{machine}")
    if system == "darwin":
        return "osx-arm64" if arch == "arm64" else "osx"
    if system == "linux":
        return f"linux-{arch}"
    raise IstioctlError(f"no istioctl release is published for {system}; use Linux or macOS")


def archive_name(version: str) -> str:
    return f"istioctl-{version}-{platform_suffix()}.tar.gz"


def _binary_version(path: Path) -> str | None:
    try:
        result = subprocess.run(
            [str(path), "version", "--remote=false", "-o", "json"], capture_output=True, text=True, timeout=60
        )
        return json.loads(result.stdout)["clientVersion"]["version"]
    except (OSError, subprocess.TimeoutExpired, ValueError, KeyError):
        return None


def download(
    version: str,
    cache: Path = DEFAULT_CACHE,
    base_url: str = RELEASE_URL,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Fetch istioctl ``version`` into ``cache`` and return its path, verifying the published SHA-256."""
    target = cache / version / "istioctl"
    if target.exists():
        return target
    name = archive_name(version)
    url = f"{base_url.rstrip('/')}/{version}/{name}"
    session = requests.Session()
    try:
        checksum = session.get(url + ".sha256", timeout=30)
        if checksum.status_code == 404:
            raise IstioctlError(f"istioctl {version} is not published at {url}.sha256; check the version")
        checksum.raise_for_status()
        expected = checksum.text.split()[0].lower()
        cache.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        with tempfile.TemporaryDirectory(dir=cache, prefix=".download-") as work:
            archive = Path(work) / name
            with session.get(url, stream=True, timeout=60) as response:
                response.raise_for_status()
                total = int(response.headers.get("Content-Length") or 0)
                done = 0
                with archive.open("wb") as handle:
                    for chunk in response.iter_content(1 << 16):
                        handle.write(chunk)
                        digest.update(chunk)
                        done += len(chunk)
                        if progress:
                            progress(done, total)
            if digest.hexdigest() != expected:
                raise IstioctlError(
                    f"the SHA-256 of {name} is {digest.hexdigest()}, but the release publishes "
                    f"{expected}; the download is corrupt or tampered with, so it was discarded"
                )
            with tarfile.open(archive) as tar:
                member = next(
                    (m for m in tar.getmembers() if Path(m.name).name == "istioctl" and m.isfile()), None
                )
                if member is None:
                    raise IstioctlError(f"{name} holds no istioctl binary")
                extracted = tar.extractfile(member)
                assert extracted is not None
                staged = Path(work) / "istioctl"
                staged.write_bytes(extracted.read())
            staged.chmod(staged.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staged, target)  # atomic: the cache never holds a half-written binary
    except requests.ConnectionError as exc:
        raise IstioctlError(
            f"cannot download istioctl {version} from {url} (offline? {type(exc).__name__}); put "
            f"istioctl {version} on PATH or pass its path, or set REHEARSAL_ISTIO_RELEASE_URL to a "
            "mirror"
        ) from None
    except requests.HTTPError as exc:
        raise IstioctlError(f"downloading istioctl {version} from {url} failed: {exc}") from None
    return target


def terminal_progress(version: str) -> Callable[[int, int], None] | None:
    """A download's progress in bytes, as progress lines (:func:`rehearsal.report.progress.note`, which the
    pytest plugin shows through pytest's capture): one at the start and one per quarter of the archive."""
    from ..report import progress

    shown: list[int] = []

    def show(done: int, total: int) -> None:
        quarter = 4 * done // total if total else 0
        if not shown or (quarter > shown[-1]) or (total and done >= total and shown[-1] < 4):
            shown.append(quarter if total else 0)
            size = f"{done / 1e6:.1f}/{total / 1e6:.1f} MB" if total else f"{done / 1e6:.1f} MB"
            progress.note(f"downloading istioctl {version}: {size}")

    return show


def resolve(
    version: str, explicit: str | Path | None = None, cache: Path = DEFAULT_CACHE, allow_download: bool = True
) -> Path:
    """Find istioctl ``version``: explicit path, PATH (same version only), cache, then download."""
    if explicit:
        path = Path(explicit)
        if not path.exists():
            raise IstioctlError(f"istioctl path {path} does not exist")
        return path
    on_path = shutil.which("istioctl")
    if on_path and _binary_version(Path(on_path)) == version:
        return Path(on_path)
    cached = cache / version / "istioctl"
    if cached.exists():
        return cached
    if not allow_download:
        raise IstioctlError(f"istioctl {version} is not on PATH or in {cache}")
    return download(version, cache, progress=terminal_progress(version))


@dataclass(frozen=True)
class AnalysisMessage:
    code: str
    level: str
    origin: str
    message: str


@dataclass
class Istioctl:
    """istioctl of one version, bound to one cluster (kubeconfig and context)."""

    version: str
    path: Path
    kubeconfig: Path | None = None
    context: str | None = None
    evidence: EvidenceLog = field(default_factory=EvidenceLog)
    timeout: float = 600.0
    # A command that failed on a transient API answer is run again (capped backoff) within this many seconds;
    # its commands apply the whole wanted state, so a second run repeats no change (see rehearsal.retry).
    retry_budget: float = 300.0
    retry_listeners: list[Callable[[dict[str, Any]], None]] = field(default_factory=list)

    @property
    def minor(self) -> Any:
        return minor_of(self.version)

    def run(
        self,
        *args: str,
        check: bool = True,
        stdin: str | None = None,
        watch: Watch | None = None,
        timeout: float | None = None,
        ticker: Ticker | None = None,
    ) -> CommandRecord:
        """Run ``istioctl args``; with ``watch``, look at the cluster every :data:`WATCH_INTERVAL` seconds
        meanwhile and stop istioctl (:class:`IstioctlStopped`) once ``watch`` returns a cause."""
        from ..retry import Backoff, current_budget, transient_istioctl_error

        backoff = Backoff(budget=self.retry_budget)
        limit = time.monotonic() + self.retry_budget
        attempt = 0
        while True:
            record = (
                self._run_once(args, stdin)
                if watch is None
                else self._run_watched(args, watch, timeout or self.timeout, ticker)
            )
            if record.exit_code in (0, -1, -2) or not transient_istioctl_error(record.stderr, record.stdout):
                break
            pause = backoff.delay(attempt)
            if time.monotonic() + pause > limit:
                break
            shared = current_budget()  # the step's or check's budget, shared with its API calls
            if shared is not None:
                if not shared.allows(pause):
                    break
                shared.spent += pause
            attempt += 1
            event = {
                "command": " ".join(["istioctl", *args])[:200],
                "exit_code": record.exit_code,
                "reason": (record.stderr or record.stdout).strip().splitlines()[-1][:200]
                if (record.stderr or record.stdout).strip()
                else "",
                "attempt": attempt,
                "waited_seconds": round(pause, 3),
            }
            for listener in list(self.retry_listeners):
                listener(event)
            time.sleep(pause)  # bounded by the retry budget
        if record.exit_code in (-1, -2):  # timed out (-2: stopped, raised above)
            raise IstioctlFailed(record)
        if check and record.exit_code != 0:
            raise IstioctlFailed(record)
        return record

    def _run_once(self, args: tuple[str, ...], stdin: str | None) -> CommandRecord:
        argv = self._argv(args)
        started = time.time()
        try:
            result = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                timeout=self.timeout,
                input=stdin,
                stdin=None if stdin is not None else subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired as exc:
            return self.evidence.record_command(
                argv, -1, str(exc.stdout or ""), f"timed out after {self.timeout}s", started
            )
        except OSError as exc:
            raise IstioctlError(f"cannot run {self.path}: {exc.strerror}") from None
        return self.evidence.record_command(argv, result.returncode, result.stdout, result.stderr, started)

    def _run_watched(
        self, args: tuple[str, ...], watch: Watch, timeout: float, ticker: Ticker | None
    ) -> CommandRecord:
        """:meth:`_run_once` with the cluster watched meanwhile (see :mod:`rehearsal.istio.watch`)."""
        import threading

        from .watch import stopped_message

        argv = self._argv(args)
        started, began = time.time(), time.monotonic()
        try:
            proc = subprocess.Popen(
                argv,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
                text=True,
            )
        except OSError as exc:
            raise IstioctlError(f"cannot run {self.path}: {exc.strerror}") from None
        out: list[str] = []
        err: list[str] = []
        readers = [
            threading.Thread(target=lambda s=s, b=b: b.extend(iter(s.readline, "")), daemon=True)
            for s, b in ((proc.stdout, out), (proc.stderr, err))
        ]
        for reader in readers:
            reader.start()

        def finish(code: int, note: str = "") -> CommandRecord:
            for reader in readers:
                reader.join(2)
            stderr = "".join(err) + (f"\n{note}" if note else "")
            return self.evidence.record_command(argv, code, "".join(out), stderr, started)

        try:
            while True:
                try:
                    code = proc.wait(WATCH_INTERVAL)
                    return finish(code)
                except subprocess.TimeoutExpired:
                    pass
                elapsed = time.monotonic() - began
                if elapsed >= timeout:
                    _stop(proc)
                    return finish(-1, f"timed out after {timeout:.0f}s")
                try:
                    cause = watch()
                except Exception:  # a look that failed is not a verdict: look again
                    cause = None
                if cause is not None:
                    _stop(proc)
                    record = finish(-2, "stopped by the harness: " + str(cause.get("reason")))
                    command = " ".join(["istioctl", *args])
                    said = "".join(err) + "".join(out)
                    raise IstioctlStopped(record, cause, stopped_message(cause, said, command))
                if ticker is not None:
                    ticker(elapsed, timeout)
        except BaseException:
            # Interrupted (Ctrl-C, SIGTERM) or stopped: istioctl does not outlive the harness's call, as
            # subprocess.run would not let it.
            if proc.poll() is None:
                _stop(proc)
            raise

    def _argv(self, args: tuple[str, ...]) -> list[str]:
        argv = [str(self.path), *args]
        if self.kubeconfig:
            argv += ["--kubeconfig", str(self.kubeconfig)]
        if self.context:
            argv += ["--context", self.context]
        return argv

    # -- typed commands -----------------------------------------------------------------------------------
    def version_info(self, revision: str | None = None) -> dict[str, Any]:
        """``istioctl version -o json`` parsed (stderr, such as 'Istio is not present', kept apart)."""
        args = ["version", "-o", "json"] + (["--revision", revision] if revision else [])
        return json.loads(self.run(*args).stdout)

    def precheck(self, from_version: str | None = None) -> CommandRecord:
        """``x precheck``; with ``from_version`` (a minor such as ``1.30``: istioctl parses the minor as a
        number) its upgrade checks too, where this istioctl has ``--from-version`` (1.21+)."""
        args = ["x", "precheck"]
        if from_version and istioctl_cli.accepts("x precheck", self.version, "from-version"):
            args += ["--from-version", from_version]
        return self.run(*args, check=False)

    def manifest_generate(
        self,
        files: Sequence[str | Path] = (),
        sets: Sequence[str] = (),
        revision: str | None = None,
        cluster_specific: bool = False,
    ) -> str:
        """``istioctl manifest generate``; ``cluster_specific`` adds ``--cluster-specific``: the values
        ``istioctl install`` detects from the cluster (on GKE, CNI in kube-system; istio/istio 1.30.3
        operator/pkg/render/manifest.go clusterSpecificSettings), so the manifest applied is the one install
        would apply."""
        args = ["manifest", "generate"] + (["--cluster-specific"] if cluster_specific else [])
        for f in files:
            args += ["-f", str(f)]
        for s in sets:
            args += ["--set", s]
        if revision:
            args += ["--revision", revision]
        return self.run(*args).stdout

    def install(
        self,
        files: Sequence[str | Path] = (),
        sets: Sequence[str] = (),
        readiness_timeout: str = "5m0s",
        upgrade: bool = False,
        watch: Watch | None = None,
        components: int = 3,
        ticker: Ticker | None = None,
    ) -> CommandRecord:
        """``install``/``upgrade -y``. istioctl waits up to ``readiness_timeout`` for each component in turn,
        so the command may take that times ``components`` (those it installs), plus a margin."""
        args = ["upgrade" if upgrade else "install", "-y", "--readiness-timeout", readiness_timeout]
        for f in files:
            args += ["-f", str(f)]
        for s in sets:
            args += ["--set", s]
        budget = go_seconds(readiness_timeout) * max(1, components) + INSTALL_MARGIN
        return self.run(*args, watch=watch, timeout=max(budget, self.timeout), ticker=ticker)

    def analyze(self, all_namespaces: bool = True) -> list[AnalysisMessage]:
        """``analyze -o json`` (which always exits 0: the levels are judged here)."""
        args = ["analyze", "-o", "json"] + (["-A"] if all_namespaces else [])
        data = json.loads(self.run(*args).stdout or "[]")
        return [AnalysisMessage(m["code"], m["level"], m.get("origin", ""), m["message"]) for m in data]

    def verify_install(self, files: Sequence[str | Path] = (), revision: str | None = None) -> CommandRecord:
        """``verify-install`` (up to 1.23), which takes only ``-f``, ``-d`` and ``-r``
        (operator/cmd/mesh/verify.go at 1.23): settings reach it as IstioOperator files, never as
        ``--set``."""
        if not self.minor.verify_install:
            raise IstioctlError(
                f"istioctl {self.version} has no verify-install (removed in 1.24); use the "
                "harness's own readiness checks"
            )
        args = ["verify-install"]
        for f in files:
            args += ["-f", str(f)]
        if revision:
            args += ["--revision", revision]
        return self.run(*args, check=False)

    def proxy_status(self) -> list[dict[str, str]]:
        lines = self.run("proxy-status").stdout.splitlines()
        if not lines:
            return []
        headers = lines[0].split()
        if "SUBSCRIBED" in headers:
            headers = ["NAME", "CLUSTER", "ISTIOD", "VERSION", "SUBSCRIBED"]
        rows = []
        for line in lines[1:]:
            cells = line.split()
            rows.append(dict(zip(headers, cells, strict=False)))
        return rows

    def tag_set(self, tag: str, revision: str, overwrite: bool = True) -> CommandRecord:
        return self.run(
            "tag", "set", tag, "--revision", revision, *(["--overwrite"] if overwrite else []), "-y"
        )

    def uninstall(self, revision: str) -> CommandRecord:
        return self.run("uninstall", "--revision", revision, "-y")


#: Seconds istioctl install needs beyond its readiness waits (applying, pruning, webhooks).
INSTALL_MARGIN = 60.0


def go_seconds(duration: str) -> float:
    """A Go duration such as ``5m0s``, ``300s`` or ``1h`` in seconds."""
    import re

    total, text = 0.0, duration.strip()
    for number, unit in re.findall(r"([0-9.]+)(ms|h|m|s)", text):
        total += float(number) * {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}[unit]
    if not total and text.replace(".", "", 1).isdigit():
        return float(text)  # a bare number is seconds
    return total


def _stop(proc: subprocess.Popen[str]) -> None:
    """End istioctl: SIGTERM (it stops its waits), then SIGKILL if it lingers."""
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
