"""Exact resume: a run killed with SIGKILL right after a step checkpoint and resumed with `--resume auto` ends
with the weights of an uninterrupted run, bit for bit, from files or shards, with 0 or 2 loader workers; a
torchrun with --max-restarts 1 whose rank 1 is killed mid-epoch likewise (gloo, 2 CPU processes).

Every run is a real `pretrain.py` process (tests/kill_during_training.py kills it), started warm
(tests/warm_python.py; torchrun's workers through warm stand-ins): the tiny model, 16 synthetic clips cropped to
2 s windows (crop offsets drawn), SpecAugment and DropPath on (step draws).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import torch
import yaml

from data_handling.synthetic.corpus import corpus_paths
from models.checkpoint import read_checkpoint
from tests.warm_python import run_python, run_ranks, warm_stand_ins
from tools.make_shards import main as shards_main
from tools.tiny_model import tiny_config_dict

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
KILLER = REPO / "tests" / "kill_during_training.py"


@pytest.fixture(scope="module")
def data_sources(tmp_path_factory, tiny_text_dir, synthetic_corpus) -> dict[str, dict]:
    """data_args of each source: the synthetic training json ('files') and the same clips in shards."""
    shards = tmp_path_factory.mktemp("shards") / "train"
    train_json = corpus_paths(synthetic_corpus)["train_json"]
    assert shards_main(["--json-files", str(train_json), "--out", str(shards), "--clips-per-shard", "5"]) == 0
    return {"files": {"json_files": [str(train_json)]},
            "shards": {"json_files": [], "data_args": {"shards": str(shards)}}}


def write_config(folder: Path, tiny_text_dir: Path, source: dict, workers: int, batch_size: int = 4) -> Path:
    """Two epochs, a step checkpoint every 2 optimiser steps."""
    config = {**tiny_config_dict(tiny_text_dir), "seed": 5, "output_dir": str(folder / "outputs"),
              "exp_name": "run", "json_files": source["json_files"],
              "audio_args": {"max_length": 2.0},
              "training": {"epochs": 2, "amp": "off", "save_every_steps": 2, "spec_augmentation": True},
              "optim_args": {"lr": 1e-3, "optimizer_name": "adamw", "warmup_steps": 2},
              "data_args": {"batch_size": batch_size, "num_workers": workers, "pin_memory": False,
                            "drop_last": False, **source.get("data_args", {})}}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def run_script(args: list[str], expected_code: int | None = 0) -> subprocess.CompletedProcess:
    """`python *args` as a process of its own, started warm (tests/warm_python.py); past 600 s it is killed and
    the test fails with its output."""
    try:
        result = run_python(args, timeout=600)
    except subprocess.TimeoutExpired as error:
        pytest.fail(f"{args} ran past 600 s: {error.stderr[-3000:]}")
    if expected_code is not None:
        assert result.returncode == expected_code, result.stderr[-3000:]
    return result


def final_weights(config_path: Path) -> dict[str, torch.Tensor]:
    checkpoint = read_checkpoint(config_path.parent / "outputs" / "run" / "last.pt")
    assert checkpoint["epoch"] == 2 and checkpoint["batch_in_epoch"] == 0
    return checkpoint["model"]


def assert_bit_identical(expected: dict[str, torch.Tensor], actual: dict[str, torch.Tensor]) -> None:
    assert expected.keys() == actual.keys()
    worst = {key: (expected[key].double() - actual[key].double()).abs().max().item() for key in expected
             if not torch.equal(expected[key], actual[key])}
    assert not worst, f"{len(worst)} tensors differ, the most: {max(worst.items(), key=lambda item: item[1])}"


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, tiny_text_dir, data_sources) -> dict[str, dict[str, torch.Tensor]]:
    """The final weights of an uninterrupted run of each source (no loader workers)."""
    weights = {}
    for name, source in data_sources.items():
        config = write_config(tmp_path_factory.mktemp(f"straight_{name}"), tiny_text_dir, source, workers=0)
        run_script(["pretrain.py", "-c", str(config)])
        weights[name] = final_weights(config)
    return weights


@pytest.mark.xdist_group("exact_resume")  # one worker runs the four cases and builds `uninterrupted` once
@pytest.mark.parametrize(("source", "workers", "killed_after_step"),
                         [("files", 0, 2), ("files", 2, 6), ("shards", 0, 6), ("shards", 2, 2)])
def test_sigkill_after_a_step_checkpoint_then_resume_auto_is_exact(source, workers, killed_after_step, tmp_path,
                                                                   tiny_text_dir, data_sources, uninterrupted):
    config = write_config(tmp_path, tiny_text_dir, data_sources[source], workers)
    killed = run_script([str(KILLER), "--after-saving", str(killed_after_step), "--", "-c", str(config)],
                        expected_code=None)
    assert killed.returncode == -9, killed.stderr[-3000:]
    saved = read_checkpoint(tmp_path / "outputs" / "run" / "last.pt")
    assert saved["global_step"] == killed_after_step and saved["batch_in_epoch"] == 2
    resumed = run_script(["pretrain.py", "-c", str(config), "--resume", "auto"])
    assert f"at epoch {killed_after_step // 4 + 1}, batch 2, step {killed_after_step}" in resumed.stderr
    assert_bit_identical(uninterrupted[source], final_weights(config))


def pretrain_rank(rank: int, config: str) -> None:
    """pretrain.py on one rank of two, with the environment torchrun gives its workers."""
    import pretrain

    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", LOCAL_WORLD_SIZE="2")
    assert pretrain.main(["-c", config]) == 0


def test_torchrun_restarts_a_killed_rank_and_ends_with_the_same_weights(tmp_path, tiny_text_dir, data_sources):
    """2 gloo processes x 4 steps per epoch x 2 epochs; rank 1 is killed after step 3, one step after the step
    checkpoint of step 2: torchrun restarts both processes, which go on from that checkpoint; only rank 0 writes
    files (the checks of a plain two-process torchrun run, which this one covers). The uninterrupted
    run is the same two ranks started warm (tests/warm_python.py), one thread each as under torchrun."""
    straight = write_config(tmp_path / "straight", tiny_text_dir, data_sources["files"], workers=0, batch_size=2)
    run_ranks(pretrain_rank, (str(straight),))
    restarted = write_config(tmp_path / "restarted", tiny_text_dir, data_sources["files"], workers=0, batch_size=2)
    with warm_stand_ins() as warm:
        result = run_script(["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "--max-restarts",
                             "1", *warm, str(KILLER), "--rank", "1", "--after-step", "3", "--",
                             "-c", str(restarted), "--resume", "auto"])
    assert "at epoch 1, batch 2, step 2" in result.stderr  # the restart resumed from the step checkpoint
    assert_bit_identical(final_weights(straight), final_weights(restarted))
    experiment = restarted.parent / "outputs" / "run"  # two processes under torchrun: only rank 0 writes
    assert sorted(path.name for path in experiment.iterdir()) == ["best.pt", "config.yaml", "last.prev.pt", "last.pt",
                                                                  "train.log", "training_curves.png"]
    assert read_checkpoint(experiment / "last.pt")["global_step"] == 8  # 2 epochs x 4 steps of 2 x 2 clips
    assert "with 2 process(es)" in (experiment / "train.log").read_text()
