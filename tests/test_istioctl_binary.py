"""Resolving and downloading the real istioctl of a version, tested against a local release server."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from istiofacts import catalog
from rehearsal.istio.istioctl import IstioctlError, archive_name, download, resolve

SOURCE = catalog.default_pair()[0]

FAKE = '#!/bin/sh\necho \'{"clientVersion":{"version":"%s"}}\'\n'


def fake_archive(version: str) -> bytes:
    payload = (FAKE % version).encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("istioctl")
        info.size, info.mode = len(payload), 0o755
        tar.addfile(info, io.BytesIO(payload))
    return buffer.getvalue()


@pytest.fixture
def release_server():
    files: dict[str, bytes] = {}
    requests_seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            requests_seen.append(self.path)
            body = files.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    def publish(version: str, corrupt: bool = False) -> None:
        archive = fake_archive(version)
        name = archive_name(version)
        digest = hashlib.sha256(archive + (b"x" if corrupt else b"")).hexdigest()
        files[f"/{version}/{name}"] = archive
        files[f"/{version}/{name}.sha256"] = f"{digest}  {name}\n".encode()

    yield f"http://127.0.0.1:{server.server_address[1]}", publish, requests_seen
    server.shutdown()


def test_download_verifies_the_published_checksum_and_caches(release_server, tmp_path):
    url, publish, seen = release_server
    publish("1.28.2")
    path = download("1.28.2", tmp_path / "cache", url)
    assert path == tmp_path / "cache" / "1.28.2" / "istioctl" and os.access(path, os.X_OK)
    assert (
        json.loads(subprocess.run([str(path)], capture_output=True, text=True).stdout)["clientVersion"][
            "version"
        ]
        == "1.28.2"
    )
    count = len(seen)
    assert download("1.28.2", tmp_path / "cache", url) == path
    assert len(seen) == count  # served from the cache


def test_a_corrupt_download_is_refused_and_leaves_nothing(release_server, tmp_path):
    url, publish, _ = release_server
    publish("1.27.4", corrupt=True)
    with pytest.raises(
        IstioctlError, match="the SHA-256 of istioctl-1.27.4-.* is .*, but the release publishes"
    ):
        download("1.27.4", tmp_path / "cache", url)
    leftovers = [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]
    assert leftovers == []


def test_unknown_version_and_offline_get_clear_errors(release_server, tmp_path):
    url, _, _ = release_server
    with pytest.raises(IstioctlError, match="istioctl 1.26.0 is not published at"):
        download("1.26.0", tmp_path / "cache", url)
    with pytest.raises(IstioctlError, match=r"cannot download istioctl 1.26.0 from .* \(offline\?"):
        download("1.26.0", tmp_path / "cache", "http://127.0.0.1:9")


def test_progress_is_reported(release_server, tmp_path):
    url, publish, _ = release_server
    publish("1.29.5")
    seen: list[tuple[int, int]] = []
    download("1.29.5", tmp_path / "cache", url, progress=lambda done, total: seen.append((done, total)))
    assert seen and seen[-1][0] == seen[-1][1] > 0


def test_resolve_prefers_explicit_then_matching_path_then_cache(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    on_path = bin_dir / "istioctl"
    on_path.write_text(FAKE % "1.28.2")
    on_path.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    assert resolve("1.28.2", cache=tmp_path / "cache", allow_download=False) == on_path
    with pytest.raises(IstioctlError, match="istioctl 1.27.4 is not on PATH or in"):
        resolve("1.27.4", cache=tmp_path / "cache", allow_download=False)
    cached = tmp_path / "cache" / "1.27.4" / "istioctl"
    cached.parent.mkdir(parents=True)
    cached.write_text(FAKE % "1.27.4")
    assert resolve("1.27.4", cache=tmp_path / "cache", allow_download=False) == cached
    assert resolve("1.27.4", explicit=on_path) == on_path
    with pytest.raises(IstioctlError, match="does not exist"):
        resolve("1.27.4", explicit=tmp_path / "nope")


def test_every_call_is_recorded_as_evidence(make_istioctl):
    istioctl = make_istioctl(SOURCE)
    istioctl.run("version", "--remote=false")
    record = istioctl.evidence.commands[-1]
    assert record.argv[1:4] == ("version", "--remote=false", "--kubeconfig")
    assert record.exit_code == 0 and record.stdout.strip() == f"client version: {SOURCE}"
    assert record.duration >= 0


def test_versions_command_lists_oldest_first():
    out = subprocess.run(
        [sys.executable, "-m", "kubesim", "versions"], capture_output=True, text=True, timeout=60
    ).stdout.split()
    assert out == catalog.known_versions()
    assert out[0] == next(iter(catalog.CATALOG.values())).patches[0] and out[-1] == catalog.default_pair()[1]
    assert out == sorted(out, key=lambda v: tuple(int(x) for x in v.split(".")))


def test_serve_with_istio_and_apps_prints_a_url_that_answers(tmp_path):
    import requests

    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kubesim",
            "serve",
            "--kubeconfig",
            str(tmp_path / "kc"),
            "--time-scale",
            "0",
            "--istio",
            SOURCE,
            "--apps",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert f"Istio {SOURCE} installed; sample apps at http://127.0.0.1:" in line, line
        url = line.strip().rsplit(" ", 1)[-1]
        body = requests.get(url + "/hello", timeout=10).json()
        # The echo app names the pod that answered (os.hostname, as mendhak/http-https-echo); no Istio header
        # names a proxy version.
        assert body["path"] == "/echo/hello" and body["os"]["hostname"].startswith("echo-")
        assert not [h for h in body["headers"] if h.startswith("x-istio") or h.startswith("x-envoy-peer")]
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def test_serve_rejects_an_unknown_istio_version(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "kubesim", "serve", "--kubeconfig", str(tmp_path / "kc"), "--istio", "1.99.0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "Istio 1.99 is not in the catalog" in result.stderr
