"""``mixopt data``: prepare a spec's domains and print the manifest; cluster unlabeled text;
refine discovered domains after a search (CLIMB).

mixopt data prepare SPEC            # tokenize + shard (cached), one line per domain
mixopt data cluster 'raw/*.jsonl.gz' --k 8 --out clusters/ [--embedding-model models/minilm]
mixopt data refine runs/climb-… --out climb-r1.yaml   # prune/merge clusters, carry trials over
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from mixopt.cli.common import echo_err, user_errors

__all__ = ["data_app"]

data_app = typer.Typer(
    help="Prepare domains (tokenize, shard, cache) and split unlabeled text into domains.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@data_app.command("prepare")
@user_errors
def prepare(
    spec_path: Annotated[Path, typer.Argument(metavar="SPEC", help="Search spec (YAML).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the manifest as JSON.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress lines.")] = False,
) -> None:
    """Tokenize and shard SPEC's domains (reusing the cache) and summarise them."""
    from rich.console import Console
    from rich.table import Table

    from mixopt.data import prepare_data
    from mixopt.data.caps import apply_caps, caps_for_job
    from mixopt.space import MixtureSpace
    from mixopt.spec import load_spec

    spec = load_spec(spec_path)
    manifest = prepare_data(spec, log=(lambda _: None) if quiet else echo_err)
    caps = caps_for_job(spec, manifest)
    apply_caps(MixtureSpace.from_spec(spec), caps)  # an infeasible budget fails here, clearly
    if as_json:
        typer.echo(json.dumps(manifest.to_dict(), indent=2))
        return
    natural = manifest.natural_distribution()
    table = Table(title=f"data of {spec.name} (hash {manifest.data_hash})")
    for column in ("domain", "docs", "train tokens", "val tokens", "bytes/token", "natural"):
        table.add_column(column, justify="left" if column == "domain" else "right")
    if caps is not None:
        table.add_column("max weight", justify="right")
    table.add_column("skipped", justify="right")
    table.add_column("content", justify="left")
    for name, d in manifest.domains.items():
        row = [
            name,
            f"{d.documents:,}",
            f"{d.train_tokens:,}",
            f"{d.val_tokens:,}",
            f"{d.bytes_per_token:.2f}",
            f"{natural[name]:.3f}",
        ]
        if caps is not None:
            row.append(f"{caps.caps[name]:.3g}")
        row += [str(d.skipped_records), d.content_hash[:12]]
        table.add_row(*row)
    for name, d in manifest.evals.items():  # evaluated only: no train tokens, no weight
        row = [f"{name} (eval)", f"{d.documents:,}", "-", f"{d.val_tokens:,}"]
        row += [f"{d.bytes_per_token:.2f}", "-"] + ["-"] * (caps is not None)
        table.add_row(*row, str(d.skipped_records), d.content_hash[:12])
    if caps is not None:
        limits = ", ".join(sorted({f"{e:g}" for e in caps.epochs.values()}))
        table.caption = (
            f"max weight = train tokens x epoch limit ({limits}) / target.tokens "
            f"({caps.target_tokens:,.0f})"
        )
    Console().print(table)
    typer.echo(f"tokenizer: {manifest.tokenizer_path} (vocab {manifest.vocab_size})")


def _text_formats() -> list[str]:
    from mixopt.data.formats import AUTO, registered_formats

    return [AUTO, *(f.name for f in registered_formats() if not f.pretokenized)]


@data_app.command("cluster")
@user_errors
def cluster(
    paths: Annotated[
        list[str], typer.Argument(metavar="PATH...", help="Files, directories or globs.")
    ],
    k: Annotated[int, typer.Option("--k", "-k", help="Number of clusters (domains).")],
    out: Annotated[Path, typer.Option(help="Output folder (new or empty).")],
    text_field: Annotated[str, typer.Option(help="JSONL key / Parquet column.")] = "text",
    file_format: Annotated[
        str, typer.Option("--format", help=" | ".join(_text_formats()))
    ] = "auto",
    seed: Annotated[int, typer.Option(help="Random seed (sample, SVD, k-means).")] = 0,
    fit_docs: Annotated[int, typer.Option(help="Documents sampled to fit the model.")] = 20_000,
    dims: Annotated[int, typer.Option(help="SVD dimensions (at most).")] = 100,
    embedding_model: Annotated[
        Path | None,
        typer.Option(
            help="A local sentence-transformers model folder to embed documents with "
            "(default: TF-IDF + SVD). Needs mixopt[embeddings]."
        ),
    ] = None,
) -> None:
    """Split an unlabeled corpus into k domains (embeddings or TF-IDF + SVD, then k-means)."""
    from mixopt.data.cluster import DOMAINS_FILE, SUMMARY_FILE, cluster_corpus

    result = cluster_corpus(
        paths,
        out,
        k,
        text_field=text_field,
        format=file_format,
        seed=seed,
        fit_docs=fit_docs,
        dims=dims,
        embedding_model=embedding_model,
        log=echo_err,
    )
    for c in result.clusters:
        typer.echo(f"{c.name}: {c.documents} docs, {c.bytes:,} bytes; {', '.join(c.top_terms[:8])}")
        for example in c.examples[:1]:
            typer.echo(f"    e.g. {example[:120]!r}")
    typer.echo(
        f"wrote {out}/cluster_*.jsonl, {SUMMARY_FILE} and {DOMAINS_FILE} (paste its domains)"
    )


@data_app.command("refine")
@user_errors
def refine(
    job_dir: Annotated[Path, typer.Argument(metavar="JOB_DIR", help="A finished job directory.")],
    out: Annotated[Path, typer.Option(help="The new spec (YAML) to write; must not exist.")],
    predictor: Annotated[str, typer.Option(help="Predictor fitted to the trials.")] = "auto",
    prune_below: Annotated[
        float, typer.Option(help="A cluster the optimum gives less than this is negligible.")
    ] = 0.02,
    merge_above: Annotated[
        float, typer.Option(help="Merge clusters whose centroids' cosine exceeds this.")
    ] = 0.9,
    merge_effect: Annotated[
        float,
        typer.Option(help="Also merge interchangeable clusters (0 = off; e.g. 0.02)."),
    ] = 0.0,
    drop_above: Annotated[
        float, typer.Option(help="Drop old trials with more than this on pruned clusters.")
    ] = 0.05,
    seed: Annotated[int, typer.Option(help="Random seed (the optimum's candidates).")] = 0,
) -> None:
    """One CLIMB iteration: prune harmful or negligible clusters of a finished job with
    discovered domains, merge near-duplicates, write the refined spec and the carried trials."""
    from mixopt.search.refine_job import refine_job

    result = refine_job(
        job_dir,
        out,
        predictor=predictor,
        prune_below=prune_below,
        merge_above=merge_above,
        merge_effect=merge_effect,
        drop_above=drop_above,
        seed=seed,
    )
    for decision in result.plan.decisions:
        into = f" -> {decision.into}" if decision.into else ""
        typer.echo(f"{decision.cluster}: {decision.action}{into}: {decision.reason}")
    for setting in result.dropped_settings:
        echo_err(f"dropped {setting}: it named a pruned or merged cluster")
    typer.echo(
        f"wrote {result.spec_path} ({len(result.plan.names)} domains) and "
        f"{result.carried_path} ({result.carried} of {result.trials} trials carried over; "
        f"warm-start a study: mixopt runs import {result.carried_path} --weights weight/ "
        "--target objective --study STUDY.json)"
    )
