"""The known-pitfall catalog: the Istio upgrade problems others already hit (istiofacts layer, data only).

One :class:`Pitfall` per problem of ``upgrade-pitfalls.md`` (collected 2026-12-02, ranked by how often it is
reported), with its sources, the patch ranges it affects, the exact symptom, the documented fix, and whether
the simulated cluster reproduces it (with the reason when it does not). The harness's named checks
(``rehearsal/pitfalls``) and the scenario corpus (``scenarios/``) are keyed by :attr:`Pitfall.id`. Facts the
checks compute with (version windows, skew breaks, default flips) are in :mod:`istiofacts.pitfall_facts`,
each read from istio/istio at its tag.
"""

from __future__ import annotations

from dataclasses import dataclass

GH = "https://github.com/istio/istio/issues/"
IO = "https://istio.io/latest/"


@dataclass(frozen=True)
class Pitfall:
    number: int  # rank in upgrade-pitfalls.md
    id: str
    title: str
    sources: tuple[str, ...]  # URLs; the first is the one a finding links
    versions: str  # affected versions, as patch ranges
    symptom: str
    fix: str  # the documented fix or workaround
    simulable: bool  # the simulated cluster reproduces the conditions the check reads
    reason: str = ""  # why not (or what only a real cluster shows)
    detection: str = "pre"  # "pre" (before the apply), "during" (rehearsal + rollback), "real" (none here)

    @property
    def issue(self) -> str:
        return self.sources[0]


def _gh(*numbers: int) -> tuple[str, ...]:
    return tuple(f"{GH}{n}" for n in numbers)


