"""The training loop: one process or many (torchrun), resumable, fault-tolerant.

`Trainer(config, experiment_dir).fit()` trains for `training.epochs`, evaluates retrieval on
`eval.retrieval_jsons` after each epoch (rank 0), writes `last.pt` (each epoch, every
`training.save_every_steps` steps, and on SIGINT/SIGTERM) and `best.pt` atomically, and resumes from
a checkpoint with the same weights, optimiser, schedule, scaler, RNG states and position in the epoch.
"""

from __future__ import annotations

import logging
import math
import signal
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from data_handling.caption_dataset import (
    CaptionAudioDataset,
    check_audio_files,
    collate_captions,
    read_wavcaps_jsons,
)
from data_handling.samplers import DurationBucketBatchSampler
from models.ase_model import ASE
from models.checkpoint import check_state_dict, reference_state_dict
from models.speed import compile_model
from tools.checkpointing import atomic_save, capture_rng_states, find_resume_checkpoint, restore_rng_states
from tools.config import Config
from tools.distributed import DistributedInfo, barrier
from tools.optim import CosineWithWarmup, build_optimizer, warmup_steps_from

log = logging.getLogger(__name__)


class TrainingInterrupted(RuntimeError):
    """SIGINT or SIGTERM arrived; a resumable last.pt was written."""


