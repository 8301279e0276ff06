"""The reference's training recipe: LAB stochastic depth, optimiser defaults, checkpoint selection, and
the ranks' agreement on steps that one rank cannot take."""

from __future__ import annotations

import dataclasses
import logging
from datetime import timedelta
from pathlib import Path

import matplotlib.pyplot as plt
import pytest
import torch
import torch.distributed as dist

from models.htsat import HTSAT, locality_aware_output
from tests.warm_python import run_ranks
from tools.config import OptimArgs, parse_config
from tools.train.model_files import best_file_names
from tools.train.optim import CosineWithWarmup, build_optimizer
from tools.train.trainer import CURVES_REDRAW_S, Trainer, curves_due

AUDIO_ARGS = {"sr": 32000, "n_fft": 1024, "hop_length": 320, "f_min": 50, "f_max": 14000, "n_mels": 64}


def tiny_htsat(drop_path_rate: float, lab_drop_path: bool = True) -> HTSAT:
    return HTSAT(AUDIO_ARGS, embed_dim=8, depths=[1, 1, 1, 2], num_heads=[1, 1, 2, 2], spec_augmentation=False,
                 drop_path_rate=drop_path_rate, onednn_linear=False, lab_drop_path=lab_drop_path)


def last_block_and_input(model: HTSAT) -> tuple[torch.nn.Module, torch.Tensor]:
    last_stage = model.layers[-1]
    return last_stage.blocks[-1], torch.randn(3, 8, 8, last_stage.blocks[-1].norm1.normalized_shape[0])


# ---------------------------------------------------------------------------------- LAB stochastic depth
def test_lab_output_equals_its_input_when_the_last_block_drops_every_path_in_training():
    model = tiny_htsat(drop_path_rate=1.0).train()  # the linear ramp ends at 1 in the last block
    block, tokens = last_block_and_input(model)
    torch.testing.assert_close(locality_aware_output(block, tokens), tokens)


def test_lab_stochastic_depth_draws_per_example_masks_and_is_off_in_eval_and_by_switch():
    model = tiny_htsat(drop_path_rate=0.5).train()
    block, tokens = last_block_and_input(model)
    torch.manual_seed(0)
    outputs = torch.stack([locality_aware_output(block, tokens) for _ in range(20)])   # [20, B, H, W, C]
    assert outputs.flatten(2).std(dim=0).max() > 0  # masks differ from call to call
    without_dp = locality_aware_output(block, tokens, drop_path=False)
    model.eval()
    torch.testing.assert_close(locality_aware_output(block, tokens), without_dp)


def test_htsat_training_forward_routes_the_switch_to_the_lab():
    torch.manual_seed(0)
    waveform = torch.randn(2, 32000)
    frames = {}
    for lab_drop_path in (True, False):
        model = tiny_htsat(drop_path_rate=1.0, lab_drop_path=lab_drop_path).train()
        model.load_state_dict(tiny_htsat(drop_path_rate=1.0).state_dict())
        torch.manual_seed(1)
        frames[lab_drop_path] = model(waveform, need_clip_features=False)[1]
    assert not torch.allclose(frames[True], frames[False])


# ------------------------------------------------------------------------------------------ optimiser
def test_adamw_without_weight_decay_is_torch_default_on_every_parameter():
    model = tiny_htsat(0.1)
    optimizer = build_optimizer(model, OptimArgs(optimizer_name="adamw"))
    assert isinstance(optimizer, torch.optim.AdamW)
    assert len(optimizer.param_groups) == 1
    group = optimizer.param_groups[0]
    assert group["weight_decay"] == 0.01
    trainable = [parameter for parameter in model.parameters() if parameter.requires_grad]
    assert {id(parameter) for parameter in group["params"]} == {id(parameter) for parameter in trainable}


def test_exempting_norms_and_biases_is_a_switch():
    model = tiny_htsat(0.1)
    optimizer = build_optimizer(model, OptimArgs(optimizer_name="adamw", weight_decay=0.05,
                                                 decay_norms_and_biases=False))
    decayed, exempt = optimizer.param_groups
    assert decayed["weight_decay"] == 0.05 and exempt["weight_decay"] == 0.0
    assert all(parameter.ndim > 1 for parameter in decayed["params"])
    assert exempt["params"] and all(parameter.ndim <= 1 for parameter in exempt["params"])


