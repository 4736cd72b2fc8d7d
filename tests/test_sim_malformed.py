"""No Python error ever reaches a client of the simulated API server: malformed and unusual requests to every
verb (bad JSON, bodies of the wrong type, wrong content types, unknown paths and groups, odd limits, label
and field selectors, resource versions, patch bodies, subresources, methods and Accept headers) are answered
with a well-formed ``Status`` whose code and reason agree, never a traceback, an exception's name or a
dropped connection; and a failure the server did not foresee is a generic 500 ``InternalError`` whose
details stay in the server's log."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from kubesim import SimCluster
from kubesim.apiserver.api import RequestOptions

#: The reason kube-apiserver gives with each code (apimachinery pkg/api/errors, pkg/apis/meta/v1 types.go).
REASONS = {
    400: {"BadRequest"},
    401: {"Unauthorized"},
    403: {"Forbidden"},
    404: {"NotFound"},
    405: {"MethodNotAllowed"},
    406: {"NotAcceptable"},
    409: {"AlreadyExists", "Conflict"},
    410: {"Expired", "Gone"},
    413: {"RequestEntityTooLarge"},
    415: {"UnsupportedMediaType"},
    422: {"Invalid"},
    429: {"TooManyRequests"},
    500: {"InternalError"},
    504: {"Timeout"},
}
PYTHON_LEAK = re.compile(
    r"Traceback|File \"|\b(Key|Type|Value|Attribute|Index|Name|UnboundLocal|Assertion|Runtime|Lookup|"
    r"ZeroDivision|Overflow|Recursion|UnicodeDecode|UnicodeEncode|JSONDecode)Error\b|NoneType|object has no "
    r"attribute|not subscriptable|unhashable type"
)
NS = "/api/v1/namespaces/default"
CM = f"{NS}/configmaps"
DEPLOY = "/apis/apps/v1/namespaces/default/deployments"
JSON = "application/json"

#: (method, path, body, content type, Accept): each must fail with a Status, not a Python error.
REQUESTS: list[tuple[str, str, bytes | str | None, str | None, str | None]] = [
    # bodies that are not JSON, or JSON of the wrong type
    ("POST", CM, "{not json", JSON, None),
    ("POST", CM, "[1, 2]", JSON, None),
    ("POST", CM, '"a string"', JSON, None),
    ("POST", CM, "42", JSON, None),
    ("POST", CM, "null", JSON, None),
    ("POST", CM, '{"metadata": "x"}', JSON, None),
    ("POST", CM, '{"metadata": {"name": 7}}', JSON, None),
    ("POST", CM, '{"metadata": {"name": "x", "labels": [1]}}', JSON, None),
    ("POST", CM, '{"metadata": {"name": "x"}, "data": "x"}', JSON, None),
    ("POST", CM, '{"metadata": {"name": "x"}, "data": {"k": 1}}', JSON, None),
    ("POST", DEPLOY, '{"metadata": {"name": "d"}, "spec": "x"}', JSON, None),
    ("POST", DEPLOY, '{"metadata": {"name": "d"}, "spec": {"replicas": "many"}}', JSON, None),
    ("POST", DEPLOY, '{"metadata": {"name": "d"}, "spec": {"template": []}}', JSON, None),
    ("POST", CM, "- just\n- a list\n", "application/yaml", None),
    ("POST", CM, "a: [unclosed", "application/yaml", None),
    ("POST", CM, b"\xff\xfe\x00garbage", JSON, None),
    ("POST", f"{NS}/pods", '{"metadata": {"name": "p"}, "spec": {"containers": "x"}}', JSON, None),
    ("POST", f"{NS}/services", '{"metadata": {"name": "s"}, "spec": {"ports": [{"port": "x"}]}}', JSON, None),
    ("POST", "/api/v1/namespaces", '{"metadata": {"name": "Bad_Name"}}', JSON, None),
    ("PUT", f"{CM}/victim", "[]", JSON, None),
    ("PUT", f"{CM}/victim", '{"metadata": {"name": "victim", "resourceVersion": "x"}}', JSON, None),
    ("PUT", f"{CM}/absent", '{"metadata": {"name": "other"}}', JSON, None),
    # wrong content types
    ("POST", CM, '{"metadata": {"name": "x"}}', "text/plain", None),
    ("PUT", f"{CM}/victim", "{}", "application/xml", None),
    ("PATCH", f"{CM}/victim", "{}", "text/plain", None),
    ("PATCH", f"{CM}/victim", "{}", JSON, None),
    ("PATCH", f"{CM}/victim", "{}", "application/apply-patch+cbor", None),
    ("POST", CM, b"not protobuf", "application/vnd.kubernetes.protobuf", None),
    ("POST", CM, b"k8s\x00\x0a\x03", "application/vnd.kubernetes.protobuf", None),
    ("DELETE", f"{CM}/absent", b"k8s\x00\xff", "application/vnd.kubernetes.protobuf", None),
    ("PATCH", f"{CM}/victim", b"k8s\x00", "application/vnd.kubernetes.protobuf", None),
    # unknown paths, groups, versions, resources, subresources
    ("GET", "/apis/nope.example.com/v1/things", None, None, None),
    ("GET", "/apis/nope.example.com", None, None, None),
    ("GET", "/apis/apps/v9", None, None, None),
    ("GET", "/apis/apps/v1/nothings", None, None, None),
    ("GET", "/api/v9/pods", None, None, None),
    ("GET", "/api/v1/nothings", None, None, None),
    ("GET", "/nowhere", None, None, None),
    ("GET", "/api/v1/namespaces/default/pods/p/frobnicate", None, None, None),
    ("GET", "/api/v1/namespaces/default/configmaps/x/status", None, None, None),
    ("POST", "/api/v1/namespaces/default/pods/absent/eviction", "{}", JSON, None),
    ("POST", "/api/v1/namespaces/default/pods/absent/eviction", "[]", JSON, None),
    ("POST", "/api/v1/namespaces/default/pods/absent/binding", "[]", JSON, None),
    ("POST", "/api/v1/namespaces/default/serviceaccounts/default/token", "[]", JSON, None),
    ("POST", "/api/v1/namespaces/default/serviceaccounts/absent/token", "{}", JSON, None),
    (
        "PUT",
        "/apis/apps/v1/namespaces/default/deployments/absent/scale",
        '{"spec": {"replicas": 2}}',
        JSON,
        None,
    ),
    ("PUT", "/apis/apps/v1/namespaces/default/deployments/absent/scale", "[]", JSON, None),
    (
        "PATCH",
        "/apis/apps/v1/namespaces/default/deployments/absent/scale",
        "[]",
        "application/merge-patch+json",
        None,
    ),
    ("GET", "/api/v1/namespaces/default/pods/absent/log", None, None, None),
    ("GET", "/api/v1/namespaces/default/pods/absent/log?tailLines=abc", None, None, None),
    ("GET", "/api/v1/namespaces/kube-system/pods/absent/exec?command=ls", None, None, None),
    ("GET", "/api/v1/namespaces/default/services/absent/proxy/x", None, None, None),
    ("GET", "/api/v1/namespaces/%ff/configmaps", None, None, None),
    ("GET", "/api/v1/namespaces/default/configmaps/%00", None, None, None),
    ("GET", "/openapi/v3/apis/nope/v1", None, None, None),
    ("GET", "/openapi/nope", None, None, None),
    # limits, continue tokens, selectors, resource versions, timeouts, booleans
    ("GET", f"{CM}?limit=abc", None, None, None),
    ("GET", f"{CM}?limit=99999999999999999999999", None, None, None),
    ("GET", f"{CM}?limit=1&continue=not-a-token", None, None, None),
    ("GET", f"{CM}?continue=%7B%7D", None, None, None),
    ("GET", f"{CM}?labelSelector=a+in+(b", None, None, None),
    ("GET", f"{CM}?labelSelector=%3D%3D%3D", None, None, None),
    ("GET", f"{CM}?labelSelector=!", None, None, None),
    ("GET", f"{CM}?labelSelector=a%3D%3Db%3D%3Dc", None, None, None),
    ("GET", f"{CM}?labelSelector=-bad-key-%3Dv", None, None, None),
    ("GET", f"{CM}?fieldSelector=spec.nothing%3Dx", None, None, None),
    ("GET", f"{CM}?fieldSelector=%3D%3D", None, None, None),
    ("GET", f"{CM}?resourceVersion=abc", None, None, None),
    ("GET", f"{CM}?resourceVersion=-5&resourceVersionMatch=Exact", None, None, None),
    ("GET", f"{CM}?resourceVersion=1&resourceVersionMatch=Sometimes", None, None, None),
    ("GET", f"{CM}/victim?resourceVersion=abc", None, None, None),
    ("GET", f"{CM}?watch=true&resourceVersion=abc&timeoutSeconds=1", None, None, None),
    ("GET", f"{CM}?watch=true&resourceVersion=1&timeoutSeconds=1", None, None, None),
    ("GET", f"{CM}?watch=true&timeoutSeconds=abc", None, None, None),
    ("GET", f"{CM}?watch=true&timeoutSeconds=1&labelSelector=a+in+(b", None, None, None),
    ("GET", f"{CM}?watch=true&timeoutSeconds=1&sendInitialEvents=true", None, None, None),
    ("DELETE", f"{CM}/absent?gracePeriodSeconds=abc", None, None, None),
    ("DELETE", f"{CM}?labelSelector=a+in+(b", None, None, None),
    ("DELETE", f"{CM}/victim?dryRun=Maybe", None, None, None),
    ("POST", f"{CM}?fieldValidation=Sometimes", "{}", JSON, None),
    ("PATCH", f"{CM}/victim?force=true", "{}", "application/merge-patch+json", None),
    # delete bodies of the wrong type
    ("DELETE", f"{CM}/absent", "{bad", JSON, None),
    ("DELETE", f"{CM}/victim", "[1]", JSON, None),
    ("DELETE", f"{CM}/victim", '"x"', JSON, None),
    ("DELETE", f"{CM}/victim", '{"gracePeriodSeconds": "soon"}', JSON, None),
    ("DELETE", f"{CM}/victim", '{"preconditions": "x"}', JSON, None),
    ("DELETE", f"{CM}/victim", '{"preconditions": {"uid": "not-its-uid"}}', JSON, None),
    ("DELETE", f"{CM}/victim", '{"preconditions": {"resourceVersion": "1"}}', JSON, None),
    ("DELETE", f"{CM}/victim", '{"propagationPolicy": "Sideways"}', JSON, None),
    ("DELETE", f"{CM}/victim", '{"dryRun": "All"}', JSON, None),
    ("DELETE", f"{CM}/victim", '{"propagationPolicy": 5}', JSON, None),
    # patch bodies of the wrong type, for every patch content type
    ("PATCH", f"{CM}/victim", "[1]", "application/merge-patch+json", None),
    ("PATCH", f"{CM}/victim", "42", "application/merge-patch+json", None),
    ("PATCH", f"{CM}/victim", "{bad", "application/merge-patch+json", None),
    ("PATCH", f"{CM}/victim", '{"metadata": "x"}', "application/merge-patch+json", None),
    ("PATCH", f"{CM}/victim", '{"data": {"k": 1}}', "application/merge-patch+json", None),
    ("PATCH", f"{CM}/victim", "[1]", "application/strategic-merge-patch+json", None),
    ("PATCH", f"{CM}/victim", '"x"', "application/strategic-merge-patch+json", None),
    ("PATCH", f"{CM}/victim", '{"$patch": "explode"}', "application/strategic-merge-patch+json", None),
    (
        "PATCH",
        f"{CM}/victim",
        '{"metadata": {"$retainKeys": 5}}',
        "application/strategic-merge-patch+json",
        None,
    ),
    ("PATCH", f"{CM}/victim", "{}", "application/json-patch+json", None),
    ("PATCH", f"{CM}/victim", "[1]", "application/json-patch+json", None),
    ("PATCH", f"{CM}/victim", '[{"op": "explode", "path": "/data"}]', "application/json-patch+json", None),
    ("PATCH", f"{CM}/victim", '[{"op": "replace"}]', "application/json-patch+json", None),
    (
        "PATCH",
        f"{CM}/victim",
        '[{"op": "remove", "path": "/nothing/here"}]',
        "application/json-patch+json",
        None,
    ),
    (
        "PATCH",
        f"{CM}/victim",
        '[{"op": "test", "path": "/data", "value": 1}]',
        "application/json-patch+json",
        None,
    ),
    (
        "PATCH",
        f"{CM}/victim",
        '[{"op": "add", "path": "data", "value": 1}]',
        "application/json-patch+json",
        None,
    ),
    (
        "PATCH",
        f"{CM}/victim",
        '[{"op": "add", "path": "/metadata/name", "value": 1}]',
        "application/json-patch+json",
        None,
    ),
    (
        "PATCH",
        f"{CM}/victim",
        '[{"op": "move", "from": "/nope", "path": "/data/x"}]',
        "application/json-patch+json",
        None,
    ),
    ("PATCH", f"{CM}/victim", '[{"op": "copy", "path": "/data/x"}]', "application/json-patch+json", None),
    (
        "PATCH",
        f"{CM}/victim",
        '[{"op": "replace", "path": "/data/~2", "value": "x"}]',
        "application/json-patch+json",
        None,
    ),
    ("PATCH", f"{CM}/victim?fieldManager=t", "- a\n", "application/apply-patch+yaml", None),
    ("PATCH", f"{CM}/victim?fieldManager=t", "a: [unclosed", "application/apply-patch+yaml", None),
    ("PATCH", f"{CM}/victim?fieldManager=t", "kind: ConfigMap\n", "application/apply-patch+yaml", None),
    (
        "PATCH",
        f"{CM}/x?fieldManager=t",
        '{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}}',
        "application/apply-patch+yaml",
        None,
    ),
    ("PATCH", f"{CM}/absent", '{"data": {}}', "application/merge-patch+json", None),
    ("PATCH", f"{CM}/victim", "", "application/merge-patch+json", None),
    # methods a path does not allow
    ("POST", f"{CM}/victim", "{}", JSON, None),
    ("PUT", CM, "{}", JSON, None),
    ("PATCH", CM, "{}", "application/merge-patch+json", None),
    ("DELETE", "/api/v1", None, None, None),
    ("POST", "/version", "{}", JSON, None),
    ("DELETE", "/apis", None, None, None),
    ("PUT", "/api/v1/namespaces/default/pods/absent/log", "{}", JSON, None),
    ("OPTIONS", CM, None, None, None),
    ("TRACE", CM, None, None, None),
    ("FROBNICATE", CM, None, None, None),
    # Accept headers the server cannot answer in
    ("GET", CM, None, None, "application/xml"),
    ("GET", CM, None, None, "text/html"),
    ("GET", f"{CM}/victim", None, None, "application/json;as=Table;g=nope.example.com;v=v9"),
    ("GET", CM, None, None, "application/json;as=Nonsense;v=v1;g=meta.k8s.io"),
    ("GET", "/apis", None, None, "application/json;g=apidiscovery.k8s.io;v=v9;as=APIGroupDiscoveryList"),
]


#: Requests the simulator still accepts though kube-apiserver v1.36.2 refuses them (its answer, measured
#: against the real server of ../shared/k8s, follows each): their exact answers are issue 15's conformance
#: work; until then an answer here must still leak nothing and, if it is an error, be a proper Status.
LENIENT: dict[tuple[str, str, str | None, str | None], str] = {
    ("POST", f"{NS}/serviceaccounts/default/token", "[]", None): "400 BadRequest (not a TokenRequest)",
    ("GET", "/api/v1/namespaces/%ff/configmaps", None, None): "200 (the real server accepts it too)",
    ("GET", f"{CM}?limit=99999999999999999999999", None, None): "400 strconv.ParseInt: value out of range",
    (
        "GET",
        f"{CM}?labelSelector=!",
        None,
        None,
    ): "400 unable to parse requirement: found '', expected: identifier",
    (
        "GET",
        f"{CM}?labelSelector=a%3D%3Db%3D%3Dc",
        None,
        None,
    ): "400 found '==', expected: ',' or 'end of string'",
    (
        "GET",
        f"{CM}?labelSelector=-bad-key-%3Dv",
        None,
        None,
    ): "400 unable to parse requirement: Invalid value",
    ("GET", f"{CM}?resourceVersion=abc", None, None): "400 invalid resource version: strconv.ParseUint",
    (
        "GET",
        f"{CM}?resourceVersion=-5&resourceVersionMatch=Exact",
        None,
        None,
    ): "400 invalid resource version",
    ("GET", f"{CM}?resourceVersion=1&resourceVersionMatch=Sometimes", None, None): "422 Unsupported value",
    ("GET", f"{CM}/victim?resourceVersion=abc", None, None): "500 (no reason) resourceVersion: Invalid value",
    (
        "GET",
        f"{CM}?watch=true&resourceVersion=1&timeoutSeconds=1",
        None,
        None,
    ): "200 (watch from an old version)",
    ("GET", f"{CM}?watch=true&timeoutSeconds=1&sendInitialEvents=true", None, None): "422 needs NotOlderThan",
    (
        "DELETE",
        f"{CM}/victim",
        '{"propagationPolicy": "Sideways"}',
        None,
    ): "422 propagationPolicy: Unsupported",
    ("PATCH", f"{CM}/victim", '{"$patch": "explode"}', None): "500 (no reason) unknown patch type: explode",
    (
        "PATCH",
        f"{CM}/victim",
        '{"metadata": {"$retainKeys": 5}}',
        None,
    ): "400 invalid patch format of retainKeys",
    (
        "PATCH",
        f"{CM}/x?fieldManager=t",
        '{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}}',
        None,
    ): ("400 invalid object type: /v1, Kind=Secret"),
    ("DELETE", "/api/v1", None, None): "405 MethodNotAllowed",
    ("POST", "/version", "{}", None): "405 MethodNotAllowed",
    ("DELETE", "/apis", None, None): "200 (the real server answers the group list too)",
    ("GET", CM, None, "application/xml"): "406 NotAcceptable",
    ("GET", CM, None, "text/html"): "406 NotAcceptable",
    ("GET", f"{CM}/victim", None, "application/json;as=Table;g=nope.example.com;v=v9"): "406 NotAcceptable",
    ("GET", CM, None, "application/json;as=Nonsense;v=v1;g=meta.k8s.io"): "406 NotAcceptable",
    ("GET", "/apis", None, "application/json;g=apidiscovery.k8s.io;v=v9;as=APIGroupDiscoveryList"): "406",
}
#: Requests kube-apiserver v1.36.2 itself answers with a 500 Status (measured); the simulator may too.
REAL_500: set[tuple[str, str, str | None, str | None]] = {
    ("GET", f"{CM}?watch=true&resourceVersion=abc&timeoutSeconds=1", None, None),
    ("GET", f"{CM}/victim?resourceVersion=abc", None, None),
    ("PUT", f"{CM}/victim", '{"metadata": {"name": "victim", "resourceVersion": "x"}}', None),
    ("PATCH", f"{CM}/victim", '{"$patch": "explode"}', None),
}


@pytest.fixture(scope="module")
def cluster() -> Iterator[SimCluster]:
    with SimCluster("malformed", time_scale=0, system_workloads=False) as sim:
        yield sim


def _session(cluster: SimCluster, tmp_path_factory: pytest.TempPathFactory) -> requests.Session:
    ca = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.write_bytes(cluster.ca_pem)
    session = requests.Session()
    session.trust_env = False
    session.verify = str(ca)
    return session


def _send(
    session: requests.Session,
    cluster: SimCluster,
    method: str,
    path: str,
    body: bytes | str | None,
    content_type: str | None,
    accept: str | None,
    token: bool = True,
) -> requests.Response:
    headers = {"Authorization": f"Bearer {cluster.token}"} if token else {}
    if content_type:
        headers["Content-Type"] = content_type
    if accept:
        headers["Accept"] = accept
    data = body.encode() if isinstance(body, str) else body
    return session.request(method, cluster.server_url + path, data=data, headers=headers, timeout=30)


def _victim(cluster: SimCluster) -> dict[str, Any]:
    """The ConfigMap the requests aim at, (re)created as it was."""
    current = cluster.store.get(("", "configmaps"), "default", "victim")
    if current is not None and current.get("data") == {"k": "v"}:
        return current
    rt = cluster.api.type_of("", "configmaps")
    if current is not None:
        cluster.api.delete(rt, "default", "victim", RequestOptions(internal=True))
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "victim"}, "data": {"k": "v"}}
    return cluster.api.create(rt, body, "default", RequestOptions(internal=True))


def _problems(response: requests.Response, lenient: bool = False, real_500: bool = False) -> list[str]:
    """What is wrong with an answer to a request that cannot succeed ([] when it is a proper Status)."""
    text = response.text
    if PYTHON_LEAK.search(text):
        return [f"Python error text in the answer: {text[:300]}"]
    if response.status_code < 400:
        return [] if lenient else [f"{response.status_code}, not an error: {text[:200]}"]
    if response.status_code == 500 and not real_500:
        return [f"500 for a request the server should refuse: {text[:300]}"]
    if response.status_code == 404 and text == "404 page not found\n":
        # kube-apiserver v1.36 answers a path under a group it does not serve with Go's plain NotFound
        # handler, not a Status (recorded: tests/conformance scenarios malformed-unknown-group*).
        return []
    if not response.headers.get("Content-Type", "").startswith(JSON):
        return [
            f"{response.status_code} with Content-Type {response.headers.get('Content-Type')}: {text[:200]}"
        ]
    try:
        status = json.loads(text)
    except ValueError:
        return [f"{response.status_code} with a body that is not JSON: {text[:200]}"]
    problems = []
    expected = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": response.status_code}
    for key, want in expected.items():
        if not isinstance(status, dict) or status.get(key) != want:
            problems.append(
                f"{key} is {status.get(key) if isinstance(status, dict) else status!r}, not {want!r}"
            )
    if isinstance(status, dict):
        reasons = REASONS.get(response.status_code, set()) | (
            {None} if response.status_code == 500 else set()
        )
        if status.get("reason") not in reasons:
            problems.append(f"reason {status.get('reason')!r} does not go with code {response.status_code}")
        if not isinstance(status.get("message"), str) or not status["message"]:
            problems.append("no message")
        if "metadata" not in status:
            problems.append("no metadata")
    return problems


#: Unusual requests a real server accepts: the answer must be JSON (not a Status) and leak nothing.
ACCEPTED: list[tuple[str, str]] = [
    ("GET", f"{CM}?limit=-1"),
    ("GET", f"{CM}?limit=0"),
    ("GET", f"{CM}?limit=1"),
    ("GET", f"{CM}?labelSelector="),
    ("GET", f"{CM}?unknownParameter=1"),
    ("GET", f"{CM}?resourceVersion=0"),
]


def test_every_malformed_request_is_answered_with_a_status(cluster, tmp_path_factory):
    session = _session(cluster, tmp_path_factory)
    wrong = {}
    for method, path, body, content_type, accept in REQUESTS:
        victim = _victim(cluster)
        key = (method, path, body if isinstance(body, str) else None, accept)
        lenient, real_500 = key in LENIENT, key in REAL_500
        try:
            response = _send(session, cluster, method, path, body, content_type, accept)
            problems = _problems(response, lenient, real_500)
        except requests.RequestException as exc:
            problems = [f"no answer: {type(exc).__name__}: {exc}"]
        after = cluster.store.get(("", "configmaps"), "default", "victim")
        changed = (
            after is None or after["metadata"]["resourceVersion"] != victim["metadata"]["resourceVersion"]
        )
        if changed and not lenient:
            problems.append("the ConfigMap the request aimed at changed")
        if problems:
            wrong[f"{method} {path} [{content_type or '-'}; accept {accept or '-'}] body {body!r:.60}"] = (
                problems
            )
    assert not wrong, "answers that are not a proper Status:\n" + "\n".join(
        f"{k}: {v}" for k, v in wrong.items()
    )


def test_unusual_requests_that_succeed_answer_json_without_python_errors(cluster, tmp_path_factory):
    session = _session(cluster, tmp_path_factory)
    for method, path in ACCEPTED:
        response = _send(session, cluster, method, path, None, None, None)
        assert response.status_code == 200, (path, response.text[:300])
        assert not PYTHON_LEAK.search(response.text), (path, response.text[:300])
        assert json.loads(response.text)["kind"] == "ConfigMapList"


def test_without_a_token_every_verb_is_unauthorized(cluster, tmp_path_factory):
    session = _session(cluster, tmp_path_factory)
    for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
        response = _send(session, cluster, method, f"{CM}/x", "{}", JSON, None, token=False)
        assert response.status_code == 401 and not _problems(response), (method, response.text)


def test_an_unforeseen_failure_is_a_generic_internal_error_logged_with_its_traceback(
    cluster, tmp_path_factory, monkeypatch, caplog
):
    session = _session(cluster, tmp_path_factory)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise KeyError("secret-internal-detail")

    monkeypatch.setattr(cluster.api, "list", broken)
    with caplog.at_level(logging.ERROR, logger="kubesim.apiserver"):
        response = _send(session, cluster, "GET", CM, None, None, None)
    assert response.status_code == 500
    status = response.json()
    assert status["kind"] == "Status" and status["reason"] == "InternalError" and status["code"] == 500
    assert "secret-internal-detail" not in response.text and not PYTHON_LEAK.search(response.text)
    logged = [r for r in caplog.records if r.name == "kubesim.apiserver"]
    assert logged and logged[-1].exc_info is not None, "the failure was not logged with its traceback"
    assert "secret-internal-detail" in caplog.text and "GET" in logged[-1].getMessage()
    # The connection and the server survive: the next request is answered.
    monkeypatch.undo()
    assert _send(session, cluster, "GET", CM, None, None, None).status_code == 200


def test_the_lists_of_known_differences_name_requests_that_are_sent():
    sent = {(m, p, b if isinstance(b, str) else None, a) for m, p, b, _, a in REQUESTS}
    assert set(LENIENT) <= sent and REAL_500 <= sent, (set(LENIENT) - sent, REAL_500 - sent)


def _raw(cluster: SimCluster, request: bytes) -> list[tuple[int, dict[str, Any]]]:
    """Send bytes as they are over TLS (no HTTP library to tidy them); every answer's code and Status."""
    import socket
    import ssl
    import urllib.parse

    context = ssl.create_default_context(cadata=cluster.ca_pem.decode())
    address = urllib.parse.urlsplit(cluster.server_url)
    with socket.create_connection((address.hostname, address.port), timeout=30) as plain:
        with context.wrap_socket(plain, server_hostname=address.hostname) as tls:
            tls.sendall(request)
            answer = b""
            while chunk := tls.recv(65536):
                answer += chunk
    assert not PYTHON_LEAK.search(answer.decode(errors="replace")), answer
    answers = []
    while answer:
        head, _, rest = answer.partition(b"\r\n\r\n")
        length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
        answers.append((int(head.split()[1]), json.loads(rest[:length])))
        answer = rest[length:]
    return answers


