"""After the upgrade: everything the runbook's validation section asks for."""

import pytest

from rehearsal.steps import mesh, validate

pytestmark = pytest.mark.order(40)


def test_control_plane_is_at_the_target_version(upgraded, rehearsal_settings, findings):
    observed, _ = validate.version_findings(upgraded, upgraded.istioctl_to, rehearsal_settings.istio_to)
    findings["control plane"] = observed["control_plane"]
    assert observed["control_plane"] == [rehearsal_settings.istio_to]


def test_no_version_skew(upgraded, rehearsal_settings, findings):
    observed, problems = validate.version_findings(
        upgraded, upgraded.istioctl_to, rehearsal_settings.istio_to
    )
    findings.update(observed=observed, problems=problems)
    assert not problems


def test_pods_are_ready_without_restarts_since_the_upgrade(upgraded, findings):
    problems = validate.pod_health_findings(upgraded, upgraded.state.get("restarts_before", {}))
    findings["problems"] = problems
    assert not problems


def test_services_have_the_planned_types(upgraded, findings):
    problems = validate.service_findings(upgraded)
    findings["problems"] = problems
    assert not problems


def test_installation_is_verified(upgraded, findings):
    how, problems = validate.installation_findings(upgraded, upgraded.istioctl_to)
    findings.update(checked_with=how, problems=problems)
    assert not problems


def test_analyze_reports_no_new_errors(upgraded, findings):
    errors = validate.analyze_findings(upgraded.istioctl_to)
    new = mesh.new_analyze_errors(upgraded, errors)
    findings.update(errors=errors, new=new, before=upgraded.state.get("analyze_before", []))
    assert not new


def test_traffic_flows_through_the_ingress_from_upgraded_proxies(upgraded, rehearsal_settings, findings):
    result, problems = validate.traffic_findings(upgraded, rehearsal_settings.istio_to)
    findings.update(result)
    assert not problems, problems


def test_telemetry_counts_the_requests_sent(upgraded, findings):
    if upgraded.settings.apps:
        pytest.skip(
            "the telemetry check counts the sample echo app's requests; --apps replaced the sample apps"
        )
    from rehearsal.probe import targets as probe

    with probe.paused(upgraded, "the telemetry check counts its own requests"):
        data, problems = validate.telemetry_findings(upgraded)
    findings.update(data)
    assert not problems, problems


def test_availability_meets_the_slo(upgraded, rehearsal_settings, findings):
    """The prober's requests from before the apply to after the last restart: success ratio and longest
    outage against --slo-success and --slo-max-outage."""
    from rehearsal.probe import targets as probe

    data = probe.current(upgraded) or {"error": "no prober ran"}
    findings.update({k: v for k, v in data.items() if k not in ("series", "phases")})
    findings["phases"] = [{k: v for k, v in p.items()} for p in data.get("phases", [])]
    assert "error" not in data, data.get("error")
    assert data["slo"]["met"], "; ".join(data["slo"]["breaches"])
