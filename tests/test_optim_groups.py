"""Optimiser parameter groups (tools.train.optim.parameter_groups, build_optimizer): which parameters
are decayed, that frozen ones are left out and every trainable one appears once, and the weight decay
each optimiser gets with and without `optim_args.weight_decay`.

tests/test_training_recipe.py checks the optimiser classes, AdamW's 0.01 default with one group and
the ndim split on HTS-AT; these tests pin the exact membership on a model built to have every case.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tools.config import ConfigError, OptimArgs, parse_config
from tools.train.optim import build_optimizer, parameter_groups


class Every(nn.Module):
    """One parameter of each kind: matrix, bias, norm weight, scalar, a 2-D '.bias', frozen ones."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 3)                     # weight: decay; bias: no decay
        self.norm = nn.LayerNorm(3)                       # weight, bias: no decay
        self.embedding = nn.Embedding(5, 4)               # weight: decay
        self.scale = nn.Parameter(torch.tensor(2.0))      # 0-d: no decay
        self.per_channel = nn.Parameter(torch.ones(3))    # 1-d: no decay
        self.head = nn.Module()
        self.head.bias = nn.Parameter(torch.zeros(2, 3))  # named '.bias' though 2-D: no decay
        self.frozen = nn.Linear(3, 3)                     # neither group
        self.frozen.requires_grad_(False)
        self.frozen_scalar = nn.Parameter(torch.tensor(1.0), requires_grad=False)


DECAYED = {"linear.weight", "embedding.weight"}
EXEMPT = {"linear.bias", "norm.weight", "norm.bias", "scale", "per_channel", "head.bias"}
FROZEN = {"frozen.weight", "frozen.bias", "frozen_scalar"}


def names_of(model: nn.Module, params: list[torch.Tensor]) -> list[str]:
    by_id = {id(parameter): name for name, parameter in model.named_parameters()}
    return [by_id[id(parameter)] for parameter in params]


def test_the_reference_grouping_is_one_group_with_every_trainable_parameter_once():
    model = Every()
    groups = parameter_groups(model, 0.3, decay_norms_and_biases=True)
    assert len(groups) == 1 and groups[0]["weight_decay"] == 0.3
    names = names_of(model, groups[0]["params"])
    assert len(names) == len(set(names))
    assert set(names) == DECAYED | EXEMPT


def test_exempt_grouping_splits_biases_norms_and_scalars_from_matrices():
    model = Every()
    decayed, exempt = parameter_groups(model, 0.3, decay_norms_and_biases=False)
    assert decayed["weight_decay"] == 0.3 and exempt["weight_decay"] == 0.0
    decayed_names, exempt_names = names_of(model, decayed["params"]), names_of(model, exempt["params"])
    assert len(decayed_names) == len(set(decayed_names)) and len(exempt_names) == len(set(exempt_names))
    assert set(decayed_names) == DECAYED
    assert set(exempt_names) == EXEMPT
    assert not FROZEN & (set(decayed_names) | set(exempt_names))


@pytest.mark.parametrize("name, default", [("adam", 0.0), ("adamw", 0.01), ("sgd", 0.0)])
def test_unset_weight_decay_is_torch_default_in_both_groupings(name, default):
    model = Every()
    one = build_optimizer(model, OptimArgs(optimizer_name=name))
    assert [group["weight_decay"] for group in one.param_groups] == [default]
    split = build_optimizer(model, OptimArgs(optimizer_name=name, decay_norms_and_biases=False))
    assert [group["weight_decay"] for group in split.param_groups] == [default, 0.0]
    assert set(names_of(model, split.param_groups[0]["params"])) == DECAYED


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd"])
@pytest.mark.parametrize("weight_decay", [0.0, 0.25])
def test_a_set_weight_decay_replaces_the_default(name, weight_decay):
    optimizer = build_optimizer(Every(), OptimArgs(optimizer_name=name, weight_decay=weight_decay))
    assert [group["weight_decay"] for group in optimizer.param_groups] == [weight_decay]


def test_optimizer_settings_reach_every_group():
    args = OptimArgs(optimizer_name="adam", lr=3e-3, betas=[0.8, 0.95], eps=1e-6,
                     decay_norms_and_biases=False)
    optimizer = build_optimizer(Every(), args)
    for group in optimizer.param_groups:
        assert group["lr"] == 3e-3 and tuple(group["betas"]) == (0.8, 0.95) and group["eps"] == 1e-6


def test_adamw_step_decays_only_the_decayed_group_and_leaves_frozen_parameters():
    torch.manual_seed(0)
    model = Every()
    before = {name: parameter.detach().clone() for name, parameter in model.named_parameters()}
    optimizer = build_optimizer(model, OptimArgs(optimizer_name="adamw", lr=0.5, weight_decay=0.2,
                                                 decay_norms_and_biases=False))
    for parameter in model.parameters():
        if parameter.requires_grad:
            parameter.grad = torch.zeros_like(parameter)  # the step is the decoupled decay alone
    optimizer.step()
    for name, parameter in model.named_parameters():
        factor = 1 - 0.5 * 0.2 if name in DECAYED else 1.0
        torch.testing.assert_close(parameter.detach(), before[name] * factor, msg=name)


@pytest.mark.parametrize("written, optimizer_class", [
    ("Adam", torch.optim.Adam), ("ADAMW", torch.optim.AdamW), ("AdamW", torch.optim.AdamW), ("SGD", torch.optim.SGD)])
def test_optimizer_names_in_any_case_as_the_reference(written, optimizer_class):
    """The reference's get_optimizer compares optimizer_name.lower(): "AdamW" is AdamW, with its 0.01 decay."""
    config = parse_config({"optim_args": {"optimizer_name": written}})
    assert config.optim_args.optimizer_name == written.lower()  # also as config.yaml records it
    for args in (config.optim_args, OptimArgs(optimizer_name=written)):
        optimizer = build_optimizer(Every(), args)
        assert type(optimizer) is optimizer_class
        assert optimizer.param_groups[0]["weight_decay"] == (0.01 if optimizer_class is torch.optim.AdamW else 0.0)


def test_an_unknown_optimizer_name_is_one_clear_error():
    with pytest.raises(ConfigError, match=r"'optim_args.optimizer_name' is 'Lamb'; expected one of"):
        parse_config({"optim_args": {"optimizer_name": "Lamb"}})
    with pytest.raises(ValueError, match=r"optimizer_name is 'Lamb'; expected one of"):
        build_optimizer(Every(), OptimArgs(optimizer_name="Lamb"))
