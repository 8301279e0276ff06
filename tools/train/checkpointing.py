"""Atomic, resumable training checkpoints.

`atomic_save` writes to a temporary file in the same folder, fsyncs it, then renames it over the
target: a crash or a full disk during a save never destroys the previous checkpoint. Training
checkpoints keep the reference's `{'model': state_dict}` layout (its key names, constants included)
and add what resuming needs.
"""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch


def atomic_save(obj: Any, path: str | Path) -> None:
    """torch.save `obj` to `path` so that `path` is either the old or the complete new file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            torch.save(obj, stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
        _fsync_directory(path.parent)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _fsync_directory(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def capture_rng_states() -> dict[str, Any]:
    """Every RNG's state in types that `torch.load(weights_only=True)` reads back."""
    name, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    numpy_state = {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "position": int(position),
                   "has_gauss": int(has_gauss), "cached_gaussian": float(cached_gaussian)}
    states = {"torch": torch.get_rng_state(), "numpy": numpy_state, "python": random.getstate()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    numpy_state = states["numpy"]
    np.random.set_state((numpy_state["name"], numpy_state["keys"].numpy().astype(np.uint32),
                         numpy_state["position"], numpy_state["has_gauss"], numpy_state["cached_gaussian"]))
    random.setstate(states["python"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def find_resume_checkpoint(resume: str | bool | None, experiment_dir: Path) -> Path | None:
    """`auto`/true: the experiment's last.pt if it exists; a path: that file; false/None: no resume."""
    if resume in (None, False, "", "none", "false"):
        return None
    if resume in (True, "auto", "true"):
        candidate = experiment_dir / "last.pt"
        return candidate if candidate.is_file() else None
    path = Path(str(resume))
    if not path.is_file():
        raise FileNotFoundError(f"--resume {resume}: no checkpoint there; use --resume auto to continue the "
                                f"experiment in {experiment_dir}")
    return path