@pytest.mark.parametrize("name, expected_class, weight_decay", [("adam", torch.optim.Adam, 0.0),
                                                                ("sgd", torch.optim.SGD, 0.0)])
def test_adam_and_sgd_defaults(name, expected_class, weight_decay):
    optimizer = build_optimizer(tiny_htsat(0.1), OptimArgs(optimizer_name=name, momentum=0.8))
    assert type(optimizer) is expected_class
    assert optimizer.param_groups[0]["weight_decay"] == weight_decay
    if name == "sgd":
        assert optimizer.param_groups[0]["momentum"] == 0.8


# ------------------------------------------------------------------------------------ schedule length
@pytest.mark.slow
@pytest.mark.parametrize("length", ["reference", "batches"])
def test_schedule_epoch_length(tiny_config, synthetic_corpus, tmp_path, length):
    config = parse_config({
        **tiny_config, "json_files": [str(synthetic_corpus / "train" / "train.json")],
        "training": {"epochs": 2, "amp": "off"}, "data_args": {"batch_size": 3, "num_workers": 0, "pin_memory": False},
        "optim_args": {"lr": 1e-3, "warmup_epochs": 1, "schedule_epoch_length": length}})
    trainer = Trainer(config, tmp_path / length)
    captions, steps = len(trainer.dataset), trainer.optimizer_steps_per_epoch
    nominal = captions // 3 + 1 if length == "reference" else steps
    assert steps < captions // 3 + 1  # the incomplete batch of the bucket is dropped
    assert trainer.schedule_steps_per_epoch == nominal
    seen = []
    original_step = trainer._optimizer_step

    def record_then_step():
        seen.append(trainer.scheduler.lr)
        original_step()

    trainer._optimizer_step = record_then_step
    trainer._forward_backward = lambda batch, sync: 0.0  # the schedule alone is under test
    trainer.fit()
    expected_schedule = CosineWithWarmup(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0), 1e-3,
                                         2 * nominal, nominal)
    expected = [expected_schedule.lr_at(epoch * nominal + step) for epoch in range(2) for step in range(steps)]
    assert seen == pytest.approx(expected)


# ------------------------------------------------------------------------------ checkpoint selection
def test_best_file_names_follow_the_reference():
    names = best_file_names(["downstream_data/Clotho/json_files/test.json",
                             "downstream_data/AudioCaps/json_files/test.json",
                             "data/synthetic/retrieval/test.json", "other/retrieval/test.json"])
    assert names == ["clotho_best_model.pt", "ac_best_model.pt", "retrieval_best_model.pt",
                     "retrieval3_best_model.pt"]


def recipe_config(tiny_config: dict, corpus: Path, epochs: int) -> dict:
    retrieval = str(corpus / "retrieval" / "test.json")
    return {**tiny_config, "seed": 1, "json_files": [str(corpus / "train" / "train.json")],
            "training": {"epochs": epochs, "amp": "off", "max_steps_per_epoch": 1, "snapshot_epochs": [2, 3]},
            "data_args": {"batch_size": 4, "num_workers": 0, "pin_memory": False},
            "eval": {"retrieval_jsons": [retrieval.replace("retrieval/test", "retrieval/../retrieval/test"),
                                         retrieval]}}


def fake_retrieval(scores_by_epoch: dict[int, list[float]], trainer_box: list, seen_last: list):
    """evaluate_retrieval stand-in: per epoch, a scripted R@1 for each set (or an exception)."""
    calls = {"count": 0}

    def evaluate(model, json_path, device, batch_size, **protocol):
        assert protocol == {"long_audio": None, "crop_seed": 0, "padding": "batch", "strict": False}  # reference
        trainer = trainer_box[0]
        last = torch.load(trainer.experiment_dir / "last.pt", map_location="cpu", weights_only=True)
        seen_last.append(last["epoch"])
        position = calls["count"] % 2
        calls["count"] += 1
        value = scores_by_epoch[trainer.epoch][position]
        if value is None:
            raise RuntimeError("the evaluation set is broken")
        return {"t2a_R1_percent": value, "t2a_R5_percent": 0.0, "a2t_R1_percent": 0.0, "a2t_R5_percent": 0.0}

    return evaluate


