"""The mixopt service: a REST API that runs mixture-search jobs for a team.

    mixopt serve --port 8000                      # MIXOPT_TOKEN=... in the environment
    mixopt submit spec.yaml --server http://127.0.0.1:8000

Modules, one concern each (none imported by ``import mixopt``; FastAPI, uvicorn and SQLAlchemy
load only when the service or its client is used):

- ``settings``: what a deployment configures (roots, database URL, tokens, limits).
- ``auth``: bearer tokens, one per user, compared in constant time.
- ``admission``: a submitted spec → a validated :class:`~mixopt.spec.JobSpec` whose every path is
  inside the allowed roots (the service's policy on specs).
- ``store``: the jobs table (SQLite by default, any SQLAlchemy URL).
- ``progress``: a job's progress read from its directory (``job.json``, ``runs.parquet``).
- ``supervisor``: runs each job as its own process (``mixopt run`` / ``mixopt resume``), watches
  it, cancels it, and adopts or resumes jobs after a server restart.
- ``limits``: the request-size limit.
- ``schemas``: the API's request and response models.
- ``app``: the FastAPI application factory.
- ``client``: the HTTP client the CLI uses.
"""
