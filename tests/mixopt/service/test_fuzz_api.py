"""Fuzzing every job endpoint of the API with any job id, query and token: the answer is always
a 2xx or a 4xx with a JSON ``detail`` string, never a 5xx (``experiments/bench/fuzz.py`` runs
the same at 10,000 examples; here a few hundred)."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import ASSETS
from tests.mixopt.service.conftest import TOKENS, spec_dict

ENDPOINTS = ["", "/cancel", "/resume", "/recommendation", "/export", "/logs", "/spec"]
queries = st.dictionaries(
    st.sampled_from(["format", "source", "tail", "offset", "state", "limit", "dry_run"]),
    st.one_of(st.text(max_size=12), st.integers(-(10**20), 10**20).map(str)),
    max_size=3,
)
printable = st.characters(min_codepoint=32, max_codepoint=126)


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    from fastapi.testclient import TestClient

    from mixopt.service.app import create_app
    from mixopt.service.settings import ServiceSettings

    settings = ServiceSettings(
        tokens=dict(TOKENS), state_dir=tmp_path_factory.mktemp("state"), data_roots=[ASSETS]
    )
    with TestClient(create_app(settings, supervise=False)) as client:
        headers = {"Authorization": f"Bearer {TOKENS['alice']}", "Content-Type": "application/json"}
        created = client.post("/jobs", content=json.dumps(spec_dict("queued")), headers=headers)
        assert created.status_code == 201, created.text
        yield client, created.json()["id"]


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    job=st.one_of(st.just("<job>"), st.text(max_size=24), st.sampled_from(["..", "%2e%2e/x"])),
    endpoint=st.sampled_from(ENDPOINTS),
    query=queries,
    token=st.one_of(
        st.sampled_from([TOKENS["alice"], TOKENS["bob"]]), st.text(printable, max_size=40)
    ),
    post=st.booleans(),
)
def test_job_endpoints_answer_anything_with_a_4xx_or_success(
    api, job, endpoint, query, token, post
):
    client, known = api
    path = "/jobs" if job == "" else f"/jobs/{quote(known if job == '<job>' else job, safe='')}"
    response = client.request(
        "POST" if post else "GET",
        path + ("" if job == "" else endpoint),
        params=query,
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        detail = response.json()["detail"]
        assert isinstance(detail, str) and detail.strip()
    if token == TOKENS["bob"] and job == "<job>":
        assert response.status_code in (401, 404, 405, 422)  # alice's job is not bob's


# ---------------------------------------------------------------------------------- studies

STUDY_ENDPOINTS = ["", "/ask", "/tell", "/fail", "/enqueue", "/best"]
STUDY_FIELDS = ["name", "domains", "strategy", "objective", "direction", "bounds", "fixed"]
STUDY_FIELDS += ["natural", "initial", "seed", "target", "law", "n", "mixture_id", "value"]
STUDY_FIELDS += ["metrics", "params", "tokens", "reason", "weights", "observed"]
DOMAIN_NAMES = ["web", "code", "math"]
numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(10**20), 10**20),
    st.sampled_from([0, 1, 2, 0.5, -1, 1e-300, 1e300]),
)
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=12)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from([*DOMAIN_NAMES, "x", "params", "tokens"]), inner),
    ),
    max_leaves=8,
)
plausible = st.one_of(
    st.lists(st.sampled_from(DOMAIN_NAMES), min_size=2, max_size=3),  # domains
    st.dictionaries(st.sampled_from(DOMAIN_NAMES), numbers, min_size=1),  # weights, natural
    st.dictionaries(st.sampled_from(DOMAIN_NAMES), st.tuples(numbers, numbers)),  # bounds
    st.sampled_from(["random", "regmix", "law", "bo", "mfbo", "m0000", "m0001", "team"]),
)
study_bodies = st.dictionaries(
    st.sampled_from(STUDY_FIELDS), st.one_of(json_values, plausible), max_size=6
)


@pytest.fixture(scope="module")
def study_api(tmp_path_factory):
    from fastapi.testclient import TestClient

    from mixopt.service.app import create_app
    from mixopt.service.settings import ServiceSettings

    settings = ServiceSettings(
        tokens=dict(TOKENS), state_dir=tmp_path_factory.mktemp("state"), data_roots=[ASSETS]
    )
    headers = {"Authorization": f"Bearer {TOKENS['alice']}"}
    with TestClient(create_app(settings, supervise=False)) as client:
        body = {"name": "fuzz", "domains": DOMAIN_NAMES, "strategy": "random", "initial": 2}
        created = client.post("/studies", json=body, headers=headers)
        assert created.status_code == 201, created.text
        study_id = created.json()["id"]
        for s in client.post(f"/studies/{study_id}/ask", json={"n": 2}, headers=headers).json():
            client.post(f"/studies/{study_id}/tell", json={**s, "value": 3.0}, headers=headers)
        yield client, study_id


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    study=st.one_of(st.just("<study>"), st.just(""), st.text(max_size=24)),
    endpoint=st.sampled_from(STUDY_ENDPOINTS),
    body=study_bodies,
    token=st.sampled_from([TOKENS["alice"], TOKENS["bob"], "not-a-token"]),
    post=st.booleans(),
)
def test_study_endpoints_answer_anything_with_a_4xx_or_success(
    study_api, study, endpoint, body, token, post
):
    client, known = study_api
    if study == "":
        path = "/studies"
    else:
        path = f"/studies/{quote(known if study == '<study>' else study, safe='')}{endpoint}"
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    if post:
        content = json.dumps(body)  # NaN and Infinity as Python writes them
        response = client.post(path, content=content, headers=headers)
    else:
        query = {k: str(v) for k, v in body.items() if isinstance(v, int | float | str)}
        response = client.get(path, params=query, headers=headers)
    assert response.status_code < 500, (path, body, response.text)
    if response.status_code >= 400:
        detail = response.json()["detail"]
        assert isinstance(detail, str) and detail.strip()
    if token == TOKENS["bob"] and study == "<study>":
        assert response.status_code in (404, 405, 422)  # alice's study is not bob's
