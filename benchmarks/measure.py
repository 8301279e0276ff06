"""The model benchmark's settings and measurements (the model, ours or the reference's from a checkout; one
training or inference step on a random batch; its times, FLOPs and peak memory), and what every entry point of
benchmarks/ shares: time_calls, write_json, machine_info.
- train: `loss = model(audio, captions, idx)`, backward, Adam step, zero_grad (train mode, SpecAugment on);
  infer: `encode_audio` + `msc` (frame embeddings [B, 32, E], clip embeddings [B, E]), eval mode, no_grad.
- `warmup` untimed steps, then `repeats` timed: the median, the minimum, every step and the CPU time per step.
- FLOPs: FlopCounterMode (forward and backward). Peak memory: torch.cuda.max_memory_allocated on CUDA; on CPU
  the process's peak RSS (VmHWM), which never decreases: each mode of a CPU run gets its own process.
Our model's modules are imported where it is built, so that a process measuring the reference does not load
them (timm and torchvision among them: resident memory the reference's own process would not have).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import platform
import random
import resource
import statistics
import sys
import tempfile
import time
import types
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from benchmarks import reference_code

REPO_ROOT = Path(__file__).resolve().parent.parent
OPTIMIZER_IMPLS = ("default", "for-loop", "foreach", "fused")
DTYPES = {"float32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
MODES = ("train", "infer")
PRESETS = ("paper", "quickstart", "tiny")
REFERENCE_PRESETS = ("paper", "tiny")  # sizes the reference's code can be built at
MAX_REFERENCE_SECONDS = 10.23  # the reference's HTS-AT takes at most 1024 log-mel frames (hop 320 at 32 kHz)
CAPTION_WORDS = (
    "a dog barks loudly while people talk in the background and a car passes by then birds chirp "
    "near water as rain falls on a metal roof followed by thunder and wind blowing through trees "
    "someone speaks softly before music plays with a bell ringing twice engine idles door slams"
).split()
# Dense (no sparsity) bf16 tensor-core peak in TFLOP/s from the vendors' data sheets. The first
# entry whose key is in torch.cuda.get_device_name() wins, so more specific names come first.
GPU_PEAK_BF16_TFLOPS = (
    ("H200", 989.0), ("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H100", 989.0), ("A100", 312.0),
    ("L40S", 362.0), ("L40", 181.0), ("L4", 121.0), ("A10", 125.0), ("RTX 4090", 165.0),
    ("V100", 125.0),  # fp16 tensor cores (V100 has no bf16)
)


def option(default: Any, help: str | None = None, *, flag: str | None = None,
           choices: tuple[str, ...] | None = None) -> Any:
    """A `BenchmarkSettings` field that is also a command-line option (a bool field: --flag / --no-flag)."""
    return dataclasses.field(default=default, metadata={"flag": flag, "help": help, "choices": choices})


@dataclass
class BenchmarkSettings:
    """What to run; the fields are `run_benchmark`'s keyword arguments and the command line's options."""

    preset: str = option("paper", choices=PRESETS)
    batch_size: int = option(4)
    device: str = option("cpu", "cpu, cuda, cuda:1, ...")
    dtype: str = option("float32", "autocast dtype", choices=tuple(DTYPES))
    threads: int | None = option(None, "torch.set_num_threads (default: torch's)")
    warmup: int = option(1, "untimed steps first")
    repeats: int = option(3, "timed steps; the median is reported")
    mode: str = option("both", choices=(*MODES, "both"))
    fused_attention: bool = option(True, "window attention through scaled_dot_product_attention")
    onednn_linear: bool = option(True, "HTS-AT's linear layers through oneDNN in CPU float32 inference")
    compile: bool = option(False, "torch.compile the audio and text towers")
    channels_last: bool = option(False, "4-D weights in channels-last layout")
    reference_checkout: str | None = option(None, "measure the reference's own code (Ming-er/MGA-CLAP) from this "
                                                  "checkout instead of our model; presets paper and tiny")
    count_flops: bool = option(True, "count the FLOPs of a step (one extra step)", flag="--flops")
    optimizer_impl: str = option("default", "torch's Adam kernel for the training step (default: the "
                                            "optimiser of the code measured)", choices=OPTIMIZER_IMPLS)
    isolate: bool | None = option(None, "each mode in its own subprocess (default: on CPU when --mode both)")
    reuse_freed_memory: bool | None = option(None, "glibc keeps freed tensor memory for reuse (models.memory; "
                                             "default: on for ours, off for the reference, as it ran)")
    audio_seconds: float = option(10.0, "length of the random clips", flag="--seconds")
    caption_words: int = option(12, "mean words per random caption")
    seed: int = option(0)
    label: str = option("", "name of the run in the table")

    def validate(self) -> None:
        """Raise ValueError naming the option that has an unsupported value (FileNotFoundError: a bad checkout)."""
        for field in dataclasses.fields(self):
            allowed, value = field.metadata["choices"], getattr(self, field.name)
            if allowed is not None and value not in allowed:
                raise ValueError(f"{field.name} is {value!r}; expected one of {list(allowed)}")
        if self.batch_size < 1 or self.repeats < 1 or self.warmup < 0:
            raise ValueError(f"need batch_size >= 1, repeats >= 1, warmup >= 0; got {self.batch_size}, "
                             f"{self.repeats}, {self.warmup}")
        if "train" in self.modes() and self.batch_size < 2:
            raise ValueError("a training step needs --batch-size >= 2 (a contrastive batch of one clip has no "
                             "negatives and gives NaN gradients); use --mode infer for batch 1")
        if not self.reference_checkout:
            return
        ours_only = [flag for flag, on in (("--compile", self.compile), ("--channels-last", self.channels_last))
                     if on]
        if ours_only:
            raise ValueError(f"--reference-checkout measures the reference's code; {', '.join(ours_only)} "
                             "only apply to our model")
        if self.preset not in REFERENCE_PRESETS:
            raise ValueError(f"--reference-checkout runs the presets {list(REFERENCE_PRESETS)}, not {self.preset!r}: "
                             "the reference's HTS-AT has four stages of 4x4 patches")
        if self.audio_seconds > MAX_REFERENCE_SECONDS:
            raise ValueError(f"the reference's HTS-AT takes clips of at most {MAX_REFERENCE_SECONDS} s; "
                             f"got --seconds {self.audio_seconds}")
        reference_code.check_checkout(self.reference_checkout)

    @property
    def effective_reuse_freed_memory(self) -> bool:
        """The allocator setting of the project's entry points; the reference had glibc's defaults."""
        return not self.reference_checkout if self.reuse_freed_memory is None else self.reuse_freed_memory

    @property
    def effective_fused_attention(self) -> bool:
        return self.fused_attention and not self.reference_checkout

    @property
    def effective_onednn_linear(self) -> bool:
        return self.onednn_linear and not self.reference_checkout

    def modes(self) -> list[str]:
        return list(MODES) if self.mode == "both" else [self.mode]


def add_setting_arguments(parser: argparse.ArgumentParser) -> None:
    """One argparse option per `BenchmarkSettings` field, in field order (a bool: --flag / --no-flag)."""
    for field in dataclasses.fields(BenchmarkSettings):
        kind = typing.get_type_hints(BenchmarkSettings)[field.name]
        if isinstance(kind, types.UnionType):  # int | None: int
            (kind,) = [member for member in typing.get_args(kind) if member is not type(None)]
        kwargs: dict[str, Any] = {"help": field.metadata["help"], "default": field.default, "dest": field.name,
                                  "choices": field.metadata["choices"]}
        if kind is bool:
            kwargs.update(action=argparse.BooleanOptionalAction, choices=None)
        elif kind is not str:
            kwargs["type"] = kind
        parser.add_argument(field.metadata["flag"] or "--" + field.name.replace("_", "-"), **kwargs)


def settings_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """`BenchmarkSettings` keyword arguments from arguments parsed with `add_setting_arguments`."""
    return {field.name: getattr(args, field.name) for field in dataclasses.fields(BenchmarkSettings)}


def build_model(settings: BenchmarkSettings) -> nn.Module:
    """The measured model on the device, random weights: the reference's (--reference-checkout) or ours."""
    if settings.reference_checkout:
        return reference_code.load_reference_model(settings.reference_checkout, reference_size(settings.preset),
                                                    settings.device)
    from models.ase_model import ASE
    from models.onednn_linear import set_onednn_linear
    from models.speed import apply_channels_last, compile_model, set_fused_attention

    model = ASE(preset_config(settings.preset, settings.fused_attention)).to(settings.device)
    set_fused_attention(model, settings.fused_attention)
    set_onednn_linear(model, settings.effective_onednn_linear)
    if settings.channels_last:
        apply_channels_last(model)
    if settings.compile:
        compile_model(model)
    return model


