"""The test session's own wiring (the product's fixtures come from the root conftest's plugins)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests import runs


def pytest_configure(config: pytest.Config) -> None:
    # pytester's fixtures for the in-process runs, for this test tree only (pytest_plugins may only be set in
    # the root conftest, which is the product's: users' runs of the suites have no use for pytester).
    config.pluginmanager.import_plugin("pytester")


@pytest.fixture(scope="session", autouse=True)
def _shared_rehearsal_runs(tmp_path_factory: pytest.TempPathFactory) -> None:
    runs.share_runs_in(tmp_path_factory.getbasetemp())


@pytest.fixture
def suites_run(pytester: pytest.Pytester) -> Callable[..., runs.Rehearsed]:
    """``suites_run(work, *args)``: the rehearsal suites with ``args`` in this process (tests/runs.py)."""

    def run(work: Path, *args: str, traffic_requests: int = 10, probe_rate: float = 2.0) -> runs.Rehearsed:
        return runs.in_process(
            pytester, work, *args, traffic_requests=traffic_requests, probe_rate=probe_rate
        )

    return run
