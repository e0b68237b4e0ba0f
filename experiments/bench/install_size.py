"""What the light core costs against the full install: disk, distributions and import time.

    python experiments/bench/install_size.py [--python python3.11] [--repeats 5] [--keep]

Builds a wheel of this checkout (``pip wheel --no-deps`` from a copy of its tracked files, so
the checkout gets no build/ folder), then makes fresh venvs in a temp dir:

- ``bare``: nothing installed (what ``python -m venv`` brings: pip, setuptools), the baseline;
- ``core``: the wheel, no extras;
- ``full``: ``torch==2.13.0`` first (the CPU build on this machine's disk; an unpinned torch
  would pull a multi-GB CUDA build) and kept by a constraint, then the wheel with ``[all]``.

Measures in each: the site-packages size (sum of file sizes), the installed distributions (and
the largest, by the files their RECORD lists), the import time of ``import mixopt`` and of
``from mixopt import Study`` (median over fresh subprocesses; timed inside the process, so
interpreter start-up is not counted, and the wall clock of the whole ``python -c`` too), and
whether torch, ray or botorch sit in ``sys.modules`` after ``import mixopt`` (they must not) and
after ``from mixopt import Study``. Timings on a busy machine vary run to run by tens of %.

Prints a table, then one JSON object (the last line). The venvs are removed unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
TORCH_PIN = "torch==2.13.0"
HEAVY = ("torch", "ray", "botorch")
MB = 1_000_000
LARGEST = 8  # the distributions listed by size in each venv

PROBE = """
import json, sys, time
start = time.perf_counter()
{statement}
seconds = time.perf_counter() - start
print(json.dumps({{"seconds": seconds, "heavy": {{m: m in sys.modules for m in {heavy!r}}}}}))
"""

SITE = """
import importlib.metadata, json, os, sysconfig
sizes = {}
for dist in importlib.metadata.distributions():
    total = 0
    for file in dist.files or ():
        path = dist.locate_file(file)
        if os.path.isfile(path) and not os.path.islink(path):
            total += os.path.getsize(path)
    sizes[dist.metadata["Name"]] = total
print(json.dumps({"purelib": sysconfig.get_paths()["purelib"], "sizes": sizes}))
"""


def tree_bytes(root: Path) -> int:
    """The sum of the sizes of the regular files under ``root`` (symlinks not followed)."""
    total = 0
    for folder, _, files in os.walk(root):
        for name in files:
            path = Path(folder) / name
            if not path.is_symlink():
                total += path.stat().st_size
    return total


def run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(command, capture_output=True, text=True, **kwargs)
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} failed:\n{proc.stdout[-2000:]}{proc.stderr[-3000:]}"
        )
    return proc


def build_wheel(scratch: Path) -> Path:
    """A wheel of the checkout's tracked files, built in ``scratch``."""
    source = scratch / "src"
    tracked = run(["git", "-C", str(REPO), "ls-files", "-z"]).stdout.split("\0")
    for name in filter(None, tracked):
        if (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    wheels = scratch / "wheels"
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(source)])
    (wheel,) = wheels.glob("mixopt-*.whl")
    return wheel


def make_venv(python: str, folder: Path, installs: list[list[str]]) -> float:
    """A fresh venv in ``folder`` with each ``pip install`` argument list run in turn; seconds."""
    start = time.perf_counter()
    run([python, "-m", "venv", str(folder)])
    for args in installs:
        run([str(folder / "bin" / "python"), "-m", "pip", "install", "-q", *args])
    return time.perf_counter() - start


