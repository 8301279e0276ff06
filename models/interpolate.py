"""Weight-space interpolation of two models of one architecture (WiSE-FT): fine-tuning without forgetting.

    python -m models.interpolate --init pretrained_models/model.pt --finetuned outputs/finetune/best.pt \\
        --alpha 0.25 0.5 0.75 --out outputs/finetune/wise_ft

For each alpha, every floating-point tensor is (1 - alpha) * init + alpha * finetuned (torch.lerp: alpha 0
gives init and alpha 1 gives finetuned bit for bit); integer tensors (BatchNorm's batch counter) are taken from
the nearer end. The inputs are any model files (the released model.pt, the reference's checkpoints, ours,
model folders). Each output is a checkpoint `OUT/alpha_<alpha>.pt` = {'model': state_dict, 'model_config',
'interpolation'} that every script loads with `--ckpt` (and `models.factory.model_from_checkpoint`); its
model_config is the one the fine-tuned file stores, else the initial one's, else none (the paper's model is
then assumed, as for the released model.pt). Two files of different architectures are one `error: ...` line
naming the first mismatched keys, exit code 2, nothing written.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from models.checkpoint import CheckpointError, describe_mismatch
from models.config import ConfigError
from models.weights import read_model_file


class InterpolationError(ValueError):
    """The two models cannot be interpolated (another architecture, an alpha outside [0, 1])."""


def check_interpolable(init: dict[str, torch.Tensor], finetuned: dict[str, torch.Tensor],
                       alphas: Sequence[float]) -> None:
    """InterpolationError (one line) when the keys or shapes differ, or an alpha is outside [0, 1]."""
    mismatch = describe_mismatch(init, finetuned, names=("finetuned", "init"))
    if mismatch:
        raise InterpolationError(f"the two models have different architectures: {mismatch}")
    for alpha in alphas:
        if not 0.0 <= alpha <= 1.0:
            raise InterpolationError(f"alpha {alpha} is outside [0, 1] (0: the initial model, 1: the fine-tuned one)")


def interpolate_weights(init: dict[str, torch.Tensor], finetuned: dict[str, torch.Tensor],
                        alpha: float) -> dict[str, torch.Tensor]:
    """(1 - alpha) * init + alpha * finetuned for every floating tensor (same keys and shapes, else
    InterpolationError); integer tensors from init when alpha < 0.5, else from finetuned."""
    check_interpolable(init, finetuned, [alpha])
    mixed = {}
    for key, start in init.items():
        end = finetuned[key]
        if start.is_floating_point() and end.is_floating_point():
            dtype = torch.promote_types(start.dtype, end.dtype)
            mixed[key] = torch.lerp(start.to(dtype), end.to(dtype), alpha)
        else:
            mixed[key] = (start if alpha < 0.5 else end).clone()
    return mixed


def output_name(alpha: float) -> str:
    """alpha_0.25.pt, alpha_0.5.pt, alpha_1.pt."""
    return f"alpha_{alpha:g}.pt"


def write_interpolations(init_path: str | Path, finetuned_path: str | Path, alphas: Sequence[float],
                         out_dir: str | Path) -> list[Path]:
    """Write one checkpoint per alpha into `out_dir` (see the module docstring); returns their paths. Every
    input error is raised before anything is written."""
    init, init_config = read_model_file(init_path)
    finetuned, finetuned_config = read_model_file(finetuned_path)
    model_config = finetuned_config or init_config
    check_interpolable(init, finetuned, alphas)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for alpha in alphas:
        content = {"model": interpolate_weights(init, finetuned, alpha),
                   "interpolation": {"init": str(init_path), "finetuned": str(finetuned_path), "alpha": alpha}}
        if model_config is not None:
            content["model_config"] = model_config.to_dict()
        path = out_dir / output_name(alpha)
        temporary = path.with_name(f".{path.name}.tmp")
        torch.save(content, temporary)
        os.replace(temporary, path)  # a reader never sees a half-written file
        written.append(path)
    return written


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m models.interpolate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--init", type=Path, required=True, help="the model before fine-tuning (alpha 0)")
    parser.add_argument("--finetuned", type=Path, required=True, help="the fine-tuned model (alpha 1)")
    parser.add_argument("--alpha", type=float, nargs="+", required=True, help="one or more values in [0, 1]")
    parser.add_argument("--out", type=Path, required=True, help="folder for alpha_<alpha>.pt")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        written = write_interpolations(args.init, args.finetuned, args.alpha, args.out)
    except (InterpolationError, CheckpointError, ConfigError, OSError) as error:
        print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
