"""The fit's ``compile`` option: checked, equal to the eager fit, and eager again where it fails."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
import torch
import torch._inductor.config
from torch import nn

from captum_netinv import NetworkInversion, NeuronInversion
from captum_netinv.inversion import compilation
from captum_netinv.inversion.compilation import COMPILE_MODES, check_compile

SHAPE = (1, 8, 8)


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(256, 16),
        nn.ReLU(),
        nn.Linear(16, 4),
    ).eval()


def _fit(**options: Any) -> NetworkInversion:
    inversion = NetworkInversion(_model(), input_shape=SHAPE)
    inversion.fit(steps=4, batch_size=8, seed=0, progress=False, **options)
    return inversion


def test_compile_values_are_checked() -> None:
    assert check_compile(False) is None and check_compile(None) is None
    assert check_compile(True) == "default"
    assert all(check_compile(mode) == mode for mode in COMPILE_MODES)
    inversion = NetworkInversion(_model(), input_shape=SHAPE)
    with pytest.raises(ValueError, match="`compile` must be a bool or one of"):
        inversion.fit(steps=1, batch_size=4, progress=False, compile="fastest")
    with pytest.raises(TypeError, match="`compile` must be a bool"):
        inversion.fit(steps=1, batch_size=4, progress=False, compile=1)  # type: ignore[arg-type]
    assert inversion.steps_trained == 0  # refused before any step


def test_a_compiled_fit_equals_the_eager_fit() -> None:
    eager = _fit()
    # inductor draws its own random numbers unless told to draw eager's (the dropout masks)
    with (
        torch._inductor.config.patch(fallback_random=True),
        warnings.catch_warnings(record=True) as caught,
    ):
        warnings.simplefilter("always")
        compiled = _fit(compile=True)
    assert not [w for w in caught if "`compile=" in str(w.message)]  # it did not fall back
    for name, values in eager.history.items():
        torch.testing.assert_close(compiled.history[name], values, rtol=1e-4, atol=1e-5)
    # the generators compute the same function (batch statistics, dropout off): the biases
    # in front of batch norm, whose gradient is rounding noise, are left out of the comparison
    outputs = []
    for inversion in (eager, compiled):
        generator = inversion.generator
        assert generator is not None
        generator.train()
        for module in generator.modules():
            if isinstance(module, nn.Dropout):
                module.eval()
        batch = inversion.settings.draw_condition(
            torch.arange(8) % 4, 4, torch.Generator().manual_seed(2)
        )
        with torch.no_grad():
            outputs.append(
                generator(torch.randn(8, 64, generator=torch.Generator().manual_seed(3)), batch)
            )
    torch.testing.assert_close(outputs[1], outputs[0], rtol=1e-4, atol=1e-5)
    # the fitted generator is the plain module (sampling runs eagerly)
    assert type(compiled.generator).__name__ == "ConditionedGenerator"


class _FailingCompile:
    r"""Stands for ``torch.compile``: what it returns runs the function (drawing random numbers,
    updating batch-norm statistics) and then fails, as a backend that fails late would."""

    def __call__(self, function: Any, mode: str) -> Any:
        def compiled(*args: Any, **kwargs: Any) -> Any:
            function(*args, **kwargs)
            raise RuntimeError("backend failed\nsecond line")

        return compiled


def test_a_failed_compilation_warns_and_the_fit_equals_the_eager_fit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    eager = _fit()
    monkeypatch.setattr(compilation.torch, "compile", _FailingCompile())
    with pytest.warns(UserWarning, match="`compile='reduce-overhead'` failed .*backend failed"):
        fallen_back = _fit(compile="reduce-overhead")
    assert fallen_back.history == eager.history
    assert fallen_back.generator is not None and eager.generator is not None
    for ours, theirs in zip(
        fallen_back.generator.state_dict().values(),
        eager.generator.state_dict().values(),
        strict=True,
    ):
        assert torch.equal(ours, theirs)


def test_neuron_inversion_takes_compile_and_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    inputs = torch.rand(32, *SHAPE, generator=torch.Generator().manual_seed(1))
    model = _model()

    def fit(**options: Any) -> dict[str, list[float]]:
        inversion = NeuronInversion(model, model[3], neurons=[0, 1])
        return inversion.fit(inputs, steps=3, batch_size=8, seed=0, progress=False, **options)

    eager = fit()
    monkeypatch.setattr(compilation.torch, "compile", _FailingCompile())
    with pytest.warns(UserWarning, match="`compile='default'` failed"):
        assert fit(compile=True) == eager
