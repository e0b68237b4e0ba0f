"""Training, caching and loading tokenizers; end-of-text handling; piece-wise encoding."""

from __future__ import annotations

from pathlib import Path

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers

from mixopt.data.documents import split_document
from mixopt.data.sources import DomainSources, scan_domain
from mixopt.data.tokenizer import EOT_TOKEN, prepare_tokenizer, sample_domain, train_bpe
from mixopt.errors import DataError
from mixopt.spec import DomainSpec, TokenizerSpec

from .conftest import CORPUS, LogCollector


def corpus_sources() -> list[DomainSources]:
    return [
        scan_domain(DomainSpec(name=name, paths=[str(CORPUS / name)]))
        for name in ("code", "bible", "dictionary")
    ]


def test_bpe_is_trained_then_reused(tmp_path: Path, logs: LogCollector) -> None:
    spec = TokenizerSpec(vocab_size=300, sample_bytes_per_domain=20_000)
    info = prepare_tokenizer(spec, corpus_sources(), tmp_path, logs)
    assert info.path.name == "tokenizer.json"
    assert info.path.parent.parent == tmp_path / "tokenizers"
    assert (info.eot_token, info.eot_id, info.vocab_size) == (EOT_TOKEN, 0, 300)
    assert "trained" in logs.text()
    mtime = info.path.stat().st_mtime_ns
    again = prepare_tokenizer(spec, corpus_sources(), tmp_path, logs)
    assert again == info and info.path.stat().st_mtime_ns == mtime
    assert "reused" in logs[-1]
    bigger = prepare_tokenizer(
        spec.model_copy(update={"vocab_size": 320}), corpus_sources(), tmp_path, logs
    )
    assert bigger.path != info.path and bigger.vocab_size == 320
    assert not list((tmp_path / "tokenizers").glob(".tmp-*"))


def test_round_trip_and_special_text_stays_text(tmp_path: Path, logs: LogCollector) -> None:
    spec = TokenizerSpec(vocab_size=300, sample_bytes_per_domain=20_000)
    info = prepare_tokenizer(spec, corpus_sources(), tmp_path, logs)
    tokenizer = info.load()
    text = "In the beginning <|endoftext|> was the Word. été 🙂\n\tdef f(x):\n"
    ids = tokenizer.encode(text, add_special_tokens=False).ids
    assert info.eot_id not in ids
    assert tokenizer.decode(ids) == text


def test_sample_is_capped_and_spread(tmp_path: Path) -> None:
    sources = scan_domain(DomainSpec(name="dictionary", paths=[str(CORPUS / "dictionary")]))
    sample = sample_domain(sources, 5_000)
    size = sum(len(t.encode()) for t in sample)
    assert 2_500 <= size <= 5_000
    everything = "".join(sample_domain(sources, 10**9))
    assert all(text in everything for text in sample)
    assert not everything.startswith(sample[-1][:100])  # not just the first documents
    assert sample == sample_domain(sources, 5_000)


def test_pieces_encode_like_whole_documents() -> None:
    code = (CORPUS / "code" / "stdlib_excerpts.jsonl").read_text()
    bible = (CORPUS / "bible" / "genesis_01.txt").read_text()
    tokenizer = train_bpe([code, bible], vocab_size=400)
    for text in (code, bible, code.replace("\\n", "\n") * 3):
        whole = tokenizer.encode(text, add_special_tokens=False).ids
        pieces = list(split_document(text, max_chars=700))
        assert len(pieces) > 3
        joined = [i for p in pieces for i in tokenizer.encode(p.text, add_special_tokens=False).ids]
        assert joined == whole


def save_word_level(path: Path, specials: list[str]) -> Path:
    vocab = {"[UNK]": 0, "hello": 1, "world": 2}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.add_special_tokens(specials)
    tokenizer.save(str(path))
    return path


@pytest.mark.parametrize(
    ("specials", "expected"),
    [
        (["<pad>", "<|endoftext|>"], "<|endoftext|>"),
        (["<s>", "</s>"], "</s>"),
        (["<|begin_of_text|>", "<|end_of_text|>"], "<|end_of_text|>"),
        (["<bos>", "<|my_eos|>"], "<|my_eos|>"),
    ],
)
def test_user_tokenizer_file_end_of_text(
    tmp_path: Path, logs: LogCollector, specials: list[str], expected: str
) -> None:
    path = save_word_level(tmp_path / "tokenizer.json", specials)
    spec = TokenizerSpec(kind="file", path=str(path))
    info = prepare_tokenizer(spec, [], tmp_path / "cache", logs)
    assert info.eot_token == expected and info.eot_id == 3 + specials.index(expected)
    assert info.vocab_size == 5
    assert f"end of text: {expected!r}" in logs.text()


def test_user_tokenizer_without_end_of_text_or_broken(tmp_path: Path, logs: LogCollector) -> None:
    path = save_word_level(tmp_path / "tokenizer.json", ["<pad>", "<s>"])
    with pytest.raises(
        DataError, match=r"tokenizer .*tokenizer\.json: no end-of-text token.*<pad>"
    ):
        prepare_tokenizer(TokenizerSpec(kind="file", path=str(path)), [], tmp_path, logs)
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(DataError, match=r"broken\.json: not a valid tokenizer\.json"):
        prepare_tokenizer(TokenizerSpec(kind="file", path=str(broken)), [], tmp_path, logs)
    with pytest.raises(DataError, match="no such file"):
        prepare_tokenizer(
            TokenizerSpec(kind="file", path=str(tmp_path / "nope.json")), [], tmp_path, logs
        )
