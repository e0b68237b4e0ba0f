"""From a trial to what a worker trains: its proxy (by stage and fidelity level), the data (and
the eval sets it is evaluated on), the threads it was granted, its checkpoint folder and the
job's mixture stages (the trial's mixture in the searched one), its shared trunks' folder and, in
continual pretraining, each proxy's base (``continual.base_tokens`` x its tokens); and the job's
tokenized probe tasks."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from mixopt.atomic import replace_with
from mixopt.search import online
from mixopt.trials import Stage, Trial, TrialRequest
from mixopt.verdict import AIOLI

ONLINE_SCHEDULES = (AIOLI,)  # online baselines validated as a schedule of stages

if TYPE_CHECKING:
    from mixopt.data import DataManifest
    from mixopt.job import JobDir
    from mixopt.search.ladder import Ladder
    from mixopt.spec import ResourcesSpec
    from mixopt.spec.continual import ContinualSpec
    from proxies.config import StageConfig
    from proxies.probe_tasks import ProbeFile
    from proxies.tokens import DomainTokens


class RequestBuilder:
    def __init__(
        self,
        manifest: DataManifest,
        ladder: Ladder,
        resources: ResourcesSpec,
        job: JobDir,
        stages: Sequence[StageConfig] = (),
        continual: ContinualSpec | None = None,
    ) -> None:
        self.manifest = manifest
        self.stages = tuple(stages)
        self.ladder = ladder
        self.threads = max(1, int(resources.cpus_per_trial))
        self.job = job
        self.continual = continual

    @cached_property
    def domains(self) -> tuple[DomainTokens, ...]:
        return self.manifest.domain_tokens()

    @cached_property
    def evals(self) -> tuple[DomainTokens, ...]:
        return self.manifest.eval_tokens()

    @cached_property
    def probes(self) -> tuple[ProbeFile, ...]:
        return self.manifest.probe_files()

    @cached_property
    def init_from(self) -> str | None:
        """``continual.init_from``, checked against the service's data roots now (at use) and
        copied into the job's trunks folder under its content hash: the workers read the copy,
        and a changed file is a new checkpoint."""
        path = None if self.continual is None else self.continual.init_from
        if path is None:
            return None
        from mixopt.data.sources import ReadRoots
        from mixopt.errors import DataError
        from proxies.checkpoint import file_digest, init_file

        try:
            source = init_file(path)
        except ValueError as error:
            raise DataError(f"continual.{error}") from None
        roots = ReadRoots.from_env()
        if roots is not None and not roots.permits(source):
            raise DataError(f"continual.init_from: {source} is outside the allowed data roots")
        copy = self.job.trunks_dir / f"init-{file_digest(source)}.pt"
        if not copy.is_file():
            copy.parent.mkdir(parents=True, exist_ok=True)

            def write(tmp: Path) -> None:
                shutil.copyfile(source, tmp)

            replace_with(copy, write)
        return str(copy)

    def __call__(self, trial: Trial) -> TrialRequest:
        proxy = self.ladder.proxy(trial)
        base = None
        if self.continual is not None:
            base = self.continual.build(self.manifest.natural_distribution(), proxy.train_tokens)
        stages = self.stages
        if trial.stage is Stage.VALIDATE and trial.label in ONLINE_SCHEDULES:
            stages = online.schedule_stages(self.job, trial.label)  # validated as its schedule
        return TrialRequest.build(
            trial.trial_id,
            trial.weights,
            seed=trial.seed,
            proxy=proxy,
            vocab_size=self.manifest.vocab_size,
            domains=self.domains,
            evals=self.evals,
            threads=self.threads,
            checkpoint_dir=str(self.job.checkpoint_dir(trial.trial_id)),
            trunk_dir=str(self.job.trunks_dir) if self.stages or base else None,
            stages=stages,
            base=base,
            init_from=self.init_from,
            probes=self.probes,
        )
