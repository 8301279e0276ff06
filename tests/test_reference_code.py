"""The benchmark's side-by-side with the reference's own code (benchmarks/reference_code.py).

The tests that run the reference need a checkout of Ming-er/MGA-CLAP: $MGA_CLAP_REFERENCE_CHECKOUT,
else /tmp/mgaclap_ref, else one made from the mirror at $MGA_CLAP_REFERENCE_MIRROR (default
/work/.mirror/Ming-er+MGA-CLAP/repo) with `git archive`; and torchlibrosa, which the reference's
HTS-AT imports. Without them they are skipped, saying which is missing. The option's plumbing,
its checks and the report's comparison column are tested without a checkout.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchmarks.benchmark import default_label, markdown_table, parse_args, subprocess_command
from benchmarks.measure import BenchmarkSettings, build_model, make_infer_step, make_train_step, random_batch
from benchmarks.reference_code import REQUIRED_FILES, _stand_in_module, check_checkout, reference_sample_rate

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CHECKOUT = Path("/tmp/mgaclap_ref")
DEFAULT_MIRROR = Path("/work/.mirror/Ming-er+MGA-CLAP/repo")


def is_checkout(path: Path) -> bool:
    return all((path / name).is_file() for name in REQUIRED_FILES)


@pytest.fixture(scope="module")
def reference_checkout(tmp_path_factory) -> Path:
    """A checkout of the reference (see the module docstring), or a skip that says why there is none."""
    pytest.importorskip("torchlibrosa", reason="the reference's HTS-AT needs torchlibrosa: pip install torchlibrosa")
    given = os.environ.get("MGA_CLAP_REFERENCE_CHECKOUT")
    if given:
        return check_checkout(given)  # named explicitly: a wrong path fails, it does not skip
    if is_checkout(DEFAULT_CHECKOUT):
        return DEFAULT_CHECKOUT
    mirror = Path(os.environ.get("MGA_CLAP_REFERENCE_MIRROR", DEFAULT_MIRROR))
    if not mirror.is_dir() or shutil.which("git") is None:
        pytest.skip(f"no checkout of the reference: set MGA_CLAP_REFERENCE_CHECKOUT, or make {DEFAULT_CHECKOUT} "
                    f"(no mirror at {mirror} to make one from)")
    checkout = tmp_path_factory.mktemp("mgaclap_ref")
    archive = subprocess.run(["git", "-C", str(mirror), "archive", "HEAD"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(checkout)], input=archive.stdout, check=True)
    return check_checkout(checkout)


@pytest.fixture(scope="module")
def tiny_settings(reference_checkout) -> BenchmarkSettings:
    settings = BenchmarkSettings(preset="tiny", batch_size=2, warmup=0, repeats=1, mode="both", device="cpu",
                                 reference_checkout=str(reference_checkout), isolate=False)
    settings.validate()
    return settings


@pytest.fixture(scope="module")
def models_at_tiny_size(tiny_settings):
    """(the reference's model, ours) at the tiny preset's size, with the same seed."""
    torch.manual_seed(0)
    reference = build_model(tiny_settings)
    torch.manual_seed(0)
    ours = build_model(dataclasses.replace(tiny_settings, reference_checkout=None))
    return reference, ours


def source_file(module: torch.nn.Module) -> Path:
    """Where the module's forward is defined (inspect.getfile(class) would look its module name up in sys.modules)."""
    return Path(type(module).forward.__code__.co_filename)


@pytest.mark.slow
def test_the_reference_model_is_the_checkouts_code_and_ours_is_put_back(models_at_tiny_size, reference_checkout):
    reference, ours = models_at_tiny_size
    assert source_file(reference).is_relative_to(reference_checkout)
    assert source_file(reference.msc.attn_activation).is_relative_to(reference_checkout)
    assert source_file(reference.audio_encoder.audio_enc).is_relative_to(reference_checkout)
    assert Path(sys.modules["models.ase_model"].__file__).is_relative_to(REPO_ROOT)
    assert source_file(ours).is_relative_to(REPO_ROOT)
    assert all(parameter.device.type == "cpu" for parameter in reference.parameters())


def test_one_reference_train_step_on_the_batch_ours_takes(models_at_tiny_size, tiny_settings):
    """Same random batch into both models: finite losses; the reference's optimiser step changes its weights."""
    reference, ours = models_at_tiny_size
    assert reference_sample_rate(reference) == ours.sample_rate == 32000
    audio, captions, idx = random_batch(tiny_settings, ours.sample_rate)
    assert audio.shape == (2, 320000)
    reference.train()
    ours.train()
    assert math.isfinite(reference(audio, captions, idx).item())
    assert math.isfinite(ours(audio, captions, idx).item())
    codebook_before = reference.codebook.detach().clone()
    make_train_step(reference, tiny_settings)()
    assert not torch.equal(reference.codebook, codebook_before)
    assert all(parameter.grad is None for parameter in reference.parameters())  # zero_grad(set_to_none)


def test_one_reference_infer_step_gives_the_shapes_ours_gives(models_at_tiny_size, tiny_settings):
    reference, ours = models_at_tiny_size
    audio, _, _ = random_batch(tiny_settings, ours.sample_rate)
    reference.eval()
    ours.eval()
    with torch.no_grad():
        _, reference_frames = reference.encode_audio(audio)
        reference_clips = reference.msc(reference_frames, reference.codebook)
        _, our_frames = ours.encode_audio(audio)
        our_clips = ours.msc(our_frames, ours.codebook)
    assert reference_frames.shape == our_frames.shape == (2, 32, 32)  # [B, frames, embed_size]
    assert reference_clips.shape == our_clips.shape == (2, 32)
    assert torch.isfinite(reference_clips).all()
    make_infer_step(reference, tiny_settings)()


def test_the_text_towers_tokenize_alike_and_use_the_same_attention(models_at_tiny_size):
    reference, ours = models_at_tiny_size
    captions = ["a dog barks while rain falls on a metal roof", "thunder"]
    reference_ids = reference.text_encoder.tokenizer(captions, padding="longest")["input_ids"]
    our_ids = ours.text_encoder.tokenizer(captions, padding="longest")["input_ids"]
    assert reference_ids == our_ids
    assert (reference.text_encoder.text_encoder.config._attn_implementation
            == ours.text_encoder.text_encoder.config._attn_implementation)
    assert type(reference.text_encoder.text_encoder).__name__ == "BertModel"


@pytest.mark.slow
def test_run_benchmark_measures_the_reference_and_the_table_compares(tiny_settings):
    """The option end to end, in process: the reference's report, and our row against it in one table."""
    from benchmarks.benchmark import run_benchmark

    reference = run_benchmark(**dataclasses.asdict(tiny_settings))
    ours = run_benchmark(**dataclasses.asdict(dataclasses.replace(tiny_settings, reference_checkout=None,
                                                                   mode="infer")))
    assert reference["settings"]["label"] == "reference (real code)"
    assert reference["code"]["measured"] == "reference" and len(reference["code"]["files_sha256"]) == 16
    assert not any(reference["settings"][name] for name in
                   ("effective_reuse_freed_memory", "effective_fused_attention", "effective_onednn_linear"))
    for mode in ("train", "infer"):
        figures = reference["results"][mode]
        assert figures["s_per_clip"] > 0 and figures["peak_memory_mb"] > 0 and figures["flops_per_step"] > 0
    our_row = [row for row in markdown_table([ours, reference]).splitlines() if row.startswith("| ours")][0]
    ratio = reference["results"]["infer"]["s_per_clip"] / ours["results"]["infer"]["s_per_clip"]
    assert our_row.endswith(f"| {ratio:.2f}x |")


# Without a checkout: the option's plumbing, its checks, the comparison column, the stand-ins.

def test_the_reference_checkout_reaches_a_modes_subprocess_and_the_command_line():
    settings = BenchmarkSettings(preset="tiny", batch_size=2, mode="infer", reference_checkout="/some/checkout",
                                 optimizer_impl="fused", reuse_freed_memory=True)
    rebuilt = json.loads(parse_args(subprocess_command(settings, "infer", Path("out.json"))[3:]).settings_json)
    assert BenchmarkSettings(**rebuilt) == dataclasses.replace(settings, isolate=False)
    assert parse_args(["--reference-checkout", "/some/checkout"]).reference_checkout == "/some/checkout"
    assert parse_args([]).reference_checkout is None


def test_a_path_that_is_not_a_checkout_is_named_with_the_file_expected(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"{tmp_path}.*expected the file .*models/ase_model.py"):
        BenchmarkSettings(reference_checkout=str(tmp_path)).validate()
    with pytest.raises(FileNotFoundError, match="models/audio_encoder.py"):  # our repository is not the reference
        BenchmarkSettings(reference_checkout=str(REPO_ROOT)).validate()
    with pytest.raises(FileNotFoundError, match="no such folder"):
        BenchmarkSettings(reference_checkout=str(tmp_path / "missing")).validate()


def test_switches_of_our_model_are_refused_for_the_reference(tmp_path):
    for changes, message in (({"channels_last": True}, "--channels-last"), ({"compile": True}, "--compile"), ({"preset": "quickstart"}, "quickstart"),
                             ({"audio_seconds": 12.0}, "at most")):
        with pytest.raises(ValueError, match=message):
            BenchmarkSettings(reference_checkout=str(tmp_path), **changes).validate()


def test_a_reference_run_has_glibc_defaults_and_none_of_our_switches():
    settings = BenchmarkSettings(reference_checkout="/some/checkout")
    assert not settings.effective_reuse_freed_memory
    assert not settings.effective_fused_attention and not settings.effective_onednn_linear
    assert default_label(settings) == "reference (real code)"
    assert default_label(dataclasses.replace(settings, reuse_freed_memory=True)) == (
        "reference (real code), reusing freed memory")
    assert default_label(BenchmarkSettings()) == "ours"
    assert BenchmarkSettings().effective_reuse_freed_memory


def fake_report(label: str, s_per_clip: float, checkout: str | None, batch_size: int = 4) -> dict:
    settings = {"label": label, "preset": "paper", "device": "cpu", "dtype": "float32", "batch_size": batch_size,
                "threads": 2, "audio_seconds": 10.0, "effective_fused_attention": checkout is None,
                "reference_checkout": checkout}
    figures = {"clips_per_s": 1 / s_per_clip, "s_per_clip": s_per_clip, "peak_memory_mb": 1000.0}
    return {"settings": settings, "machine": {"torch_threads": 2}, "results": {"train": figures}}


def test_the_table_compares_rows_with_the_reference_run_of_the_same_conditions():
    reference = fake_report("reference (real code)", 1.0, "/ref")
    rows = markdown_table([fake_report("ours", 0.5, None), reference,
                           fake_report("ours b8", 0.4, None, batch_size=8)]).splitlines()[2:]
    assert rows[0].endswith("| 1.0000 | 2.00x |")
    assert rows[1].endswith("| - | - |")  # the reference's own row
    assert rows[2].endswith("| - | - |")  # no reference run at batch 8


def test_stand_in_modules_exist_for_imports_and_raise_when_used():
    wandb = _stand_in_module("wandb")
    with pytest.raises(RuntimeError, match="stand-in"):
        wandb.log({"loss": 1.0})
    with pytest.raises(AttributeError):
        wandb.__file__  # noqa: B018  (tools that scan sys.modules look for it)
