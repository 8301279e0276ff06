"""Shared fixtures: a tiny MGA-CLAP config (tools.tiny_model) whose text tower is built offline in a temp folder."""

from __future__ import annotations

import gc
import logging
import os
from pathlib import Path

import pytest

# tools.tiny_model (torch, transformers) is imported in the fixtures, not here: pytest-xdist's controller process
# loads this file too and runs no test.


def pytest_configure(config):
    """Under pytest-xdist (`-n`, on by default in pyproject.toml) each worker gets its share of the CPUs for torch's
    intra-op threads, and so do the processes its tests start (OMP_NUM_THREADS), unless OMP_NUM_THREADS is set:
    two workers with two threads each on two cores run slower than one thread each."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1 and "OMP_NUM_THREADS" not in os.environ:
        import torch

        threads = max(1, len(os.sched_getaffinity(0)) // workers)
        os.environ["OMP_NUM_THREADS"] = str(threads)
        torch.set_num_threads(threads)


def pytest_collection_finish(session):
    """Collection imported torch, transformers, timm and every test module: some 500,000 objects that live until
    the end. gc.freeze() leaves them out of every later garbage collection: the full collections during the run
    and the five that pytest makes at exit (its unraisable-exception check) would each walk them all; objects the
    tests make are collected as before. Saves about 3 s per worker (tests/test_training.py alone: 18.7 -> 15.0 s)."""
    gc.freeze()


@pytest.fixture(autouse=True)
def restore_root_logging():
    """A script's main() called in-process may attach root handlers to a captured stream that pytest then
    closes; later tests would log into it. Each test ends with the root logger as it found it."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def write_tiny_checkpoint(config: dict, folder: Path) -> Path:
    """A tiny model with seeded random weights saved as pretrain.py does: weights plus its own config
    (self-describing). Returns the path of `folder`/tiny.pt."""
    import torch

    from models.ase_model import ASE
    from models.checkpoint import reference_state_dict

    torch.manual_seed(0)
    model = ASE(config)
    path = folder / "tiny.pt"
    torch.save({"model": reference_state_dict(model), "config": model.config.to_dict()}, path)
    return path


@pytest.fixture(scope="session")
def tiny_text_dir(tmp_path_factory) -> Path:
    from tools.tiny_model import make_tiny_text_dir

    return make_tiny_text_dir(tmp_path_factory.mktemp("tiny_bert"))


@pytest.fixture
def tiny_config(tiny_text_dir) -> dict:
    from tools.tiny_model import tiny_config_dict

    return tiny_config_dict(tiny_text_dir)


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_text_dir, tmp_path_factory) -> Path:
    """The tiny model with seeded random weights, saved once per session (write_tiny_checkpoint): read it only."""
    from tools.tiny_model import tiny_config_dict

    return write_tiny_checkpoint(tiny_config_dict(tiny_text_dir), tmp_path_factory.mktemp("tiny_checkpoint"))


@pytest.fixture(scope="session")
def tiny_model(tiny_checkpoint):
    """tiny_checkpoint loaded as the scripts load a checkpoint (eval mode, CPU), once per session: never change it."""
    from models.factory import model_from_checkpoint

    return model_from_checkpoint(tiny_checkpoint, None, "cpu")


@pytest.fixture(scope="session")
def synthetic_corpus(tmp_path_factory) -> Path:
    """A small synthetic corpus (16 training clips, 6 per test split), generated once per session."""
    from data_handling.synthetic import generate_corpus

    root = tmp_path_factory.mktemp("synthetic") / "corpus"
    generate_corpus(root, num_train=16, num_test=6, seed=0, num_esc_per_class=1)
    return root
