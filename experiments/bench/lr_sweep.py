"""Learning-rate sweep on the demo corpus: does the Step Law carry a tuned proxy lr across proxy
sizes and token budgets?

Every (size, token budget) point trains the real proxy (``proxies.train.train_proxy``, fp32 on one
CPU thread) on the natural mixture of the six demo domains (tokenized by mixopt's data stage, BPE
vocab 1024) at 5 learning rates on a log grid (ratio 2), once per seed (``--seeds``; every lr of a
seed starts from the same weights and sees the same batches), with the proxies' schedule (5%
linear warmup, cosine to 0.1x, AdamW wd 0.1, clip 1). The objective is the mean validation loss
over the six domains, averaged over the seeds.

- Grid centre: the demo's tuned lr (``--anchor-lr`` 3e-3 for ``--anchor`` tiny at 1M tokens)
  carried to the point by ``transfer_lr`` with the published exponents. The published law's
  absolute value (coefficient 1.79) is printed too: fit on far larger models, it is several
  times too high here. While the best lr is at an edge of its grid, the grid grows by one lr on
  that side (``--extend`` times at most).
- Best lr per point: the vertex of a least-squares parabola of loss against log lr over the best
  grid lr and up to two neighbours on each side (the "window"); its minimum is the best loss.
  The loss at any lr is read off the same parabola inside the window, and interpolated linearly
  (in log lr) between measured lrs outside it; outside the grid it is unknown.
- Noise: the seed spread is the mean absolute difference between two seeds' losses at the same
  lr, in % of the loss: it says how finely "within 1%" can be judged at all.
- Fitted law: ``StepLaw.fit`` over the (N, D, best lr) points, with standard errors of the
  exponents from the least-squares residuals.
- Transfer check: the best lr of the anchor point carried to every other point with the
  published exponents is *trained* there (every seed), and its loss compared with that point's
  best loss: "within 1%" means loss <= 1.01 x best. For every ordered pair of points (each point
  the anchor in turn) the loss at the carried lr is also read off the sweep, for three rules:
  no transfer (mixopt today: reuse the anchor's lr), the published exponents, the published N
  exponent alone (D exponent 0: the batch here stays fixed, while the law's D exponent comes
  with a batch growing as B*(D)), and exponents fitted on the other points (leave-one-out: the
  target point is not in the fit).

The batch is fixed at 8 x 128 = 1024 tokens: the Step Law's optimal batch is 700 tokens at 250k
and 1550 at 1M (``optimal_batch_tokens``), and its optimum is broad, so the batch is no
confounder here.

Every run is cached in ``--out`` (JSON, keyed by everything that determines it: model shape,
training settings and seed, data hash, mixture), so a rerun only trains missing runs. Runtime on
one otherwise idle core with the defaults (nano, tiny, small x 250k, 1M, two seeds): ~45 CPU
minutes; run it with ``nice`` in the background. The last line is one JSON object.

    nice -n 19 .venv/bin/python experiments/bench/lr_sweep.py > lr_sweep.log 2>&1 &
    .venv/bin/python experiments/bench/lr_sweep.py --sizes nano micro --tokens 20000 40000 \\
        --points 3 --seeds 0 --anchor micro:40000 --out /tmp/lr_smoke.json   # ~1 min
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from itertools import permutations
from pathlib import Path
from typing import Any

import numpy as np

from mixopt.atomic import write_atomic
from proxies.config import GPTConfig, TrainConfig
from proxies.hparams import (
    PUBLISHED_EXPONENTS,
    PUBLISHED_LAW,
    StepLaw,
    optimal_batch_tokens,
    transfer_lr,
)
from proxies.presets import PRESETS, get_preset
from proxies.tokens import DomainTokens

REPO = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO / "experiments" / "bench" / "out" / "lr_sweep.json"
# Scale-ladder shapes below tiny, used where proxies.presets does not have them (yet).
LOCAL_SHAPES: dict[str, Callable[[int, int], GPTConfig]] = {
    "nano": lambda v, t: GPTConfig(v, t, n_layer=2, n_head=2, d_model=32, d_ff=128),
    "micro": lambda v, t: GPTConfig(v, t, n_layer=2, n_head=4, d_model=48, d_ff=192),
}
FLAT = 0.01  # "within the flat region": loss within 1% of the point's best
WINDOW = 2  # grid lrs on each side of the best in the parabola fit


def model_config(name: str, vocab_size: int, seq_len: int) -> GPTConfig:
    if name in PRESETS:
        return get_preset(name, vocab_size=vocab_size, seq_len=seq_len)
    if name in LOCAL_SHAPES:
        return LOCAL_SHAPES[name](vocab_size, seq_len)
    raise SystemExit(f"unknown size {name!r}; valid: {', '.join([*PRESETS, *LOCAL_SHAPES])}")


@dataclass(frozen=True)
class Data:
    domains: list[DomainTokens]
    natural: dict[str, float]
    vocab_size: int
    data_hash: str


def prepare(corpus: Path, cache: Path, vocab: int) -> Data:
    """Tokenize the corpus's domains (one JSONL file each) with mixopt's data stage (cached)."""
    from mixopt.data import prepare_data
    from mixopt.spec import parse_spec

    files = sorted(corpus.glob("*.jsonl"))
    if len(files) < 2:
        raise SystemExit(f"{corpus}: need at least two *.jsonl domains (build_corpus.py)")
    spec = parse_spec(
        {
            "name": "lr-sweep",
            "domains": [{"name": f.stem, "paths": [str(f)]} for f in files],
            "tokenizer": {"kind": "bpe", "vocab_size": vocab},
            "data": {"cache_dir": str(cache), "workers": 1},
        }
    )
    manifest = prepare_data(spec, log=lambda line: print(f"  {line}", flush=True))
    return Data(
        list(manifest.domain_tokens()),
        manifest.natural_distribution(),
        manifest.vocab_size,
        manifest.data_hash,
    )


# ------------------------------------------------------------------------------------ runs


@dataclass(frozen=True)
class Point:
    size: str
    tokens: int
    n: int  # non-embedding parameters

    @property
    def label(self) -> str:
        return f"{self.size}/{self.tokens // 1000}k"


class Sweep:
    """Trains (point, lr, seed) runs, each once: results live in the JSON cache file."""

    def __init__(self, args: argparse.Namespace, data: Data) -> None:
        self.args, self.data = args, data
        self.path = Path(args.out)
        self.cache: dict[str, dict[str, Any]] = (
            json.loads(self.path.read_text())["runs"] if self.path.is_file() else {}
        )
        self.trained = 0
        self.cpu_s = 0.0

    def configs(self, point: Point, lr: float, seed: int) -> tuple[GPTConfig, TrainConfig]:
        a = self.args
        model = model_config(point.size, self.data.vocab_size, a.seq_len)
        train = TrainConfig(
            train_tokens=point.tokens,
            batch_size=a.batch,
            lr=lr,
            eval_tokens=a.eval_tokens,
            seed=seed,
            device="cpu",
            threads=1,
        )
        return model, train

    def key(self, point: Point, lr: float, seed: int) -> str:
        model, train = self.configs(point, lr, seed)
        settings = {k: v for k, v in train.to_dict().items() if k not in ("threads", "device")}
        blob = [model.to_dict(), settings, self.data.data_hash, sorted(self.data.natural.items())]
        return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()[:20]

    def run(self, point: Point, lr: float, seed: int) -> float:
        """The objective of one run: from the cache, else trained now (inf if it diverged)."""
        key = self.key(point, lr, seed)
        if key not in self.cache:
            from proxies.train import train_proxy

            model, train = self.configs(point, lr, seed)
            cpu = time.process_time()
            result = train_proxy(model, train, self.data.domains, self.data.natural)
            cpu = time.process_time() - cpu
            objective = float(
                np.mean([result.metrics[f"val_loss/{d.name}"] for d in self.data.domains])
            )
            self.cache[key] = {
                "size": point.size,
                "tokens": point.tokens,
                "n": point.n,
                "lr": lr,
                "seed": seed,
                "objective": objective if math.isfinite(objective) else None,
                "metrics": {k: v for k, v in result.metrics.items() if math.isfinite(v)},
                "curve": [[t, v] for t, v in result.curve if math.isfinite(v)],
                "steps": result.steps,
                "cpu_s": cpu,
                "wall_s": result.wall_s,
            }
            self.trained += 1
            self.cpu_s += cpu
            self.save()
            print(
                f"  trained {point.label:<10} lr {lr:.4g} seed {seed}: loss {objective:.4f} "
                f"({cpu:.0f} CPU-s, {result.wall_s:.0f} s)",
                flush=True,
            )
        value = self.cache[key]["objective"]
        return math.inf if value is None else float(value)

    def losses(self, point: Point, lr: float) -> list[float]:
        """One loss per seed."""
        return [self.run(point, lr, seed) for seed in self.args.seeds]

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self.path, json.dumps({"runs": self.cache}, indent=1, sort_keys=True))


# -------------------------------------------------------------------------------- analysis


def rounded(lr: float) -> float:
    return float(f"{lr:.4g}")  # grid lrs as short, stable cache keys


@dataclass
class Curve:
    """A point's losses (one list per lr, one loss per seed) over its sorted lr grid."""

    lrs: list[float]
    runs: list[list[float]]

    @property
    def losses(self) -> list[float]:
        """Mean over seeds (inf where any seed diverged)."""
        return [float(np.mean(r)) for r in self.runs]

    def add(self, lr: float, runs: list[float]) -> Curve:
        pairs = sorted([*zip(self.lrs, self.runs, strict=True), (lr, runs)])
        return Curve([p[0] for p in pairs], [p[1] for p in pairs])

    def at_edge(self) -> str | None:
        i = int(np.argmin(self.losses))
        return "low" if i == 0 else "high" if i == len(self.lrs) - 1 else None

    def window(self) -> tuple[list[float], np.ndarray | None]:
        """The log lrs of the best lr's window and the parabola (a, b, c) fit over them (None
        at an edge, with a diverged lr in the window, or where the fit does not open upwards)."""
        losses = self.losses
        i = int(np.argmin(losses))
        lo, hi = max(0, i - WINDOW), min(len(losses), i + WINDOW + 1)
        xs = [math.log(v) for v in self.lrs[lo:hi]]
        ys = losses[lo:hi]
        if self.at_edge() or len(xs) < 3 or not all(map(math.isfinite, ys)):
            return xs, None
        coef = np.polyfit(np.array(xs), np.array(ys), 2)  # (3,): a, b, c
        return xs, (coef if coef[0] > 0 else None)

    def best(self) -> tuple[float, float]:
        """(best lr, best loss): the window parabola's vertex (clipped to the window), else the
        best measured lr."""
        xs, coef = self.window()
        i = int(np.argmin(self.losses))
        if coef is None:
            return self.lrs[i], self.losses[i]
        a, b, c = coef
        x = float(np.clip(-b / (2 * a), xs[0], xs[-1]))
        return math.exp(x), float(a * x * x + b * x + c)

    def loss_at(self, lr: float) -> float | None:
        """The loss at ``lr``: the window parabola inside the window, linear in log lr between
        measured lrs outside it, None outside the grid or next to a diverged lr."""
        x = math.log(lr)
        xs_all = [math.log(v) for v in self.lrs]
        if not xs_all[0] - 1e-9 <= x <= xs_all[-1] + 1e-9:
            return None
        xs, coef = self.window()
        if coef is not None and xs[0] - 1e-9 <= x <= xs[-1] + 1e-9:
            return float(np.polyval(coef, x))
        value = float(np.interp(x, xs_all, self.losses))
        return value if math.isfinite(value) else None

    def seed_spread(self) -> float | None:
        """Mean |seed 0 - seed 1| / loss over the lrs (None with one seed)."""
        diffs = [abs(r[0] - r[1]) / np.mean(r) for r in self.runs if len(r) > 1]
        finite = [d for d in diffs if math.isfinite(d)]
        return float(np.mean(finite)) if finite else None


