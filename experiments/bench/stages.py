"""Anneal-stage search on the demo corpus: what branching saves, and what a searched anneal buys.

The recipe: two stages, ``main`` at the natural mixture for ``--main-share`` (0.8) of the tokens,
then an ``anneal`` whose mixture is searched, with the ``wsd`` schedule (constant learning rate,
then a linear decay over the anneal). Data: the demo corpus tokenized by mixopt's own data stage
with the demo spec's tokenizer.

(a) **Branching cost.** ``--mixtures`` anneal mixtures (natural, uniform, draws of the demo's
    sampler) are trained twice on the search proxy with one seed: from scratch, and branched from
    one shared trunk (``proxies.branch``: the main stage trained once, then only each anneal).
    Reported: training tokens per trial (marginal, and amortised with the trunk over the trials
    of this bench and of a 30-trial search), wall time per trial and their ratios, and whether
    both give the same results (largest absolute difference of the objective, Spearman of the
    ranking).
(b) **The searched anneal vs an anneal on the main stage's mixture.** A real staged job
    (``run_job`` with Ray, the demo's bo search on the search proxy, no ladder) validated at a
    larger proxy with paired seeds next to the natural anneal (the main stage's mixture kept
    throughout) and the uniform one: validated objectives, the verdict's paired differences, and
    the job's training tokens with branching vs every trial from scratch.
(c) **DoReMi and Aioli vs the offline search.** The same job without stages (cosine schedule), with
    ``doremi`` among the validated baselines (``mixopt.search.online``: a reference proxy on the
    natural mixture and a Group-DRO proxy, on the search proxy), validated alike; the costs of
    all in search proxies; and Aioli's schedule (``validate.baselines: aioli``), validated as one.
    Both jobs validate ``--path`` mixtures toward natural (default 1, the spec's default: the
    halfway mixture), and the mixture validation chose is printed (``validation_choice``);
    ``--no-online-baselines`` runs (c) without DoReMi and Aioli.

The objective is the mean validation loss over the six domains. The last line is one JSON object
(``branch_speedup``: a trial's wall time from scratch over branched; ``branch_token_ratio``;
``branch_spearman``: branched vs from-scratch objectives; then every part's details).

    nice .venv/bin/python experiments/bench/stages.py [--corpus DIR] [--skip-job]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scaling import demo_spec, grid_mixtures

OUT = Path(__file__).resolve().parent / "out" / "stages"
SEARCH_SIZE = 30  # the trials of a typical anneal search, for the amortised ratio


def recipe_stages(natural: dict[str, float], main_share: float) -> list[dict[str, Any]]:
    return [
        {"name": "main", "share": main_share, "weights": natural},
        {"name": "anneal", "share": round(1 - main_share, 9), "search": True},
    ]


# ----------------------------------------------------------------------------- (a) branching


def branching_cost(args: argparse.Namespace, spec: Any, manifest: Any) -> dict[str, Any]:
    from scipy.stats import spearmanr

    from mixopt.spec import ProxySpec
    from mixopt.trials import TrialRequest
    from mixopt.worker import execute_trial

    natural = manifest.natural_distribution()
    stages = spec.train_stages()  # the spec holds the recipe
    proxy = ProxySpec(
        preset=args.preset, seq_len=args.seq_len, batch_size=args.batch_size,
        train_tokens=args.tokens, lr=args.lr, eval_tokens=args.eval_tokens, schedule="wsd",
    )  # fmt: skip
    domains = manifest.domain_tokens()
    names = [d.name for d in domains]
    mixtures = grid_mixtures(spec, manifest, args.mixtures, seed=1)
    trunk_dir = Path(tempfile.mkdtemp(prefix="trunks-", dir=OUT))

    def run(i: int, weights: np.ndarray, trunk: str | None) -> dict[str, Any]:
        request = TrialRequest.build(
            f"m{i}", dict(zip(names, map(float, weights), strict=True)), seed=args.seed,
            proxy=proxy, vocab_size=manifest.vocab_size, domains=domains, threads=1,
            stages=stages, trunk_dir=trunk,
        )  # fmt: skip
        result = execute_trial(request)
        objective = float(np.mean([result["metrics"][f"val_loss/{d}"] for d in names]))
        trained = (result["steps"] - result["trunk_steps"]) * args.batch_size * args.seq_len
        print(
            f"  {'branched' if trunk else 'scratch '} m{i}: objective {objective:.4f}, "
            f"trained {trained:,} tokens in {result['wall_s']:.1f} s"
            + (" (and saved the trunk)" if result["trunk_trained"] else ""),
            flush=True,
        )
        return {"objective": objective, "trained": trained, "wall_s": result["wall_s"],
                "trunk_trained": result["trunk_trained"]}  # fmt: skip

    rows = []
    try:
        for i, weights in enumerate(mixtures):  # interleaved: machine noise hits both alike
            scratch = run(i, weights, None)
            branched = run(i, weights, str(trunk_dir))
            rows.append((scratch, branched))
    finally:
        shutil.rmtree(trunk_dir, ignore_errors=True)
    scratch_obj = np.array([s["objective"] for s, _ in rows])
    branched_obj = np.array([b["objective"] for _, b in rows])
    trunk_row = next(b for _, b in rows if b["trunk_trained"])
    branches = [b for _, b in rows if not b["trunk_trained"]]
    scratch_tokens = float(np.mean([s["trained"] for s, _ in rows]))
    branch_tokens = float(np.mean([b["trained"] for b in branches]))
    trunk_tokens = trunk_row["trained"] - branch_tokens
    scratch_wall = float(np.mean([s["wall_s"] for s, _ in rows]))
    branch_wall = float(np.mean([b["wall_s"] for b in branches]))
    trunk_wall = trunk_row["wall_s"] - branch_wall

    def amortised(n: int, per_trial: float, trunk: float, scratch: float) -> float:
        return scratch / (per_trial + trunk / n)

    tokens = (branch_tokens, trunk_tokens, scratch_tokens)

    return {
        "natural": natural,
        "mixtures": len(rows),
        "tokens_per_trial_scratch": scratch_tokens,
        "tokens_per_trial_branched": branch_tokens,
        "trunk_tokens": trunk_tokens,
        "token_ratio_marginal": scratch_tokens / branch_tokens,
        "token_ratio_amortised_bench": amortised(len(rows), *tokens),
        "token_ratio_amortised_30": amortised(SEARCH_SIZE, *tokens),
        "wall_per_trial_scratch_s": scratch_wall,
        "wall_per_trial_branched_s": branch_wall,
        "wall_ratio_marginal": scratch_wall / branch_wall,
        "wall_ratio_amortised_30": amortised(SEARCH_SIZE, branch_wall, trunk_wall, scratch_wall),
        "max_abs_objective_diff": float(np.max(np.abs(scratch_obj - branched_obj))),
        "spearman_branched_vs_scratch": float(spearmanr(scratch_obj, branched_obj).statistic),
        "objective_spread": float(np.ptp(scratch_obj)),
    }


# ---------------------------------------------------------------------------- (b) the job


def bench_job(
    args: argparse.Namespace, spec_data: dict[str, Any], base: Path, *, online: bool = False
) -> dict[str, Any]:
    """The staged job of (b); ``online``: the one-mixture job of (c), with DoReMi validated."""
    import pandas as pd

    from mixopt.job import JobDir
    from mixopt.search.launch import run_job
    from mixopt.spec import parse_spec

    data = json.loads(json.dumps(spec_data))
    data["name"] = "online-bench" if online else "stages-bench"
    data["search"].pop("scales", None)
    data["search"].update(initial_trials=args.job_initial, rounds=args.job_rounds)
    data["validate"] = {
        "baselines": ["uniform", "natural"], "seeds": args.validate_seeds,
        "preset": args.validate_preset, "train_tokens": args.validate_tokens, "path": args.path,
    }  # fmt: skip
    if online:
        del data["stages"]
        data["proxy"]["schedule"] = "cosine"
    if online and not args.no_online_baselines:
        data["validate"]["baselines"] += ["doremi", "aioli"]
        data["validate"]["doremi"] = {"reference": "natural", "step_size": args.doremi_step}
    data["target"].pop("params", None)
    data["tracking"] = {"experiment": "mixopt-stages-bench"}
    spec = parse_spec(data, source="stages-bench", base_dir=base)
    job = JobDir.new(spec, OUT / f"job-{time.strftime('%Y%m%d-%H%M%S')}")
    started = time.perf_counter()
    outcome = run_job(spec, job, runner="ray")
    wall = time.perf_counter() - started
    rec = outcome.recommendation
    runs = pd.read_parquet(job.path / "runs.parquet")
    done = runs[runs["status"] == "completed"]
    steps_tokens = done["tokens"].astype(float)
    # a trial that trained its seed's trunk counts it; a branched one only its own anneal
    trained = steps_tokens * (1 - done["trunk_steps"].astype(float) / done["steps"].astype(float))
    validation = {
        name: {"mean": v.get("objective"), "std": v.get("objective_std")}
        for name, v in rec.get("validation", {}).items()
        if isinstance(v, dict) and "objective" in v
    }
    return {
        "job_dir": str(job.path),
        "wall_s": wall,
        "trials": len(done),
        "recommended_anneal": rec["weights"],
        "validation_choice": rec.get("validation", {}).get("recommended", {}).get("chosen_from"),
        "validation": validation,
        "verdict": rec.get("verdict"),
        "search_trials": int((done["stage"] == "search").sum()),
        **{
            name: {
                k: v
                for k, v in rec.get("online", {}).get(name, {}).items()
                if k
                in ("weights", "validated_weights", "schedule", "proxy_runs", "wall_s", "warnings")
            }
            for name in ("doremi", "aioli")
        },
        "tokens_trained_branched": float(trained.sum()),
        "tokens_trained_scratch": float(steps_tokens.sum()),
        "job_token_ratio": float(steps_tokens.sum() / trained.sum()),
    }


# ------------------------------------------------------------------------------------ main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--corpus", type=Path, default=None, help="demo corpus folder")
    p.add_argument("--main-share", type=float, default=0.8)
    p.add_argument("--preset", default="nano", help="search proxy preset")
    p.add_argument("--tokens", type=int, default=300_000, help="search proxy tokens")
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=0.006)
    p.add_argument("--eval-tokens", type=int, default=8192)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--mixtures", type=int, default=8, help="anneal mixtures in part (a)")
    p.add_argument("--skip-job", action="store_true", help="skip part (b)")
    p.add_argument("--skip-online", action="store_true", help="skip part (c)")
    p.add_argument("--doremi-step", type=float, default=1.0, help="DoReMi's step size")
    p.add_argument("--job-initial", type=int, default=10)
    p.add_argument("--job-rounds", type=int, default=2)
    p.add_argument("--validate-preset", default="tiny")
    p.add_argument("--validate-tokens", type=int, default=600_000)
    p.add_argument("--validate-seeds", type=int, default=3)
    p.add_argument("--path", type=int, default=1, help="validate.path of the jobs")
    p.add_argument(
        "--no-online-baselines", action="store_true", help="part (c) without DoReMi and Aioli"
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    import yaml
    from scaling import DEMO_SPEC

    from mixopt.data.prepare import prepare_data
    from mixopt.spec import parse_spec

    args = parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    base = demo_spec(args.corpus)
    manifest = prepare_data(base, log=lambda line: print(line, flush=True))
    natural = {k: round(v, 9) for k, v in manifest.natural_distribution().items()}
    natural[max(natural, key=natural.get)] += round(1 - sum(natural.values()), 9)  # type: ignore[arg-type]
    data = yaml.safe_load(DEMO_SPEC.read_text())
    if args.corpus is not None:
        for domain in data["domains"]:
            domain["paths"] = [str(args.corpus / Path(p).name) for p in domain["paths"]]
    data["stages"] = recipe_stages(natural, args.main_share)
    data["proxy"].update(
        preset=args.preset, train_tokens=args.tokens, seq_len=args.seq_len,
        batch_size=args.batch_size, lr=args.lr, eval_tokens=args.eval_tokens, schedule="wsd",
    )  # fmt: skip
    data["proxy"].pop("eval_every", None)
    spec = parse_spec(data, source=str(DEMO_SPEC), base_dir=DEMO_SPEC.parent)

    print(f"(a) branching: {args.mixtures} anneal mixtures, {args.preset}, {args.tokens:,} tokens")
    cost = branching_cost(args, spec, manifest)
    print(
        f"tokens per trial: scratch {cost['tokens_per_trial_scratch']:,.0f}, branched "
        f"{cost['tokens_per_trial_branched']:,.0f} -> {cost['token_ratio_marginal']:.2f}x "
        f"(amortised over {SEARCH_SIZE} trials {cost['token_ratio_amortised_30']:.2f}x); wall per "
        f"trial {cost['wall_per_trial_scratch_s']:.1f} s vs "
        f"{cost['wall_per_trial_branched_s']:.1f} s -> {cost['wall_ratio_marginal']:.2f}x; same "
        f"results: max |diff| {cost['max_abs_objective_diff']:.2e}, Spearman "
        f"{cost['spearman_branched_vs_scratch']:.3f}",
        flush=True,
    )
    out: dict[str, Any] = {
        "branch_speedup": cost["wall_ratio_marginal"],  # wall time of a trial, scratch/branched
        "branch_token_ratio": cost["token_ratio_marginal"],
        "branch_spearman": cost["spearman_branched_vs_scratch"],
        "branching": cost,
    }
    if not args.skip_job:
        print(
            "(b) a staged job: search the anneal, validate against the natural anneal", flush=True
        )
        job = bench_job(args, data, DEMO_SPEC.parent)
        for name, v in job["validation"].items():
            print(f"  {name:>12}: {v['mean']:.4f} ± {v['std'] or 0:.4f}")
        print(f"  job: {job['trials']} trials, {job['wall_s']:.0f} s; tokens trained "
              f"{job['tokens_trained_branched']:,.0f} vs {job['tokens_trained_scratch']:,.0f} "
              f"from scratch ({job['job_token_ratio']:.2f}x)", flush=True)  # fmt: skip
        out["job"] = job
    if not args.skip_online:
        print("(c) DoReMi and Aioli vs the offline search, validated alike")
        job = bench_job(args, data, DEMO_SPEC.parent, online=True)
        for name, v in job["validation"].items():
            print(f"  {name:>12}: {v['mean']:.4f} ± {v['std'] or 0:.4f}")
        chosen = job["validation_choice"]
        print(f"  recommended after validation: {chosen or 'the search choice'}")
        runs = [job[m].get("proxy_runs", float("nan")) for m in ("doremi", "aioli")]
        print(
            f"  cost: the search {job['search_trials']} search proxies, DoReMi {runs[0]:.1f}, "
            f"Aioli {runs[1]:.1f}"
        )
        print(f"  {job['verdict']}", flush=True)
        out["online"] = job
    print(json.dumps(out, default=str))


if __name__ == "__main__":
    main()
