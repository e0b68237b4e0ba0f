from pathlib import Path

import pytest
import yaml

from mixopt.errors import SpecError
from mixopt.spec import load_spec, parse_spec


def _spec(**sections):
    base = {
        "name": "t",
        "domains": [
            {"name": "code", "paths": ["code.jsonl"]},
            {"name": "prose", "paths": ["prose"]},
            {"name": "dict", "paths": ["d/*.txt"]},
        ],
    }
    base.update(sections)
    return base


def test_defaults_and_objective_is_mean_val_loss():
    spec = parse_spec(_spec())
    assert spec.domain_names == ["code", "prose", "dict"]
    weights = spec.objective_weights()
    assert weights == {f"val_loss/{d}": pytest.approx(1 / 3) for d in spec.domain_names}


def test_relative_paths_resolve_against_the_spec_folder(tmp_path):
    path = tmp_path / "sub" / "spec.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(_spec()))
    spec = load_spec(path)
    assert spec.domains[0].paths == [str(tmp_path / "sub" / "code.jsonl")]
    assert spec.output_dir == str(tmp_path / "sub" / "runs")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"space": {"bounds": {"web": [0, 0.5]}}}, r"space\.bounds: unknown domain\(s\) \['web'\]"),
        ({"space": {"fixed": {"code": 0.7, "prose": 0.7}}}, r"minimum weights sum to 1\.4"),
        (
            {"space": {"bounds": {"code": [0, 0.1], "prose": [0, 0.1], "dict": [0, 0.1]}}},
            r"maximum weights sum to 0\.3",
        ),
        (
            {"space": {"bounds": {"code": [0.6, 0.2]}}},
            r"space\.bounds: bounds of 'code' must satisfy 0 <= min <= max <= 1",
        ),
        ({"objective": {"metrics": {"val_loss/web": 1.0}}}, r"objective\.metrics: unknown metric"),
        ({"proxy": {"seq_len": 2}}, r"proxy\.seq_len: Input should be greater than or equal to 8"),
        ({"proxy": {"sequence_len": 64}}, r"proxy\.sequence_len: Extra inputs are not permitted"),
        (
            {"search": {"strategy": "magic"}},
            r"search\.strategy: unknown strategy 'magic'; available: bo, regmix, law, pareto, mfbo, random",
        ),
        (
            {"validate": {"current": {"code": 0.5}}},
            r"validate\.current: weights must be >= 0 and sum to 1",
        ),
        ({"tokenizer": {"kind": "file"}}, r"tokenizer: kind 'file' needs 'path'"),
    ],
)
def test_bad_specs_name_the_field_and_the_problem(change, message):
    with pytest.raises(SpecError, match=message):
        parse_spec(_spec(**change), source="s.yaml")


def test_duplicate_and_too_few_domains():
    twice = {"name": "code", "paths": ["x"]}
    with pytest.raises(SpecError, match=r"duplicate names \['code'\]"):
        parse_spec(_spec(domains=[twice, twice]))
    with pytest.raises(SpecError, match=r"domains: List should have at least 2 items"):
        parse_spec(_spec(domains=[twice]))


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(SpecError, match="spec file not found"):
        load_spec(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(bad)
    bad.write_text("- just a list")
    with pytest.raises(SpecError, match="must be a mapping"):
        load_spec(bad)


def test_resolved_spec_round_trips_through_yaml():
    spec = parse_spec(_spec(validate={"seeds": 2}))
    again = parse_spec(yaml.safe_load(spec.to_yaml()))
    assert again == spec
    assert "validate" in yaml.safe_load(spec.to_yaml())


DEMO_SPECS = sorted((Path(__file__).parents[2] / "experiments" / "demo").glob("*.yaml"))


@pytest.mark.parametrize("path", DEMO_SPECS, ids=lambda p: p.name)
def test_the_demo_specs_load(path):
    """The specs the README points users to stay valid as the spec grows."""
    spec = load_spec(path)
    assert spec.name.startswith("demo") and len(spec.domains) == 6
    if spec.search.strategy == "mfbo":
        cheap = spec.fidelity_proxies()[0]
        assert cheap.train_tokens < spec.proxy.train_tokens


def test_there_are_demo_specs():
    assert {p.name for p in DEMO_SPECS} >= {"search.yaml", "search-mfbo.yaml"}


def test_a_larger_proxy_gets_a_smaller_learning_rate_and_more_tokens_keep_it():
    """Ladder rungs and the validation proxy carry the search proxy's lr by the Step Law's N
    exponent; at mixopt's fixed batch, the token budget leaves it where it is."""
    from mixopt.spec import ProxySpec
    from proxies.hparams import PUBLISHED_N_EXPONENT

    search = ProxySpec(preset="tiny", train_tokens=300_000, lr=0.006)
    longer = search.replace(train_tokens=1_200_000).with_lr_from(search)
    assert longer.lr == pytest.approx(search.lr, rel=1e-12)

    larger = search.scaled_up(4)
    (n_small, _), (n_large, d_large) = search.size(), larger.size()
    assert n_large >= 4 * n_small and d_large >= 4 * search.train_tokens
    expected = search.lr * (n_large / n_small) ** PUBLISHED_N_EXPONENT
    assert larger.lr == pytest.approx(expected, rel=1e-9)
    assert larger.lr < search.lr


def test_ladder_rungs_grow_their_tokens_with_size_unless_the_spec_says(make_spec):
    """A rung without train_tokens trains the search proxy's tokens x sqrt(N ratio), so the
    rungs differ in D as well as N; a rung's own train_tokens wins."""
    from mixopt.spec.search import RUNG_TOKENS_EXPONENT

    rungs = [{"preset": "small"}, {"preset": "tiny", "train_tokens": 123_456}, {"preset": "nano"}]
    spec = make_spec(
        proxy={"preset": "micro", "train_tokens": 300_000},
        search={"initial_trials": 4, "fidelities": rungs},
    )
    small, tiny, nano, search = spec.fidelity_proxies()
    n_search = search.size()[0]
    expected = 300_000 * (small.size()[0] / n_search) ** RUNG_TOKENS_EXPONENT
    assert small.train_tokens == round(expected) and small.train_tokens > 300_000
    assert tiny.train_tokens == 123_456
    assert nano.train_tokens < 300_000  # a smaller rung gets fewer tokens
    assert small.lr < search.lr  # and the larger rung a smaller learning rate, as before