def fit_with_errors(points: list[tuple[float, float, float]]) -> dict[str, Any]:
    """StepLaw.fit plus the exponents' standard errors (from the residuals; None when exact)."""
    law = StepLaw.fit(points)
    logs = np.log(np.array(points))  # (P, 3)
    design = np.column_stack([np.ones(len(logs)), logs[:, 0], logs[:, 1]])  # (P, 3)
    residuals = logs[:, 2] - design @ np.array([math.log(law.coefficient), *law.exponents])
    dof = len(logs) - 3
    stderr: list[float | None] = [None, None]
    if dof > 0:
        sigma2 = float(residuals @ residuals) / dof
        cov = sigma2 * np.linalg.inv(design.T @ design)  # (3, 3)
        stderr = [math.sqrt(cov[1, 1]), math.sqrt(cov[2, 2])]
    return {
        "coefficient": law.coefficient,
        "n_exponent": law.n_exponent,
        "d_exponent": law.d_exponent,
        "n_exponent_stderr": stderr[0],
        "d_exponent_stderr": stderr[1],
        "residual_rms_log_lr": float(np.sqrt(np.mean(residuals**2))),
    }


def share_within(values: list[float | None]) -> dict[str, Any]:
    known = [v for v in values if v is not None]
    return {
        "within_1pct": sum(v <= FLAT for v in known) / len(known) if known else None,
        "pairs": len(known),
        "outside_grid": len(values) - len(known),
        "median_excess": float(np.median(known)) if known else None,
        "max_excess": max(known) if known else None,
    }


