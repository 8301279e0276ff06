"""The reference's own code (Ming-er/MGA-CLAP), imported from a checkout and run as it is, with run-time patches:
its model (benchmarks.benchmark --reference-checkout) and its zero_shot_classification.py (this module's command
line, run by benchmarks.scripts). Nothing of it is copied or edited; how to make a checkout: docs/benchmarks.md.
The patches, and why none changes the cost measured:
- its `models` and `tools` are imported from the checkout while ours are set aside (import time only);
- Sparsemax makes its rank vector on `device='cuda'` by default: it gets the run's device (the same operations);
- its `from_pretrained('bert-base-uncased')` builds the same BertModel from that config (random weights, eval
  mode, the attention implementation transformers picks for ours too); its BertTokenizer reads the MiniLM
  package's folder, which holds bert-base-uncased's uncased vocabulary;
- imports its model never uses (UNUSED_IMPORTS) get stand-ins whose attributes raise if called, where not
  installed; installed ones are imported for real and count in its memory;
- `audio_encoder_args.pretrained: false`: HTS-AT's AudioSet weights are not read;
- for tests only (`ReferenceSize`), a smaller HTS-AT and text tower; the paper size changes nothing.
What runs is the reference's: its log-mel (torchlibrosa), SpecAugment, HTS-AT, text tower, codebook, sparsemax,
loss and optimiser (pretrain.yaml's Adam).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib
import importlib.machinery
import importlib.util
import sys
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import torch
import yaml
from torch import nn
from transformers import BertConfig

REFERENCE_REPOSITORY = "Ming-er/MGA-CLAP"
# Files a checkout of the reference has and ours does not (ours: models/audio_encoders.py, no
# feature_extractor.py): a path to this repository is told apart from one to the reference.
REQUIRED_FILES = ("models/ase_model.py", "models/audio_encoder.py", "models/feature_extractor.py",
                  "models/htsat.py", "models/text_encoder.py", "tools/optim_utils.py", "settings/pretrain.yaml")
REFERENCE_PACKAGES = ("models", "tools")
UNUSED_IMPORTS = ("wandb", "loguru", "ruamel", "ruamel.yaml", "sentence_transformers", "sed_scores_eval",
                  "sed_scores_eval.utils", "sed_scores_eval.utils.scores")
PAPER_TEXT_TOWER = "bert-base-uncased"
MAKE_CHECKOUT = ("mkdir -p /tmp/mgaclap_ref && git -C <clone or mirror of Ming-er/MGA-CLAP> archive HEAD "
                 "| tar -x -C /tmp/mgaclap_ref")


@dataclass(frozen=True)
class ReferenceCode:
    """The reference's modules imported from one checkout, and its settings/pretrain.yaml."""

    checkout: Path
    ase_model: types.ModuleType
    audio_encoder: types.ModuleType
    text_encoder: types.ModuleType
    optim_utils: types.ModuleType
    pretrain_config: dict[str, Any]


@dataclass(frozen=True)
class ReferenceSize:
    """Sizes of a reference model; the defaults are the reference's own (the paper's). `htsat`: embed_dim,
    depths and num_heads of its HTS-AT; `tokenizer_dir`: a folder with an uncased BERT vocabulary (None: the
    MiniLM package's, bert-base-uncased's)."""

    embed_size: int | None = None
    htsat: dict[str, Any] | None = None
    text_config: BertConfig = field(default_factory=BertConfig)
    tokenizer_dir: Path | None = None


def check_checkout(checkout: Path | str) -> Path:
    """The checkout's resolved path; FileNotFoundError naming the path and the file a checkout has."""
    path = Path(checkout).expanduser().resolve()
    if not path.is_dir():
        raise FileNotFoundError(f"--reference-checkout {path}: no such folder; expected a checkout of "
                                f"{REFERENCE_REPOSITORY}, e.g. made with: {MAKE_CHECKOUT}")
    for name in REQUIRED_FILES:
        if not (path / name).is_file():
            raise FileNotFoundError(f"--reference-checkout {path} is not a checkout of {REFERENCE_REPOSITORY}: "
                                    f"expected the file {path / name}. Make one with: {MAKE_CHECKOUT}")
    if "Modality_Shared_Codebook" not in (path / "models/ase_model.py").read_text(errors="replace"):
        raise FileNotFoundError(f"--reference-checkout {path}: {path / 'models/ase_model.py'} does not define the "
                                f"reference's Modality_Shared_Codebook; expected a checkout of {REFERENCE_REPOSITORY}")
    return path


