"""How long a script's process takes to end after its work, with Python's normal exit and with `exit_script`.

    python -m benchmarks.exit_teardown [--ckpt CHECKPOINT] [--rounds 3]

Each round starts two fresh processes, one per way of ending: each imports zero_shot_clas, builds the model of
`--ckpt` (default: benchmarks.script_suite's paper-size random checkpoint, written once), embeds one text, and
prints the seconds since it started; then it ends normally (`sys.exit`) or through
`tools.eval.cli.exit_script`. The parent measures the wall time from start to end; the difference is the time
the process took to end.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.script_suite import DEFAULT_WORKDIR, REPO_ROOT, make_checkpoint

CHILD = """
import sys, time
start = time.perf_counter()
import zero_shot_clas
from models.factory import model_from_checkpoint
from tools.eval.cli import exit_script
from tools.eval.embedding import embed_texts
embed_texts(model_from_checkpoint(sys.argv[1], device="cpu"), ["a dog barks"])
print(time.perf_counter() - start, flush=True)
exit_script(0) if sys.argv[2] == "exit_script" else sys.exit(0)
"""
WAYS = ("sys.exit", "exit_script")


def ending_seconds(ckpt: Path, way: str) -> float:
    """Wall seconds of one child minus the seconds it reported at the end of its work."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", CHILD, str(ckpt), way], cwd=REPO_ROOT, capture_output=True,
                          text=True, check=True)
    wall = time.perf_counter() - start
    return wall - float(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", help="checkpoint to load (default: the suite's paper-size random one)")
    parser.add_argument("--preset", default="paper", choices=("paper", "tiny"), help="for the default checkpoint")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    ckpt = Path(args.ckpt) if args.ckpt else make_checkpoint(DEFAULT_WORKDIR, args.preset)
    seconds: dict[str, list[float]] = {way: [] for way in WAYS}
    for _ in range(args.rounds):
        for way in WAYS:
            seconds[way].append(ending_seconds(ckpt, way))
    print("| ending | seconds from the end of the work to the end of the process, each round | median |\n|---|---|---|")
    for way, values in seconds.items():
        print(f"| {way} | {', '.join(f'{value:.2f}' for value in values)} | {statistics.median(values):.2f} |")
    return {way: {"seconds": values, "median": statistics.median(values)} for way, values in seconds.items()}


if __name__ == "__main__":
    main()
