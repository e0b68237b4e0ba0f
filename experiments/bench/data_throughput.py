"""Data-stage throughput on this machine: tokenize + shard a >= 1 GB domain vs HF batch encode.

Builds (once) a corpus under ``--work`` (default ``/tmp/mixopt-data-bench``, never the repo): a
``web`` domain of at least ``--gb`` GB made by repeating the demo corpus' six JSONL sources
(``scripts/setup.sh --demo-corpus`` makes them), and a small ``bible`` domain. Then:

1. trains the job's byte-level BPE (``--vocab``) on a sample of both domains (timed apart);
2. runs ``prepare_data`` in a fresh process with an empty shard cache: the tokenizer stage's MB/s
   and tokens/s, and its peak RSS (the main process, and the largest worker process);
3. runs it twice more on the unchanged data: the shard-cache hit time, with the remembered file
   digests and without them (every file re-hashed);
4. batch-encodes the same text with HF ``tokenizers`` (``encode_batch_fast``, 1024 documents a
   batch, every thread; only the encode calls are timed) over the first ``--hf-mb`` MB (0: all);
5. draws mixture batches from the shards with ``proxies.data.MixtureBatches`` in one process:
   the loader's sequences/s per core.

Other processes share the cores: the load average is printed with the numbers. The last line is
one JSON object (``tokenize_mb_s``, ``hf_batch_mb_s``, ``peak_rss_mb``, ...).

    .venv/bin/python experiments/bench/data_throughput.py               # ~15 min on 2 cores
    .venv/bin/python experiments/bench/data_throughput.py --gb 0.1      # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "experiments" / "demo" / "corpus"
SOURCES = ("code", "docs", "bible", "dictionary", "computing", "fortunes")


def build_corpus(work: Path, gigabytes: float) -> Path:
    """``work/corpus/web/web.jsonl`` of at least ``gigabytes`` GB (reused if big enough)."""
    missing = [s for s in SOURCES if not (DEMO / f"{s}.jsonl").is_file()]
    if missing:
        sys.exit(f"demo corpus missing ({missing}): run scripts/setup.sh --demo-corpus first")
    web = work / "corpus" / "web" / "web.jsonl"
    target = int(gigabytes * 1e9)
    if web.is_file() and web.stat().st_size >= target:
        return web
    web.parent.mkdir(parents=True, exist_ok=True)
    block = b"".join((DEMO / f"{s}.jsonl").read_bytes() for s in SOURCES)
    tmp = web.with_suffix(".tmp")
    with tmp.open("wb") as out:
        written = 0
        while written < target:
            out.write(block)
            written += len(block)
    os.replace(tmp, web)
    return web


def make_spec(work: Path, vocab: int, *, trust_mtime: bool = True) -> Any:
    from mixopt.spec import JobSpec

    return JobSpec.model_validate(
        {
            "name": "bench",
            "domains": [
                {"name": "web", "paths": [str(work / "corpus" / "web")]},
                {"name": "bible", "paths": [str(DEMO / "bible.jsonl")]},
            ],
            "tokenizer": {"kind": "bpe", "vocab_size": vocab},
            "data": {"cache_dir": str(work / "cache"), "trust_mtime": trust_mtime},
        }
    )


def rss_mb(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # kB on Linux


# ------------------------------------------------------------------- stage (a child process)


def run_stage(work: Path, vocab: int, trust_mtime: bool) -> dict[str, Any]:
    """prepare_data once, in this (fresh) process: time, sizes and peak RSS."""
    from mixopt.data import prepare_data

    spec = make_spec(work, vocab, trust_mtime=trust_mtime)
    lines: list[str] = []
    started = time.perf_counter()
    manifest = prepare_data(spec, log=lines.append)
    seconds = time.perf_counter() - started
    web = manifest.domains["web"]
    return {
        "seconds": seconds,
        "text_bytes": sum(d.train_bytes + d.val_bytes for d in manifest.domains.values()),
        "tokens": sum(d.train_tokens + d.val_tokens for d in manifest.domains.values()),
        "web_documents": web.documents,
        "rss_main_mb": rss_mb(resource.RUSAGE_SELF),
        "rss_worker_max_mb": rss_mb(resource.RUSAGE_CHILDREN),
        "log": lines,
    }


def stage_in_child(work: Path, vocab: int, trust_mtime: bool = True) -> dict[str, Any]:
    command = [sys.executable, __file__, "--stage", "--work", str(work), "--vocab", str(vocab)]
    if not trust_mtime:
        command.append("--no-trust-mtime")
    done = subprocess.run(command, check=True, capture_output=True, text=True, cwd=REPO)
    return json.loads(done.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------ measurements


def train_tokenizer(work: Path, vocab: int) -> tuple[Path, float]:
    from mixopt.data.sources import scan_domain
    from mixopt.data.tokenizer import prepare_tokenizer

    spec = make_spec(work, vocab)
    started = time.perf_counter()
    domains = [scan_domain(d) for d in spec.domains]
    info = prepare_tokenizer(spec.tokenizer, domains, Path(spec.data.cache_dir), lambda _: None)
    return info.path, time.perf_counter() - started


def hf_batch_encode(tokenizer_path: Path, web: Path, limit_mb: float) -> dict[str, float]:
    """HF tokenizers' batch encode of the web domain's texts (only the encode calls timed)."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tokenizer_path))
    encode = getattr(tokenizer, "encode_batch_fast", tokenizer.encode_batch)
    limit = limit_mb * 1e6 if limit_mb > 0 else float("inf")
    seconds = 0.0
    nbytes = tokens = 0
    batch: list[str] = []

    def flush() -> None:
        nonlocal seconds, tokens
        started = time.perf_counter()
        encodings = encode(batch, add_special_tokens=False)
        seconds += time.perf_counter() - started
        tokens += sum(len(e.ids) for e in encodings)

    with web.open("rb") as handle:
        for line in handle:
            text = json.loads(line)["text"]
            batch.append(text)
            nbytes += len(text.encode())
            if len(batch) == 1024:
                flush()
                batch = []
                if nbytes >= limit:
                    break
    if batch:
        flush()
    return {
        "mb": nbytes / 1e6,
        "seconds": seconds,
        "mb_s": nbytes / 1e6 / seconds,
        "tokens": tokens,
    }


