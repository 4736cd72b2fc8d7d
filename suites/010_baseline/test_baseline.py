"""Before anything changes: the source mesh is installed, serving, and observed."""

import pytest

pytestmark = pytest.mark.order(10)


def test_source_control_plane_runs_the_source_version(baseline, source_installed, findings):
    # The source is the settings' after detection: on an existing cluster it is what runs there.
    findings.update(baseline["versions"])
    assert baseline["versions"]["control_plane"] == [source_installed.settings.istio_from]


def test_sample_app_answers_through_the_ingress(baseline, findings):
    findings.update(baseline["traffic"])
    assert baseline["traffic"]["codes"] == {"200": baseline["traffic"]["requests"]}
