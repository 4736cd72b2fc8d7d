"""Admission webhooks, called the way kube-apiserver calls them.

For every write, the matching MutatingWebhookConfigurations and then ValidatingWebhookConfigurations are
consulted: rules (groups, versions, resources, operations, scope), ``namespaceSelector`` and
``objectSelector``. A matching webhook is sent an ``admission.k8s.io/v1`` AdmissionReview over the pod
network to a ready endpoint of its Service; JSON patches in the answer are applied, a denial becomes the
API error, and a webhook that cannot be reached fails the request (``failurePolicy: Fail``) with the exact
``failed calling webhook ... no endpoints available for service`` message, or is skipped (``Ignore``).
"""

from __future__ import annotations

import base64
import json
import uuid
from typing import TYPE_CHECKING, Any

from kubesim.apiserver.api import RequestOptions
from kubesim.machinery import errors
from kubesim.machinery.errors import ApiError
from kubesim.machinery.patch import json_patch
from kubesim.machinery.resources import ResourceType
from kubesim.machinery.selectors import match_label_selector_object
from kubesim.network import ConnectionRefused, HttpRequest

if TYPE_CHECKING:
    from kubesim.cluster import SimCluster

Obj = dict[str, Any]
MUTATING = ("admissionregistration.k8s.io", "mutatingwebhookconfigurations")
VALIDATING = ("admissionregistration.k8s.io", "validatingwebhookconfigurations")


def _rule_matches(rule: Obj, operation: str, rt: ResourceType, version: str) -> bool:
    def has(values: list[str] | None, value: str) -> bool:
        return bool(values) and ("*" in (values or []) or value in (values or []))

    if not has(rule.get("operations"), operation):
        return False
    if not has(rule.get("apiGroups"), rt.group) or not has(rule.get("apiVersions"), version):
        return False
    resources = rule.get("resources") or []
    if rt.plural not in resources and "*" not in resources and "*/*" not in resources:
        return False
    scope = rule.get("scope", "*")
    if scope == "Namespaced" and not rt.namespaced or scope == "Cluster" and rt.namespaced:
        return False
    return True


