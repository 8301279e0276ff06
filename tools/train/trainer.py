"""The training loop: one process or many (torchrun), resumable, fault-tolerant.

`Trainer(config, experiment_dir).fit()` trains for `training.epochs`. After each epoch it writes
`last.pt` (also every `training.save_every_steps` steps and on SIGINT/SIGTERM) and the snapshot
`model_<epoch>.pt` for the epochs in `training.snapshot_epochs`, then (rank 0) evaluates retrieval on
each of `eval.retrieval_jsons`. Each retrieval set keeps its own best file (`clotho_best_model.pt`,
`ac_best_model.pt`, else `<name>_best_model.pt`), replaced when its R@1 + R@5 (both directions) is at
least the best so far, so ties go to the later epoch, as the reference; `best.pt` holds the best sum
over all sets. An evaluation that fails is logged and the run goes on. Every file is written
atomically; resuming restores weights, optimiser, schedule, scaler, best scores and the position in the
epoch. Every random draw of a step is keyed by (seed, epoch, batch position; the rank for the model's own
draws: data_handling/keyed_random.py), so a run resumed from any checkpoint ends with the weights of the
uninterrupted run, bit for bit, whatever the loader workers, ranks, files or shards.
"""

from __future__ import annotations

import logging
import math
import signal
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from data_handling.keyed_random import seed_step_draws
from models.ase_model import ASE
from models.checkpoint import load_state, read_checkpoint, reference_state_dict
from models.speed import compile_model
from tools.config import Config
from tools.train.checkpointing import (
    LAST,
    PREVIOUS_LAST,
    CheckpointWriteError,
    NoReadableCheckpoint,
    atomic_save,
    capture_rng_states,
    find_resume_checkpoint,
    restore_rng_states,
)
from tools.train.data import build_training_loader
from tools.train.distributed import DistributedInfo, all_ranks_agree, broadcast_from_main
from tools.train.init_from import load_init_weights, model_config_to_build, record_init_from
from tools.train.model_files import ModelFiles
from tools.train.optim import CosineWithWarmup, build_optimizer, warmup_steps_from

log = logging.getLogger(__name__)


class TrainingInterrupted(RuntimeError):
    """SIGINT or SIGTERM arrived; a resumable last.pt was written."""


class TooManyBadSteps(RuntimeError):
    """Several consecutive non-finite losses: the run stopped."""


CURVES_REDRAW_S = 30.0
"""training_curves.png is redrawn after an epoch once this many seconds have passed since its last drawing (or
the start of training), and always after the last epoch: a drawing takes about 0.3 s of CPU, nothing beside a
real epoch but most of a tiny one (drawn once instead of 20 times, the 20-epoch tests/test_it_learns.py took
7.2 s instead of 12.2-14.6 s)."""


def curves_due(epoch: int, last_epoch: int, seconds_since_drawn: float) -> bool:
    """Whether to redraw training_curves.png after `epoch` (see CURVES_REDRAW_S)."""
    return epoch >= last_epoch or seconds_since_drawn >= CURVES_REDRAW_S


def autocast_settings(amp: str, device: torch.device) -> tuple[torch.dtype | None, bool]:
    """(autocast dtype or None, whether a GradScaler is needed) for `training.amp` on `device`."""
    if device.type != "cuda" or amp == "off":
        return None, False
    if amp == "bf16" or (amp == "auto" and torch.cuda.is_bf16_supported()):
        return torch.bfloat16, False
    return torch.float16, True