# ------------------------------------------------------------------------------- stages


def sweep_grids(
    sweep: Sweep, points: list[Point], centre: dict[Point, float]
) -> dict[Point, Curve]:
    """Every point's grid (cheapest points first), then one more lr at an edge while the best
    lr sits there (``--extend`` times at most)."""
    args = sweep.args
    half = args.points // 2
    order = sorted(points, key=lambda p: p.n * p.tokens)
    curves: dict[Point, Curve] = {}
    for p in order:
        lrs = [rounded(centre[p] * args.ratio**k) for k in range(-half, half + 1)]
        curves[p] = Curve(lrs, [sweep.losses(p, lr) for lr in lrs])
    for p in order:
        for _ in range(args.extend):
            edge = curves[p].at_edge()
            if edge is None:
                break
            lrs = curves[p].lrs
            lr = rounded(lrs[0] / args.ratio if edge == "low" else lrs[-1] * args.ratio)
            curves[p] = curves[p].add(lr, sweep.losses(p, lr))
    return curves


def verify_transfer(
    sweep: Sweep, anchor: Point, points: list[Point], best: dict[Point, tuple[float, float]]
) -> dict[Point, dict[str, Any]]:
    """Train every other point at the anchor's best lr carried by the published exponents."""
    out = {}
    for p in sorted(points, key=lambda q: q.n * q.tokens):
        if p == anchor:
            continue
        lr = rounded(transfer_lr(best[anchor][0], anchor.n, anchor.tokens, p.n, p.tokens))
        loss = float(np.mean(sweep.losses(p, lr)))
        out[p] = {"lr": lr, "loss": loss, "excess": loss / best[p][1] - 1.0}
    return out


