"""What a benchmark run does: `BenchmarkSettings`, whose fields are also the command-line options.

Each option is declared once, as a dataclass field made by `option(...)`: its default, help text,
choices and flag style live in the field's metadata. From that table come the argparse arguments
(`add_setting_arguments`), the settings of parsed arguments (`settings_from_args`), the argv that
rebuilds a run in a subprocess (`settings_to_argv`) and the choice checks of `validate`.

Two kinds of run: our model (the default), or the reference's own code from a checkout
(`--reference-checkout`, benchmarks.reference_code), to which our switches (fused attention,
oneDNN linear, compile, channels-last, the emulation, the allocator setting) do not apply.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from dataclasses import dataclass
from typing import Any

import torch

OPTIMIZER_IMPLS = ("default", "for-loop", "foreach", "fused")
DTYPES = {"float32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
MODES = ("train", "infer")
PRESETS = ("paper", "quickstart", "tiny")
REFERENCE_PRESETS = ("paper", "tiny")  # sizes the reference's code can be built at (benchmarks.reference_code)
MAX_REFERENCE_SECONDS = 10.23  # the reference's HTS-AT takes at most 1024 log-mel frames (hop 320 at 32 kHz)

# Flag styles of `option`:
VALUE = "value"            # --flag VALUE, converted with the field's annotated type
SWITCH = "switch"          # --flag sets True (argparse store_true)
OFF_SWITCH = "off-switch"  # --flag sets False; the flag names the negation (--no-flops for count_flops)
ON_OFF = "on-off"          # --flag / --no-flag (argparse.BooleanOptionalAction); a None default means "auto"


def option(default: Any, help: str | None = None, *, flag: str | None = None, style: str = VALUE,
           choices: tuple[str, ...] | None = None) -> Any:
    """A `BenchmarkSettings` field that is also a command-line option.

    `flag` defaults to the field name with dashes (batch_size: --batch-size); `style` is one of
    VALUE, SWITCH, OFF_SWITCH, ON_OFF; `choices` are the allowed values (checked by argparse and
    by `BenchmarkSettings.validate`).
    """
    return dataclasses.field(default=default, metadata={"flag": flag, "help": help, "style": style,
                                                        "choices": choices})


@dataclass
class BenchmarkSettings:
    """What to run; the fields are `run_benchmark`'s keyword arguments and the CLI's options."""

    preset: str = option("paper", choices=PRESETS)
    batch_size: int = option(4)
    device: str = option("cpu", "cpu, cuda, cuda:1, ...")
    dtype: str = option("float32", "autocast dtype", choices=tuple(DTYPES))
    threads: int | None = option(None, "torch.set_num_threads (default: torch's)")
    warmup: int = option(1, "untimed steps first")
    repeats: int = option(3, "timed steps; the median is reported")
    mode: str = option("both", choices=(*MODES, "both"))
    fused_attention: bool = option(True, "window attention through scaled_dot_product_attention", style=ON_OFF)
    onednn_linear: bool = option(True, "HTS-AT's linear layers through oneDNN in CPU float32 inference "
                                       "(models.onednn_linear)", style=ON_OFF)
    compile: bool = option(False, "torch.compile the audio and text towers", style=SWITCH)
    channels_last: bool = option(False, "4-D weights in channels-last layout", style=SWITCH)
    reference_checkout: str | None = option(
        None, "measure the REAL reference code (Ming-er/MGA-CLAP) from this checkout instead of our model, "
              "with run-time patches only (benchmarks/reference_code.py); presets paper and tiny")
    emulate_reference_overheads: bool = option(
        False, "APPROXIMATION of the reference's extra work on our model, for when no checkout of the reference "
               "is at hand (benchmarks/reference_overheads.py); --reference-checkout measures its real code",
        style=SWITCH)
    count_flops: bool = option(True, "skip the FLOP count (one extra step)", flag="--no-flops", style=OFF_SWITCH)
    optimizer_impl: str = option("default", "torch's Adam implementation for the training step "
                                            "(default: torch's choice)", choices=OPTIMIZER_IMPLS)
    isolate: bool | None = option(None, "each mode in its own subprocess (default: on CPU when --mode both)",
                                  style=ON_OFF)
    reuse_freed_memory: bool | None = option(
        None, "glibc keeps freed tensor memory for reuse (models.memory.reuse_freed_memory; "
              "default: on, off for the reference and its emulation, which had glibc's defaults)", style=ON_OFF)
    audio_seconds: float = option(10.0, "length of the random clips", flag="--seconds")
    caption_words: int = option(12, "mean words per random caption")
    seed: int = option(0)
    label: str = option("", "name of the run in the table")

    def validate(self) -> None:
        """Raise ValueError naming the option that has an unsupported value."""
        for field in dataclasses.fields(self):
            allowed = field.metadata["choices"]
            value = getattr(self, field.name)
            if allowed is not None and value not in allowed:
                raise ValueError(f"{field.name} is {value!r}; expected one of {list(allowed)}")
        if self.batch_size < 1 or self.repeats < 1 or self.warmup < 0:
            raise ValueError(f"need batch_size >= 1, repeats >= 1, warmup >= 0; got {self.batch_size}, "
                             f"{self.repeats}, {self.warmup}")
        if "train" in self.modes() and self.batch_size < 2:
            raise ValueError("a training step needs --batch-size >= 2 (a contrastive batch of one clip has no "
                             "negatives and gives NaN gradients); use --mode infer for batch 1")
        if self.reference_checkout:
            self.validate_reference_run()

    def validate_reference_run(self) -> None:
        """Raise ValueError for a switch that only applies to our model, FileNotFoundError for a bad checkout."""
        ours_only = [flag for flag, on in (("--emulate-reference-overheads", self.emulate_reference_overheads),
                                           ("--compile", self.compile), ("--channels-last", self.channels_last)) if on]
        if ours_only:
            raise ValueError(f"--reference-checkout measures the reference's code; {', '.join(ours_only)} "
                             "only apply to our model")
        if self.preset not in REFERENCE_PRESETS:
            raise ValueError(f"--reference-checkout runs the presets {list(REFERENCE_PRESETS)}, not {self.preset!r}: "
                             "the reference's HTS-AT has four stages of 4x4 patches")
        if self.audio_seconds > MAX_REFERENCE_SECONDS:
            raise ValueError(f"the reference's HTS-AT takes clips of at most {MAX_REFERENCE_SECONDS} s; "
                             f"got --seconds {self.audio_seconds}")
        from benchmarks.reference_code import check_checkout
        check_checkout(self.reference_checkout)

    @property
    def effective_reuse_freed_memory(self) -> bool:
        """The allocator setting of the project's entry points; the reference (and its emulation) had glibc's."""
        if self.reuse_freed_memory is None:
            return not (self.emulate_reference_overheads or self.reference_checkout)
        return self.reuse_freed_memory

    @property
    def effective_fused_attention(self) -> bool:
        """Our fused window attention as run: off in the emulation; the reference's code has no such switch."""
        return self.fused_attention and not self.emulate_reference_overheads and not self.reference_checkout

    @property
    def effective_onednn_linear(self) -> bool:
        """Our oneDNN linear layers as run: off in the emulation; the reference's code has no such switch."""
        return self.onednn_linear and not self.emulate_reference_overheads and not self.reference_checkout

    def modes(self) -> list[str]:
        return list(MODES) if self.mode == "both" else [self.mode]


