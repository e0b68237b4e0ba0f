"""Fuzzing what users hand to mixopt, at volume: the spec, the runs-table importer and the REST
API, each with ``--examples`` hypothesis examples (10,000 by default; the test suite runs a few
hundred of the same kinds in ``tests/mixopt/test_fuzz.py``).

Every input must end in success or in a clear error: a :class:`~mixopt.errors.MixoptError` with
a message for the spec and the importer, a 2xx or 4xx answer with a JSON ``detail`` string for
the API (whose every endpoint is tried: submissions as dry runs, with any body, content type
and query; job endpoints with any id and query; any token). Anything else (another exception,
a 5xx, an empty message) is a failure, printed with its input. The last line is one JSON
object: per target, examples run, accepted, clear errors, failures and seconds.

    .venv/bin/python experiments/bench/fuzz.py [--examples 10000] [--seed 0]
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from mixopt.errors import MixoptError

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / "tests" / "assets" / "corpus"

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
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
VALID: dict[str, Any] = {
    "name": "fuzz",
    "domains": [
        {"name": "code", "paths": ["code"]},
        {"name": "bible", "paths": ["bible/*.txt"], "format": "text"},
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


def key_paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, child in value.items():
            found += key_paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += key_paths(child, (*prefix, index))
    return found


PATHS = key_paths(VALID)


def replaced(spec: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    spec = copy.deepcopy(spec)
    node: Any = spec
    for key in path[:-1]:
        if not isinstance(node, dict | list):
            return spec
        node = node[key]
    if isinstance(node, dict | list):
        node[path[-1]] = value
    return spec


mutated_specs = st.one_of(
    json_values,
    st.tuples(st.sampled_from(PATHS), json_values).map(lambda pv: replaced(VALID, *pv)),
    st.tuples(st.sampled_from(PATHS), scalars, st.sampled_from(PATHS), scalars).map(
        lambda t: replaced(replaced(VALID, t[0], t[1]), t[2], t[3])
    ),
)


class Tally:
    """Outcomes of one target."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.examples = self.accepted = self.rejected = 0
        self.failures: list[str] = []
        self.seconds = 0.0

    def run(self, call: Callable[[], bool]) -> None:
        """``call`` returns True when the input was accepted, raises MixoptError when refused."""
        self.examples += 1
        try:
            accepted = call()
        except MixoptError as error:
            if str(error).strip():
                self.rejected += 1
            else:
                self.fail("MixoptError with an empty message")
            return
        except Exception as error:  # what the fuzzing is looking for
            self.fail(f"{type(error).__name__}: {error}"[:500])
            return
        if accepted:
            self.accepted += 1
        else:
            self.rejected += 1

    def fail(self, what: str) -> None:
        self.failures.append(what)
        if len(self.failures) <= 5:
            print(f"  {self.name} failure: {what}", flush=True)

    def summary(self) -> dict[str, Any]:
        return {
            "examples": self.examples,
            "accepted": self.accepted,
            "clear_errors": self.rejected,
            "failures": len(self.failures),
            "seconds": round(self.seconds, 1),
        }


def fuzz(tally: Tally, strategy: Any, body: Callable[[Any], bool], examples: int, at: int) -> None:
    @seed(at)
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def explore(value: Any) -> None:
        tally.run(lambda: body(value))

    started = time.perf_counter()
    explore()
    tally.seconds += time.perf_counter() - started


# ------------------------------------------------------------------------------------ targets


def spec_target(examples: int, at: int) -> Tally:
    from mixopt.spec import parse_spec

    tally = Tally("spec")

    def parse(data: Any) -> bool:
        parse_spec(data, base_dir=CORPUS)
        return True

    fuzz(tally, mutated_specs, parse, examples, at)
    return tally


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
def tables(draw: Any) -> tuple[str, bytes | None, list[str], list[list[Any]], Any, Any]:
    kind = draw(st.sampled_from(["csv", "parquet", "bytes", "mixture", "mixture"]))
    columns = draw(st.lists(column_names, max_size=5))
    rows = draw(st.lists(st.lists(cells, min_size=len(columns), max_size=len(columns)), max_size=6))
    raw = draw(st.binary(max_size=300)) if kind == "bytes" else None
    weights = draw(
        st.one_of(
            st.sampled_from(["w_", "w_a,w_b", "w_a", "", ",", "loss,w_a", "missing_"]),
            st.text(max_size=10),
            st.lists(column_names, max_size=3),
        )
    )
    target = draw(
        st.one_of(st.none(), st.sampled_from(["loss", "w_a", "nope"]), st.text(max_size=6))
    )
    if kind == "mixture":  # near-valid: a mixture table with at most one odd cell
        kind, weights, target = draw(st.sampled_from(["csv", "parquet"])), "w_", "loss"
        columns = ["w_a", "w_b", "w_c", "loss"]
        unit = st.floats(0, 1)
        rows = []
        for _ in range(draw(st.integers(1, 8))):
            a, b = draw(unit), draw(unit)
            rows.append([a * (1 - b), (1 - a) * (1 - b), b, draw(st.floats(0, 10))])
        if draw(st.booleans()):
            rows[draw(st.integers(0, len(rows) - 1))][draw(st.integers(0, 3))] = draw(cells)
    return kind, raw, columns, rows, weights, target