def test_requests_the_http_layer_refuses_are_answered_with_a_status(cluster):
    auth = f"Authorization: Bearer {cluster.token}\r\n".encode()
    [(code, status)] = _raw(
        cluster, b"GET /api/v1/namespaces HTTP/1.1\r\nHost: x\r\n" + auth + b"Content-Length: abc\r\n\r\n"
    )
    assert code == 400 and status["kind"] == "Status" and status["reason"] == "BadRequest"
    [(code, status)] = _raw(cluster, b"NOT A REQUEST LINE AT ALL\r\n\r\n")
    assert code == 400 and status["kind"] == "Status" and status["code"] == 400
    [(code, status)] = _raw(
        cluster, b"BREW /api/v1/namespaces HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + auth + b"\r\n"
    )
    assert code == 405 and status["reason"] == "MethodNotAllowed"
    # A GET with a body: the body is read, not taken for the next request on the connection.
    answers = _raw(
        cluster,
        b"GET /api/v1/namespaces/default/configmaps/absent HTTP/1.1\r\nHost: x\r\n"
        + auth
        + b"Content-Length: 2\r\n\r\n{}"
        b"GET /api/v1/namespaces/default/configmaps/absent HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        + auth
        + b"\r\n",
    )
    assert [(c, s["reason"]) for c, s in answers] == [(404, "NotFound"), (404, "NotFound")]