def loader_rate(work: Path, vocab: int, seconds: float = 5.0) -> dict[str, float]:
    """Sequences/s of MixtureBatches over the shards, one process, one thread."""
    import torch

    from mixopt.data import DataManifest, prepare_data
    from proxies.data import DomainTokens, MixtureBatches

    torch.set_num_threads(1)
    manifest: DataManifest = prepare_data(make_spec(work, vocab), log=lambda _: None)
    domains = [
        DomainTokens(s.name, s.train_path, s.val_path, s.dtype, s.train_bytes, s.val_bytes)  # type: ignore[arg-type]
        for s in manifest.domains.values()
    ]
    out = {}
    for seq_len in (256, 2048):
        batches = MixtureBatches(domains, {"web": 0.7, "bible": 0.3}, seq_len, 32, seed=0)
        for _ in range(5):
            next(batches)
        n = 0
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            next(batches)
            n += 32
        out[f"seq{seq_len}"] = n / (time.perf_counter() - started)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/mixopt-data-bench"))
    parser.add_argument("--gb", type=float, default=1.0, help="size of the web domain")
    parser.add_argument("--vocab", type=int, default=4096)
    parser.add_argument("--hf-mb", type=float, default=256.0, help="0: the whole domain")
    parser.add_argument("--stage", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--no-trust-mtime", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:
        print(json.dumps(run_stage(args.work, args.vocab, not args.no_trust_mtime)))
        return

    load_before = os.getloadavg()
    web = build_corpus(args.work, args.gb)
    corpus_mb = web.stat().st_size / 1e6
    print(f"corpus: {web} ({corpus_mb:,.0f} MB) + demo bible; load avg {load_before}", flush=True)
    tokenizer_path, train_s = train_tokenizer(args.work, args.vocab)
    print(f"tokenizer: trained in {train_s:.1f}s -> {tokenizer_path}", flush=True)

    shutil.rmtree(args.work / "cache" / "shards", ignore_errors=True)
    shutil.rmtree(args.work / "cache" / "digests", ignore_errors=True)
    cold = stage_in_child(args.work, args.vocab)
    mb = cold["text_bytes"] / 1e6
    print(
        f"tokenize + shard: {mb:,.0f} MB in {cold['seconds']:.1f}s = {mb / cold['seconds']:.2f} "
        f"MB/s, {cold['tokens'] / cold['seconds']:,.0f} tokens/s; peak RSS main "
        f"{cold['rss_main_mb']:.0f} MB, largest worker {cold['rss_worker_max_mb']:.0f} MB",
        flush=True,
    )
    load_mid = os.getloadavg()
    warm = stage_in_child(args.work, args.vocab)
    rehash = stage_in_child(args.work, args.vocab, trust_mtime=False)
    print(
        f"cache hit: {warm['seconds']:.2f}s (remembered digests), {rehash['seconds']:.2f}s "
        "(every file re-hashed)",
        flush=True,
    )
    hf = hf_batch_encode(tokenizer_path, web, args.hf_mb)
    print(
        f"HF batch encode: {hf['mb']:,.0f} MB in {hf['seconds']:.1f}s = {hf['mb_s']:.2f} MB/s",
        flush=True,
    )
    loader = loader_rate(args.work, args.vocab)
    print(
        f"loader: {loader['seq256']:,.0f} seq/s (T=256), {loader['seq2048']:,.0f} seq/s "
        "(T=2048), one core",
        flush=True,
    )
    load_after = os.getloadavg()
    tokenize_mb_s = mb / cold["seconds"]
    result = {
        "corpus_mb": round(corpus_mb, 1),
        "cores": len(os.sched_getaffinity(0)),
        "vocab": args.vocab,
        "tokenizer_train_s": round(train_s, 2),
        "tokenize_mb_s": round(tokenize_mb_s, 3),
        "tokenize_tokens_s": round(cold["tokens"] / cold["seconds"]),
        "tokenize_s": round(cold["seconds"], 1),
        "hf_batch_mb_s": round(hf["mb_s"], 3),
        "hf_batch_mb": round(hf["mb"], 1),
        "ratio_hf_over_ours": round(hf["mb_s"] / tokenize_mb_s, 3),
        "peak_rss_mb": round(max(cold["rss_main_mb"], cold["rss_worker_max_mb"]), 1),
        "peak_rss_main_mb": round(cold["rss_main_mb"], 1),
        "peak_rss_worker_mb": round(cold["rss_worker_max_mb"], 1),
        "cache_hit_s": round(warm["seconds"], 3),
        "cache_hit_rehash_s": round(rehash["seconds"], 3),
        "loader_seq_s_per_core_t256": round(loader["seq256"]),
        "loader_seq_s_per_core_t2048": round(loader["seq2048"]),
        "load_avg_before": [round(x, 2) for x in load_before],
        "load_avg_mid": [round(x, 2) for x in load_mid],
        "load_avg_after": [round(x, 2) for x in load_after],
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
