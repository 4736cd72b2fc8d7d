"""The direction of dependency between the three products, checked on every module's source.

``rehearsal/`` (the harness) never imports ``kubesim`` (the simulated cluster) except through its one bridge,
``rehearsal/cluster/sim.py``; ``kubesim/`` never imports the harness; ``istiofacts/`` imports neither. The
same contracts are in ``pyproject.toml`` for import-linter (``make lint``); this test needs nothing installed
and reads every import statement, including those inside functions and ``TYPE_CHECKING`` blocks.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BRIDGE = "rehearsal/cluster/sim.py"

# package -> packages it must never import
FORBIDDEN = {
    "rehearsal": ("kubesim", "fixtures"),
    "kubesim": ("rehearsal", "fixtures"),
    "istiofacts": ("rehearsal", "kubesim", "fixtures"),
}


def imported_modules(source: str, module: str) -> set[str]:
    """Absolute names of everything ``source`` (the module ``module``) imports, relative imports resolved."""
    names: set[str] = set()
    package = module.split(".")
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            names.add(prefix)
            names.update(f"{prefix}.{alias.name}" for alias in node.names)
    return names


def violations(package: str, files: dict[str, str]) -> list[str]:
    """``path: imports X`` for every file of ``package`` (path -> source) that imports what it must not."""
    found = []
    for path, source in sorted(files.items()):
        if path == BRIDGE:
            continue
        module = path.removesuffix(".py").replace("/", ".")  # a package's __init__ keeps its own level
        for name in sorted(imported_modules(source, module)):
            top = name.split(".")[0]
            if top in FORBIDDEN[package]:
                found.append(f"{path}: imports {name}")
    return found


def sources(package: str) -> dict[str, str]:
    return {str(p.relative_to(ROOT)): p.read_text() for p in sorted((ROOT / package).rglob("*.py"))}


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_the_package_imports_only_what_its_layer_allows(package):
    assert sources(package), f"{package}/ has no modules: the check would prove nothing"
    assert violations(package, sources(package)) == []


@pytest.mark.parametrize(
    "path, source, offending",
    [
        ("rehearsal/steps/mesh.py", "from kubesim.node.images import normalize\n", "kubesim.node.images"),
        ("rehearsal/steps/mesh.py", "def f():\n    import kubesim\n", "kubesim"),
        (
            "rehearsal/kube.py",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import kubesim\n",
            "kubesim",
        ),
        ("kubesim/cluster.py", "from rehearsal.kube import rollout_complete\n", "rehearsal.kube"),
        ("kubesim/istio/mesh.py", "from ...rehearsal import kube\n", "rehearsal"),
        ("istiofacts/catalog.py", "import kubesim.clock\n", "kubesim.clock"),
    ],
)
def test_the_check_catches_a_forbidden_import(path, source, offending):
    package = path.split("/")[0]
    assert f"{path}: imports {offending}" in violations(package, {path: source})


def test_the_bridge_alone_may_import_the_simulator():
    assert violations("rehearsal", {BRIDGE: "import kubesim\n"}) == []
    assert "rehearsal/settings.py: imports kubesim" in violations(
        "rehearsal", {"rehearsal/settings.py": "import kubesim\n"}
    )