def pair_rules(
    points: list[Point], curves: dict[Point, Curve], best: dict[Point, tuple[float, float]]
) -> dict[str, dict[str, Any]]:
    """For every ordered pair (a, b): the excess loss at b of a's best lr carried by each rule."""
    rules: dict[str, list[float | None]] = {
        "none": [],
        "published": [],
        "published_n_only": [],
        "fitted_loo": [],
    }
    for a, b in permutations(points, 2):
        lr_a, (_, best_b) = best[a][0], best[b]
        carried = {
            "none": lr_a,
            "published": transfer_lr(lr_a, a.n, a.tokens, b.n, b.tokens),
            "published_n_only": transfer_lr(
                lr_a, a.n, a.tokens, b.n, b.tokens, exponents=(PUBLISHED_EXPONENTS[0], 0.0)
            ),
        }
        others = [(q.n, q.tokens, best[q][0]) for q in points if q != b]
        try:
            loo = StepLaw.fit(others).exponents
            carried["fitted_loo"] = transfer_lr(lr_a, a.n, a.tokens, b.n, b.tokens, exponents=loo)
        except ValueError:  # the other points do not determine both exponents
            pass
        for rule, lr in carried.items():
            loss = curves[b].loss_at(lr)
            rules[rule].append(None if loss is None else loss / best_b - 1.0)
    return {rule: share_within(values) for rule, values in rules.items()}


