"""Run pretrain.py and kill one process of it with SIGKILL at a chosen point (for tests/test_exact_resume.py).

    python tests/kill_during_training.py --after-saving 4 -- -c exp.yaml
    torchrun --nproc_per_node 2 --max-restarts 1 tests/kill_during_training.py --rank 1 --after-step 5 \
        -- -c exp.yaml --resume auto

--after-saving N: right after the step checkpoint (last.pt) of optimiser step N is written (mid-epoch);
--after-step N: right after optimiser step N. Only the process of --rank R (default 0) is killed, and only
in the first attempt of a torchrun with restarts (TORCHELASTIC_RESTART_COUNT 0 or unset).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pretrain  # noqa: E402
from tools.train.trainer import Trainer  # noqa: E402


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def main() -> int:
    parser = argparse.ArgumentParser()
    point = parser.add_mutually_exclusive_group(required=True)
    point.add_argument("--after-saving", type=int, metavar="STEP")
    point.add_argument("--after-step", type=int, metavar="STEP")
    parser.add_argument("--rank", type=int, default=0)
    parser.add_argument("pretrain_args", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    pretrain_args = args.pretrain_args[1:] if args.pretrain_args[:1] == ["--"] else args.pretrain_args
    is_victim = (int(os.environ.get("RANK", 0)) == args.rank
                 and int(os.environ.get("TORCHELASTIC_RESTART_COUNT", 0)) == 0)
    if is_victim and args.after_saving is not None:
        save = Trainer.save_training_state

        def save_then_die(trainer: Trainer, path: Path) -> None:
            save(trainer, path)
            if trainer.global_step == args.after_saving and 0 < trainer.batch_in_epoch:
                die()

        Trainer.save_training_state = save_then_die
    elif is_victim:
        optimizer_step = Trainer._optimizer_step

        def step_then_die(trainer: Trainer) -> None:
            optimizer_step(trainer)
            if trainer.global_step == args.after_step:
                die()

        Trainer._optimizer_step = step_then_die
    return pretrain.main(pretrain_args)


if __name__ == "__main__":
    sys.exit(main())
