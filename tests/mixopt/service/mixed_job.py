"""A job command for attack tests: ``fake_job.py`` for specs named ``slow*`` (a stand-in that
holds the service's one job slot until cancelled), the real ``mixopt`` CLI for every other.

    python mixed_job.py run SPEC --job-dir DIR --runner R
    python mixed_job.py resume DIR --runner R
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import yaml

FAKE_JOB = Path(__file__).with_name("fake_job.py")


def main(argv: list[str]) -> None:
    spec_path = Path(argv[1]) if argv[0] == "run" else Path(argv[1]) / "spec.yaml"
    name = str((yaml.safe_load(spec_path.read_text()) or {}).get("name", ""))
    if name.startswith("slow"):
        os.execv(sys.executable, [sys.executable, str(FAKE_JOB), *argv])
    os.execv(sys.executable, [sys.executable, "-m", "mixopt.cli.main", *argv])


if __name__ == "__main__":
    main(sys.argv[1:])