def preset_config(preset: str, fused_attention: bool = True) -> dict[str, Any]:
    """Model config dict (our schema) of a preset, for random initialisation: "paper" (HTS-AT 96/[2,2,6,2]/
    [4,8,16,32], a bert-base text tower, E = 1024, 4096 codes), "quickstart" (settings/quickstart.yaml's model),
    "tiny" (tools.tiny_model's, about a million parameters: the smoke tests')."""
    from models.config import ModelConfig
    from tools.tiny_model import make_tiny_text_dir, tiny_config_dict

    if preset == "paper":
        config = {"embed_size": 1024, "codebook": {"size": 4096}, "text_encoder_args": {"type": "bert-base-uncased"},
                  "audio_encoder_args": {"htsat": {"embed_dim": 96, "depths": [2, 2, 6, 2],
                                                   "num_heads": [4, 8, 16, 32]}}}
    elif preset == "quickstart":
        config = ModelConfig.from_dict(yaml.safe_load((REPO_ROOT / "settings" / "quickstart.yaml").read_text())
                                       ).to_dict()
    else:
        config = tiny_config_dict(make_tiny_text_dir(Path(tempfile.gettempdir()) / "mga_clap_benchmark_tiny_bert"))
        del config["device"]  # the tests' run device; the benchmark moves the model to --device itself
    config["audio_encoder_args"].update(fused_attention=fused_attention, pretrained=False)
    config["text_encoder_args"]["pretrained"] = False
    return config


