"""Run every benchmark in this folder and assemble reports/benchmarks.md from their sections.

Each `bench_<name>.py` writes `reports/benchmarks/<name>.md`; this script runs them (unless
--assemble-only) and concatenates the sections in a fixed order.
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPORTS = HERE.parent / "reports"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--assemble-only", action="store_true", help="only concatenate existing sections")
    args = parser.parse_args()
    if not args.assemble_only:
        for script in sorted(HERE.glob("bench_*.py")):
            print(f"running {script.name}", file=sys.stderr)
            subprocess.run([sys.executable, str(script)], check=False)
    sections = sorted((REPORTS / "benchmarks").glob("*.md"))
    lines = [
        "# cosim benchmarks",
        "",
        f"Assembled {dt.date.today().isoformat()} on {platform.platform()} by `benchmarks/run_all.py`; each",
        "section is written by its own `benchmarks/bench_<name>.py` and states its machine and date.",
        "Ratios are against baselines measured in the same run.",
        "",
    ]
    for section in sections:
        lines += [section.read_text().rstrip(), ""]
    (REPORTS / "benchmarks.md").write_text("\n".join(lines))
    print(f"wrote {REPORTS / 'benchmarks.md'} ({len(sections)} sections)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