def code_fingerprint(checkout: Path | str) -> str:
    """SHA-256 (first 16 hex digits) of the checkout's REQUIRED_FILES: which reference code was measured."""
    path = check_checkout(checkout)
    digest = hashlib.sha256()
    for name in REQUIRED_FILES:
        digest.update(name.encode() + b"\0" + (path / name).read_bytes())
    return digest.hexdigest()[:16]


@functools.cache
def import_reference(checkout: Path) -> ReferenceCode:
    """Import the reference's model modules and optimiser helper from `checkout` (once per process)."""
    path = check_checkout(checkout)
    if importlib.util.find_spec("torchlibrosa") is None:
        raise ModuleNotFoundError("the reference's HTS-AT imports torchlibrosa (its log-mel front end and "
                                  "SpecAugment), which is not installed: pip install torchlibrosa==0.1.0")
    with _reference_packages(path), _stand_ins_for_unused_imports():
        modules = {name: importlib.import_module(name) for name in
                   ("models.ase_model", "models.audio_encoder", "models.text_encoder", "tools.optim_utils")}
    for name, module in modules.items():
        if not Path(module.__file__).resolve().is_relative_to(path):
            raise ImportError(f"{name} was imported from {module.__file__}, not from the checkout {path}")
    config = yaml.safe_load((path / "settings/pretrain.yaml").read_text())
    return ReferenceCode(path, modules["models.ase_model"], modules["models.audio_encoder"],
                         modules["models.text_encoder"], modules["tools.optim_utils"], config)


@contextlib.contextmanager
def _reference_packages(checkout: Path) -> Iterator[None]:
    """`models` and `tools` are the checkout's during the block, set up from its folders (its `tools` has no
    __init__.py: our package of that name would win on sys.path); ours are put back after."""
    def is_reference_package(name: str) -> bool:
        return name.split(".")[0] in REFERENCE_PACKAGES

    ours = {name: sys.modules.pop(name) for name in list(sys.modules) if is_reference_package(name)}
    try:
        for name in REFERENCE_PACKAGES:
            _set_up_package(name, checkout / name)
        yield
    finally:
        for name in [name for name in sys.modules if is_reference_package(name)]:
            del sys.modules[name]
        sys.modules.update(ours)


def _set_up_package(name: str, folder: Path) -> None:
    """Put the package in `folder` into sys.modules as `name` (running its __init__.py when it has one)."""
    init = folder / "__init__.py"
    if init.is_file():
        spec = importlib.util.spec_from_file_location(name, init, submodule_search_locations=[str(folder)])
    else:
        spec = importlib.machinery.ModuleSpec(name, None, is_package=True)
        spec.submodule_search_locations = [str(folder)]
    module = importlib.util.module_from_spec(spec)
    if getattr(module, "__file__", "") is None:
        # A namespace package gets __file__ = None, which inspect.getmodule (run by torch when a
        # package registers custom ops) fails on once it has seen our `tools` under that name.
        del module.__file__
    sys.modules[name] = module
    if spec.loader is not None:
        spec.loader.exec_module(module)


class _StandIn(types.ModuleType):
    """A stand-in for a module the reference imports but never uses: `from x import y` works (every attribute, a
    stand-in too), calling one raises; dunder attributes (__file__, ...) are absent, as tools that scan modules
    expect."""

    def __init__(self, name: str):
        super().__init__(name, f"stand-in for the reference's unused import of {name} (benchmarks.reference_code)")
        self.__path__: list[str] = []  # a package, so that submodules can be stand-ins too

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"{self.__name__} is a stand-in for an import of the reference that the benchmark "
                           "does not use; install the package to run the code that needs it")

    def __getattr__(self, attribute: str) -> _StandIn:
        if attribute.startswith("__"):
            raise AttributeError(f"stand-in module {self.__name__} has no attribute {attribute}")
        return _StandIn(f"{self.__name__}.{attribute}")


