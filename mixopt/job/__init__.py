"""A job's home: its directory, status, resumable state and the number of trials it plans.

Everything that reads or writes a job directory (the search driver, ``mixopt status``/``resume``/
``export``, the report, the dashboard, the service) goes through this package; no other module
names a job's files.
"""

from mixopt.job.directory import JobDir, JobLocked, find_job_dirs, trial_order
from mixopt.job.state import JobState
from mixopt.job.status import JobCancelled, JobStatus, StatusRecord, planned_trials

__all__ = [
    "JobCancelled",
    "JobDir",
    "JobLocked",
    "JobState",
    "JobStatus",
    "StatusRecord",
    "find_job_dirs",
    "planned_trials",
    "trial_order",
]
