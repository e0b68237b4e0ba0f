"""Scale-aware laws on a real multi-scale grid: fit on the two smaller sizes, judge on the largest.

The grid: the demo corpus (six domains, tokenized by mixopt's own data stage with the demo
spec's tokenizer), ``--mixtures`` mixtures (the natural one, the uniform one, the rest drawn by
the demo's Dirichlet sampler inside the demo's space) x three proxy sizes (``--sizes``, default
nano / tiny / small: 0.033M, 0.13M and 0.49M non-embedding parameters, a 15x span), tokens
doubling with each 4x in size (``--tokens``, default 0.3M / 0.6M / 1.2M, ~D ∝ N^0.5: the largest
is a ~4x larger model on 2x the tokens of the middle one). Every run is evaluated ``--evals``
times along the way (per-domain validation losses at ``eval_every`` steps) and at the end.

Two choices make the points usable by a law in (N, D):

- a *constant* learning rate after warmup: every evaluation along a run is then the loss a run
  stopped there would report (under a cosine schedule the intermediate points sit above it);
- one seed for every run (common random numbers, as mixopt's search uses): the same
  initialisation at each size, so mixtures differ by their data; with a seed per mixture, seed
  noise at these sizes is ~2% of the loss, as large as the mixture effects.

Cost: ~70 CPU-minutes on one thread (the largest size is three quarters of it), more on a
shared machine. Each finished run is appended to ``--grid`` (parquet under
``experiments/bench/out/``, not committed), so a re-run trains only what is missing, ``--shard
K/P`` lets P processes share the work, and ``--fit-only`` only refits.

The judgement: every law in ``mixopt.predictors.scaling`` (and the selector) is fitted on the
evaluations of the two smaller sizes that a search fits (past the first quarter of each run:
``EARLY_SHARE`` in ``mixopt.predictors.scaling.rows``) and predicts the objective (the mean
validation loss over the six domains) of every mixture at the largest size and its final token
count. Reported: MAPE of that objective, the Spearman correlation of the mixture ranking, the
regret of the mixture predicted best, and 95% interval coverage, next to the scale-blind default
(``make_predictor("auto")`` fitted on the middle size's final objectives) and the middle size's
losses taken as they are. The last line is one JSON object.

    nice .venv/bin/python experiments/bench/scaling.py [--corpus DIR] [--fit-only]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
import warnings
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
DEMO_SPEC = ROOT / "experiments" / "demo" / "search.yaml"
OUT = Path(__file__).resolve().parent / "out"
GRID_FILE = OUT / "scaling_grid.parquet"


# ------------------------------------------------------------------------------------ data


def demo_spec(corpus: Path | None) -> Any:
    """The demo job spec, its domains read from ``corpus`` (default: where the spec says)."""
    import yaml

    from mixopt.spec import parse_spec

    data = yaml.safe_load(DEMO_SPEC.read_text())
    if corpus is not None:
        for domain in data["domains"]:
            domain["paths"] = [str(corpus / Path(p).name) for p in domain["paths"]]
    return parse_spec(data, source=str(DEMO_SPEC), base_dir=DEMO_SPEC.parent)


def grid_mixtures(spec: Any, manifest: Any, n: int, seed: int) -> np.ndarray:
    """Natural, uniform, then draws of the demo's own sampler inside the demo's space (n, m)."""
    from mixopt.sampling import DirichletSampler
    from mixopt.space import MixtureSpace

    space = MixtureSpace.from_spec(spec)
    natural_map = manifest.natural_distribution()
    natural = space.project(np.array([natural_map[d] for d in space.domains]))[0]
    s = spec.search.sampler
    sampler = DirichletSampler(
        space, natural, temperature=s.temperature, alpha_min=s.alpha_min,
        alpha_max=s.alpha_max, n_alphas=s.n_alphas, min_weight=s.min_weight,
    )  # fmt: skip
    fixed = np.stack([natural, space.uniform()])
    drawn = sampler.sample(n - len(fixed), np.random.default_rng(seed), exclude=fixed)
    return np.vstack([fixed, drawn])


def settings_key(args: argparse.Namespace, data_hash: str) -> str:
    """Fingerprint of everything that shapes a run except the mixture, size and tokens."""
    parts = [data_hash, args.seq_len, args.batch_size, args.lr, args.evals, args.eval_tokens]
    parts += ["common seed", args.seed]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:12]


def train_run(
    args: argparse.Namespace, manifest: Any, domains: list[Any], weights: dict[str, float],
    preset: str, tokens: int, seed: int,
) -> list[dict[str, Any]]:  # fmt: skip
    """Train one proxy; one row per evaluation (along the run and final)."""
    from proxies.presets import get_preset
    from proxies.train import TrainConfig, train_proxy

    cfg = get_preset(preset, vocab_size=manifest.vocab_size, seq_len=args.seq_len)
    steps = -(-tokens // (args.batch_size * args.seq_len))
    train = TrainConfig(
        train_tokens=tokens, batch_size=args.batch_size, lr=args.lr, schedule="constant",
        eval_tokens=args.eval_tokens, eval_every=max(1, steps // args.evals), seed=seed,
        device="cpu", threads=1,
    )  # fmt: skip
    result = train_proxy(cfg, train, domains, weights)
    points = [(e["tokens"], e["metrics"]) for e in result.evals] + [(result.tokens, result.metrics)]
    return [
        {
            "n_params": result.n_params,
            "tokens": int(seen),
            "final": seen == result.tokens,
            **{f"loss/{d.name}": float(metrics[f"val_loss/{d.name}"]) for d in domains},
            "train_s": result.train_s,
        }
        for seen, metrics in points
    ]


def load_grid(path: Path) -> pd.DataFrame:
    """The cached grid: ``path`` and the shard files written next to it (``--shard``)."""
    files = [path, *sorted(path.parent.glob(f"{path.stem}.shard*.parquet"))]
    frames = [pd.read_parquet(f) for f in files if f.exists()]
    if not frames:
        return pd.DataFrame()
    grid = pd.concat(frames, ignore_index=True)
    return grid.drop_duplicates(["settings", "preset", "mixture", "run_tokens", "tokens"])


def build_grid(args: argparse.Namespace) -> pd.DataFrame:
    """Train every (size, mixture) run missing from the cache; return the whole grid.

    With ``--shard K/P`` this process trains only every P-th missing run (offset K) and writes
    its own file next to ``--grid``, so P processes can share the work."""
    from mixopt.data.prepare import prepare_data
    from proxies.data import DomainTokens

    spec = demo_spec(args.corpus)
    manifest = prepare_data(spec, log=lambda line: print(line, flush=True))
    names = list(manifest.domains)
    domains = [
        DomainTokens(
            d.name, d.train_path, d.val_path, cast(Any, d.dtype), d.train_bytes, d.val_bytes
        )
        for d in manifest.domains.values()
    ]
    mixtures = grid_mixtures(spec, manifest, args.mixtures, args.seed)
    key = settings_key(args, manifest.data_hash)
    shard, shards = (int(x) for x in args.shard.split("/"))
    own_file = args.grid
    if shards > 1:
        own_file = args.grid.with_name(f"{args.grid.stem}.shard{shard}of{shards}.parquet")
    grid = load_grid(args.grid)
    if len(grid):
        grid = grid[grid["settings"] == key]
    done = set()
    if not grid.empty:
        done = set(zip(grid["preset"], grid["mixture"], grid["run_tokens"], strict=True))
    mine = pd.read_parquet(own_file) if own_file.exists() else pd.DataFrame()
    started = time.perf_counter()
    todo = [
        (preset, tokens, i)
        for preset, tokens in zip(args.sizes, args.tokens, strict=True)
        for i in range(len(mixtures))
        if (preset, i, tokens) not in done
    ]
    for preset, tokens, i in todo[shard::shards]:
        weights = dict(zip(names, map(float, mixtures[i]), strict=True))
        rows = train_run(args, manifest, domains, weights, preset, tokens, seed=args.seed)
        frame = pd.DataFrame(rows).assign(
            settings=key, preset=preset, mixture=i, run_tokens=tokens,
            **{f"w/{d}": weights[d] for d in names},
        )  # fmt: skip
        mine = pd.concat([mine, frame], ignore_index=True)
        own_file.parent.mkdir(parents=True, exist_ok=True)
        mine.to_parquet(own_file)
        final = frame[frame["final"]].iloc[0]
        mean = float(np.mean([final[f"loss/{d}"] for d in names]))
        print(
            f"grid: {preset} mixture {i:2d} ({tokens} tokens): mean val loss {mean:.4f}, "
            f"{final['train_s']:.0f}s train, {time.perf_counter() - started:.0f}s so far",
            flush=True,
        )
    grid = load_grid(args.grid)
    return grid[grid["settings"] == key]


# ------------------------------------------------------------------------------------ fits


def grid_arrays(grid: pd.DataFrame) -> dict[str, Any]:
    """The laws' input convention: X = weights, N, D; Y = per-domain losses; plus run keys."""
    names = [c.removeprefix("w/") for c in grid.columns if c.startswith("w/")]
    W = grid[[f"w/{d}" for d in names]].to_numpy()
    X = np.column_stack([W, grid["n_params"].to_numpy(float), grid["tokens"].to_numpy(float)])
    Y = grid[[f"loss/{d}" for d in names]].to_numpy()
    return {"X": X, "Y": Y, "names": names, "final": grid["final"].to_numpy(bool)}