@pytest.mark.slow
def test_best_file_per_set_ties_to_later_epoch_snapshots_and_last_before_eval(
        tiny_config, synthetic_corpus, tmp_path, monkeypatch, caplog):
    import tools.eval.plots
    import tools.eval.retrieval

    config = parse_config(recipe_config(tiny_config, synthetic_corpus, epochs=3))
    trainer_box: list = []
    seen_last: list[int] = []
    # set A: 5, 7, 7 (tie at epoch 3 -> epoch 3); set B: 9, fails, 4 (stays at epoch 1)
    scores = {1: [5.0, 9.0], 2: [7.0, None], 3: [7.0, 4.0]}
    monkeypatch.setattr(tools.eval.retrieval, "evaluate_retrieval", fake_retrieval(scores, trainer_box, seen_last))
    drawn: list[int] = []  # the epochs each drawing of training_curves.png shows
    draw = tools.eval.plots.plot_training_curves
    monkeypatch.setattr(tools.eval.plots, "plot_training_curves",
                        lambda history, path: drawn.append(len(history)) or draw(history, path))
    trainer = Trainer(config, tmp_path / "exp")
    trainer_box.append(trainer)
    with caplog.at_level(logging.ERROR, logger="tools.train.trainer"):
        history = trainer.fit()

    assert seen_last == [1, 1, 2, 2, 3, 3]  # last.pt of the epoch was on disk before its evaluation
    assert trainer.epoch == 3 and len(history) == 3
    assert "the evaluation set is broken" in caplog.text
    assert "eval_errors" in history[1]
    experiment = tmp_path / "exp"
    names = sorted(path.name for path in experiment.iterdir() if path.suffix == ".pt")
    assert names == ["best.pt", "last.prev.pt", "last.pt", "model_2.pt", "model_3.pt", "retrieval1_best_model.pt",
                     "retrieval_best_model.pt"]

    def epoch_of(name: str) -> int:
        checkpoint = torch.load(experiment / name, map_location="cpu", weights_only=True)
        expected_keys = {"model", "config", "epoch"} | ({"optimizer"} if name != "best.pt" else set())
        assert expected_keys <= set(checkpoint)
        return checkpoint["epoch"]

    assert epoch_of("retrieval_best_model.pt") == 3      # 7 >= 7: the tie goes to the later epoch
    assert epoch_of("retrieval1_best_model.pt") == 1     # 9 beats 4; the failed epoch changes nothing
    assert epoch_of("best.pt") == 1                      # sums: 14, 7 (one set failed), 11
    assert epoch_of("model_2.pt") == 2 and epoch_of("model_3.pt") == 3
    assert [record["lr"] for record in history] == [pytest.approx(trainer.scheduler.lr_at(epoch * trainer.schedule_steps_per_epoch + 1))
                                                     for epoch in range(3)]
    curves = plt.imread(experiment / "training_curves.png")  # readable
    assert curves.shape[:2] == (400, 1400)
    assert drawn == [3]  # three quick epochs: drawn once, after the last


def test_curves_are_redrawn_30_s_after_the_last_drawing_and_after_the_last_epoch():
    assert not curves_due(epoch=1, last_epoch=3, seconds_since_drawn=CURVES_REDRAW_S - 0.1)
    assert curves_due(epoch=1, last_epoch=3, seconds_since_drawn=CURVES_REDRAW_S)
    assert curves_due(epoch=3, last_epoch=3, seconds_since_drawn=0.0)
    assert CURVES_REDRAW_S == 30.0  # docs/training.md


def test_training_curves_show_every_set_with_gaps_for_failed_evaluations(tmp_path):
    from tools.eval.plots import plot_training_curves

    history = [{"epoch": 1, "loss": 2.0, "lr": 1e-4, "scores": {"clotho_best_model.pt": 50.0, "ac_best_model.pt": 80.0}},
               {"epoch": 2, "loss": 1.5, "lr": 5e-5, "scores": {"ac_best_model.pt": 90.0}, "eval_errors": {"c": "x"}},
               {"epoch": 3, "loss": 1.2, "lr": 0.0}]
    figure_calls = []
    original_plot = plt.Axes.plot

    def recording_plot(axis, *args, **kwargs):
        figure_calls.append((axis.get_title(), kwargs.get("label"), list(args[1])))
        return original_plot(axis, *args, **kwargs)

    plt.Axes.plot = recording_plot
    try:
        path = plot_training_curves(history, tmp_path / "curves" / "training_curves.png")
    finally:
        plt.Axes.plot = original_plot
    assert plt.imread(path).shape[:2] == (400, 1400)
    by_label = {label: values for _, label, values in figure_calls if label}
    assert by_label["ac"] == [80.0, 90.0, pytest.approx(float("nan"), nan_ok=True)]
    assert by_label["clotho"][0] == 50.0 and all(value != value for value in by_label["clotho"][1:])


