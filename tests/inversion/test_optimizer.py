"""HostFreeAdam: torch's Adam step for step, states that load both ways, no host reads.

The truth is ``torch.optim.Adam`` with its default flags, stepped beside it on a copy of the
same model with the same gradients; host reads are ``aten::_local_scalar_dense`` events.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest
import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile

from captum_netinv import NetworkInversion
from captum_netinv.examples.models import LeNet5
from captum_netinv.inversion import HostFreeAdam
from captum_netinv.inversion.training import generator_optimizer

pytestmark = pytest.mark.usefixtures("one_thread")

STEPS = 50
_READ = "aten::_local_scalar_dense"


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3), nn.BatchNorm1d(3))


def _set_gradients(models: list[nn.Module], rng: torch.Generator, *, step: int) -> None:
    r"""The same random gradients on the parameters of every model (in their order); every
    third step the last parameter gets none (Adam leaves it and its step count alone)."""
    for parameters in zip(*(m.parameters() for m in models), strict=True):
        gradient = torch.randn(parameters[0].shape, generator=rng)
        for parameter in parameters:
            parameter.grad = gradient.clone()
    if step % 3 == 0:
        for model in models:
            list(model.parameters())[-1].grad = None


def _run(
    pairs: list[tuple[nn.Module, torch.optim.Optimizer]], *, steps: int, seed: int = 0
) -> None:
    rng = torch.Generator().manual_seed(seed)
    for step in range(steps):
        _set_gradients([model for model, _ in pairs], rng, step=step)
        for _, optimizer in pairs:
            optimizer.step()


def _assert_same(ours: nn.Module, truth: nn.Module) -> None:
    for a, b in zip(ours.parameters(), truth.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("weight_decay", [0.0, 0.05])
def test_steps_equal_torch_adam(weight_decay: float) -> None:
    ours, truth = _model(), _model()
    _run(
        [
            (ours, HostFreeAdam(ours.parameters(), lr=1e-2, weight_decay=weight_decay)),
            (truth, torch.optim.Adam(truth.parameters(), lr=1e-2, weight_decay=weight_decay)),
        ],
        steps=STEPS,
    )
    _assert_same(ours, truth)
    start = _model().parameters()
    assert all(not torch.equal(a, b) for a, b in zip(ours.parameters(), start, strict=True))


def test_parameter_groups_keep_their_settings() -> None:
    ours, truth = _model(), _model()

    def groups(model: nn.Module) -> list[dict]:
        first, *rest = model.parameters()
        return [{"params": [first], "lr": 3e-2, "betas": (0.5, 0.9)}, {"params": rest}]

    _run(
        [
            (ours, HostFreeAdam(groups(ours), lr=1e-2, eps=1e-6)),
            (truth, torch.optim.Adam(groups(truth), lr=1e-2, eps=1e-6)),
        ],
        steps=10,
    )
    _assert_same(ours, truth)


@pytest.mark.parametrize(
    ("first", "second"),
    [(HostFreeAdam, torch.optim.Adam), (torch.optim.Adam, HostFreeAdam)],
    ids=["ours-to-torch", "torch-to-ours"],
)
def test_state_dict_continues_in_the_other_optimizer(
    first: Callable[..., torch.optim.Optimizer], second: Callable[..., torch.optim.Optimizer]
) -> None:
    resumed, truth = _model(), _model()
    before = first(resumed.parameters(), lr=1e-2, weight_decay=0.01)
    always = torch.optim.Adam(truth.parameters(), lr=1e-2, weight_decay=0.01)
    _run([(resumed, before), (truth, always)], steps=20)
    state = copy.deepcopy(before.state_dict())
    for values in state["state"].values():
        assert values["step"].dtype == torch.float32 and values["step"].dim() == 0
        assert set(values) == {"step", "exp_avg", "exp_avg_sq"}
    after = second(resumed.parameters(), lr=0.5)  # the loaded state's lr wins
    after.load_state_dict(state)
    _run([(resumed, after), (truth, always)], steps=20, seed=1)
    _assert_same(resumed, truth)
    for ours, theirs in zip(resumed.parameters(), truth.parameters(), strict=True):
        assert torch.equal(after.state[ours]["step"], always.state[theirs]["step"])


def test_state_dict_of_amsgrad_is_refused() -> None:
    model = _model()
    state = torch.optim.Adam(model.parameters(), amsgrad=True).state_dict()
    with pytest.raises(ValueError, match="amsgrad"):
        HostFreeAdam(model.parameters()).load_state_dict(state)


def _reads(action: Callable[[], object]) -> int:
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        action()
    return sum(1 for event in profiler.events() if event.name == _READ)


@pytest.mark.parametrize("weight_decay", [0.0, 0.05])
def test_step_reads_nothing_to_the_host(weight_decay: float) -> None:
    ours, truth = _model(), _model()
    pairs: list[tuple[nn.Module, torch.optim.Optimizer]] = [
        (ours, HostFreeAdam(ours.parameters(), lr=1e-2, weight_decay=weight_decay)),
        (truth, torch.optim.Adam(truth.parameters(), lr=1e-2, weight_decay=weight_decay)),
    ]
    _run(pairs, steps=2)  # past the first step, which makes the state
    _set_gradients([ours, truth], torch.Generator().manual_seed(2), step=1)
    assert _reads(pairs[0][1].step) == 0
    assert _reads(pairs[1][1].step) > 0  # torch's Adam reads its step counters: the test can fail


def test_fit_reads_the_host_once_per_step() -> None:
    torch.manual_seed(0)
    inversion = NetworkInversion(LeNet5().eval(), input_shape=(1, 28, 28))
    short, long = 3, 8
    counts = [
        _reads(lambda steps=steps: inversion.fit(steps=steps, seed=0, progress=False))
        for steps in (short, long)
    ]
    assert (counts[1] - counts[0]) / (long - short) <= 1


def test_generator_optimizer_is_host_free_on_the_cpu() -> None:
    assert isinstance(generator_optimizer(_model(), lr=1e-3), HostFreeAdam)


@pytest.mark.parametrize(
    ("arguments", "name"),
    [
        ({"lr": -1e-3}, "lr"),
        ({"lr": float("nan")}, "lr"),
        ({"betas": (1.0, 0.999)}, r"betas\[0\]"),
        ({"betas": (0.9, -0.1)}, r"betas\[1\]"),
        ({"eps": -1e-8}, "eps"),
        ({"weight_decay": -0.1}, "weight_decay"),
    ],
)
def test_bad_arguments_are_refused(arguments: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        HostFreeAdam(_model().parameters(), **arguments)
