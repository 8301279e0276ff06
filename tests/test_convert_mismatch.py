"""python -m models.convert on a checkpoint that does not fit the config: one line, exit code 2, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from models.ase_model import ASE
from models.checkpoint import reference_state_dict
from models.convert import main as convert_main


@pytest.fixture(scope="module")
def bare_checkpoint(tiny_text_dir, tmp_path_factory) -> tuple[Path, dict]:
    """A tiny model's weights without its config (as the reference's files and the released model.pt store
    them), and the tiny model's config."""
    from tools.tiny_model import tiny_config_dict

    config = tiny_config_dict(tiny_text_dir)
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("bare") / "weights.pt"
    torch.save({"model": reference_state_dict(ASE(config))}, path)
    return path, config


def write_yaml(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.parametrize("change", ["embed_size", "codebook"])
def test_a_checkpoint_that_does_not_fit_the_config_is_one_line_exit_2_nothing_written(bare_checkpoint, tmp_path,
                                                                                       capsys, change):
    path, config = bare_checkpoint
    other = ({**config, "embed_size": 16} if change == "embed_size" else {**config, "codebook": {"size": 32}})
    out = tmp_path / "folder"
    code = convert_main([str(path), str(out), "--config", str(write_yaml(tmp_path / "other.yaml", other))])
    captured = capsys.readouterr()
    error = captured.err.strip().splitlines()
    assert code == 2
    assert len(error) == 1 and error[0].startswith("error: "), captured.err
    assert "wrote" not in captured.out
    assert not out.exists()


def test_the_same_checkpoint_with_its_config_converts(bare_checkpoint, tmp_path):
    path, config = bare_checkpoint
    out = tmp_path / "folder"
    assert convert_main([str(path), str(out), "--config", str(write_yaml(tmp_path / "tiny.yaml", config))]) == 0
    assert (out / "model.safetensors").is_file() and (out / "config.json").is_file()

