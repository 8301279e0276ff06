"""eval.batch_size / eval.num_workers: 'auto' picks the measured best of the machine; explicit values are kept;
anything else is refused with the key's name."""

from __future__ import annotations

import pytest

from models.config import ConfigError
from tools.config import load_config, parse_config
from tools.eval.loader_defaults import eval_batch_size, eval_num_workers


def test_auto_batch_size_is_small_on_a_cpu_and_32_on_a_gpu():
    assert eval_batch_size("auto", "cpu") == 4
    assert eval_batch_size("auto", "cuda") == 32
    assert eval_batch_size(7, "cuda") == 7 and eval_batch_size(1, "cpu") == 1


@pytest.mark.parametrize(("device", "cpus", "expected"), [
    ("cpu", 1, 0), ("cpu", 2, 0),            # a loader process would take the cores from torch's threads
    ("cpu", 4, 1), ("cpu", 64, 1),
    ("cuda", 2, 1), ("cuda", 6, 5), ("cuda", 32, 8),
])
def test_auto_loader_processes_follow_the_device_and_the_cores(device, cpus, expected):
    assert eval_num_workers("auto", device, cpus=cpus) == expected
    assert eval_num_workers(3, device, cpus=cpus) == 3


@pytest.mark.parametrize("bad", ["four", -1, 2.5, True])
def test_other_values_are_refused_with_the_key(bad):
    with pytest.raises(ValueError, match="eval.num_workers must be an integer >= 0 or 'auto'"):
        eval_num_workers(bad, "cpu")
    with pytest.raises(ValueError, match="eval.batch_size must be an integer >= 1 or 'auto'"):
        eval_batch_size(0 if bad == -1 else bad, "cpu")


def test_config_defaults_to_auto_and_validates_the_keys():
    config = parse_config({})
    assert (config.eval.batch_size, config.eval.num_workers) == ("auto", "auto")
    assert load_config(None, ["eval.batch_size=8", "eval.num_workers=0"]).eval.batch_size == 8
    with pytest.raises(ConfigError, match="'eval.batch_size' is 0; expected an integer >= 1 or 'auto'"):
        parse_config({"eval": {"batch_size": 0}})
    with pytest.raises(ConfigError, match="eval.num_workers"):
        parse_config({"eval": {"num_workers": "many"}})
