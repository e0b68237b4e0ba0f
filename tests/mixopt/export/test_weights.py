"""Exact 6-decimal weights and the unit conversions (token, byte, document, other tokenizer)."""

from __future__ import annotations

import numpy as np
import pytest

from mixopt.errors import MixoptError
from mixopt.export import exact_weights
from mixopt.export.units import DomainMeasure, byte_shares, document_shares, token_shares
from tests.mixopt.export.conftest import sums_to_one


@pytest.mark.parametrize(
    "weights",
    [
        {"a": 1 / 3, "b": 1 / 3, "c": 1 / 3},
        {"a": 0.1, "b": 0.2, "c": 0.7},
        {"a": 2.0, "b": 6.0},  # not normalised
        {"a": 1e-9, "b": 1.0, "c": 0.0},
        {f"d{i}": 1 / 7 for i in range(7)},
    ],
)
def test_exact_weights_sum_to_one_at_six_decimals(weights):
    exact = exact_weights(weights)
    assert list(exact) == list(weights)
    assert sums_to_one(exact.values())
    total = sum(weights.values())
    for name, w in weights.items():
        assert exact[name] == pytest.approx(w / total, abs=1e-6)
        assert round(exact[name], 6) == exact[name]


def test_exact_weights_on_random_mixtures():
    rng = np.random.default_rng(0)
    for n in (2, 5, 17, 40):
        for _ in range(50):
            raw = rng.dirichlet(np.full(n, 0.3))
            exact = exact_weights({f"d{i}": w for i, w in enumerate(raw)})
            assert sums_to_one(exact.values())
            assert np.max(np.abs(np.array(list(exact.values())) - raw)) <= 1e-6


@pytest.mark.parametrize(
    "weights, message",
    [
        ({"a": -0.5, "b": 1.5}, ">= 0"),
        ({"a": float("nan"), "b": 1.0}, "finite"),
        ({"a": 0.0, "b": 0.0}, "not all 0"),
        ({}, "no domains"),
        ({"a": "x", "b": 1.0}, "must be numbers"),
    ],
)
def test_exact_weights_rejects_bad_mixtures(weights, message):
    with pytest.raises(MixoptError, match=message):
        exact_weights(weights)


# a (tokens, bytes, documents) table worked by hand: code has long documents of dense tokens,
# prose short documents of 4 bytes per token
MEASURES = {
    "code": DomainMeasure(tokens=1000, bytes=3000, documents=10),  # 100 tokens/doc, 3 B/token
    "prose": DomainMeasure(tokens=1000, bytes=4000, documents=100),  # 10 tokens/doc, 4 B/token
}


def test_byte_and_document_shares_by_hand():
    weights = {"code": 0.5, "prose": 0.5}
    bytes_ = byte_shares(weights, MEASURES)  # 0.5 * 3 : 0.5 * 4
    assert bytes_ == pytest.approx({"code": 3 / 7, "prose": 4 / 7}, abs=1e-6)
    assert sums_to_one(bytes_.values())
    # one document of code holds 10x the tokens of one of prose: 10x fewer code documents
    assert document_shares(weights, MEASURES) == pytest.approx(
        {"code": 1 / 11, "prose": 10 / 11}, abs=1e-6
    )


def test_conversion_to_another_tokenizer_by_hand():
    # the other tokenizer packs code at 2 bytes per token, prose at 5
    other = {
        "code": DomainMeasure(tokens=1500, bytes=3000, documents=10),
        "prose": DomainMeasure(tokens=800, bytes=4000, documents=100),
    }
    bytes_ = byte_shares({"code": 0.5, "prose": 0.5}, MEASURES)  # 3/7, 4/7
    converted = token_shares(bytes_, other)  # 3/7 / 2 : 4/7 / 5 = 1.5 : 0.8
    assert converted == pytest.approx({"code": 1.5 / 2.3, "prose": 0.8 / 2.3}, abs=1e-6)
    assert sums_to_one(converted.values())
    # with the same tokenizer the conversion is the identity
    assert token_shares(bytes_, MEASURES) == pytest.approx({"code": 0.5, "prose": 0.5}, abs=1e-6)


def test_missing_counts_say_the_conversion_is_impossible():
    legacy = {"code": DomainMeasure(1000, 0, 0), "prose": DomainMeasure(1000, 4000, 100)}
    with pytest.raises(MixoptError, match=r"no documents for domain\(s\) code.*older mixopt"):
        document_shares({"code": 0.5, "prose": 0.5}, legacy)
    with pytest.raises(MixoptError, match=r"into byte shares: .*no bytes for domain\(s\) code"):
        byte_shares({"code": 0.5, "prose": 0.5}, legacy)
