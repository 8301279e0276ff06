"""Launcher environment (tools.train.distributed): rank, world size and local rank from torchrun's or
SLURM's variables, and what init_distributed exports before joining the process group."""

from __future__ import annotations

import os

import pytest
import torch.distributed as dist

from tools.train import distributed
from tools.train.distributed import DistributedInfo, init_distributed, read_launcher_env

TORCHRUN = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
SLURM = ("SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID")
ALL_VARIABLES = TORCHRUN + SLURM + ("MASTER_ADDR", "MASTER_PORT")


@pytest.fixture
def clean_env(monkeypatch):
    """No launcher variable set; whatever a test or the code sets is undone afterwards."""
    for name in ALL_VARIABLES:
        monkeypatch.setenv(name, "unset")  # recorded first, so that the teardown also removes later writes
        monkeypatch.delenv(name)
    return monkeypatch


def set_env(monkeypatch, **values) -> None:
    for name, value in values.items():
        monkeypatch.setenv(name, str(value))


def test_no_launcher_variables_give_a_single_process(clean_env):
    info = read_launcher_env()
    assert info == DistributedInfo(0, 1, 0) and info.is_main and not info.enabled


def test_torchrun_variables_are_read(clean_env):
    set_env(clean_env, RANK=5, WORLD_SIZE=8, LOCAL_RANK=1)
    assert read_launcher_env() == DistributedInfo(rank=5, world_size=8, local_rank=1)


def test_torchrun_world_size_alone_defaults_rank_and_local_rank_to_zero(clean_env):
    set_env(clean_env, WORLD_SIZE=4)
    assert read_launcher_env() == DistributedInfo(rank=0, world_size=4, local_rank=0)


def test_slurm_variables_are_read_when_master_addr_is_set(clean_env):
    set_env(clean_env, SLURM_PROCID=6, SLURM_NTASKS=12, SLURM_LOCALID=2, MASTER_ADDR="node01")
    info = read_launcher_env()
    assert info == DistributedInfo(rank=6, world_size=12, local_rank=2)
    assert not info.is_main and info.enabled


def test_slurm_without_localid_is_local_rank_zero(clean_env):
    set_env(clean_env, SLURM_PROCID=1, SLURM_NTASKS=2, MASTER_ADDR="node01")
    assert read_launcher_env() == DistributedInfo(rank=1, world_size=2, local_rank=0)


def test_slurm_without_master_addr_is_a_single_process(clean_env):
    set_env(clean_env, SLURM_PROCID=3, SLURM_NTASKS=4, SLURM_LOCALID=3)
    assert read_launcher_env() == DistributedInfo(0, 1, 0)


def test_torchrun_variables_win_over_slurm(clean_env):
    set_env(clean_env, RANK=2, WORLD_SIZE=3, LOCAL_RANK=0,
            SLURM_PROCID=7, SLURM_NTASKS=16, SLURM_LOCALID=3, MASTER_ADDR="node01")
    assert read_launcher_env() == DistributedInfo(rank=2, world_size=3, local_rank=0)


@pytest.fixture
def fake_process_group(monkeypatch):
    """Records init_process_group calls (with the environment they saw) instead of joining a group."""
    calls = []

    def init_process_group(backend=None, **kwargs):
        calls.append({"backend": backend, **kwargs,
                      "env": {name: os.environ.get(name) for name in TORCHRUN}})

    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", init_process_group)
    return calls


def test_init_distributed_under_slurm_exports_rank_variables_and_joins_with_gloo(clean_env,
                                                                                fake_process_group):
    set_env(clean_env, SLURM_PROCID=3, SLURM_NTASKS=4, SLURM_LOCALID=1, MASTER_ADDR="node01",
            MASTER_PORT=29500)
    info, device = init_distributed("cpu")
    assert info == DistributedInfo(3, 4, 1) and device.type == "cpu"
    assert len(fake_process_group) == 1
    call = fake_process_group[0]
    assert call["backend"] == "gloo"
    assert call["env"] == {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"}  # for the env:// rendezvous


def test_init_distributed_under_torchrun_keeps_its_variables(clean_env, fake_process_group):
    set_env(clean_env, RANK=1, WORLD_SIZE=2, LOCAL_RANK=1, SLURM_PROCID=9, SLURM_NTASKS=16,
            MASTER_ADDR="127.0.0.1", MASTER_PORT=29500)
    info, _ = init_distributed("cpu")
    assert info == DistributedInfo(1, 2, 1)
    exported = [call["env"] for call in fake_process_group]
    assert exported == [{"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"}]


@pytest.mark.parametrize("variables", [{}, {"SLURM_PROCID": 0, "SLURM_NTASKS": 1, "MASTER_ADDR": "node01"},
                                       {"RANK": 0, "WORLD_SIZE": 1, "LOCAL_RANK": 0}])
def test_init_distributed_with_one_process_joins_no_group(clean_env, fake_process_group, variables):
    set_env(clean_env, **variables)
    info, device = init_distributed("cpu")
    assert not info.enabled and device.type == "cpu"
    assert fake_process_group == []
    if "SLURM_NTASKS" in variables:
        assert "RANK" not in os.environ  # nothing exported for a single process


def test_init_distributed_picks_cpu_when_cuda_is_asked_but_absent(clean_env, fake_process_group, monkeypatch):
    monkeypatch.setattr(distributed.torch.cuda, "is_available", lambda: False)
    set_env(clean_env, RANK=0, WORLD_SIZE=2, LOCAL_RANK=0, MASTER_ADDR="127.0.0.1", MASTER_PORT=29500)
    _, device = init_distributed("cuda")
    assert device.type == "cpu"
    assert fake_process_group[0]["backend"] == "gloo"
