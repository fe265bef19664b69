"""The shared argument checks and the eval-mode context manager."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from captum_netinv._utils import check_layer_in_model, check_positive_int, eval_mode, model_device


def _mixed_model() -> nn.Sequential:
    model = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3), nn.Dropout(0.5), nn.Linear(3, 2))
    model.train()
    model[1].eval()  # a module the user froze on purpose
    return model


def test_eval_mode_restores_every_flag_even_after_an_error() -> None:
    model = _mixed_model()
    before = [module.training for module in model.modules()]
    with eval_mode(model):
        assert not any(module.training for module in model.modules())
    assert [module.training for module in model.modules()] == before
    with pytest.raises(RuntimeError, match="boom"), eval_mode(model):
        raise RuntimeError("boom")
    assert [module.training for module in model.modules()] == before


def test_eval_mode_keeps_chosen_modules_training() -> None:
    model = _mixed_model()
    with eval_mode(model, lambda module: isinstance(module, nn.Dropout)):
        assert [m.training for m in model] == [False, False, True, False]
    with eval_mode(lambda x: x):  # a plain function: nothing to switch
        pass


def test_checks_name_the_argument() -> None:
    assert check_positive_int(3, "steps") == 3
    with pytest.raises(TypeError, match="`steps` must be an int >= 1, got True"):
        check_positive_int(True, "steps")
    with pytest.raises(ValueError, match="`steps` must be >= 1, got 0"):
        check_positive_int(0, "steps")
    model = nn.Sequential(nn.Linear(2, 2))
    check_layer_in_model(model, model[0])
    with pytest.raises(ValueError, match="`layer` .* is not a submodule"):
        check_layer_in_model(model, nn.Linear(2, 2))
    with pytest.raises(TypeError, match="`layer` must be a torch.nn.Module"):
        check_layer_in_model(model, "0")  # type: ignore[arg-type]


def test_model_device() -> None:
    assert model_device(nn.Linear(2, 2)) == torch.device("cpu")
    assert model_device(lambda x: x) == torch.device("cpu")