class WebhookDispatcher:
    def __init__(self, cluster: SimCluster) -> None:
        self.cluster = cluster

    def _hooks(self, gr: tuple[str, str], operation: str, rt: ResourceType, obj: Obj) -> list[Obj]:
        store = self.cluster.store
        version = obj.get("apiVersion", "").rpartition("/")[2] or rt.version
        namespace = obj["metadata"].get("namespace", "")
        ns_labels: dict[str, str] = {}
        if namespace:
            ns = store.get(("", "namespaces"), "", namespace)
            ns_labels = (ns or {}).get("metadata", {}).get("labels") or {
                "kubernetes.io/metadata.name": namespace
            }
        labels = obj["metadata"].get("labels") or {}
        selected = []
        for config in sorted(store.items(gr), key=lambda c: c["metadata"]["name"]):
            for hook in config.get("webhooks") or []:
                if not any(_rule_matches(r, operation, rt, version) for r in hook.get("rules") or []):
                    continue
                if rt.namespaced or rt.plural == "namespaces":
                    target = labels if rt.plural == "namespaces" else ns_labels
                    if not match_label_selector_object(hook.get("namespaceSelector") or {}, target):
                        continue
                if not match_label_selector_object(hook.get("objectSelector") or {}, labels):
                    continue
                selected.append(hook)
        return selected

    def _call(self, hook: Obj, review: Obj) -> Obj | None:
        """Send the review; None when the webhook could not be called and failurePolicy is Ignore."""
        config = hook.get("clientConfig") or {}
        service = config.get("service")
        timeout = hook.get("timeoutSeconds", 10)
        try:
            if service is None:
                url = config.get("url", "")
                raise ConnectionRefused(
                    f'Post "{url}": dial tcp: lookup {url.split("/")[2] if "//" in url else url}: '
                    "no such host"
                )
            name, namespace = service["name"], service["namespace"]
            path, port = service.get("path", "/"), service.get("port", 443)
            where = f'Post "https://{name}.{namespace}.svc:{port}{path}?timeout={timeout}s"'
            svc = self.cluster.store.get(("", "services"), namespace, name)
            if svc is None:
                raise ConnectionRefused(f'{where}: service "{name}" not found')
            ip, target = self.cluster.endpoints_for(svc, str(port))
            if ip is None:
                raise ConnectionRefused(f'{where}: no endpoints available for service "{name}"')
            try:
                response = self.cluster.network.request(
                    ip,
                    target,
                    HttpRequest(
                        "POST",
                        f"{path}?timeout={timeout}s",
                        {"Content-Type": "application/json"},
                        json.dumps(review).encode(),
                    ),
                )
            except ConnectionRefused as exc:
                raise ConnectionRefused(f"{where}: {exc}") from None
            if response.status != 200:
                raise ConnectionRefused(f"{where}: the server responded with status {response.status}")
            return json.loads(response.body)
        except ConnectionRefused as exc:
            if hook.get("failurePolicy", "Fail") == "Ignore":
                return None
            raise errors.internal_error(
                f'failed calling webhook "{hook["name"]}": failed to call webhook: {exc}'
            ) from None

    def _review(
        self, operation: str, rt: ResourceType, obj: Obj, old: Obj | None, opts: RequestOptions
    ) -> Obj:
        version = obj.get("apiVersion", "").rpartition("/")[2] or rt.version
        gvk = {"group": rt.group, "version": version, "kind": rt.kind}
        gvr = {"group": rt.group, "version": version, "resource": rt.plural}
        return {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": str(uuid.uuid4()),
                "kind": gvk,
                "resource": gvr,
                "requestKind": gvk,
                "requestResource": gvr,
                "name": obj["metadata"].get("name", ""),
                "namespace": obj["metadata"].get("namespace", ""),
                "operation": operation,
                "userInfo": {"username": opts.user, "groups": ["system:masters", "system:authenticated"]},
                "object": obj if operation != "DELETE" else None,
                "oldObject": old,
                "dryRun": opts.dry_run,
                "options": {"kind": f"{operation.capitalize()}Options", "apiVersion": "meta.k8s.io/v1"},
            },
        }

    def mutate(
        self, operation: str, rt: ResourceType, obj: Obj, old: Obj | None, opts: RequestOptions
    ) -> Obj:
        if rt.gr in (MUTATING, VALIDATING) or rt.plural == "events":
            return obj
        for hook in self._hooks(MUTATING, operation, rt, obj):
            answer = self._call(hook, self._review(operation, rt, obj, old, opts))
            if answer is None:
                continue
            response = answer.get("response") or {}
            self._check_allowed(hook, response)
            if response.get("patch"):
                patch = json.loads(base64.b64decode(response["patch"]))
                obj = json_patch(obj, patch)
        return obj

    def validate(
        self, operation: str, rt: ResourceType, obj: Obj, old: Obj | None, opts: RequestOptions
    ) -> Obj:
        if rt.gr in (MUTATING, VALIDATING) or rt.plural == "events":
            return obj
        for hook in self._hooks(VALIDATING, operation, rt, obj):
            answer = self._call(hook, self._review(operation, rt, obj, old, opts))
            if answer is not None:
                self._check_allowed(hook, answer.get("response") or {})
        return obj

    @staticmethod
    def _check_allowed(hook: Obj, response: Obj) -> None:
        if response.get("allowed", False):
            return
        status = response.get("status") or {}
        message = f'admission webhook "{hook["name"]}" denied the request'
        if status.get("message"):
            message += f": {status['message']}"
        raise ApiError(int(status.get("code") or 400), status.get("reason") or "BadRequest", message)