PITFALLS: tuple[Pitfall, ...] = (
    Pitfall(
        1,
        "stale-sidecars",
        "data plane left on the old proxy after the control-plane upgrade",
        _gh(41354, 16432, 56257, 43353),
        "all; analyzer IST0158 from 1.17",
        "istioctl version: data plane versions mixed; IST0158 'The Istio proxy images of the pods running "
        "in the namespace do not match the image defined in the injection configuration'",
        "redeploy the pods (kubectl rollout restart; delete bare Pods and OnDelete StatefulSet pods; "
        "remove a pinned sidecar.istio.io/proxyImage)",
        True,
        detection="pre",
    ),
    Pitfall(
        2,
        "webhook-gap",
        "admission webhooks unreachable while istiod restarts or after a revision is removed",
        _gh(37512, 38930, 44157, 61049, 40134, 35590),
        "all; the readiness race is fixed in 1.29.7, 1.30.4 and 1.31.0",
        'failed calling webhook "validation.istio.io": ... no endpoints available for service '
        '"istiod" / service "istiod-1-11-2" not found',
        "run istiod with replicaCount >= 2 (or autoscaleMin >= 2); point the default tag and validator at "
        "a revision that exists (istioctl tag set default --revision REV --overwrite) or delete the "
        "leftover webhook configuration",
        True,
    ),
    Pitfall(
        3,
        "retired-registry",
        "images pulled from a retired registry (December 2026)",
        (f"{IO}blog/2026/retirement-of-gcr.io-follow-up/", f"{IO}blog/2026/retirement-of-gcp/", f"{GH}51930"),
        "1.30.x installs by default; any version with hub gcr.io/istio-release or registry.istio.io/release",
        'ImagePullBackOff: Back-off pulling image "registry.istio.io/release/proxyv2:1.30.x"; a rollback '
        "to 1.30 fails the same way",
        "set hub: docker.io/istio (or a mirror of your own) for every version you install or roll back to",
        True,
        "",
        detection="pre",
    ),
    Pitfall(
        4,
        "injector-overlap",
        "IST0139: the default injector and the default revision tag overlap",
        _gh(37908, 34562, 36114, 39573, 43932),
        "all with revision tags (1.10+)",
        "Error [IST0139] (MutatingWebhookConfiguration istio-sidecar-injector) Webhook overlaps with "
        "others: [istio-revision-tag-default/namespace.sidecar-injector.istio.io]. This may cause "
        "injection to occur twice; istioctl install: creating default tag would conflict",
        "deactivate or delete the overlapping webhook (istioctl tag set default --revision REV "
        "--overwrite deactivates istio-sidecar-injector), then install again",
        True,
    ),
    Pitfall(
        5,
        "tag-drift",
        "revision-tag webhooks deleted, never created, or left behind",
        _gh(47423, 55980, 60537, 48643),
        "#47423 1.19+; #55980 1.24.0 to 1.26.x (PreviousInstallExists); #60537 up to 1.30",
        "no error: namespaces labelled for a tag stop getting sidecars (IST0103 The pod X is missing the "
        "Istio proxy); istioctl tag list no longer shows the tag",
        "recreate the tag (istioctl tag set TAG --revision REV) and restart the namespace's workloads; "
        "delete a validator left by a removed tag",
        True,
    ),
    Pitfall(
        6,
        "unknown-values",
        "IstioOperator or values files with fields the target removed",
        _gh(29521, 25820, 29834, 33656, 51963, 40429),
        "every minor that removes fields (catalog.REMOVED_VALUES: 1.21, 1.22, 1.23, 1.24, 1.26)",
        'unknown field "wasmEnabled" in v1alpha1.TelemetryV2PrometheusConfig (1.24+: could not '
        "unmarshal: ... unknown field ...); istioctl exits non-zero before applying anything",
        "remove the field from the plan (see the upgrade notes of the minor that removed it)",
        True,
    ),
    Pitfall(
        7,
        "envoyfilter-break",
        "EnvoyFilters that break or silently stop applying across versions",
        _gh(52673, 38214, 51028, 49764, 43602),
        "all; worst across 2+ minors",
        "silent: a filter matching proxyVersion ^1\\.30.* no longer applies to 1.31 proxies; loud: "
        "lds updates rejected",
        "rewrite the EnvoyFilter for the target (proxyVersion regex, filter names) before restarting "
        "workloads; prefer first-class APIs (Telemetry, WasmPlugin)",
        True,
        "only the static part (match.proxy.proxyVersion, known removed filter names) is checked; the "
        "effect on a real Envoy needs a real cluster",
    ),
    Pitfall(
        8,
        "helm-ownership",
        "Helm ownership and field-manager conflicts",
        _gh(43204, 39646, 59630, 59367),
        "Helm-managed installs; SSA conflicts with Helm 4 up to 1.29",
        "Error: rendered manifests contain a resource that already exists ... invalid ownership metadata",
        "label and annotate the objects for Helm (1.24 upgrade notes) or keep one tool",
        False,
        "the harness rehearses istioctl-managed meshes and refuses a Helm-managed one (it names the owner)",
        detection="real",
    ),
    Pitfall(
        9,
        "gateway-blip",
        "gateway traffic blips during gateway or tag switches",
        _gh(46052, 59959, 57135, 59489),
        "all; Gateway API gateways from about 1.24",
        "seconds of connection reset, 503, 502/404 at the load balancer",
        "terminationDrainDuration / preStop on gateways; switch tags with a canary gateway",
        False,
        "blip lengths and cloud load-balancer lag need a real data plane and load balancer",
        detection="real",
    ),
    Pitfall(
        10,
        "cni-node-break",
        "istio-cni upgrade breaks pod networking on a node",
        _gh(57438, 58111, 54846, 60668, 58249),
        "sidecar+CNI and ambient, mostly 1.24 to 1.30",
        'Failed to create pod sandbox: ... plugin type="istio-cni" ... Unauthorized',
        "upgrade the CNI DaemonSet node by node with drain; 1.29.7/1.30.4 for the reboot deadlock",
        False,
        "needs the node CNI chain, kubeconfig tokens and nftables of real kubelets",
        detection="real",
    ),
    Pitfall(
        11,
        "gateway-api-crd-window",
        "Gateway API CRD bundle versions outside the revision's window",
        _gh(59949, 59387, 60357),
        "1.29.2+ ignore TLSRoute > 1.4.0 (> 1.4.1 from 1.29.3); 1.30+ ignore "
        "TLSRoute < 1.5.0; 1.31 ignores TCPRoute < 1.6.0",
        "istiod: CRD tlsroutes.gateway.networking.k8s.io version 1.4.1 is below minimum version 1.5.0, "
        "ignoring; Gateway attachedRoutes: 0",
        "install the Gateway API CRDs the target supports (1.30 upgrade note: v1.5) together with the "
        "upgrade; no TLSRoute version satisfies both 1.29.2+ and 1.30",
        True,
    ),
    Pitfall(
        12,
        "xds-skew-nack",
        "the new istiod sends config old proxies reject; the data plane ahead on rollback",
        _gh(60486, 60503, 54795, 51459),
        "istiod 1.29.2 to 1.29.4 and 1.30.0 to 1.30.1 with proxies before 1.29.2 (fixed 1.29.5, 1.30.2)",
        "Envoy proxy is NOT ready: config received from XDS server, but was rejected",
        "upgrade to a fixed patch (1.29.5+, 1.30.2+); never leave the data plane ahead of the control "
        "plane: restart workloads onto the control plane's sidecar before rolling istiod back",
        True,
    ),
    Pitfall(
        13,
        "istiod-rollout-503",
        "503 NR while proxies reconnect to the new istiod",
        _gh(29599, 28120),
        "all; reported 1.6 to 1.8",
        "access log 503 NR route_not_found during warm-up",
        "retry policies; roll istiod with more replicas",
        False,
        "needs an Envoy warm-up model after reconnects that the simulated data plane does not have",
        detection="real",
    ),
    Pitfall(
        14,
        "single-replica-pdb",
        "a one-replica PodDisruptionBudget blocks node drains",
        _gh(12602, 53909),
        "up to 1.27 always renders minAvailable 1; 1.28+ only with more replicas",
        "Cannot evict pod as it would violate the pod's disruption budget; ALLOWED DISRUPTIONS 0",
        "run istiod with 2+ replicas, or set values.global.defaultPodDisruptionBudget.enabled=false; a "
        "rollback to 1.27 or older brings the PDB back",
        True,
    ),
    Pitfall(
        15,
        "native-sidecar-flip",
        "native sidecars on by default and other webhooks mangling the pod",
        (f"{IO}news/releases/1.27.x/announcing-1.27/upgrade-notes/", f"{GH}49221", f"{GH}57587"),
        "1.27+ with kubelet 1.33+ (ENABLE_NATIVE_SIDECARS auto)",
        "spec.initContainers[1].readinessProbe: Forbidden: may not be set for init containers without "
        "restartPolicy=Always",
        "update the other webhooks/operators, or install with "
        "compatibilityVersion=1.26 (ENABLE_NATIVE_SIDECARS=false)",
        True,
    ),
    Pitfall(
        16,
        "default-flip",
        "behaviour defaults a minor flips (compatibilityVersion)",
        (f"{IO}news/releases/1.31.x/announcing-1.31/upgrade-notes/", f"{GH}50243"),
        "every minor",
        "TLS origination CERTIFICATE_VERIFY_FAILED (1.20); another same-host service picked (1.30); 503 UH "
        "with all endpoints unready (1.31)",
        "read the upgrade notes; pin the old default with --set compatibilityVersion=<source minor> or the "
        "named setting",
        True,
        "advisory: the effects need a real Envoy; the check lists what flips",
    ),
    Pitfall(
        17,
        "k8s-out-of-range",
        "Kubernetes outside the target's supported range",
        (f"{GH}26141", f"{GH}24134"),
        "every minor (MinK8SVersion bumps inside patches: 1.25.1, 1.28.2)",
        'Error [IST0142] The Kubernetes Version "v1.29.x" is lower than the minimum version: 1.30',
        "upgrade Kubernetes first (or pick an Istio release that supports it)",
        True,
    ),
    Pitfall(
        18,
        "istioctl-mismatch",
        "wrong or removed istioctl commands and version skew",
        (f"{GH}51963", "https://github.com/istio/istio.io/issues/15964"),
        "1.24+ (no verify-install)",
        'Error: unknown command "verify-install" for "istioctl"',
        "use the target's istioctl to upgrade and the source's to roll back",
        False,
        "the harness picks the istioctl of each phase itself (checked when resolving istioctl)",
        detection="real",
    ),
    Pitfall(
        19,
        "install-prunes",
        "istioctl install prunes what this run's IOP does not render",
        (f"{GH}57776", f"{GH}36982", f"{GH}21232"),
        "all istioctl versions (prune by owner labels)",
        "- Pruning removed resources / Removed Deployment:istio-system:istio-egressgateway.",
        "put every component (gateways of other IOPs too) in the plan, or label them as not pruned",
        True,
    ),
    Pitfall(
        20,
        "ambient-order",
        "ambient upgrade order and node disruption",
        _gh(43642, 51126, 60328),
        "ambient 1.22+",
        "DNS failures; connections reset during the ztunnel roll",
        "upgrade CNI, restart workloads, then ztunnel; drain nodes",
        False,
        "the simulator has no ambient data plane (ztunnel, DNS capture)",
        detection="real",
    ),
    Pitfall(
        21,
        "debug-auth",
        "debug-endpoint authentication breaks tooling",
        ("https://github.com/istio/istio/pull/59054", "https://github.com/kiali/kiali/issues/9296"),
        "ENABLE_DEBUG_ENDPOINT_AUTH (default true) from 1.27.6, 1.28.4 and 1.29.0 "
        "(pilot/pkg/features/pilot.go at the tags); 1.30 adds DEBUG_ENDPOINT_AUTH_ALLOWED_NAMESPACES",
        "proxy <id> is not authorized to receive debug info",
        "set values.pilot.env.DEBUG_ENDPOINT_AUTH_ALLOWED_NAMESPACES to the tool's namespace (1.30+), or "
        "ENABLE_DEBUG_ENDPOINT_AUTH=false",
        True,
        "advisory: the simulated istiod has no debug-endpoint authentication; the check reads the condition "
        "(debug tooling outside the Istio namespace, the upgrade crossing the patch that turns it on)",
    ),
    Pitfall(
        22,
        "stale-cabundle",
        "webhook caBundle or serving cert mismatch",
        _gh(60774, 37070, 16363),
        "all; reported up to 1.30",
        "x509: certificate signed by unknown authority (fails open with failurePolicy Ignore)",
        "restart istiod after a serving-cert change; delete leftover webhook configurations",
        False,
        "the simulated API server does not verify webhook TLS nor keep caBundles; the check still runs on "
        "real clusters (caBundle against istio-ca-root-cert)",
        detection="pre",
    ),
)

BY_ID: dict[str, Pitfall] = {p.id: p for p in PITFALLS}


def get(pitfall_id: str) -> Pitfall:
    try:
        return BY_ID[pitfall_id]
    except KeyError:
        raise KeyError(f"unknown pitfall {pitfall_id!r}; known: {', '.join(BY_ID)}") from None