def reference_size(preset: str) -> reference_code.ReferenceSize:
    """The reference model's sizes for a preset: 'paper' (its own) or 'tiny' (tools.tiny_model's, for tests)."""
    if preset == "paper":
        return reference_code.ReferenceSize()
    from transformers import BertConfig

    config = preset_config("tiny")
    text_dir = Path(config["text_encoder_args"]["type"])
    return reference_code.ReferenceSize(embed_size=config["embed_size"], htsat=config["audio_encoder_args"]["htsat"],
                                        text_config=BertConfig.from_pretrained(str(text_dir)), tokenizer_dir=text_dir)


def sample_rate(model: nn.Module, settings: BenchmarkSettings) -> int:
    return reference_code.reference_sample_rate(model) if settings.reference_checkout else model.sample_rate


def random_batch(settings: BenchmarkSettings, sample_rate: int) -> tuple[torch.Tensor, list[str], torch.Tensor]:
    """Random audio [B, seconds * sr] (about -20 dBFS noise), random captions, ids 0..B-1."""
    generator = torch.Generator().manual_seed(settings.seed)
    samples = int(settings.audio_seconds * sample_rate)
    audio = (0.1 * torch.randn(settings.batch_size, samples, generator=generator)).to(settings.device)
    rng = random.Random(settings.seed)
    captions = [" ".join(rng.choices(CAPTION_WORDS, k=settings.caption_words + rng.randint(-2, 2)))
                for _ in range(settings.batch_size)]
    return audio, captions, torch.arange(settings.batch_size, device=settings.device)


def autocast_context(settings: BenchmarkSettings) -> contextlib.AbstractContextManager:
    dtype = DTYPES[settings.dtype]
    return contextlib.nullcontext() if dtype is None else torch.autocast(torch.device(settings.device).type, dtype)


def build_adam(model: nn.Module, settings: BenchmarkSettings) -> torch.optim.Optimizer:
    """The optimiser of the training step. "default": the measured code's own (ours: `tools.train.optim`, the
    fused kernel; the reference: its get_optimizer, torch's single-tensor loop on CPU); "for-loop", "foreach",
    "fused": torch's Adam kernels (lr 5e-5) over the trainable parameters."""
    impl = settings.optimizer_impl
    if impl == "default" and settings.reference_checkout:
        return reference_code.reference_optimizer(settings.reference_checkout, model)
    if impl == "default":
        from tools.config import OptimArgs
        from tools.train.optim import build_optimizer
        return build_optimizer(model, OptimArgs(lr=5e-5))
    options = {"for-loop": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}
    return torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=5e-5, **options[impl])