@pytest.mark.slow
def test_best_scores_survive_a_resume(tiny_config, synthetic_corpus, tmp_path, monkeypatch):
    import tools.eval.retrieval

    config = parse_config(recipe_config(tiny_config, synthetic_corpus, epochs=2))
    trainer_box: list = []
    scores = {1: [5.0, 9.0], 2: [4.0, 9.5]}
    monkeypatch.setattr(tools.eval.retrieval, "evaluate_retrieval", fake_retrieval(scores, trainer_box, []))
    first = Trainer(config, tmp_path / "exp")
    trainer_box.append(first)
    first.fit(until_epoch=1)
    second = Trainer(config, tmp_path / "exp")
    trainer_box[0] = second
    second.fit(resume="auto")
    assert second.best_scores == {"retrieval_best_model.pt": 5.0, "retrieval1_best_model.pt": 9.5}
    checkpoint = torch.load(tmp_path / "exp" / "retrieval_best_model.pt", map_location="cpu", weights_only=True)
    assert checkpoint["epoch"] == 1


# ----------------------------------------------------------- DDP: a step one rank cannot take is skipped
def unreadable_batch_worker(rank: int, config: dict, out_dir: str) -> None:
    dist.init_process_group("gloo", rank=rank, world_size=2, timeout=timedelta(seconds=60))
    try:
        from tools.train.distributed import DistributedInfo

        trainer = Trainer(parse_config(config), Path(out_dir) / "exp", DistributedInfo(rank, 2, rank))
        if rank == 1:  # every file of this rank's first batch is unreadable
            first_batch = trainer.sampler.rank_batches()[0]
            for index in first_batch:
                trainer.dataset.items[index] = dataclasses.replace(
                    trainer.dataset.items[index], audio_path=Path(out_dir) / "gone" / f"{index}.wav")
        trainer.fit()
        torch.save({"global_step": trainer.global_step, "skipped_files": trainer.skipped_files},
                   Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.parametrize("gather_negatives", [True, False])
def test_ranks_skip_together_when_one_rank_has_no_readable_clip(tiny_config, synthetic_corpus, tmp_path,
                                                                gather_negatives):
    config = {**tiny_config, "seed": 2, "json_files": [str(synthetic_corpus / "train" / "train.json")],
              "output_dir": str(tmp_path), "training": {"epochs": 1, "amp": "off", "max_steps_per_epoch": 2,
                                                        "gather_negatives": gather_negatives},
              "data_args": {"batch_size": 2, "num_workers": 0, "pin_memory": False, "drop_last": True}}
    run_ranks(unreadable_batch_worker, (config, str(tmp_path)))
    results = [torch.load(tmp_path / f"rank{rank}.pt", weights_only=True) for rank in range(2)]
    assert [result["global_step"] for result in results] == [1, 1]  # batch 1 skipped on both, batch 2 taken
    assert results[1]["skipped_files"] == 2 and results[0]["skipped_files"] == 0


# ------------------------------------------------------------------------ pretrain.py start-up errors
def test_pretrain_reports_config_and_data_errors_in_one_line(tiny_config, tmp_path, capsys):
    import json

    import yaml

    import pretrain

    bad_key = tmp_path / "bad_key.yaml"
    bad_key.write_text("training:\n  epoch: 3\n")
    assert pretrain.main(["-c", str(bad_key)]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("error: ") and "training.epoch" in error[0]

    train_json = tmp_path / "train.json"
    train_json.write_text(json.dumps({"num_captions_per_audio": 1, "data": [
        {"id": str(k), "audio": f"/mnt/authors/machine/{k}.flac", "caption": "a dog barks", "duration": 10.0}
        for k in range(3)]}))
    config = {**tiny_config, "json_files": [str(train_json)], "output_dir": str(tmp_path / "out"),
              "data_args": {"audio_root": str(tmp_path), "num_workers": 0}}
    config_path = tmp_path / "missing_audio.yaml"
    config_path.write_text(yaml.safe_dump(config))
    assert pretrain.main(["-c", str(config_path)]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("error: ") and "3" in error and "/mnt/authors/machine/0.flac" in error
    assert not list((tmp_path / "out").rglob("*.pt"))
