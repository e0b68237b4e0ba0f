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