class TooManyBadSteps(RuntimeError):
    """Several consecutive non-finite losses: the run stopped."""


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

        self.model = ASE(config).to(self.device)
        self.model.criterion.gather_across_ranks = self.dist.enabled
        if config.training.compile:
            compile_model(self.model)  # in place: parameter names and checkpoints stay the same
        self.train_model: torch.nn.Module = self.model
        if self.dist.enabled:
            self.train_model = DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=True)
        self.loader = self._build_loader()
        accumulation = config.training.grad_accum_steps
        self.optimizer_steps_per_epoch = max(1, math.ceil(self.batches_per_epoch / accumulation))
        total_steps = self.optimizer_steps_per_epoch * config.training.epochs
        self.optimizer = build_optimizer(self.model, config.optim_args)
        self.scheduler = CosineWithWarmup(self.optimizer, config.optim_args.lr, total_steps,
                                          warmup_steps_from(config.optim_args, self.optimizer_steps_per_epoch),
                                          config.optim_args.min_lr)
        self.autocast_dtype, use_scaler = autocast_settings(config.training.amp, self.device)
        self.scaler = torch.amp.GradScaler("cuda") if use_scaler else None
        self.epoch = 0
        self.batch_in_epoch = 0
        self.global_step = 0
        self.best_metric = -math.inf
        self.bad_steps = 0
        self.skipped_files = 0
        self.stop_signal: int | None = None
        self.history: list[dict[str, Any]] = []

    # ----------------------------------------------------------------------------------- data
    def _build_loader(self) -> DataLoader:
        config = self.config
        items = read_wavcaps_jsons(config.json_files, config.data_args.audio_root, config.blacklist)
        if not items:
            raise ValueError(f"no training captions in {config.json_files}")
        if config.data_args.check_files:
            missing = check_audio_files(items)
            if missing and config.data_args.strict:
                raise FileNotFoundError(f"{len(missing)} audio files are missing (first: {missing[0]}) and "
                                        f"data_args.strict is true")
        self.dataset = CaptionAudioDataset(items, sample_rate=config.audio_args.sr,
                                           max_length=config.audio_args.max_length, train=True,
                                           strict=config.data_args.strict)
        self.sampler = DurationBucketBatchSampler(
            self.dataset.durations, batch_size=config.data_args.batch_size,
            num_buckets=config.data_args.duration_buckets, shuffle=True, seed=config.seed,
            num_replicas=self.dist.world_size, rank=self.dist.rank)
        workers = config.data_args.num_workers
        loader = DataLoader(self.dataset, batch_sampler=self.sampler, num_workers=workers,
                            collate_fn=collate_captions, persistent_workers=False,
                            pin_memory=config.data_args.pin_memory and self.device.type == "cuda")
        cap = config.training.max_steps_per_epoch * config.training.grad_accum_steps
        self.batches_per_epoch = min(len(self.sampler), cap) if cap > 0 else len(self.sampler)
        return loader

    # ------------------------------------------------------------------------------ training
    def fit(self, resume: str | bool | None = None, until_epoch: int | None = None) -> list[dict[str, Any]]:
        """Train (continuing from `resume`: a path, 'auto' or None) up to `until_epoch` epochs (default:
        all of `training.epochs`; a smaller value stops early with the schedule unchanged)."""
        checkpoint_path = find_resume_checkpoint(resume, self.experiment_dir)
        if checkpoint_path is not None:
            self.load_training_state(checkpoint_path)
        last_epoch = min(until_epoch or self.config.training.epochs, self.config.training.epochs)
        previous_handlers = self._install_signal_handlers()
        try:
            while self.epoch < last_epoch:
                record = self.train_epoch()
                record.update(self.evaluate())
                self.history.append(record)
                self.epoch += 1
                self.batch_in_epoch = 0
                self._save_epoch_end(record)
                if self.epoch_callback is not None and self.dist.is_main:
                    self.epoch_callback(record)
        finally:
            for signum, handler in previous_handlers.items():
                signal.signal(signum, handler)
        return self.history

    def train_epoch(self) -> dict[str, Any]:
        self.train_model.train()
        self.sampler.set_epoch(self.epoch)
        self.sampler.set_start_batch(self.batch_in_epoch)
        accumulation = self.config.training.grad_accum_steps
        losses: list[float] = []
        started = time.time()
        progress = tqdm(total=self.batches_per_epoch, initial=self.batch_in_epoch, disable=not self.dist.is_main,
                        desc=f"epoch {self.epoch + 1}/{self.config.training.epochs}", dynamic_ncols=True)
        self.optimizer.zero_grad(set_to_none=True)
        for batch in self.loader:
            if self.batch_in_epoch >= self.batches_per_epoch:
                break
            self.batch_in_epoch += 1
            progress.update(1)
            self.skipped_files += batch["num_skipped"]
            if batch["audio"].shape[0] < 2:
                continue  # everything skipped, or a single clip: no negatives to contrast with
            is_update = self.batch_in_epoch % accumulation == 0 or self.batch_in_epoch == self.batches_per_epoch
            loss = self._forward_backward(batch, sync=is_update)
            if loss is not None:
                losses.append(loss)
            if is_update and loss is not None:
                self._optimizer_step()
                progress.set_postfix(loss=f"{losses[-1] if losses else float('nan'):.4f}",
                                     lr=f"{self.scheduler.lr:.2e}")
            if self.stop_signal is not None:
                self._save_interrupted()
            if is_update and self._due_for_step_save():
                self.save_training_state(self.experiment_dir / "last.pt")
        progress.close()
        mean_loss = sum(losses) / max(1, len(losses))
        log.info("epoch %d: mean loss %.4f, %d steps, %.1f s, %d files skipped so far", self.epoch + 1,
                 mean_loss, len(losses), time.time() - started, self.skipped_files)
        return {"epoch": self.epoch + 1, "loss": mean_loss, "seconds": time.time() - started,
                "skipped_files": self.skipped_files}

    def _forward_backward(self, batch: dict[str, Any], sync: bool) -> float | None:
        audio = batch["audio"].to(self.device, non_blocking=True)
        idx = batch["idx"].to(self.device, non_blocking=True)
        autocast = (torch.autocast(self.device.type, dtype=self.autocast_dtype) if self.autocast_dtype
                    else nullcontext())
        no_sync = self.train_model.no_sync() if (self.dist.enabled and not sync) else nullcontext()
        with no_sync:
            with autocast:
                loss = self.train_model(audio, batch["captions"], idx)
            if not torch.isfinite(loss):
                self._record_bad_step(loss)
                return None
            self.bad_steps = 0
            # A gathered loss is the same on every rank; DDP averages gradients, so scale back up.
            scale = self.dist.world_size / self.config.training.grad_accum_steps
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
        """Retrieval on each `eval.retrieval_jsons` (rank 0); `score` = sum of R@1 + R@5 both ways."""
        jsons = self.config.eval.retrieval_jsons
        if not jsons or not self.dist.is_main:
            return {}
        from tools.retrieval_metrics import retrieval_score
        from tools.zero_shot import evaluate_retrieval

        results: dict[str, Any] = {"retrieval": {}}
        score = 0.0
        for json_path in jsons:
            metrics = evaluate_retrieval(self.model, json_path, self.device, self.config.eval.batch_size)
            results["retrieval"][str(json_path)] = metrics
            score += retrieval_score(metrics)
            log.info("epoch %d retrieval on %s: T2A R@1 %.2f R@5 %.2f, A2T R@1 %.2f R@5 %.2f", self.epoch + 1,
                     json_path, metrics["t2a_R1"], metrics["t2a_R5"], metrics["a2t_R1"], metrics["a2t_R5"])
        results["score"] = score
        return results

    # --------------------------------------------------------------------------- checkpoints
    def training_state(self) -> dict[str, Any]:
        return {
            "model": reference_state_dict(self.model),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler else None,
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "global_step": self.global_step,
            "best_metric": self.best_metric,
            "skipped_files": self.skipped_files,
            "rng": capture_rng_states(),
            "config": self.config.to_dict(),
            "history": self.history,
        }

    def save_training_state(self, path: Path) -> None:
        if self.dist.is_main:
            atomic_save(self.training_state(), path)
        barrier()

    def load_training_state(self, path: Path) -> None:
        from models.checkpoint import extract_state_dict, read_checkpoint

        checkpoint = read_checkpoint(path)
        state = check_state_dict(self.model, extract_state_dict(checkpoint, path), path)
        self.model.load_state_dict(state, strict=False)
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.scheduler.load_state_dict(checkpoint["scheduler"])
        if self.scaler and checkpoint.get("scaler"):
            self.scaler.load_state_dict(checkpoint["scaler"])
        self.epoch = int(checkpoint["epoch"])
        self.batch_in_epoch = int(checkpoint.get("batch_in_epoch", 0))
        self.global_step = int(checkpoint["global_step"])
        self.best_metric = float(checkpoint["best_metric"])
        self.skipped_files = int(checkpoint.get("skipped_files", 0))
        self.history = list(checkpoint.get("history", []))
        if self.dist.world_size == 1 and "rng" in checkpoint:
            restore_rng_states(checkpoint["rng"])
        log.info("resumed from %s at epoch %d, batch %d, step %d", path, self.epoch + 1, self.batch_in_epoch,
                 self.global_step)

    def _save_epoch_end(self, record: dict[str, Any]) -> None:
        score = record.get("score")
        improved = score is not None and score > self.best_metric
        if improved:
            self.best_metric = score
        self.save_training_state(self.experiment_dir / "last.pt")
        if self.dist.is_main and (improved or (score is None and self.epoch == self.config.training.epochs)):
            atomic_save({"model": reference_state_dict(self.model), "epoch": self.epoch, "metric": score,
                         "config": self.config.to_dict()}, self.experiment_dir / "best.pt")
            log.info("best.pt updated at epoch %d (score %s)", self.epoch, score)

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
        self.save_training_state(self.experiment_dir / "last.pt")
        raise TrainingInterrupted(f"stopped by signal {self.stop_signal} at epoch {self.epoch + 1}, batch "
                                  f"{self.batch_in_epoch}; resume with --resume auto")