def judge(pred: np.ndarray, truth: np.ndarray, std: np.ndarray | None = None) -> dict[str, Any]:
    """MAPE and Spearman over the mixtures; regret of the predicted best; 95% coverage."""
    from scipy.stats import spearmanr

    out: dict[str, Any] = {
        "mape_largest": float(np.mean(np.abs(pred - truth) / truth)),
        "spearman_largest": float(spearmanr(pred, truth).statistic),
        "regret_largest": float(truth[np.argmin(pred)] - truth.min()),
    }
    if std is not None and np.all(np.isfinite(std)):
        out["coverage95_largest"] = float(np.mean(np.abs(pred - truth) <= 1.96 * std))
    return out


def evaluate(grid: pd.DataFrame, bootstrap: int) -> dict[str, Any]:
    """Fit every law on the two smaller sizes (the points a search fits); judge at the largest's
    final point."""
    from mixopt.predictors import make_predictor
    from mixopt.predictors.scaling import LAW_NAMES, ScalingLawSelector, make_law
    from mixopt.predictors.scaling.rows import late_enough

    a = grid_arrays(grid)
    X, Y, final = a["X"], a["Y"], a["final"]
    sizes = np.unique(X[:, -2])
    if len(sizes) < 3:
        raise SystemExit(f"the grid has {len(sizes)} sizes; the benchmark needs three")
    # the rows a search would fit: each run's evaluations past the early share of its tokens
    train = (X[:, -2] < sizes[-1]) & late_enough(grid["tokens"], grid["run_tokens"])
    test = (X[:, -2] == sizes[-1]) & final
    truth = Y[test].mean(axis=1)
    print(
        f"fit on N = {sizes[0]:.0f}, {sizes[1]:.0f} ({train.sum()} points past the first "
        "quarter of each run), "
        f"judged on N = {sizes[-1]:.0f} at D = {X[test, -1].max():.0f} ({test.sum()} mixtures)",
        flush=True,
    )
    laws: dict[str, Any] = {}
    for name in LAW_NAMES:
        started = time.perf_counter()
        model = make_law(name, n_bootstrap=bootstrap).fit(X[train], Y[train])
        pred, std = model.predict(X[test], return_std=True)
        laws[name] = judge(pred, truth, std) | {"fit_s": time.perf_counter() - started}
        print(f"{name:9s} " + report_line(laws[name]), flush=True)
    started = time.perf_counter()
    selector = ScalingLawSelector(n_bootstrap=bootstrap).fit(X[train], Y[train])
    pred, std = selector.predict(X[test], return_std=True)
    chosen = judge(pred, truth, std) | {"fit_s": time.perf_counter() - started}
    print(f"selector chose {selector.choice_} ({selector.split_}): " + report_line(chosen))
    # scale-blind default: mixture → objective at the middle size, asked about the largest
    mid = (X[:, -2] == sizes[1]) & final
    auto = make_predictor("auto").fit(X[mid, :-2], Y[mid].mean(axis=1))
    baseline = judge(auto.predict(X[test, :-2]), truth)
    print("auto (scale-blind, mid size) " + report_line(baseline))
    # the mid size's own ranking, as a proxy-scale search would see it
    order = np.argsort(grid.loc[mid, "mixture"].to_numpy())
    target_order = np.argsort(grid.loc[test, "mixture"].to_numpy())
    proxy = judge(Y[mid].mean(axis=1)[order], truth[target_order])
    print("mid-size losses as they are " + report_line(proxy))
    return {
        "laws": laws,
        "chosen": selector.choice_,
        "selector": chosen | {"split": selector.split_, "cv": selector.scores_},
        "auto_mid_size": baseline,
        "mid_size_as_is": proxy,
        "grid": {
            "sizes": sizes.tolist(),
            "tokens": [float(X[X[:, -2] == n, -1].max()) for n in sizes],
            "mixtures": test.sum().item(),
            "points": len(X),
        },
    }