def _pb_field(number: int, value: bytes | int) -> bytes:
    """One protobuf field: a varint, or length-delimited bytes."""

    def varint(n: int) -> bytes:
        out = b""
        while True:
            out += bytes([(n & 0x7F) | (0x80 if n > 0x7F else 0)])
            n >>= 7
            if not n:
                return out

    if isinstance(value, int):
        return varint(number << 3) + varint(value)
    return varint(number << 3 | 2) + varint(len(value)) + value


def _delete_options_pb(**fields: bytes | int) -> bytes:
    """A protobuf DeleteOptions in its runtime.Unknown envelope, as client-go (helm 4) sends it."""
    numbers = {"grace": 1, "preconditions": 2, "propagation": 4, "dry_run": 5}
    raw = b"".join(_pb_field(numbers[k], v) for k, v in fields.items())
    type_meta = _pb_field(1, b"v1") + _pb_field(2, b"DeleteOptions")
    return b"k8s\x00" + _pb_field(1, type_meta) + _pb_field(2, raw)


def test_a_protobuf_delete_options_body_is_honoured(cluster, tmp_path_factory):
    session = _session(cluster, tmp_path_factory)
    pb = "application/vnd.kubernetes.protobuf"
    victim = _victim(cluster)
    # Its preconditions: a uid that is not the object's is a conflict, and nothing is deleted.
    wrong_uid = _delete_options_pb(preconditions=_pb_field(1, b"not-its-uid"))
    refused = _send(session, cluster, "DELETE", f"{CM}/victim", wrong_uid, pb, None)
    assert refused.status_code == 409 and refused.json()["reason"] == "Conflict", refused.text
    # Its dryRun: All deletes nothing either.
    dry = _delete_options_pb(grace=0, propagation=b"Background", dry_run=b"All")
    assert _send(session, cluster, "DELETE", f"{CM}/victim", dry, pb, None).status_code == 200
    assert cluster.store.get(("", "configmaps"), "default", "victim") is not None
    # The right uid deletes it.
    right_uid = _delete_options_pb(preconditions=_pb_field(1, victim["metadata"]["uid"].encode()))
    assert _send(session, cluster, "DELETE", f"{CM}/victim", right_uid, pb, None).status_code == 200
    assert cluster.store.get(("", "configmaps"), "default", "victim") is None