class Trainer:
    def __init__(self, config: Config, experiment_dir: Path, dist_info: DistributedInfo | None = None,
                 device: torch.device | None = None,
                 epoch_callback: Callable[[dict[str, Any]], None] | None = None):
        self.config = config
        self.epoch_callback = epoch_callback  # called on rank 0 with each epoch's record (e.g. wandb)
        self.experiment_dir = Path(experiment_dir)
        self.dist = dist_info or DistributedInfo()
        self.device = device or torch.device("cpu")
        torch.manual_seed(config.seed + self.dist.rank)

        # first: a data error stops the run before a model is built
        self.dataset, self.sampler, self.loader = build_training_loader(config, self.dist, self.device,
                                                                        self.experiment_dir)
        cap = config.training.max_steps_per_epoch * config.training.grad_accum_steps
        self.batches_per_epoch = min(len(self.sampler), cap) if cap > 0 else len(self.sampler)
        self.model = ASE(model_config_to_build(config)).to(self.device)
        self.gather_negatives = self.dist.enabled and config.training.gather_negatives
        self.model.criterion.gather_across_ranks = self.gather_negatives
        if config.training.compile:
            compile_model(self.model)  # in place: parameter names and checkpoints stay the same
        self.train_model: torch.nn.Module = self.model
        if self.dist.enabled:
            self.train_model = DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=True)
        accumulation = config.training.grad_accum_steps
        self.optimizer_steps_per_epoch = max(1, math.ceil(self.batches_per_epoch / accumulation))
        self.schedule_steps_per_epoch = self._schedule_steps_per_epoch()
        total_steps = self.schedule_steps_per_epoch * config.training.epochs
        self.optimizer = build_optimizer(self.model, config.optim_args)
        self.scheduler = CosineWithWarmup(self.optimizer, config.optim_args.lr, total_steps,
                                          warmup_steps_from(config.optim_args, self.schedule_steps_per_epoch),
                                          config.optim_args.min_lr)
        self.autocast_dtype, use_scaler = autocast_settings(config.training.amp, self.device)
        self.scaler = torch.amp.GradScaler("cuda") if use_scaler else None
        self.epoch = 0
        self.batch_in_epoch = 0
        self.global_step = 0
        self.model_files = ModelFiles(self.experiment_dir, config.eval.retrieval_jsons,
                                      config.training.snapshot_epochs, config.training.epochs,
                                      config.eval.classification_sets)
        self.bad_steps = 0
        self.skipped_files = 0
        self.stop_signal: int | None = None
        self.history: list[dict[str, Any]] = []
        self.last_intact_checkpoint: str | None = None  # "<path> (epoch e, batch b, step s)"

    @property
    def best_scores(self) -> dict[str, float]:
        """Best file name -> its retrieval set's best score so far."""
        return self.model_files.best_scores

    # ----------------------------------------------------------------------------------- data
    def _schedule_steps_per_epoch(self) -> int:
        """Optimiser steps one epoch stands for in the learning-rate schedule.

        'reference': the reference's len(dataloader), captions // batch_size + 1 (split between the ranks,
        over grad_accum_steps), a few more than the batches left once each bucket's incomplete batch is
        dropped; the epoch's unused steps are skipped at its end. 'batches' (or a max_steps_per_epoch cap):
        the steps the epoch really has.
        """
        if self.config.optim_args.schedule_epoch_length == "batches" or self.config.training.max_steps_per_epoch:
            return self.optimizer_steps_per_epoch
        nominal_batches = math.ceil((len(self.dataset) // self.config.data_args.batch_size + 1) / self.dist.world_size)
        return max(self.optimizer_steps_per_epoch,
                   math.ceil(nominal_batches / self.config.training.grad_accum_steps))

    # ------------------------------------------------------------------------------ training
    def fit(self, resume: str | bool | None = None, until_epoch: int | None = None) -> list[dict[str, Any]]:
        """Train (continuing from `resume`: a path, 'auto' or None) up to `until_epoch` epochs (default:
        all of `training.epochs`; a smaller value stops early with the schedule unchanged)."""
        checkpoint_path = self._resume_checkpoint(resume)
        if checkpoint_path is not None:
            self.load_training_state(checkpoint_path)
            if self.config.training.init_from:
                log.info("training.init_from (%s) is ignored: the run continues from %s",
                         self.config.training.init_from, checkpoint_path)
        elif self.config.training.init_from:
            self.start_from_weights(self.config.training.init_from)
        last_epoch = min(until_epoch or self.config.training.epochs, self.config.training.epochs)
        previous_handlers = self._install_signal_handlers()
        self._curves_drawn_at = time.monotonic()  # of the last training_curves.png, or of this call's start
        try:
            while self.epoch < last_epoch:
                record = self.train_epoch()
                self.epoch += 1
                self.batch_in_epoch = 0
                self.save_training_state(self.experiment_dir / LAST)  # before the evaluation
                self._save_snapshot()
                record.update(self.evaluate())
                self.history.append(record)
                self._save_best_files(record)
                self.save_training_state(self.experiment_dir / LAST)  # with the epoch's scores
                if curves_due(self.epoch, last_epoch, time.monotonic() - self._curves_drawn_at):
                    self._plot_curves()
                if self.epoch_callback is not None and self.dist.is_main:
                    self.epoch_callback(record)
        finally:
            for signum, handler in previous_handlers.items():
                signal.signal(signum, handler)
        return self.history

    def start_from_weights(self, path: str | Path) -> None:
        """A fresh run whose model starts from the weights of `path` (training.init_from): optimiser,
        schedule and epoch untouched (fresh); rank 0 records the file and its sha256 in init_from.json."""
        load_init_weights(self.model, path)
        if self.dist.is_main:
            record = record_init_from(self.experiment_dir, path)
            log.info("weights from %s (%s, sha256 %s); optimiser, schedule and epoch start fresh", path,
                     record["kind"], record["sha256"])

    def train_epoch(self) -> dict[str, Any]:
        self.train_model.train()
        self.sampler.set_epoch(self.epoch)
        if hasattr(self.dataset, "set_epoch"):  # labelled clips: the epoch's caption templates
            self.dataset.set_epoch(self.epoch)
        self.sampler.set_start_batch(self.batch_in_epoch)
        losses: list[float] = []
        started = time.time()
        progress = tqdm(total=self.batches_per_epoch, initial=self.batch_in_epoch, disable=not self.dist.is_main,
                        desc=f"epoch {self.epoch + 1}/{self.config.training.epochs}", dynamic_ncols=True)
        self.optimizer.zero_grad(set_to_none=True)
        if self.batch_in_epoch == 0:  # an epoch is schedule_steps_per_epoch long in the schedule
            self.scheduler.seek(self.epoch * self.schedule_steps_per_epoch)
        try:
            self._train_batches(progress, losses)
        finally:  # the terminal's next line starts on a line of its own
            progress.close()
        mean_loss = sum(losses) / max(1, len(losses))
        log.info("epoch %d: mean loss %.4f, %d steps, %.1f s, %d files skipped so far", self.epoch + 1,
                 mean_loss, len(losses), time.time() - started, self.skipped_files)
        return {"epoch": self.epoch + 1, "loss": mean_loss, "lr": self.scheduler.lr, "seconds": time.time() - started,
                "skipped_files": self.skipped_files}

    def _train_batches(self, progress: tqdm, losses: list[float]) -> None:
        """The epoch's remaining batches: forward, backward, optimiser steps, step checkpoints."""
        accumulation = self.config.training.grad_accum_steps
        for batch in self.loader:
            if self.batch_in_epoch >= self.batches_per_epoch:
                break
            seed_step_draws(self.config.seed, self.dist.rank, self.epoch, self.batch_in_epoch)
            self.batch_in_epoch += 1
            progress.update(1)
            self.skipped_files += batch["num_skipped"]
            if not self._every_rank_can_step(batch):
                continue
            is_update = self.batch_in_epoch % accumulation == 0 or self.batch_in_epoch == self.batches_per_epoch
            loss = self._forward_backward(batch, sync=is_update)
            if loss is not None:
                losses.append(loss)
            if is_update and loss is not None:
                self._optimizer_step()
                progress.set_postfix(loss=f"{losses[-1] if losses else float('nan'):.4f}",
                                     lr=f"{self.scheduler.lr:.2e}")
            if self.stop_signal is not None and is_update:  # never within a gradient accumulation, whose
                self._save_interrupted()                    # gradients no checkpoint holds
            if is_update and self._due_for_step_save():
                self.save_training_state(self.experiment_dir / LAST)

    def _every_rank_can_step(self, batch: dict[str, Any]) -> bool:
        """A step needs two clips (negatives to contrast with) on every rank; the ranks agree first, so
        that a rank whose files were all unreadable does not leave the others waiting in the gather."""
        can_step = batch["audio"].shape[0] >= 2
        if self.dist.enabled:
            agreed = all_ranks_agree(can_step, self.device)
            if can_step and not agreed:
                log.warning("epoch %d batch %d skipped on every rank: another rank has fewer than 2 readable "
                            "clips", self.epoch + 1, self.batch_in_epoch)
            return agreed
        return can_step

    def _forward_backward(self, batch: dict[str, Any], sync: bool) -> float | None:
        audio = batch["audio"].to(self.device, non_blocking=True)
        idx = batch["idx"].to(self.device, non_blocking=True)
        autocast = (torch.autocast(self.device.type, dtype=self.autocast_dtype) if self.autocast_dtype
                    else nullcontext())
        no_sync = self.train_model.no_sync() if (self.dist.enabled and not sync) else nullcontext()
        with no_sync:
            with autocast:
                loss = self.train_model(audio, batch["captions"], idx)
            finite = bool(torch.isfinite(loss))
            if self.dist.enabled and not self.gather_negatives:  # local losses differ: the ranks agree
                finite = all_ranks_agree(finite, self.device)
            if not finite:
                self._record_bad_step(loss)
                return None
            self.bad_steps = 0
            # A gathered loss is the same on every rank and DDP averages gradients: scale back up. Local
            # losses (the reference's) are averaged by DDP as they are.
            world_factor = self.dist.world_size if self.gather_negatives else 1
            scale = world_factor / self.config.training.grad_accum_steps
            scaled = loss * scale
            (self.scaler.scale(scaled) if self.scaler else scaled).backward()
        return loss.item()

    def _record_bad_step(self, loss: torch.Tensor) -> None:
        self.bad_steps += 1
        log.warning("non-finite loss (%s) at epoch %d batch %d: step skipped (%d in a row)", loss.item(),
                    self.epoch + 1, self.batch_in_epoch, self.bad_steps)
        self.optimizer.zero_grad(set_to_none=True)
        if self.bad_steps >= self.config.training.max_bad_steps:
            raise TooManyBadSteps(
                f"{self.bad_steps} consecutive non-finite losses: stopping. Lower optim_args.lr, check the "
                f"data for silent or corrupt audio, or use training.amp: bf16/off; last.pt holds the last good state")

    def _optimizer_step(self) -> None:
        clip = self.config.training.clip_grad
        if self.scaler:
            self.scaler.unscale_(self.optimizer)
        if clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip)
        if self.scaler:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        self.global_step += 1

    def _due_for_step_save(self) -> bool:
        every = self.config.training.save_every_steps
        return every > 0 and self.global_step % every == 0 and self.batch_in_epoch < self.batches_per_epoch

    # ---------------------------------------------------------------------------- evaluation
    def evaluate(self) -> dict[str, Any]:
        """Retrieval on each `eval.retrieval_jsons` and accuracy on each `eval.classification_sets` (rank 0).

        Returns {"retrieval": {json path: metrics}, "classification": {set: metrics}, "scores": {best file name:
        R@1 + R@5 both ways, or accuracy in percent}, "score": their sum}; a set whose evaluation fails is
        logged, listed in "eval_errors" and left out of the scores (the run goes on). A set with missing or
        unreadable audio is scored over the other files ("scored N of M files" in the log, complete: false in its
        metrics); with eval.strict it is such a failure instead (named files, no score that epoch, so no best
        checkpoint from it).
        """
        jsons = self.config.eval.retrieval_jsons
        if not (jsons or self.config.eval.classification_sets) or not self.dist.is_main:
            return {}
        from tools.eval.retrieval import evaluate_retrieval
        from tools.eval.retrieval_metrics import retrieval_score

        results: dict[str, Any] = {"scores": {}}

        def retrieval(json_path: str) -> dict[str, Any]:
            return evaluate_retrieval(self.model, json_path, self.device, self.config.eval.batch_size,
                                      long_audio=self.config.eval.long_audio, crop_seed=self.config.eval.crop_seed,
                                      padding=self.config.eval.retrieval_padding, strict=self.config.eval.strict)

        self._score_sets(results, "retrieval", jsons, self.model_files.retrieval_best_files, retrieval,
                         retrieval_score, lambda metrics: (
                             f"T2A R@1 {metrics['t2a_R1_percent']:.2f} R@5 {metrics['t2a_R5_percent']:.2f}, "
                             f"A2T R@1 {metrics['a2t_R1_percent']:.2f} R@5 {metrics['a2t_R5_percent']:.2f}"))
        self._evaluate_classification(results)
        if results["scores"] and not (self.config.eval.strict and "eval_errors" in results):
            results["score"] = sum(results["scores"].values())   # eval.strict: never a sum over fewer sets
        return results

    def _record_evaluation_failure(self, results: dict[str, Any], task: str, path: Any, error: Exception) -> None:
        """Log a set's failed evaluation (an incomplete set under eval.strict in one line, anything else with its
        traceback) and list it in results["eval_errors"]: that set gets no score this epoch; training goes on."""
        from tools.eval.common import IncompleteEvaluationError

        if isinstance(error, IncompleteEvaluationError):
            log.error("epoch %d: %s evaluation on %s: %s; no score this epoch, training goes on", self.epoch, task,
                      path, error)
        else:
            log.exception("epoch %d: %s evaluation on %s failed; training goes on", self.epoch, task, path)
        results.setdefault("eval_errors", {})[str(path)] = f"{type(error).__name__}: {error}"

    def _score_sets(self, results: dict[str, Any], task: str, paths: Sequence[str], best_files: Sequence[str],
                    evaluate: Callable[[str], dict[str, Any]], score: Callable[[dict[str, Any]], float],
                    summary: Callable[[dict[str, Any]], str]) -> None:
        """evaluate(path) of each set into results[task][path] and its score into results["scores"][best file],
        with one log line (summary(metrics) and the files scored); a failure is logged and listed in
        "eval_errors" (`_record_evaluation_failure`) and the next set is evaluated."""
        from tools.eval.common import coverage_line

        results[task] = {}
        for path, best_file in zip(paths, best_files, strict=True):
            try:
                metrics = evaluate(path)
            except Exception as error:  # noqa: BLE001 - any failure of one evaluation must not end training
                self._record_evaluation_failure(results, task, path, error)
                continue
            results[task][str(path)] = metrics
            results["scores"][best_file] = score(metrics)
            log.info("epoch %d %s on %s: %s; %s", self.epoch, task, path, summary(metrics), coverage_line(metrics))

    def _evaluate_classification(self, results: dict[str, Any]) -> None:
        """Zero-shot accuracy on each `eval.classification_sets` (prompt: the first of data_args.caption_templates),
        into results["classification"] and results["scores"]; a failure is logged and listed in "eval_errors"."""
        sets = self.config.eval.classification_sets
        if not sets:
            return
        from data_handling.eval_sets.classification import read_custom_classification
        from tools.eval.classification import evaluate_classification
        from tools.eval.classification_metrics import classification_score

        prompt = self.config.data_args.caption_templates[0]

        def classification(path: str) -> dict[str, Any]:
            clips = read_custom_classification(path)
            return evaluate_classification(self.model, clips.items, clips.class_names, prompt, self.device,
                                           self.config.eval.batch_size, long_audio=self.config.eval.long_audio
                                           or "window", precision=self.config.eval.precision,
                                           strict=self.config.eval.strict)

        self._score_sets(results, "classification", sets, self.model_files.classification_best_files,
                         classification, classification_score,
                         lambda metrics: f"accuracy {metrics['accuracy_percent']:.2f} %")

    # --------------------------------------------------------------------------- checkpoints
    def training_state(self) -> dict[str, Any]:
        return {
            "model": reference_state_dict(self.model),
            "model_config": self.model.config.to_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler else None,
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "global_step": self.global_step,
            **self.model_files.state_dict(),
            "skipped_files": self.skipped_files,
            "rng": capture_rng_states(),
            "config": self.config.to_dict(),
            "history": self.history,
        }

    def save_training_state(self, path: Path) -> None:
        """Write the training state to `path` (rank 0; last.pt keeps its previous content as last.prev.pt).
        Raises CheckpointWriteError on every rank when rank 0 could not write it."""
        keep_previous = path.with_name(PREVIOUS_LAST) if path.name == LAST else None
        self._write_on_main(lambda: atomic_save(self.training_state(), path, keep_previous=keep_previous))
        self.last_intact_checkpoint = f"{path} ({self.position})"

    @property
    def position(self) -> str:
        """Where training stands, e.g. 'epoch 2, batch 3, step 7' or 'epoch 1 done, step 4'."""
        if self.batch_in_epoch == 0:
            return f"epoch {self.epoch} done, step {self.global_step}"
        return f"epoch {self.epoch + 1}, batch {self.batch_in_epoch}, step {self.global_step}"

    def _write_on_main(self, write: Callable[[], None]) -> None:
        """Run `write` on rank 0; the ranks then agree (a barrier), so that a failed write stops all of them."""
        failure: CheckpointWriteError | None = None
        if self.dist.is_main:
            try:
                write()
            except CheckpointWriteError as error:
                failure = error
        if not all_ranks_agree(failure is None, self.device):
            raise failure or CheckpointWriteError(self.experiment_dir, "rank 0 could not write a checkpoint")

    def _resume_checkpoint(self, resume: str | bool | None) -> Path | None:
        """The checkpoint to resume from (find_resume_checkpoint, on rank 0; every rank gets its choice)."""
        choice: tuple[str | None, str | None] = (None, None)  # (path, error)
        if self.dist.is_main:
            try:
                path = find_resume_checkpoint(resume, self.experiment_dir)
                choice = (str(path) if path else None, None)
            except NoReadableCheckpoint as error:
                choice = (None, str(error))
                if not self.dist.enabled:
                    raise
        path, error = broadcast_from_main(choice) if self.dist.enabled else choice
        if error is not None:
            raise NoReadableCheckpoint(error)
        return Path(path) if path else None

    def load_training_state(self, path: Path) -> None:
        """Restore a training state (last.pt), or a model file (a snapshot model_<epoch>.pt: weights, optimiser
        and epoch; the schedule follows from the epoch, the best scores from the best files)."""
        checkpoint = read_checkpoint(path)
        load_state(self.model, checkpoint, path)
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.epoch = int(checkpoint["epoch"])
        self.batch_in_epoch = int(checkpoint.get("batch_in_epoch", 0))
        if "scheduler" in checkpoint:
            self.scheduler.load_state_dict(checkpoint["scheduler"])
            self.global_step = int(checkpoint["global_step"])
            self.model_files.load_state_dict(checkpoint)
        else:  # a snapshot, written at the end of its epoch
            self.scheduler.seek(self.epoch * self.schedule_steps_per_epoch)
            self.global_step = self.epoch * self.optimizer_steps_per_epoch
            self.model_files.recover_best_scores()
            log.warning("%s is a model file: the step count, schedule and best scores are recomputed, the "
                        "history of earlier epochs is not in it", path)
        if self.scaler and checkpoint.get("scaler"):
            self.scaler.load_state_dict(checkpoint["scaler"])
        self.skipped_files = int(checkpoint.get("skipped_files", 0))
        self.history = list(checkpoint.get("history", []))
        if self.dist.world_size == 1 and "rng" in checkpoint:
            restore_rng_states(checkpoint["rng"])
        self.last_intact_checkpoint = f"{path} ({self.position})"
        log.info("resumed from %s at epoch %d, batch %d, step %d", path, self.epoch + 1, self.batch_in_epoch,
                 self.global_step)

    def _model_file(self, record_score: float | None = None, with_optimizer: bool = True) -> dict[str, Any]:
        """A model checkpoint as the reference writes them ({'model', 'optimizer', 'config', 'epoch'}, plus our
        'model_config'), with the epoch's selection score as 'metric' when given; best.pt leaves the optimiser
        out."""
        content: dict[str, Any] = {"model": reference_state_dict(self.model),
                                   "model_config": self.model.config.to_dict(), "config": self.config.to_dict(),
                                   "epoch": self.epoch}
        if with_optimizer:
            content["optimizer"] = self.optimizer.state_dict()
        if record_score is not None:
            content["metric"] = record_score
        return content

    def _save_snapshot(self) -> None:
        self._write_on_main(lambda: self.model_files.save_snapshot(self.epoch, self._model_file))

    def _save_best_files(self, record: dict[str, Any]) -> None:
        """The best files the epoch improves (rank 0; see tools.train.model_files)."""
        self._write_on_main(lambda: self.model_files.save_best(self.epoch, record, self._model_file))

    def _plot_curves(self) -> None:
        """training_curves.png in the experiment folder (rank 0); a plotting failure is only logged."""
        if not self.dist.is_main:
            return
        from tools.eval.plots import plot_training_curves

        self._curves_drawn_at = time.monotonic()
        try:
            plot_training_curves(self.history, self.experiment_dir / "training_curves.png")
        except (OSError, ValueError, RuntimeError) as error:
            log.warning("training_curves.png not written: %s", error)

    # ------------------------------------------------------------------------------- signals
    def _install_signal_handlers(self) -> dict[int, Any]:
        previous = {}
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.getsignal(signum)
            signal.signal(signum, self._request_stop)
        return previous

    def _request_stop(self, signum: int, _frame: Any) -> None:
        if self.stop_signal is not None:  # a second signal: stop at once
            raise KeyboardInterrupt
        self.stop_signal = signum
        log.warning("signal %d: finishing this step, then writing last.pt", signum)

    def _save_interrupted(self) -> None:
        self.save_training_state(self.experiment_dir / LAST)
        raise TrainingInterrupted(f"stopped by signal {self.stop_signal} at epoch {self.epoch + 1}, batch "
                                  f"{self.batch_in_epoch}; resume with --resume auto")
