"""Helpers to build the reference's small golden model from ../shared/reference/golden_small."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

# ../shared/reference beside the checkout; MGA_CLAP_REFERENCE_DIR points elsewhere (e.g. a copy on a GPU machine).
REFERENCE_DIR = Path(os.environ.get("MGA_CLAP_REFERENCE_DIR",
                                    Path(__file__).resolve().parents[2] / "shared" / "reference"))
GOLDEN_DIR = REFERENCE_DIR / "golden_small"

requires_reference = pytest.mark.skipif(
    not (GOLDEN_DIR / "model.pt").is_file(),
    reason=f"the reference fixtures are not at {GOLDEN_DIR} (they come with ../shared/reference)")


def golden_config() -> dict:
    """Config dict (our schema) of the golden model, from architecture.json."""
    arch = json.loads((GOLDEN_DIR / "architecture.json").read_text())
    htsat = arch["htsat"]
    return {
        "device": "cpu",
        "embed_size": arch["embed_size"],
        "temp": arch["temp"],
        "embed_regularization": arch["embed_regularization"],
        "audio_args": arch["audio_args"],
        "audio_encoder_args": {"type": "transformer", "model": "htsat", "pretrained": False, "freeze": False,
                               "htsat": {key: htsat[key] for key in ("embed_dim", "depths", "num_heads",
                                                                     "window_size", "spec_size", "patch_size",
                                                                     "num_classes", "mlp_ratio")}},
        "text_encoder_args": {"type": str(GOLDEN_DIR / "bert"), "pretrained": False, "freeze": False},
        "codebook": {"size": arch["code_num"]},
    }