def make_train_step(model: nn.Module, settings: BenchmarkSettings) -> Callable[[], None]:
    """`loss = model(audio, captions, idx)`, backward (through a GradScaler for fp16 on CUDA), step, zero_grad."""
    model.train()
    audio, captions, idx = random_batch(settings, sample_rate(model, settings))
    optimizer = build_adam(model, settings)
    use_scaler = settings.dtype == "fp16" and torch.device(settings.device).type == "cuda"
    scaler = torch.amp.GradScaler("cuda") if use_scaler else None

    def step() -> None:
        with autocast_context(settings):
            loss = model(audio, captions, idx)
        if scaler is None:
            loss.backward()
            optimizer.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        optimizer.zero_grad(set_to_none=True)

    return step


def make_infer_step(model: nn.Module, settings: BenchmarkSettings) -> Callable[[], None]:
    """Frame embeddings [B, 32, E] and clip embeddings [B, E] of a batch, eval mode, no_grad. Ours skips
    HTS-AT's pooled clip feature (not an embedding), as tools/eval/embedding.py; the reference computes it."""
    model.eval()
    audio, _, _ = random_batch(settings, sample_rate(model, settings))
    skip_clip_feature = {} if settings.reference_checkout else {"need_clip_features": False}

    def step() -> None:
        with torch.no_grad(), autocast_context(settings):
            _, frame_embeds = model.encode_audio(audio, **skip_clip_feature)
            model.msc(frame_embeds, model.codebook)

    return step


def synchronize(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def time_calls(run: Callable[[Any], Any], inputs: Iterable[Any], warm_up: int = 0) -> tuple[list[float], list[float]]:
    """Wall and process-CPU seconds (all threads) of run(x) for each input, the first `warm_up` calls left out."""
    walls, cpus = [], []
    for item in inputs:
        start_wall, start_cpu = time.perf_counter(), time.process_time()
        run(item)
        walls.append(time.perf_counter() - start_wall)
        cpus.append(time.process_time() - start_cpu)
    return walls[warm_up:], cpus[warm_up:]


def time_steps(step: Callable[[], None], settings: BenchmarkSettings) -> tuple[list[float], list[float]]:
    """Run `warmup` untimed steps, then `repeats` timed ones; returns their wall and process CPU times (s)."""
    for _ in range(settings.warmup):
        step()
    synchronize(settings.device)
    return time_calls(lambda _: (step(), synchronize(settings.device)), range(settings.repeats))


def write_json(report: dict[str, Any], out: str | Path | None) -> None:
    """Write a JSON report to `out` (its folder made), if given."""
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(report, indent=1, default=str) + "\n")


def count_step_flops(step: Callable[[], None]) -> int:
    """FLOPs of one step as counted by FlopCounterMode (forward and backward matmuls, convs, SDPA). torch's
    table lacks the CPU flash-attention kernels and oneDNN's linear (models.onednn_linear): added here (torch's
    SDPA formulas; 2 * M * K * N for a linear), so every kernel choice counts the same FLOPs."""
    from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

    def cpu_flash(query: Any, key: Any, value: Any, *args: Any, **kwargs: Any) -> int:
        return sdpa_flop_count(query, key, value)

    def cpu_flash_backward(grad_out: Any, query: Any, key: Any, value: Any, *args: Any, **kwargs: Any) -> int:
        return sdpa_backward_flop_count(grad_out, query, key, value)

    def onednn_linear(x_shape: Any, weight_shape: Any, *args: Any, **kwargs: Any) -> int:
        return 2 * math.prod(x_shape[:-1]) * x_shape[-1] * weight_shape[0]

    aten = torch.ops.aten
    custom = {aten._scaled_dot_product_flash_attention_for_cpu: cpu_flash,
              aten._scaled_dot_product_flash_attention_for_cpu_backward: cpu_flash_backward}
    if hasattr(torch.ops.mkldnn, "_linear_pointwise"):
        custom[torch.ops.mkldnn._linear_pointwise] = onednn_linear
    counter = FlopCounterMode(display=False, custom_mapping=custom)
    with counter:
        step()
    return int(counter.get_total_flops())