def flag_of(field: dataclasses.Field) -> str:
    return field.metadata["flag"] or "--" + field.name.replace("_", "-")


def dest_of(field: dataclasses.Field) -> str:
    """The argparse attribute of a field's option (argparse derives it from the flag)."""
    return flag_of(field).removeprefix("--").replace("-", "_")


def value_type(field: dataclasses.Field) -> type:
    """The field's annotated type without None (int | None: int)."""
    annotation = typing.get_type_hints(BenchmarkSettings)[field.name]
    if isinstance(annotation, types.UnionType):
        (annotation,) = [member for member in typing.get_args(annotation) if member is not type(None)]
    return annotation


def add_setting_arguments(parser: argparse.ArgumentParser) -> None:
    """One argparse option per `BenchmarkSettings` field, in field order."""
    for field in dataclasses.fields(BenchmarkSettings):
        meta = field.metadata
        kwargs: dict[str, Any] = {"help": meta["help"]}
        if meta["style"] == VALUE:
            kwargs["default"] = field.default
            if value_type(field) is not str:
                kwargs["type"] = value_type(field)
            if meta["choices"] is not None:
                kwargs["choices"] = list(meta["choices"])
        elif meta["style"] == ON_OFF:
            kwargs.update(action=argparse.BooleanOptionalAction, default=field.default)
        else:  # SWITCH, OFF_SWITCH: the flag's presence is what is stored
            kwargs["action"] = "store_true"
        parser.add_argument(flag_of(field), **kwargs)


def settings_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """`BenchmarkSettings` keyword arguments from arguments parsed with `add_setting_arguments`."""
    settings = {}
    for field in dataclasses.fields(BenchmarkSettings):
        value = getattr(args, dest_of(field))
        settings[field.name] = not value if field.metadata["style"] == OFF_SWITCH else value
    return settings


def settings_to_argv(settings: BenchmarkSettings) -> list[str]:
    """CLI arguments that reproduce `settings` (inverse of `settings_from_args`); None values are left out."""
    argv = []
    for field in dataclasses.fields(settings):
        value, style, flag = getattr(settings, field.name), field.metadata["style"], flag_of(field)
        if value is None:
            continue
        if style == VALUE:
            argv += [flag, str(value)]
        elif style == ON_OFF:
            argv.append(flag if value else "--no-" + flag.removeprefix("--"))
        elif value == (style == SWITCH):  # a switch that is on, an off-switch that is off
            argv.append(flag)
    return argv
