"""What the kind provider (``kind.py``) knows of kind as users install it: which releases it accepts, the node
image each release makes by default, how images get into the nodes, and a local registry mirror.

- **Releases.** Any kind from :data:`MIN_KIND_VERSION` on (``kind version`` parsed); Homebrew, ``go install``
  and the CI actions hand out v0.29 to v0.32.
- **Node images.** :data:`NODE_IMAGES` is each release's default node image with its digest, as
  ``pkg/apis/config/defaults/image.go`` of kubernetes-sigs/kind sets it at that tag (and its release notes
  list): a node image is built for the kind release that publishes it. A release newer than the table uses
  its own default (no ``--image``), said in a line; ``--kind-image`` overrides either.
- **Preloading** (:func:`load_images`), best effort: ``kind load docker-image`` first; when that fails
  (it does for a multi-arch image under Docker's containerd image store, the default of Docker Engine 29+
  and Docker Desktop 4.34+: kubernetes-sigs/kind#3795), ``docker save --platform linux/ARCH`` of the
  node's platform into an archive and ``kind load image-archive``; when that fails too, a warning, and the
  nodes pull the image themselves. A load failure never deletes the cluster.
- **Registry mirror** (``--kind-registry-mirror``): a ``registry:2`` container run as a pull-through cache of
  Docker Hub (``REGISTRY_PROXY_REMOTEURL=https://registry-1.docker.io``), kept between runs, joined to the
  ``kind`` network, and each node's containerd told to pull ``docker.io`` through it
  (``/etc/containerd/certs.d/docker.io/hosts.toml``, with ``config_path`` set by a containerd config patch):
  kind's "Local Registry" guide (``site/static/examples/kind-with-registry.sh`` at v0.31.0) and Istio's CI
  (istio/istio ``prow/integ-suite-kind.sh`` setup_kind_registry), so repeated and nightly runs pull from
  Docker Hub once.
"""

from __future__ import annotations

import platform
import re
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

#: The oldest kind release accepted.
MIN_KIND_VERSION = "v0.29.0"
#: kind release -> its default node image (pkg/apis/config/defaults/image.go at that tag).
NODE_IMAGES: dict[str, str] = {
    "v0.29.0": "kindest/node:v1.33.1@sha256:050072256b9a903bd914c0b2866828150cb229cea0efe5892e2b644d5dd3b34f",
    "v0.30.0": "kindest/node:v1.34.0@sha256:7416a61b42b1662ca6ca89f02028ac133a309a2a30ba309614e8ec94d976dc5a",
    "v0.31.0": "kindest/node:v1.35.0@sha256:452d707d4862f52530247495d180205e029056831160e22870e37e3f6c1ac31f",
    "v0.32.0": "kindest/node:v1.36.1@sha256:3489c7674813ba5d8b1a9977baea8a6e553784dab7b84759d1014dbd78f7ebd5",
}
MIRROR_NAME = "kind-registry-mirror"
MIRROR_IMAGE = "registry:2"
MIRROR_REMOTE = "https://registry-1.docker.io"
#: containerd's registry host configuration directory, enabled by this patch (kind-with-registry.sh).
CONTAINERD_PATCH = (
    '[plugins."io.containerd.grpc.v1.cri".registry]\n  config_path = "/etc/containerd/certs.d"\n'
)
HOSTS_TOML = (
    f'server = "{MIRROR_REMOTE}"\n\n'
    f'[host."http://{MIRROR_NAME}:5000"]\n  capabilities = ["pull", "resolve"]\n'
)


def parse_version(text: str) -> tuple[int, int, int] | None:
    """``kind v0.31.0 go1.25.5 linux/amd64`` (or ``kind v0.32.0-alpha+abc``) -> (0, 31, 0)."""
    match = re.match(r"kind v(\d+)\.(\d+)\.(\d+)", text.strip())
    return (int(match[1]), int(match[2]), int(match[3])) if match else None


def version_tuple(tag: str) -> tuple[int, int, int]:
    parsed = parse_version(f"kind {tag}")
    assert parsed is not None, tag
    return parsed


def default_node_image(version: tuple[int, int, int]) -> str | None:
    """The node image of this kind release (its own table entry, or its minor's .0), or None when the
    release is newer than the table (kind then uses its own default)."""
    exact = f"v{version[0]}.{version[1]}.{version[2]}"
    if exact in NODE_IMAGES:
        return NODE_IMAGES[exact]
    return NODE_IMAGES.get(f"v{version[0]}.{version[1]}.0")