_stand_in_module = _StandIn


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ModuleNotFoundError, ValueError):
        return False


def unused_imports_to_stand_in() -> list[str]:
    """The UNUSED_IMPORTS that are not installed here: stand-in modules replace them while importing."""
    return [name for name in UNUSED_IMPORTS if not _importable(name)]


@contextlib.contextmanager
def _stand_ins_for_unused_imports() -> Iterator[list[str]]:
    """Stand-in modules, during the import, for UNUSED_IMPORTS that are not installed; yields their names."""
    added = unused_imports_to_stand_in()
    for name in added:
        sys.modules[name] = _stand_in_module(name)
        parent, _, child = name.rpartition(".")
        if parent in sys.modules:
            setattr(sys.modules[parent], child, sys.modules[name])
    try:
        yield added
    finally:
        for name in added:
            sys.modules.pop(name, None)


def _offline_text_tower(models_table: dict[str, tuple], config: BertConfig, tokenizer_dir: Path) -> tuple:
    """The reference's MODELS entry of its text tower without the hub: the same model class built from `config`
    (eval mode, as from_pretrained leaves it), the same tokenizer class read from `tokenizer_dir`."""
    model_class, tokenizer_class, _ = models_table[PAPER_TEXT_TOWER]
    return (types.SimpleNamespace(from_pretrained=lambda name, **kwargs: model_class(config, **kwargs).eval()),
            types.SimpleNamespace(from_pretrained=lambda name, **kwargs: tokenizer_class.from_pretrained(
                str(tokenizer_dir), **kwargs)), config.hidden_size)


def load_reference_model(checkout: Path | str, size: ReferenceSize | None = None, device: str = "cpu") -> nn.Module:
    """The reference's ASE from its settings/pretrain.yaml with the patches above, random weights, on `device`:
    `model(audio [B, S], captions: list[str], idx [B]) -> loss`, `encode_audio(audio) -> (clip features
    [B, 768], frame embeddings [B, 32, E])`, `msc(embeddings [B, N, E], codebook [4096, E]) -> [B, E]`."""
    from models.text_encoder import minilm_folder  # ours: where the MiniLM package keeps its tokenizer files

    code = import_reference(check_checkout(checkout))
    size = size or ReferenceSize()
    config = _model_config(code.pretrain_config, size)
    offline_text = _offline_text_tower(code.text_encoder.MODELS, size.text_config, size.tokenizer_dir or minilm_folder())
    with contextlib.ExitStack() as patches:
        patches.enter_context(mock.patch.dict(code.text_encoder.MODELS, {PAPER_TEXT_TOWER: offline_text}))
        if size.htsat is not None:
            htsat = code.audio_encoder.HTSAT_Swin_Transformer  # with embed_dim, depths and num_heads replaced
            patches.enter_context(mock.patch.object(code.audio_encoder, "HTSAT_Swin_Transformer",
                                                    lambda **kwargs: htsat(**{**kwargs, **size.htsat})))
            patches.enter_context(mock.patch.object(code.ase_model, "AudioEncoder",
                                                    _width_from_htsat(code.audio_encoder.AudioEncoder)))
        model = code.ase_model.ASE(config)
    sparsemax = model.msc.attn_activation
    sparsemax.forward = functools.partial(type(sparsemax).forward, sparsemax, device=device)
    return model.to(device)


def _model_config(pretrain_config: dict[str, Any], size: ReferenceSize) -> dict[str, Any]:
    """pretrain.yaml's config with HTS-AT's pretrained weights off and the text tower the paper's."""
    config = yaml.safe_load(yaml.safe_dump(pretrain_config))  # a deep copy
    config["audio_encoder_args"]["pretrained"] = False
    config["text_encoder_args"]["type"] = PAPER_TEXT_TOWER
    if size.embed_size is not None:
        config["embed_size"] = size.embed_size
    return config