def pct(value: float | None, signed: bool = True, digits: int = 2) -> str:
    if value is None:
        return "-"
    return f"{value:+.{digits}%}" if signed else f"{value:.{digits}%}"


def report(
    points: list[Point],
    curves: dict[Point, Curve],
    best: dict[Point, tuple[float, float]],
    verified: dict[Point, dict[str, Any]],
) -> list[dict[str, Any]]:
    print()
    print(
        f"{'point':<11} {'N':>7} {'D':>8} {'B* tok':>6} {'law lr':>7} {'grid lrs':>17} "
        f"{'best lr':>8} {'loss':>7} {'1% flat lrs':>15} {'seeds':>6} {'carried':>8} "
        f"{'excess':>7}"
    )
    rows = []
    for p in points:
        c = curves[p]
        lr_best, loss_best = best[p]
        flat = [lr for lr, loss in zip(c.lrs, c.losses, strict=True) if loss <= loss_best * 1.01]
        check = verified.get(p)
        flat_text = f"{min(flat):.1e}-{max(flat):.1e}" if flat else "-"
        edge = f" ({c.at_edge()} edge)" if c.at_edge() else ""
        print(
            f"{p.label:<11} {p.n / 1e6:>6.3f}M {p.tokens:>8} "
            f"{optimal_batch_tokens(p.tokens):>6.0f} {PUBLISHED_LAW.lr(p.n, p.tokens):>7.4f} "
            f"{c.lrs[0]:>8.2e}-{c.lrs[-1]:<8.2e} {lr_best:>8.2e} {loss_best:>7.4f} "
            f"{flat_text:>15} {pct(c.seed_spread(), signed=False):>6} "
            + (f"{check['lr']:>8.2e} {check['excess']:>+7.2%}" if check else f"{'anchor':>8}")
            + edge
        )
        print(
            f"{'':<11} losses: "
            + "  ".join(f"{lr:.2e}: {loss:.3f}" for lr, loss in zip(c.lrs, c.losses, strict=True))
        )
        rows.append(
            {
                "size": p.size,
                "tokens": p.tokens,
                "n": p.n,
                "best_lr": lr_best,
                "best_loss": loss_best,
                "at_edge": c.at_edge(),
                "grid": c.lrs,
                "losses": [v if math.isfinite(v) else None for v in c.losses],
                "seed_spread": c.seed_spread(),
                "law_lr_published": PUBLISHED_LAW.lr(p.n, p.tokens),
                "transfer_from_anchor": check,
            }
        )
    return rows