def probe(venv: Path, statement: str, repeats: int, cwd: Path) -> dict[str, Any]:
    """Median import seconds (in-process and whole-process) of ``statement`` in ``venv``."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    code = PROBE.format(statement=statement, heavy=HEAVY)
    inside, outside, heavy = [], [], {}
    for _ in range(repeats):
        start = time.perf_counter()
        out = run([str(venv / "bin" / "python"), "-c", code], cwd=cwd, env=env).stdout
        outside.append(time.perf_counter() - start)
        result = json.loads(out.strip().splitlines()[-1])
        inside.append(result["seconds"])
        heavy = result["heavy"]
    return {
        "import_ms": round(statistics.median(inside) * 1000, 1),
        "process_ms": round(statistics.median(outside) * 1000, 1),
        "heavy_loaded": heavy,
    }


def measure(venv: Path, repeats: int, cwd: Path, imports: bool) -> dict[str, Any]:
    site = json.loads(run([str(venv / "bin" / "python"), "-c", SITE], cwd=cwd).stdout)
    out: dict[str, Any] = {
        "site_packages_mb": round(tree_bytes(Path(site["purelib"])) / MB, 1),
        "distributions": len(site["sizes"]),
        "largest_mb": {
            name: round(size / MB, 1)
            for name, size in sorted(site["sizes"].items(), key=lambda kv: -kv[1])[:LARGEST]
        },
    }
    if imports:
        out["import mixopt"] = probe(venv, "import mixopt", repeats, cwd)
        out["from mixopt import Study"] = probe(venv, "from mixopt import Study", repeats, cwd)
        out["heavy_after_import_mixopt"] = any(out["import mixopt"]["heavy_loaded"].values())
    out["distribution_names"] = sorted(site["sizes"])
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default="python3.11", help="the interpreter of the venvs")
    parser.add_argument("--repeats", type=int, default=5, help="fresh processes per import")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (prints it)")
    args = parser.parse_args(argv)

    scratch = Path(tempfile.mkdtemp(prefix="mixopt-install-size-"))
    try:
        wheel = build_wheel(scratch)
        pin = scratch / "torch-pin.txt"
        pin.write_text(TORCH_PIN + "\n")
        plans = {
            "bare": [],
            "core": [[str(wheel)]],
            "full": [[TORCH_PIN], ["-c", str(pin), f"{wheel}[all]"]],
        }
        results: dict[str, Any] = {}
        for name, installs in plans.items():
            venv = scratch / name
            seconds = make_venv(args.python, venv, installs)
            print(f"{name}: installed in {seconds:.0f} s", file=sys.stderr)
            results[name] = {
                "install_s": round(seconds),
                **measure(venv, args.repeats, scratch, imports=name != "bare"),
            }
    finally:
        if args.keep:
            print(f"kept {scratch}", file=sys.stderr)
        else:
            shutil.rmtree(scratch, ignore_errors=True)

    core, full = results["core"], results["full"]
    extra = sorted(set(full["distribution_names"]) - set(core["distribution_names"]))
    rows = [
        ("site-packages (MB)", lambda r: f"{r['site_packages_mb']:.1f}"),
        ("distributions", lambda r: str(r["distributions"])),
        ("import mixopt (ms)", lambda r: f"{r['import mixopt']['import_ms']:.1f}"),
        ("  whole process (ms)", lambda r: f"{r['import mixopt']['process_ms']:.1f}"),
        (
            "from mixopt import Study (ms)",
            lambda r: f"{r['from mixopt import Study']['import_ms']:.1f}",
        ),
        ("  whole process (ms)", lambda r: f"{r['from mixopt import Study']['process_ms']:.1f}"),
        ("torch/ray/botorch after import mixopt", lambda r: str(r["heavy_after_import_mixopt"])),
        (
            "torch/ray/botorch after the Study import",
            lambda r: str(any(r["from mixopt import Study"]["heavy_loaded"].values())),
        ),
    ]
    print(f"{'':<40}{'core':>12}{'full':>12}")
    for label, cell in rows:
        print(f"{label:<40}{cell(core):>12}{cell(full):>12}")
    bare = results["bare"]
    print(
        f"(a bare venv: {bare['site_packages_mb']:.1f} MB, {bare['distributions']} distributions)"
    )
    print(f"full adds {len(extra)} distributions: {', '.join(extra)}")
    for name in ("core", "full"):
        largest = results[name]["largest_mb"]
        print(f"{name} largest (MB): " + ", ".join(f"{k} {v:.1f}" for k, v in largest.items()))
    for r in results.values():
        r.pop("distribution_names")
    print(
        json.dumps({"python": args.python, "repeats": args.repeats, **results, "full_adds": extra})
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
