"""The YAML schema of training and evaluation runs: validated dataclasses, defaults the paper's.

The model's own sections (audio_args, audio_encoder_args, text_encoder_args, codebook, model_args) and
the schema machinery come from models/config.py; `Config.model_config()` is the `ModelConfig` an `ASE`
is built from. Every key of the reference's five settings files is accepted unchanged; our optional
keys have the paper's values as defaults. An unknown key or a value of the wrong type raises
`ConfigError` naming the key and the file. `load_config(path, overrides)` reads a file and applies
`--set key.sub=value` overrides; `parse_config(dict)` validates a dict already loaded.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from data_handling.class_names import CLASSIFICATION_PROMPT
from data_handling.source_records import check_caption_templates
from models.config import (
    AudioArgs,
    AudioEncoderArgs,
    CodebookArgs,
    ConfigError,
    ModelArgs,
    ModelConfig,
    TextEncoderArgs,
    apply_override,
    build_dataclass,
)


@dataclass
class TrainingArgs:
    spec_augmentation: bool = True
    epochs: int = 10
    clip_grad: float | None = 2.0  # max grad norm; the reference read it but never applied it
    dropout: float = 0.2  # accepted for compatibility; unused, as in the reference
    grad_accum_steps: int = 1
    amp: str = "auto"  # auto (bf16 where supported, else fp16 + scaler, on CUDA; off on CPU) | bf16 | fp16 | off
    save_every_steps: int = 0  # 0: last.pt only at the end of each epoch
    max_bad_steps: int = 5  # consecutive non-finite losses before the run stops
    compile: bool = False  # torch.compile both towers (models.speed.compile_model); pays off on GPUs
    gather_negatives: bool = True  # under DDP, the loss sees every GPU's clips (the reference: only its own)
    max_steps_per_epoch: int = 0  # 0: whole epoch (a cap for quick runs and tests)
    # start from trained weights: a checkpoint (model.pt, last.pt, best.pt, ...) or a model folder; the model
    # is the YAML's, optimiser, schedule and epoch start fresh; ignored when resuming (tools/train/init_from.py)
    init_from: str | None = None
    # model_<epoch>.pt is written after these epochs (1-based), as the reference's epochs 3 to 9
    snapshot_epochs: list[int] = field(default_factory=lambda: [3, 4, 5, 6, 7, 8, 9])


@dataclass
class OptimArgs:
    lr: float = 5e-5
    optimizer_name: str = "adam"  # adam | adamw | sgd (with momentum), in any case ("AdamW")
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    momentum: float = 0.9
    weight_decay: float | None = None  # None: the optimiser's own default (adam 0, adamw 0.01)
    decay_norms_and_biases: bool = True  # false: weight decay skips biases, norms and scalars (ours)
    warmup_steps: int = 0  # used when > 0, else warmup_epochs
    warmup_epochs: float = 2
    min_lr: float = 0.0
    # reference: an epoch is captions // batch_size + 1 steps long in the schedule (the reference's
    # len(dataloader)); batches: the steps it really has (ours, the cosine then ends at min_lr)
    schedule_epoch_length: str = "reference"


@dataclass
class DataArgs:
    batch_size: int = 128
    num_workers: int = 8
    audio_root: str | None = None  # resolves relative audio paths; default: each json's folder
    strict: bool = False  # a corrupt audio file met during training stops the run instead of being skipped
    skip_missing: bool = False  # audio files missing at start-up: false stops before training, true skips them
    pin_memory: bool = True
    duration_bucket_edges: list[float] = field(default_factory=lambda: [5.0, 10.0, 15.0, 20.0, 25.0, 30.0])
    drop_last: bool = True  # each duration bucket's incomplete batch is dropped every epoch (the reference)
    max_decode_seconds: float = 300.0  # only the first seconds of a file are read (0: whole file)
    # true: decode only the 10 s window of each clip (same samples, to float rounding) | false: decode the
    # first max_decode_seconds and cut, as the reference
    partial_decoding: bool = True
    # training audio not at audio_args.sr: kaiser_best (resampy's filter, as the reference's environment:
    # librosa 0.9.2 with resampy) | soxr_hq (ours: soxr 'HQ', as evaluation; several times faster)
    resampler: str = "kaiser_best"
    # WebDataset shards written by `python -m tools.make_shards` (replace json_files for training): a
    # folder, brace ranges, `pipe:` commands or fsspec URLs, a list or joined by '::' (docs/shards.md)
    shards: str | list[str] | None = None
    shards_manifest: str | None = None  # default: manifest.json beside the first shard
    shard_cache: str | None = None  # local folder for copies of remote shards
    check_files: bool = True  # report missing files at start-up
    # Labelled clips (a folder of class folders, a table or dataset with a 'label' column): their caption is
    # one of these, '{}' replaced by the labels, drawn per clip and epoch (docs/own_data.md)
    caption_templates: list[str] = field(default_factory=lambda: [CLASSIFICATION_PROMPT])
    audio_cache: str | None = None  # audio bytes of Hugging Face datasets are written here once (default: beside)
    # > 0 and no eval.retrieval_jsons / classification_sets: this fraction of the training clips (drawn with the
    # seed) is held out, never trained on, and evaluated after each epoch (files in the experiment folder)
    val_fraction: float = 0.0


@dataclass
class EvalArgs:
    data_root_dir: str | None = None
    ckpt: str | None = None
    retrieval_jsons: list[str] = field(default_factory=list)  # evaluated after each epoch (json, CSV/TSV, dataset)
    # labelled clips (class folders, CSV/TSV audio,label[,fold], dataset): zero-shot accuracy after each epoch,
    # prompt the first of data_args.caption_templates; each keeps <folder>_clas_best_model.pt
    classification_sets: list[str] = field(default_factory=list)
    # Audio files per batch and loading processes of the scripts and the per-epoch retrieval evaluation. auto:
    # the machine's measured best (tools/eval/loader_defaults.py: batch 4 on a CPU, 32 on a GPU; no loader
    # process on a CPU of two cores or fewer, else 1, up to 8 with a GPU). Neither changes a number.
    batch_size: int | str = "auto"
    num_workers: int | str = "auto"
    # Zero-shot scripts on CUDA: float32 (exact, TF32 off: the CPU's numbers) | bf16 (autocast: about 2x
    # faster on a GPU, numbers differ by about 1 %). The CPU always runs float32.
    precision: str = "float32"
    # Audio longer than 10 s. null: each task's own handling (retrieval: crop, SED and VGGSound: cut, as the
    # reference; ESC-50, UrbanSound8K and grounding: window, where the reference cannot run such audio);
    # crop: one random 10 s crop, seeded | cut: the first 10 s | window: every 10 s window, all frames (ours).
    long_audio: str | None = None
    # Crops (retrieval): the start of clip i's crop is drawn by numpy default_rng([crop_seed, i]), i = the
    # clip's position in its json: the same numbers on every run, whatever the batch size or loader workers.
    crop_seed: int = 0
    # Retrieval: batch (the reference: a clip is zero-padded to the longest clip of its first caption's
    # 32-caption batch, stretched by the encoder when that batch is shorter than 10 s) | fixed (ours: every
    # clip zero-padded to 10 s, independent of its neighbours in the json).
    retrieval_padding: str = "batch"
    # SED and grounding: true (the reference) scores every frame of the 10 s input, also those of audio
    # tiled beyond a short clip's end (SED timestamps up to 10 s, grounding offsets not clipped); false
    # (ours) drops the frames, and clips the detections, beyond the clip's duration.
    score_tiled_tail: bool = True
    # Missing or unreadable evaluation audio. false (ours): skipped, the score is over the others, the summary
    # says "scored N of M files" and the results have complete: false and the skipped files | true: an error
    # naming the files before any score (the scripts exit with status 1; training checks the sets at start-up
    # and stops before the first step, and a set found incomplete later gets no score that epoch).
    strict: bool = False


@dataclass
class DistArgs:
    dist_url: str = "env://"


@dataclass
class WandbArgs:
    enabled: bool = False
    project: str = "mga-clap"
    mode: str = "offline"  # online | offline


@dataclass
class SyntheticArgs:
    """The built-in corpus (quickstart): generated into `root` when missing."""

    root: str = "data/synthetic"
    num_train: int = 1000
    num_test: int = 100
    seed: int = 0


@dataclass
class Config:
    device: str = "cuda"
    seed: int = 20
    embed_size: int = 1024
    temp: float = 0.07
    embed_regularization: bool = True
    queue_size: int = 5120  # accepted for compatibility; unused, as in the reference
    json_files: list[str] = field(default_factory=list)
    blacklist: str | list[str] | None = None  # one file (the reference) or several (ours)
    resume: bool | str | None = False
    exp_name: str = "mga_clap"
    output_dir: str = "outputs"
    dist_args: DistArgs = field(default_factory=DistArgs)
    audio_args: AudioArgs = field(default_factory=AudioArgs)
    audio_encoder_args: AudioEncoderArgs = field(default_factory=AudioEncoderArgs)
    text_encoder_args: TextEncoderArgs = field(default_factory=TextEncoderArgs)
    codebook: CodebookArgs = field(default_factory=CodebookArgs)
    model_args: ModelArgs = field(default_factory=ModelArgs)
    training: TrainingArgs = field(default_factory=TrainingArgs)
    optim_args: OptimArgs = field(default_factory=OptimArgs)
    data_args: DataArgs = field(default_factory=DataArgs)
    eval: EvalArgs = field(default_factory=EvalArgs)
    wandb: WandbArgs = field(default_factory=WandbArgs)
    synthetic: SyntheticArgs | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def model_config(self) -> ModelConfig:
        """The model's keys as the `ModelConfig` that `ASE` is built from (shared objects, not copies)."""
        return ModelConfig(embed_size=self.embed_size, temp=self.temp, embed_regularization=self.embed_regularization,
                           spec_augmentation=self.training.spec_augmentation, audio_args=self.audio_args,
                           audio_encoder_args=self.audio_encoder_args, text_encoder_args=self.text_encoder_args,
                           codebook=self.codebook, model_args=self.model_args)