# ------------------------------------------------------------------------------------ main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["nano", "tiny", "small"])
    parser.add_argument("--tokens", nargs="+", type=int, default=[250_000, 1_000_000])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--points", type=int, default=5, help="lrs per grid (odd)")
    parser.add_argument("--ratio", type=float, default=2.0, help="between neighbouring lrs")
    parser.add_argument("--extend", type=int, default=2, help="most lrs added at a grid edge")
    parser.add_argument("--anchor", default="tiny:1000000", help="size:tokens of the tuned lr")
    parser.add_argument("--anchor-lr", type=float, default=3e-3, help="the demo's tuned lr")
    parser.add_argument("--no-verify", action="store_true", help="skip the transfer runs")
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--eval-tokens", type=int, default=16_384)
    parser.add_argument("--vocab", type=int, default=1024)
    parser.add_argument("--corpus", type=Path, default=Path("/work/corpus"))
    parser.add_argument("--cache", type=Path, default=Path("/work/cache-lr"))
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    if args.points < 3 or args.points % 2 == 0:
        raise SystemExit("--points must be odd and >= 3")

    started_cpu, started = time.process_time(), time.perf_counter()
    load_start = os.getloadavg()[0]
    data = prepare(args.corpus, args.cache, args.vocab)
    sweep = Sweep(args, data)
    points = [
        Point(
            size, tokens, model_config(size, data.vocab_size, args.seq_len).non_embedding_params()
        )
        for size in args.sizes
        for tokens in args.tokens
    ]
    anchor_size, anchor_tokens = args.anchor.split(":")
    anchor_n = model_config(anchor_size, data.vocab_size, args.seq_len).non_embedding_params()
    anchor = next(
        (p for p in points if (p.size, p.tokens) == (anchor_size, int(anchor_tokens))), None
    )
    print(
        f"lr sweep: {len(points)} points x {args.points} lrs (ratio {args.ratio}) x seeds "
        f"{args.seeds}, natural mixture of {len(data.domains)} domains, T {args.seq_len}, "
        f"B {args.batch}; grids centred on {args.anchor_lr:g} at {args.anchor} carried by the "
        f"published exponents; cache {args.out} ({len(sweep.cache)} runs)",
        flush=True,
    )
    centre = {
        p: transfer_lr(args.anchor_lr, anchor_n, int(anchor_tokens), p.n, p.tokens) for p in points
    }
    curves = sweep_grids(sweep, points, centre)
    best = {p: curves[p].best() for p in points}
    fitted = fit_with_errors([(p.n, p.tokens, best[p][0]) for p in points])
    verified = verify_transfer(sweep, anchor, points, best) if anchor and not args.no_verify else {}
    pairs = pair_rules(points, curves, best)
    spreads = [v for v in (curves[p].seed_spread() for p in points) if v is not None]
    rows = report(points, curves, best, verified)

    print()
    n_err, d_err = fitted["n_exponent_stderr"], fitted["d_exponent_stderr"]
    print(
        f"fitted:    lr = {fitted['coefficient']:.3g} * N^{fitted['n_exponent']:+.3f} "
        f"(+-{n_err or math.nan:.3f}) * D^{fitted['d_exponent']:+.3f} (+-{d_err or math.nan:.3f})"
        f", rms residual {fitted['residual_rms_log_lr']:.3f} in log lr"
    )
    print(
        f"published: lr = {PUBLISHED_LAW.coefficient} * N^{PUBLISHED_EXPONENTS[0]:+.3f} * "
        f"D^{PUBLISHED_EXPONENTS[1]:+.3f}"
    )
    for rule, s in pairs.items():
        print(
            f"every pair, read off the sweep, {rule:<16}: {pct(s['within_1pct'], False, 0)} within "
            f"1% of the best ({s['pairs']} pairs, {s['outside_grid']} outside the grid), median "
            f"excess {pct(s['median_excess'])}, max {pct(s['max_excess'])}"
        )
    share = (
        sum(v["excess"] <= FLAT for v in verified.values()) / len(verified) if verified else None
    )
    if anchor and verified:
        print(
            f"from {anchor.label}'s best lr by the published exponents, trained: "
            f"{pct(share, False, 0)} of {len(verified)} points within 1%"
        )
    print(
        f"trained {sweep.trained} runs now ({sweep.cpu_s / 60:.1f} CPU-min), {len(sweep.cache)} "
        f"cached in all; this call {time.process_time() - started_cpu:.0f} CPU-s, "
        f"{time.perf_counter() - started:.0f} s; load average {load_start:.1f} -> "
        f"{os.getloadavg()[0]:.1f}"
    )
    summary = {
        "bench": "lr_sweep",
        "exponents_fitted": fitted,
        "exponents_published": {
            "coefficient": PUBLISHED_LAW.coefficient,
            "n_exponent": PUBLISHED_EXPONENTS[0],
            "d_exponent": PUBLISHED_EXPONENTS[1],
        },
        "transfer_within_1pct": share,
        "transfer_anchor": anchor.label if anchor else None,
        "pairs_read_off_sweep": pairs,
        "seed_spread_median": float(np.median(spreads)) if spreads else None,
        "points": rows,
        "settings": {
            **{k: v for k, v in vars(args).items() if k not in ("corpus", "cache", "out")},
            "data_hash": data.data_hash,
        },
        "runs_trained_now": sweep.trained,
        "cpu_minutes_trained_now": sweep.cpu_s / 60,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
