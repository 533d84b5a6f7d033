"""Training options and layer numbers are checked when a config is made (issue 25, item 6): a value
out of range is an error naming the option, its value and the valid range, instead of a bare
ZeroDivisionError deep in training, an untrained "result", a halved learning rate, another cache key
for the same value, or True read as layer 1. Valid configs keep their keys."""

from __future__ import annotations

import math

import numpy as np
import pytest

from xlt_utils.ablation import freeze_layers, reinit_layers
from xlt_utils.experiments import ExperimentConfig, experiment_config
from xlt_utils.profiles import get_profile
from xlt_utils.training import TrainConfig, TrainingOptionError

BAD = [  # (option, value, what the message gives as the valid range)
    ("batch_size", 0, "an integer >= 1"),
    ("batch_size", 2.5, "an integer >= 1"),
    ("epochs", 0, "an integer >= 1"),
    ("epochs", True, "an integer >= 1"),
    ("warmup", 2.0, "a number from 0 to 1"),
    ("warmup", -0.1, "a number from 0 to 1"),
    ("seed", 1.0, "an integer from 0 to 4294967295"),
    ("seed", -1, "an integer from 0 to 4294967295"),
    ("lr", 0, "a number > 0"),
    ("lr", math.nan, "a number > 0"),
    ("lr", "5e-5", "a number > 0"),
    ("head_lr", -1e-3, "a number > 0, or None: the same as lr"),
    ("weight_decay", -0.01, "a number >= 0"),
    ("max_grad_norm", math.inf, "a number >= 0, or 0 or None: no clipping"),
    ("max_length", 2, "an integer >= 3"),
    ("length_bucket", 0, "an integer >= 1"),
    ("precision", "half", "auto, bf16, fp16 or fp32"),
]


@pytest.mark.parametrize(("option", "value", "valid"), BAD)
def test_a_bad_option_is_an_error_naming_it_its_value_and_the_range(option, value, valid):
    expected = f"training option {option}={value!r} is not valid; valid: {valid}"
    with pytest.raises(TrainingOptionError) as e:
        experiment_config(get_profile("toy"), **{option: value})
    assert str(e.value).startswith(expected), str(e.value)
    with pytest.raises(TrainingOptionError, match="is not valid; valid: "):
        TrainConfig(**{option: value})


def test_configs_are_immutable_and_a_changed_copy_is_checked():
    import dataclasses

    cfg = TrainConfig(epochs=1, batch_size=4)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.batch_size = 0  # a config's key cannot change after it is made
    with pytest.raises(TrainingOptionError, match="batch_size=0"):
        dataclasses.replace(cfg, batch_size=0)
    good = experiment_config(get_profile("toy"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        good.train.epochs = 0  # nor through the training options it holds
    with pytest.raises(TrainingOptionError, match="epochs=0"):
        ExperimentConfig.from_dict({**good.to_dict(), "train": {**good.train.to_dict(), "epochs": 0}})


def test_the_seed_of_a_config_is_an_integer():
    with pytest.raises(TrainingOptionError, match=r"seed=1\.0 is not valid"):
        ExperimentConfig(seed=1.0)
    assert experiment_config(get_profile("toy"), seed=np.int64(2)).key() == experiment_config(get_profile("toy"), seed=2).key()


def test_equal_values_give_equal_keys_and_valid_configs_keep_theirs():
    base = experiment_config(get_profile("toy"), task="pos", seed=1)
    assert experiment_config(get_profile("toy"), task="pos", seed=1, lr=3e-4, max_grad_norm=1).key() == base.key()  # 1 == 1.0
    assert experiment_config(get_profile("toy"), task="pos", seed=1, warmup=0, epochs=np.int64(2)).train.warmup == 0.0
    assert type(experiment_config(get_profile("toy"), epochs=np.int64(2)).train.epochs) is int
    # the toy profile's default config: its key is the one of the shipped record
    # (tests/test_experiments.py checks every key of the shipped grid)
    assert base.train.to_dict() == {"epochs": 2, "batch_size": 32, "lr": 3e-4, "head_lr": 1e-3, "warmup": 0.1,
                                    "weight_decay": 0.01, "seed": 1, "precision": "auto", "max_grad_norm": 1.0,
                                    "max_length": 128, "length_bucket": 4}
    for ok in (dict(warmup=1.0), dict(warmup=0.0), dict(head_lr=None), dict(max_grad_norm=None),
               dict(max_grad_norm=0), dict(precision="bf16"), dict(precision="fp16"), dict(seed=0)):
        TrainConfig(**ok)


@pytest.mark.parametrize("fn", [reinit_layers, freeze_layers])
@pytest.mark.parametrize(("layers", "message"), [([True], "not True"), ([1.0], "not 1.0"), ("12", "not '12'"),
                                                 ([13], "layer 13 does not exist")])
def test_layer_numbers_are_integers_in_range(fn, layers, message):
    from xlt_utils.pretrained import load_encoder
    from xlt_utils.profiles import get_profile

    encoder, _ = load_encoder(get_profile("toy"), device="meta")
    with pytest.raises(ValueError, match=message) as e:
        fn(encoder, layers)
    assert "0 (embeddings) to 12" in str(e.value)