CHOICES = {
    "training.amp": ("auto", "bf16", "fp16", "off"),
    "eval.precision": ("float32", "bf16"),
    "data_args.resampler": ("kaiser_best", "soxr_hq"),
    "eval.long_audio": (None, "crop", "cut", "window"),
    "eval.retrieval_padding": ("batch", "fixed"),
    "optim_args.optimizer_name": ("adam", "adamw", "sgd"),
    "optim_args.schedule_epoch_length": ("reference", "batches"),
    "wandb.mode": ("online", "offline"),
}
CASE_INSENSITIVE_CHOICES = ("optim_args.optimizer_name",)
"""Keys whose value is lower-cased before the check (the reference compares `optimizer_name.lower()`)."""


def parse_config(data: dict[str, Any] | Config | None, source: str = "<dict>") -> Config:
    """Validate a (possibly partial) config dict and fill the defaults; `source` names it in errors."""
    if isinstance(data, Config):
        return data
    config = build_dataclass(Config, data or {}, prefix="", source=source)
    for key, allowed in CHOICES.items():
        section, name = key.split(".")
        value = getattr(getattr(config, section), name)
        if key in CASE_INSENSITIVE_CHOICES and isinstance(value, str) and value.lower() in allowed:
            value = value.lower()
            setattr(getattr(config, section), name, value)
        if value not in allowed:
            raise ConfigError(f"{source}: '{key}' is {value!r}; expected one of {list(allowed)}")
    for key, minimum in (("batch_size", 1), ("num_workers", 0)):
        value = getattr(config.eval, key)
        if value != "auto" and not (isinstance(value, int) and value >= minimum):
            raise ConfigError(f"{source}: 'eval.{key}' is {value!r}; expected an integer >= {minimum} or 'auto'")
    if not 0.0 <= config.data_args.val_fraction < 1.0:
        raise ConfigError(f"{source}: 'data_args.val_fraction' is {config.data_args.val_fraction!r}; expected a "
                          f"fraction >= 0 and < 1 (0: no held-out split)")
    try:
        check_caption_templates(config.data_args.caption_templates)
    except ValueError as error:
        raise ConfigError(f"{source}: {error}") from None
    config.model_config().validate(source)  # the model keys' own checks
    return config


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Read a YAML file (None: defaults), apply `key.sub=value` overrides, validate."""
    data: dict[str, Any] = {}
    source = "<defaults>"
    if path is not None:
        source = str(path)
        if not Path(path).is_file():
            raise FileNotFoundError(f"config file not found: {path}")
        with open(path) as handle:
            loaded = yaml.safe_load(handle)
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{source}: expected a mapping of keys at the top level, got {type(loaded).__name__}")
        data = loaded or {}
    for override in overrides or []:
        apply_override(data, override)
    if overrides:
        source += " (with --set overrides)"
    return parse_config(data, source)


def save_config(config: Config, path: str | Path) -> None:
    with open(path, "w") as handle:
        yaml.safe_dump(config.to_dict(), handle, sort_keys=False)
