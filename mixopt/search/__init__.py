"""The search: a job's stages in order (:mod:`~mixopt.search.driver`), the trials it keeps
(``book``), how it runs them (``scheduler``, ``requests``), who hears about them (``events``), the
fixed problem and proxies (``problem``, ``ladder``), the strategy's proposer (``strategy``), the
validation and the published recommendation (``validation``, ``recommendation``); ``launch``
assembles a job from its spec."""

from mixopt.search.driver import SearchJob
from mixopt.search.launch import resume_job, run_job
from mixopt.search.outcome import JobOutcome, objective_value

__all__ = ["JobOutcome", "SearchJob", "objective_value", "resume_job", "run_job"]