def node_platform() -> str:
    """The platform of kind's nodes: the Docker host's (kind runs nodes of the host's architecture)."""
    machine = platform.machine().lower()
    return "linux/" + {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


Say = Callable[[str], None]


def _quiet(argv: Sequence[str], timeout: float, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(argv),
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _last_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = (result.stderr or result.stdout or "").strip().splitlines()
    return lines[-1][:300] if lines else f"exit code {result.returncode}"


def load_images(
    kind: str, docker: str, cluster: str, images: Sequence[str], say: Say, workdir: Path
) -> tuple[list[str], list[str]]:
    """Load each of ``images`` that the local Docker has into the nodes; (loaded, warnings)."""
    loaded, warnings = [], []
    for image in images:
        try:
            present = _quiet([docker, "image", "inspect", image], 60).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            present = False
        if not present:
            continue
        say(f"loading {image} from the local Docker into the nodes")
        try:
            first = _quiet([kind, "load", "docker-image", "--name", cluster, image], 600)
            if first.returncode == 0:
                loaded.append(image)
                continue
            # A multi-arch image under the containerd image store: save this platform only (kind#3795).
            with tempfile.TemporaryDirectory(dir=workdir, prefix=".image-") as tmp:
                archive = str(Path(tmp) / "image.tar")
                saved = _quiet([docker, "save", "--platform", node_platform(), "-o", archive, image], 600)
                if saved.returncode == 0:
                    second = _quiet([kind, "load", "image-archive", "--name", cluster, archive], 600)
                    if second.returncode == 0:
                        loaded.append(image)
                        continue
                    why = _last_line(second)
                else:
                    why = _last_line(saved)
            problem = f"{image}: kind load docker-image said {_last_line(first)!r}; the archive way: {why}"
        except (OSError, subprocess.TimeoutExpired) as exc:
            problem = f"{image}: {type(exc).__name__}: {exc}"
        warnings.append(problem)
        say(f"warning: could not load {problem}; the nodes will pull it themselves")
    return loaded, warnings


def mirror_config(path: Path) -> Path:
    """A kind cluster configuration with the containerd patch the mirror needs."""
    patch = "\n".join("    " + line for line in CONTAINERD_PATCH.splitlines())
    path.write_text(
        "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\ncontainerdConfigPatches:\n  - |-\n" + patch + "\n"
    )
    return path


def start_mirror(docker: str, say: Say) -> str | None:
    """Run the Docker Hub pull-through cache unless it runs already; None, or what went wrong."""
    try:
        running = _quiet([docker, "inspect", "-f", "{{.State.Running}}", MIRROR_NAME], 60)
        if running.returncode == 0 and running.stdout.strip() == "true":
            say(f"using the registry mirror {MIRROR_NAME} (a pull-through cache of Docker Hub)")
            return None
        if running.returncode == 0:  # there, stopped
            started = _quiet([docker, "start", MIRROR_NAME], 120)
        else:
            say(f"starting the registry mirror {MIRROR_NAME} ({MIRROR_IMAGE}, caching {MIRROR_REMOTE})")
            started = _quiet(
                [
                    docker,
                    "run",
                    "-d",
                    "--restart=always",
                    "--name",
                    MIRROR_NAME,
                    "-e",
                    f"REGISTRY_PROXY_REMOTEURL={MIRROR_REMOTE}",
                    MIRROR_IMAGE,
                ],
                600,
            )
        return None if started.returncode == 0 else _last_line(started)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{type(exc).__name__}: {exc}"


def connect_mirror(kind: str, docker: str, cluster: str, say: Say) -> str | None:
    """Join the mirror to the ``kind`` network and point each node's containerd at it for docker.io."""
    try:
        joined = _quiet([docker, "inspect", "-f", "{{json .NetworkSettings.Networks.kind}}", MIRROR_NAME], 60)
        if joined.stdout.strip() in ("", "null"):
            connected = _quiet([docker, "network", "connect", "kind", MIRROR_NAME], 60)
            if connected.returncode != 0:
                return _last_line(connected)
        nodes = _quiet([kind, "get", "nodes", "--name", cluster], 60)
        if nodes.returncode != 0:
            return _last_line(nodes)
        directory = "/etc/containerd/certs.d/docker.io"
        for node in nodes.stdout.split():
            for argv, stdin in (
                ([docker, "exec", node, "mkdir", "-p", directory], None),
                ([docker, "exec", "-i", node, "cp", "/dev/stdin", f"{directory}/hosts.toml"], HOSTS_TOML),
            ):
                done = _quiet(argv, 60, stdin)
                if done.returncode != 0:
                    return f"{node}: {_last_line(done)}"
        say(f"the nodes pull docker.io images through {MIRROR_NAME}")
        return None
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{type(exc).__name__}: {exc}"
