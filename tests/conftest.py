"""The test session's own wiring (the product's fixtures come from the root conftest's plugins)."""

from __future__ import annotations

import pytest

from tests import runs


@pytest.fixture(scope="session", autouse=True)
def _shared_rehearsal_runs(tmp_path_factory: pytest.TempPathFactory) -> None:
    runs.share_runs_in(tmp_path_factory.getbasetemp())
