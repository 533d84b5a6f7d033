"""Write environment.yml from the lock: conda's Python, then pip with every locked version.

Run by `make lock` after the lock is compiled, so that a conda user gets the versions the tests ran
with. conda's pip section cannot take hashes beside the editable install of this package, so the
pins are written without them; the lock itself (`requirements/lock.txt`) keeps the hashes.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements" / "lock.txt"
# Where pip finds torch's CPU build (the lock pins `torch==2.13.0+cpu`): the Makefile's TORCH_WHEELS.
TORCH_WHEELS = "https://download.pytorch.org/whl/cpu/torch/"

HEADER = """\
# conda env create -f environment.yml && conda activate xlt
# Written by `make lock` from requirements/lock.txt (do not edit by hand): the same versions as the
# lock, for CPython 3.11 on Linux x86-64, without the lock's hashes. torch is the CPU build.
name: xlt
channels:
  - conda-forge
dependencies:
  - python=3.11
  - pip
  - pip:
"""


def locked_pins(lock: Path = LOCK) -> list[str]:
    """`name==version` for every package in the lock, in its order."""
    pins = []
    for line in lock.read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", line)
        if m:
            pins.append(f"{m.group(1)}=={m.group(2)}")
    return pins


def environment_yml(lock: Path = LOCK) -> str:
    lines = [f"      - --find-links {TORCH_WHEELS}"]
    lines += [f"      - {pin}" for pin in locked_pins(lock)]
    lines.append("      - -e .")
    return HEADER + "\n".join(lines) + "\n"


if __name__ == "__main__":
    out = ROOT / "environment.yml"
    out.write_text(environment_yml())
    print(f"wrote {out.name}: {len(locked_pins())} pins", file=sys.stderr)