def _width_from_htsat(audio_encoder_class: type) -> Callable[[dict[str, Any]], nn.Module]:
    """The reference's AudioEncoder with `audio_width` its HTS-AT's width (the reference writes 768, the paper's)."""
    def build(config: dict[str, Any]) -> nn.Module:
        encoder = audio_encoder_class(config)
        encoder.audio_width = encoder.audio_enc.num_features
        return encoder
    return build


def reference_sample_rate(model: nn.Module) -> int:
    """The sample rate of the reference model's front end (audio_args.sr of its config)."""
    return int(model.audio_encoder.audio_enc.config["audio_args"]["sr"])


def reference_optimizer(checkout: Path | str, model: nn.Module) -> torch.optim.Optimizer:
    """pretrain.py's optimiser: its get_optimizer over model.parameters() with pretrain.yaml's optim_args
    (torch.optim.Adam, lr 5e-5, torch's default kernel: the single-tensor loop on CPU)."""
    code = import_reference(check_checkout(checkout))
    optim_args = code.pretrain_config["optim_args"]
    return code.optim_utils.get_optimizer(model.parameters(), lr=float(optim_args["lr"]),
                                          betas=tuple(optim_args["betas"]), eps=float(optim_args["eps"]),
                                          momentum=optim_args["momentum"], optimizer_name=optim_args["optimizer_name"])


def run_classification_script(argv: list[str] | None = None) -> None:
    """Run the checkout's zero_shot_classification.py in this process, with the patches above. Its
    settings/inference_cls.yaml, given `device`, eval.data_root_dir and eval.ckpt, is written to <run-dir>/settings/,
    where the process works. Its torchaudio, pandas, sklearn and ruamel.yaml are real (benchmarks.scripts
    --reference-site puts them on PYTHONPATH). The FileNotFoundError of UrbanSound8K, after ESC-50, is caught."""
    import argparse
    import os
    import runpy

    parser = argparse.ArgumentParser(description=run_classification_script.__doc__.split(". ")[0])
    parser.add_argument("--checkout", required=True)
    parser.add_argument("--data-root", required=True, help="the parent folder of ESC-50-master/")
    parser.add_argument("--ckpt", required=True)
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--tokenizer-dir", required=True, help="a folder with bert-base-uncased's vocabulary")
    parser.add_argument("--device", default="cpu", help="the YAML's device: cpu (default) or cuda")
    args = parser.parse_args(argv)
    checkout, run_dir = check_checkout(args.checkout), Path(args.run_dir).resolve()
    config = yaml.safe_load((checkout / "settings" / "inference_cls.yaml").read_text())
    config["device"] = args.device
    config["eval"]["data_root_dir"] = str(Path(args.data_root).resolve()) + os.sep
    config["eval"]["ckpt"] = str(Path(args.ckpt).resolve())
    (run_dir / "settings").mkdir(parents=True, exist_ok=True)
    (run_dir / "settings" / "inference_cls.yaml").write_text(yaml.safe_dump(config))
    for name in [name for name in sys.modules if name.split(".")[0] == "data_handling"]:
        del sys.modules[name]
    # The checkout's data_handling/ has no __init__.py: our regular package of that name would win over it on the
    # path, so this repository leaves sys.path (everything of ours this process needs is imported by now).
    ours = Path(__file__).resolve().parent.parent
    sys.path[:] = [str(checkout)] + [entry for entry in sys.path if entry and Path(entry).resolve() != ours]
    os.chdir(run_dir)
    with _reference_packages(checkout), _stand_ins_for_unused_imports():
        import models.ase_model as ase_model
        import models.text_encoder as text_encoder

        forward = ase_model.Sparsemax.forward
        ase_model.Sparsemax.forward = lambda self, input, device=None: forward(
            self, input, device=input.device if device is None else device)
        text_encoder.MODELS[PAPER_TEXT_TOWER] = _offline_text_tower(text_encoder.MODELS, BertConfig(),
                                                                    Path(args.tokenizer_dir))
        with contextlib.suppress(FileNotFoundError):  # UrbanSound8K / VGGSound, after ESC-50's result
            runpy.run_path(str(checkout / "zero_shot_classification.py"), run_name="__main__")
    sys.stdout.flush()


if __name__ == "__main__":
    run_classification_script()