def report_line(r: dict[str, Any]) -> str:
    cover = f"  cover95 {r['coverage95_largest']:.2f}" if "coverage95_largest" in r else ""
    seconds = f"  ({r['fit_s']:.0f}s)" if "fit_s" in r else ""
    return (
        f"MAPE {100 * r['mape_largest']:.2f}%  Spearman {r['spearman_largest']:.3f}  "
        f"regret {r['regret_largest']:.4f}{cover}{seconds}"
    )


# ------------------------------------------------------------------------------------ main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, help="the demo corpus (default: the spec's)")
    parser.add_argument("--grid", type=Path, default=GRID_FILE)
    parser.add_argument("--mixtures", type=int, default=12)
    parser.add_argument("--sizes", nargs=3, default=["nano", "tiny", "small"])
    parser.add_argument("--tokens", type=int, nargs=3, default=[300_000, 600_000, 1_200_000])
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--evals", type=int, default=8, help="evaluations along each run")
    parser.add_argument("--eval-tokens", type=int, default=8192)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shard", default="0/1", help="K/P: train every P-th missing run")
    parser.add_argument("--bootstrap", type=int, default=16, help="bootstrap fits per law")
    parser.add_argument("--fit-only", action="store_true", help="use the cached grid as it is")
    parser.add_argument("--build-only", action="store_true", help="train the grid, fit nothing")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    warnings.filterwarnings("ignore")
    grid = load_grid(args.grid) if args.fit_only else build_grid(args)
    if args.build_only:
        return
    result = evaluate(grid, args.bootstrap)
    result["load_avg"] = os.getloadavg()[0]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