def run_mode(settings: BenchmarkSettings, mode: str) -> dict[str, Any]:
    """Import the model's code, build, time, read peak memory, count FLOPs: one mode's figures, in this process.
    `rss_at_start_mb` is read after the model's code (the reference's: with its imports) is imported, before
    the model is built."""
    from models.memory import reuse_freed_memory

    torch.manual_seed(settings.seed)
    if settings.effective_reuse_freed_memory:
        reuse_freed_memory()  # process-wide and permanent: isolated runs (the CPU default) measure it alone
    previous_threads = torch.get_num_threads()
    if settings.threads:
        torch.set_num_threads(settings.threads)
    is_cuda = torch.device(settings.device).type == "cuda"
    try:
        if is_cuda:
            torch.cuda.reset_peak_memory_stats(settings.device)
        if settings.reference_checkout:  # the measured code's imports count in rss_at_start_mb
            reference_code.import_reference(reference_code.check_checkout(settings.reference_checkout))
        else:
            import models.ase_model  # noqa: F401
        rss_at_start = proc_status_mb("VmRSS")
        model = build_model(settings)
        step = make_train_step(model, settings) if mode == "train" else make_infer_step(model, settings)
        rss_after_build = proc_status_mb("VmRSS")
        times, cpu_times = time_steps(step, settings)
        peak_mb = torch.cuda.max_memory_allocated(settings.device) / 2**20 if is_cuda else peak_cpu_memory_mb()
        flops = count_step_flops(step) if settings.count_flops and not settings.compile else None
    finally:
        torch.set_num_threads(previous_threads)
    median = statistics.median(times)
    figures: dict[str, Any] = {
        "clips_per_s": settings.batch_size / median, "s_per_clip": median / settings.batch_size,
        "median_step_s": median, "min_step_s": min(times), "step_times_s": times, "peak_memory_mb": peak_mb,
        "memory_measure": "cuda_max_memory_allocated" if is_cuda else "process_peak_rss",
        "rss_at_start_mb": rss_at_start, "rss_after_model_build_mb": rss_after_build,
        "process_cpu_s_per_step": statistics.median(cpu_times), "flops_per_step": flops,
        "achieved_tflops": flops / median / 1e12 if flops else None,
    }
    if is_cuda:
        name = torch.cuda.get_device_name(settings.device)
        peak = next((tflops for key, tflops in GPU_PEAK_BF16_TFLOPS if key in name), None)
        figures["gpu_peak_bf16_tflops"] = peak
        figures["share_of_bf16_peak"] = figures["achieved_tflops"] / peak if peak and flops else None
    return figures


def proc_status_mb(field: str) -> float | None:
    """A memory line of /proc/self/status (VmHWM, VmRSS) in MB, or None where there is none."""
    status = Path("/proc/self/status")
    lines = status.read_text().splitlines() if status.is_file() else []
    return next((int(line.split()[1]) / 1024 for line in lines if line.startswith(field + ":")), None)


def peak_cpu_memory_mb() -> float:
    """Peak resident set size of this process in MB (VmHWM, else getrusage's ru_maxrss)."""
    peak, max_rss = proc_status_mb("VmHWM"), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if peak is not None else max_rss / (1024 * 1024 if sys.platform == "darwin" else 1024)


def machine_info(device: str = "cpu") -> dict[str, Any]:
    """CPU model, cores, versions, load average and (when a CUDA device is used) the GPU's name."""
    cpuinfo = Path("/proc/cpuinfo")
    models = [line.split(":", 1)[1].strip() for line in (cpuinfo.read_text().splitlines() if cpuinfo.is_file()
                                                          else []) if line.startswith("model name")]
    return {
        "cpu_model": models[0] if models else platform.processor() or "unknown", "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch": torch.__version__, "python": platform.python_version(), "platform": platform.platform(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(device) if device.startswith("cuda") and torch.cuda.is_available() else None,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