def table_target(examples: int, at: int, folder: Path) -> Tally:
    import pandas as pd

    from mixopt.runs_table import read_table, weights_and_target

    tally = Tally("runs_table")
    counter = [0]

    def load(drawn: Any) -> bool:
        kind, raw, columns, rows, weights, target = drawn
        counter[0] += 1
        suffix = {"csv": ".csv", "parquet": ".parquet", "bytes": ".csv"}[kind]
        path = folder / f"t{counter[0] % 50}{suffix}"
        if kind == "bytes":
            assert raw is not None
            path.write_bytes(raw)
        elif kind == "csv":
            text = [",".join(columns)] + [
                ",".join("" if c is None else str(c) for c in r) for r in rows
            ]
            path.write_text("\n".join(text) + "\n")
        else:
            try:
                frame = pd.DataFrame(rows, columns=[f"{c}#{i}" for i, c in enumerate(columns)])
                frame.columns = columns
                frame.to_parquet(path)
            except Exception:  # pyarrow cannot write it: nor could anyone hand it to mixopt
                return False
        frame = read_table(path)
        X, y, names = weights_and_target(frame, weights, target, source=path.name)
        if len(names) < 2 or X.shape[1] != len(names) or (y is not None and len(y) != len(X)):
            raise AssertionError("an accepted table is inconsistent")
        return True

    fuzz(tally, tables(), load, examples, at)
    return tally


TOKEN = "fuzz-token-0123456789abcdef"
ENDPOINTS = ["", "/cancel", "/resume", "/recommendation", "/export", "/logs", "/spec"]
query_values = st.one_of(st.text(max_size=12), st.integers(-(10**12), 10**12).map(str))


@st.composite
def requests(draw: Any, jobs: list[str]) -> dict[str, Any]:
    kind = draw(st.sampled_from(["submit", "submit", "submit", "job", "list", "token"]))
    if kind == "submit":
        body = draw(
            st.one_of(
                mutated_specs.map(lambda d: json.dumps(d, allow_nan=True).encode()),
                mutated_specs.map(lambda d: yaml.safe_dump(d).encode()),
                st.binary(max_size=300),
            )
        )
        content_type = draw(
            st.sampled_from(["application/json", "application/yaml", "text/plain", ""])
        )
        params = {"dry_run": "true", "base_dir": str(CORPUS)}
        if draw(st.integers(0, 4)) == 0:
            params["base_dir"] = draw(st.sampled_from(["relative", "/etc", "", str(REPO)]))
        return {
            "method": "POST",
            "path": "/jobs",
            "body": body,
            "type": content_type,
            "params": params,
        }
    if kind == "job":
        odd = st.sampled_from(["j0123456789ab", "..", "%2e%2e", "../../etc"])
        job_id = quote(draw(st.one_of(st.sampled_from(jobs), st.text(max_size=20), odd)), safe="")
        suffix = draw(st.sampled_from(ENDPOINTS))
        method = "POST" if suffix in ("/cancel", "/resume") else "GET"
        params = draw(
            st.dictionaries(
                st.sampled_from(["format", "source", "tail", "offset"]), query_values, max_size=3
            )
        )
        return {"method": method, "path": f"/jobs/{job_id}{suffix}", "params": params}
    if kind == "list":
        params = draw(
            st.dictionaries(st.sampled_from(["state", "limit", "offset"]), query_values, max_size=3)
        )
        return {"method": "GET", "path": "/jobs", "params": params}
    printable = st.characters(min_codepoint=32, max_codepoint=126)
    token = draw(st.one_of(st.text(printable, max_size=40), st.just(TOKEN.upper())))
    return {"method": "GET", "path": "/jobs", "params": {}, "token": token}


def api_target(examples: int, at: int, state: Path) -> Tally:
    from fastapi.testclient import TestClient

    from mixopt.service.app import create_app
    from mixopt.service.settings import ServiceSettings

    settings = ServiceSettings(tokens={"fuzz": TOKEN}, state_dir=state, data_roots=[CORPUS.parent])
    tally = Tally("rest_api")
    with TestClient(create_app(settings, supervise=False)) as client:
        client.headers["Authorization"] = f"Bearer {TOKEN}"
        jobs = []
        for _ in range(3):  # queued jobs (nothing runs them) for the job endpoints
            created = client.post(
                "/jobs",
                content=json.dumps(VALID),
                headers={"Content-Type": "application/json"},
                params={"base_dir": str(CORPUS)},
            )
            assert created.status_code == 201, created.text
            jobs.append(created.json()["id"])

        def send(request: dict[str, Any]) -> bool:
            headers = {"Authorization": f"Bearer {request.get('token', TOKEN)}"}
            if request.get("type"):
                headers["Content-Type"] = request["type"]
            response = client.request(
                request["method"],
                request["path"],
                content=request.get("body"),
                params=request["params"],
                headers=headers,
            )
            if response.status_code >= 500:
                raise AssertionError(f"{response.status_code} for {request}: {response.text[:300]}")
            if response.status_code >= 400:
                detail = response.json().get("detail")
                if not isinstance(detail, str) or not detail.strip():
                    raise AssertionError(f"no detail for {request}: {response.text[:300]}")
                return False
            return True

        fuzz(tally, requests(jobs), send, examples, at)
    return tally


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", choices=["spec", "runs_table", "rest_api"], default=None)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="mixopt-fuzz-") as tmp:
        work = Path(tmp)
        targets = {
            "spec": lambda: spec_target(args.examples, args.seed),
            "runs_table": lambda: table_target(args.examples, args.seed, work),
            "rest_api": lambda: api_target(args.examples, args.seed, work / "state"),
        }
        for name, target in targets.items():
            if args.only not in (None, name):
                continue
            tally = target()
            results[name] = tally.summary()
            print(f"{name}: {json.dumps(results[name])}", flush=True)
    results["failures"] = sum(r["failures"] for r in results.values() if isinstance(r, dict))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
