"""The shared argument checks and the eval-mode context manager."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from torch import nn

from captum_netinv._utils import (
    channels_last,
    check_forward_func,
    check_layer_in_model,
    check_positive_int,
    check_seed,
    eval_mode,
    excerpt,
    model_device,
    modules_of,
)


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


class _Holder:
    r"""A callable object holding its model as an attribute."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def __call__(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.model(inputs)


def _wrappers(model: nn.Module) -> dict[str, object]:
    def closure(inputs: torch.Tensor) -> torch.Tensor:
        return model(inputs)

    return {
        "module": model,
        "closure": closure,
        "bound method": model.forward,
        "partial": functools.partial(lambda net, inputs: net(inputs), model),
        "callable object": _Holder(model),
    }


@pytest.mark.parametrize(
    "kind", ["module", "closure", "bound method", "partial", "callable object"]
)
def test_modules_of_finds_the_model_a_callable_runs(kind: str) -> None:
    model = _mixed_model()
    assert modules_of(_wrappers(model)[kind]) == [model]
    assert model_device(_wrappers(model)[kind]) == torch.device("cpu")


def test_eval_mode_restores_buffers_exactly_for_wrapped_models() -> None:
    model = _mixed_model()
    for kind, wrapped in _wrappers(model).items():
        buffers = {name: value.clone() for name, value in model.named_buffers()}
        flags = [module.training for module in model.modules()]
        with eval_mode(wrapped):
            assert not any(module.training for module in model.modules()), kind
            model.train()  # a forward in train mode inside the block updates the statistics
            model(torch.randn(8, 3))
        assert [module.training for module in model.modules()] == flags, kind
        for name, value in model.named_buffers():
            assert torch.equal(value, buffers[name]), (kind, name)


def test_a_callable_without_a_module_is_named_in_a_warning() -> None:
    with pytest.warns(UserWarning, match="nn.Module could not be found"):
        check_forward_func(lambda inputs: inputs.sum(dim=1, keepdim=True))
    with pytest.raises(TypeError, match="`forward_func` must be the model"):
        check_forward_func("model")


def test_seed_and_count_checks() -> None:
    assert check_seed(np.int64(3)) == 3 and check_seed(None) is None
    assert check_positive_int(np.int32(4), "n") == 4
    with pytest.raises(ValueError, match=r"`seed` must be in \[0, 2\*\*63\)"):
        check_seed(2**70)
    with pytest.raises(ValueError, match=r"`seed` must be in \[0, 2\*\*63\)"):
        check_seed(-1)
    with pytest.raises(TypeError, match="`seed` must be an int"):
        check_seed(1.5)
    with pytest.raises(TypeError, match="`n` must be an int >= 1, got 2.0"):
        check_positive_int(2.0, "n")


def test_excerpt_cuts_long_inputs() -> None:
    assert excerpt("abc") == "'abc'"
    text = excerpt("x" * 10**6)
    assert len(text) < 120 and "1000002 characters" in text


def test_channels_last_converts_4d_tensors_inside_and_restores_each_one() -> None:
    torch.manual_seed(0)
    module = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Linear(4, 2))
    already = nn.Conv2d(4, 4, 1).to(memory_format=torch.channels_last)
    module.append(already)
    weight = module[0].weight
    before = {name: value.clone() for name, value in module.state_dict().items()}
    with channels_last(module):
        assert module[0].weight is weight  # the same Parameter (an optimizer keeps it)
        assert weight.is_contiguous(memory_format=torch.channels_last)
        assert not weight.is_contiguous()
        output = module[0](torch.rand(2, 3, 8, 8))
        assert output.is_contiguous(memory_format=torch.channels_last)
    assert module[0].weight is weight and weight.is_contiguous()
    assert already.weight.is_contiguous(memory_format=torch.channels_last)  # as it was
    assert all(torch.equal(before[name], value) for name, value in module.state_dict().items())
    with channels_last(module, enabled=False):
        assert weight.is_contiguous()
