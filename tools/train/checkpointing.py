"""Atomic, resumable training checkpoints, and finding the one to resume from.

`atomic_save` writes to a temporary file in the same folder, fsyncs it, then renames it over the
target: a crash or a full disk during a save never destroys the previous checkpoint, and a failed write
is one `CheckpointWriteError` naming the file and the cause. With `keep_previous` the file it replaces is
kept under that name (a hard link, no copy): `last.pt` keeps `last.prev.pt`. Training checkpoints keep the
reference's `{'model': state_dict}` layout (its key names, constants included) and add what resuming needs.

`find_resume_checkpoint(resume, experiment_dir)` picks the checkpoint to go on from; with `auto` it is the
newest readable one of the experiment: last.pt, else last.prev.pt, else the newest snapshot model_<epoch>.pt.
"""

from __future__ import annotations

import logging
import os
import random
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.checkpoint import CheckpointError, read_checkpoint

log = logging.getLogger(__name__)

LAST = "last.pt"
PREVIOUS_LAST = "last.prev.pt"
SNAPSHOT = re.compile(r"model_(\d+)\.pt")


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (disk full, permission, I/O error); the file at its path is intact."""

    def __init__(self, path: Path, cause: BaseException | str):
        self.path = Path(path)
        self.cause = cause if isinstance(cause, str) else describe_write_failure(cause)
        super().__init__(f"cannot write checkpoint {self.path}: {self.cause}")


class NoReadableCheckpoint(FileNotFoundError):
    """--resume auto found checkpoints of the experiment, none of them readable."""


def describe_write_failure(error: BaseException) -> str:
    """The operating system's reason ('[Errno 28] No space left on device') when an OSError is in the chain
    of `error` (torch.save wraps it in a RuntimeError of its own), else the error itself."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, OSError):
            return str(seen) if seen.errno is None else f"[Errno {seen.errno}] {seen.strerror}"
        seen = seen.__cause__ or seen.__context__
    return f"{type(error).__name__}: {error}"


def atomic_save(obj: Any, path: str | Path, keep_previous: str | Path | None = None) -> None:
    """torch.save `obj` to `path` so that `path` is either the old or the complete new file; the old one is
    kept as `keep_previous` when given. Raises CheckpointWriteError (nothing left behind) when it fails."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as error:
        raise CheckpointWriteError(path, error) from error
    try:
        with os.fdopen(handle, "wb") as stream:
            torch.save(obj, stream)
            stream.flush()
            os.fsync(stream.fileno())
        if keep_previous is not None and path.is_file():
            _keep(path, Path(keep_previous))
        os.replace(temporary, path)
        _fsync_directory(path.parent)
    except BaseException as error:
        Path(temporary).unlink(missing_ok=True)
        if isinstance(error, (OSError, RuntimeError)):
            raise CheckpointWriteError(path, error) from error
        raise


def _keep(path: Path, previous: Path) -> None:
    """Make `previous` the file now at `path` (a hard link renamed into place; a rename where the filesystem
    has no hard links, after which `path` is missing until its new content is renamed there)."""
    link = previous.with_name(f".{previous.name}.link")
    link.unlink(missing_ok=True)
    try:
        os.link(path, link)
    except OSError:
        os.replace(path, previous)
        return
    os.replace(link, previous)


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


def resume_candidates(experiment_dir: Path) -> list[Path]:
    """The experiment's checkpoints, newest first: last.pt, last.prev.pt, model_<epoch>.pt by epoch."""
    experiment_dir = Path(experiment_dir)
    snapshots = sorted((path for path in experiment_dir.glob("model_*.pt") if SNAPSHOT.fullmatch(path.name)),
                       key=lambda path: -int(SNAPSHOT.fullmatch(path.name).group(1)))
    return [path for path in (experiment_dir / LAST, experiment_dir / PREVIOUS_LAST) if path.is_file()] + snapshots


def read_resumable(path: Path) -> dict[str, Any]:
    """The checkpoint at `path`; CheckpointError unless it is readable and holds weights and an epoch."""
    checkpoint = read_checkpoint(path)
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("model"), dict) or "epoch" not in checkpoint:
        raise CheckpointError(f"{path} holds no training state (expected 'model' and 'epoch')")
    return checkpoint


def will_resume(resume: str | bool | None, experiment_dir: Path) -> bool:
    """Whether `resume` continues a run (a path, or `auto` with a checkpoint file in the experiment), without
    reading any checkpoint (find_resume_checkpoint chooses and reads it later)."""
    if resume in (None, False, "", "none", "false"):
        return False
    if resume in (True, "auto", "true"):
        return bool(resume_candidates(Path(experiment_dir)))
    return True


def find_resume_checkpoint(resume: str | bool | None, experiment_dir: Path) -> Path | None:
    """`auto`/true: the newest readable checkpoint of the experiment (None when it has none: a fresh start);
    a path: that file; false/None: no resume.

    With `auto`, unreadable files newer than the one chosen are renamed `<name>.unreadable` (so that the next
    save does not keep a broken last.pt as last.prev.pt) and the choice is logged. Raises NoReadableCheckpoint
    when the experiment has checkpoints and none is readable (nothing is renamed then).
    """
    if not will_resume(resume, experiment_dir):
        return None
    if resume in (True, "auto", "true"):
        return _newest_readable(Path(experiment_dir))
    path = Path(str(resume))
    if not path.is_file():
        raise FileNotFoundError(f"--resume {resume}: no checkpoint there; use --resume auto to continue the "
                                f"experiment in {experiment_dir}")
    return path


def _newest_readable(experiment_dir: Path) -> Path | None:
    candidates = resume_candidates(experiment_dir)
    unreadable: list[tuple[Path, str]] = []
    for candidate in candidates:
        try:
            read_resumable(candidate)
        except CheckpointError as error:
            unreadable.append((candidate, str(error)))
            continue
        for path, reason in unreadable:
            path.replace(path.with_name(f"{path.name}.unreadable"))
            log.warning("%s is unreadable, renamed %s.unreadable: %s", path, path.name, reason)
        if unreadable:
            log.warning("--resume auto: resuming from %s, the newest readable checkpoint of %s", candidate,
                        experiment_dir)
        return candidate
    if not candidates:
        return None
    raise NoReadableCheckpoint(
        f"--resume auto: no readable checkpoint in {experiment_dir} (truncated or corrupt: "
        f"{', '.join(path.name for path in candidates)}); give one with --resume PATH, or start over in another "
        f"folder (--exp-name)")
