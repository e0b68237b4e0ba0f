"""Fuzzing what users (and the service's clients) hand to mixopt: specs and runs tables.

Whatever the input, the spec parser, the runs-table importer and the service's body parser
either succeed or raise a :class:`~mixopt.errors.MixoptError` subclass with a message, never
another exception (which the CLI would show as a traceback and the service as a 500).
"""

from __future__ import annotations

import contextlib
import copy
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mixopt.errors import MixoptError
from mixopt.runs_table import read_table, weights_and_target
from mixopt.spec import load_spec, parse_spec
from tests.conftest import CORPUS

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(max_size=12), children, max_size=4),
    ),
    max_leaves=20,
)

VALID: dict[str, Any] = {
    "name": "fuzz",
    "domains": [
        {"name": "code", "paths": ["code"]},
        {"name": "web", "paths": ["web/*.txt"], "format": "text"},
    ],
    "tokenizer": {"vocab_size": 300},
    "objective": {"metrics": {"val_loss/code": 1.0}, "direction": "minimize"},
    "space": {"bounds": {"code": [0.1, 0.9]}},
    "proxy": {"preset": "tiny", "seq_len": 32, "batch_size": 4, "train_tokens": 12000},
    "search": {"initial_trials": 4, "rounds": 1, "trials_per_round": 2},
    "validate": {"seeds": 1, "baselines": ["uniform"]},
    "resources": {"max_concurrent_trials": 1},
    "tracking": {"enabled": False},
    "target": {"tokens": 1e9},
}


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path into a nested spec (mapping keys and list indices)."""
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _paths(child, (*prefix, index))
    return found


SPEC_PATHS = _paths(VALID)


def _replace(spec: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    spec = copy.deepcopy(spec)
    node: Any = spec
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return spec


def _expect_clear(call: Any) -> None:
    try:
        call()
    except MixoptError as error:
        assert str(error).strip(), "a MixoptError must say what is wrong"


def test_the_base_spec_is_valid():
    assert parse_spec(copy.deepcopy(VALID)).name == "fuzz"


@FUZZ
@given(json_values)
@example(None)
@example([])
@example({"name": "x", "domains": [{"name": "a", "paths": []}] * 2})
@example({**VALID, "proxy": {"preset": "tiny", "overrides": {"n_layer": -1}}})
@example({**VALID, "proxy": {"preset": "tiny", "overrides": {"d_model": "wide"}}})
@example({**VALID, "space": {"bounds": {"code": [float("nan"), 1.0]}}})
def test_parse_spec_on_any_value(data):
    _expect_clear(lambda: parse_spec(data, base_dir=Path("/tmp")))


@FUZZ
@given(st.sampled_from(SPEC_PATHS), json_values)
def test_parse_spec_with_one_field_changed(path, value):
    """Mutations of a valid spec reach the deep validators (proxy presets, bounds, space)."""
    spec = _replace(VALID, path, value)
    _expect_clear(lambda: parse_spec(spec, base_dir=Path("/tmp")))


@FUZZ
@given(st.sampled_from(SPEC_PATHS), st.sampled_from(SPEC_PATHS), scalars, scalars)
def test_parse_spec_with_two_scalars_changed(first, second, a, b):
    spec = _replace(VALID, first, a)
    with contextlib.suppress(KeyError, IndexError, TypeError):  # the first change removed
        spec = _replace(spec, second, b)  # the second's parent
    _expect_clear(lambda: parse_spec(spec))


@FUZZ
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
@example(b"a: &a [*a]")
@example(b"\xff\xfe")
@example(b"!!python/object:os.system {}")
@example(b"name: [")
def test_load_spec_on_any_file(tmp_path_factory, content):
    path = tmp_path_factory.mktemp("spec") / "spec.yaml"
    path.write_bytes(content)
    _expect_clear(lambda: load_spec(path))


# -------------------------------------------------------------------------------- runs tables

cells = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=8),
)
column_names = st.one_of(
    st.sampled_from(["w_a", "w_b", "w_c", "loss", "w_", ""]),
    st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=6),
)


@st.composite
def tables(draw: Any) -> tuple[list[str], list[list[Any]]]:
    columns = draw(st.lists(column_names, min_size=0, max_size=5))
    rows = draw(st.lists(st.lists(cells, min_size=len(columns), max_size=len(columns)), max_size=6))
    return columns, rows


weight_specs = st.one_of(
    st.sampled_from(["w_", "w_a,w_b", "w_a", "", ",", "loss,w_a", "missing_"]),
    st.text(max_size=10),
    st.lists(column_names, max_size=3),
)
targets = st.one_of(st.none(), st.sampled_from(["loss", "w_a", "nope"]), st.text(max_size=6))


@FUZZ
@given(tables(), weight_specs, targets, st.sampled_from(["csv", "parquet"]))
@example((["w_a", "w_b", "loss"], [[0.5, 0.5, 1.0], [0.2, 0.8, 2.0]]), "w_", "loss", "csv")
@example((["w_a", "w_b", "loss"], [[0.5, "x", 1.0]]), "w_", "loss", "csv")
@example((["w_a", "w_a", "loss"], [[0.5, 0.5, 1.0]]), "w_", "loss", "csv")
def test_runs_table_import_on_any_table(tmp_path_factory, table, weights, target, kind):
    import pandas as pd

    columns, rows = table
    path = tmp_path_factory.mktemp("runs") / f"runs.{kind}"
    if kind == "csv":
        lines = [",".join(columns)] + [
            ",".join("" if c is None else str(c) for c in r) for r in rows
        ]
        path.write_text("\n".join(lines) + "\n")
    else:
        try:
            frame = pd.DataFrame(rows, columns=[f"{c}#{i}" for i, c in enumerate(columns)])
            frame.columns = columns  # duplicates and odd names, as a foreign tool may write
            frame.to_parquet(path)
        except Exception:  # pyarrow cannot write it: nor could anyone hand it to mixopt
            return

    def run() -> None:
        frame = read_table(path)
        X, y, names = weights_and_target(frame, weights, target, source=str(path))
        assert len(names) >= 2 and X.shape[1] == len(names)
        assert y is None or len(y) == len(X)

    _expect_clear(run)


def test_runs_table_import_accepts_a_good_table(tmp_path):
    """The positive control of the fuzzing above: a well-formed table imports."""
    path = tmp_path / "runs.csv"
    path.write_text("w_a,w_b,loss\n0.5,0.5,1.0\n0.2,0.8,2.0\n")
    X, y, names = weights_and_target(read_table(path), "w_", "loss", source="runs.csv")
    assert names == ["w_a", "w_b"] and X.shape == (2, 2) and y is not None and y.tolist() == [1, 2]


@FUZZ
@given(st.binary(max_size=400), st.sampled_from(["runs.csv", "runs.parquet", "runs.pq"]))
@example(b"PAR1" + b"\x00" * 20 + b"PAR1", "runs.parquet")
@example(b"a,b\n1,2\n3", "runs.csv")
@example(b"\xff\xfe\x00", "runs.csv")
def test_runs_table_import_on_any_bytes(tmp_path_factory, content, name):
    path = tmp_path_factory.mktemp("bytes") / name
    path.write_bytes(content)
    _expect_clear(lambda: weights_and_target(read_table(path), "a,b", "c", source=name))


# ------------------------------------------------------------------- the service's body parser


@FUZZ
@given(st.binary(max_size=400), st.sampled_from(["application/json", "application/yaml", None]))
def test_service_body_parser_on_any_bytes(content, content_type):
    pytest.importorskip("fastapi")
    from mixopt.service.admission import Rejected, parse_body

    try:
        parse_body(content, content_type)
    except Rejected as error:
        assert 400 <= error.status < 500 and str(error)


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    """The service's app in-process (no job processes), data root: the test assets."""
    from fastapi.testclient import TestClient

    from mixopt.service.app import create_app
    from mixopt.service.settings import ServiceSettings
    from tests.conftest import ASSETS

    token = "fuzz-token-0123456789abcdef"
    settings = ServiceSettings(
        tokens={"fuzz": token}, state_dir=tmp_path_factory.mktemp("state"), data_roots=[ASSETS]
    )
    with TestClient(create_app(settings, supervise=False)) as client:
        client.headers["Authorization"] = f"Bearer {token}"
        yield client


@FUZZ
@given(
    st.one_of(
        json_values,
        st.tuples(st.sampled_from(SPEC_PATHS), json_values).map(lambda pv: _replace(VALID, *pv)),
    ),
    st.booleans(),
)
def test_service_answers_any_spec_with_a_4xx_or_success(service, data, as_json):
    """Submitted (dry run) over HTTP, no spec makes the service answer 5xx."""
    import json

    import yaml

    if as_json:
        body = json.dumps(data, allow_nan=True)
        content_type = "application/json"
    else:
        body = yaml.safe_dump(data)
        content_type = "application/yaml"
    response = service.post(
        "/jobs",
        content=body,
        params={"dry_run": "true", "base_dir": str(CORPUS)},
        headers={"Content-Type": content_type},
    )
    assert response.status_code in (200, 400, 403, 413, 422), response.text
    assert isinstance(
        response.json()["detail" if response.status_code >= 400 else "spec"], str | dict
    )


def test_fuzz_helpers_cover_nested_paths():
    assert ("proxy", "seq_len") in SPEC_PATHS and ("domains", 1, "paths", 0) in SPEC_PATHS
    assert math.isclose(VALID["target"]["tokens"], 1e9)
