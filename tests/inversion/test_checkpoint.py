"""Saved inversions and fit checkpoints: round trips, resuming, refusals, and the format-1 file.

A checkpoint written by the code before the module split (tests/data/inversion_format1*.pt) must
still load and give the samples it gave then.
"""

from __future__ import annotations

import os

import pytest
import torch
from torch import nn

from captum_netinv import NetworkInversion
from captum_netinv.examples.models import MLP, LeNet5
from captum_netinv.inversion import HostFreeAdam, InversionSettings
from captum_netinv.inversion.checkpoint import (
    CHECKPOINT_FORMAT,
    FitCheckpoint,
    check_fingerprint,
    model_fingerprint,
    read_checkpoint,
    write_atomically,
)

SHAPE = (1, 28, 28)
DATA = os.path.join(os.path.dirname(__file__), "..", "data")


def test_resumed_fit_equals_uninterrupted(trained_lenet: LeNet5, tmp_path: object) -> None:
    path = os.path.join(str(tmp_path), "fit.pt")
    settings = {"steps": 20, "batch_size": 16, "seed": 7, "progress": False}
    whole = NetworkInversion(trained_lenet, input_shape=SHAPE)
    whole.fit(**settings)  # type: ignore[arg-type]

    stopped = NetworkInversion(trained_lenet, input_shape=SHAPE)
    stopped.fit(
        checkpoint_path=path,
        checkpoint_every=5,
        callback=lambda step, values: step == 12,
        **settings,  # type: ignore[arg-type]
    )
    assert stopped.steps_trained == 12
    resumed = NetworkInversion(trained_lenet, input_shape=SHAPE)
    history = resumed.fit(checkpoint_path=path, **settings)  # type: ignore[arg-type]
    assert resumed.steps_trained == 20 and len(history["loss"]) == 20
    assert history["loss"] == whole.history["loss"]
    assert whole.generator is not None and resumed.generator is not None
    for (name, a), b in zip(
        whole.generator.state_dict().items(), resumed.generator.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
    with pytest.raises(ValueError, match="`seed` is 8"):
        NetworkInversion(trained_lenet, input_shape=SHAPE).fit(
            checkpoint_path=path,
            **{**settings, "seed": 8},  # type: ignore[arg-type]
        )


def test_save_load_round_trip(
    fitted: NetworkInversion, trained_lenet: LeNet5, tmp_path: object
) -> None:
    path = os.path.join(str(tmp_path), "inversion.pt")
    fitted.save(path)
    loaded = NetworkInversion.load(path, trained_lenet)
    assert loaded.fitted and loaded.layer is fitted.layer
    assert loaded.history == fitted.history
    assert torch.equal(
        loaded.attribute(target=[0, 5, 9], seed=2), fitted.attribute(target=[0, 5, 9], seed=2)
    )


def test_load_refuses_another_model(fitted: NetworkInversion, tmp_path: object) -> None:
    path = os.path.join(str(tmp_path), "inversion.pt")
    fitted.save(path)
    with pytest.raises(ValueError, match="another model or shape: its model parameters"):
        NetworkInversion.load(path, MLP())
    with pytest.raises(ValueError, match="another model or shape"):
        NetworkInversion.load(path, LeNet5(num_classes=5))
    with pytest.raises(ValueError, match="not a NetworkInversion checkpoint"):
        torch.save({"weights": torch.zeros(1)}, path)
        NetworkInversion.load(path, LeNet5())


def test_checkpoint_from_another_shape_is_refused(trained_lenet: LeNet5, tmp_path: object) -> None:
    path = os.path.join(str(tmp_path), "fit.pt")
    model = nn.Sequential(nn.Flatten(), nn.LazyLinear(10))
    model(torch.zeros(1, 1, 12, 12))
    NetworkInversion(model, input_shape=(1, 12, 12)).fit(
        steps=2, batch_size=4, checkpoint_path=path, progress=False
    )
    other = nn.Sequential(nn.Flatten(), nn.Linear(144, 10))
    with pytest.raises(ValueError, match="input shape"):
        NetworkInversion(other, input_shape=(1, 16, 9)).fit(
            steps=2, batch_size=4, checkpoint_path=path, progress=False
        )


def _format1_model() -> nn.Module:
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 12 * 12, 16),
        nn.ReLU(),
        nn.Linear(16, 10),
    )
    state = torch.load(os.path.join(DATA, "inversion_format1_model.pt"), weights_only=True)
    model.load_state_dict(state)
    return model


def test_a_checkpoint_written_before_the_split_still_loads() -> None:
    # written by commit cdd358a (see tests/data/README.md): 5 steps, normalization (0.5, 0.25)
    path = os.path.join(DATA, "inversion_format1.pt")
    with pytest.warns(UserWarning, match="before weights were fingerprinted"):
        inversion = NetworkInversion.load(path, _format1_model())
    assert inversion.steps_trained == 5 and len(inversion.history["loss"]) == 5
    assert inversion.settings.input_normalization == ((0.5,), (0.25,))
    expected = torch.load(os.path.join(DATA, "inversion_format1_samples.pt"), weights_only=True)
    assert torch.allclose(inversion.attribute(target=[0, 3, 9], seed=1), expected, atol=1e-6)


def test_saved_files_keep_format_1(fitted: NetworkInversion, tmp_path: object) -> None:
    path = os.path.join(str(tmp_path), "inversion.pt")
    fitted.save(path)
    state = read_checkpoint(path)
    assert state["format"] == CHECKPOINT_FORMAT == "captum_netinv.NetworkInversion/1"
    assert set(state) == {
        "format",
        "fingerprint",
        "config",
        "generator",
        "history",
        "steps_trained",
    }
    assert InversionSettings.from_dict(state["config"]) == fitted.settings
    assert not os.path.exists(f"{path}.tmp")


def test_fit_checkpoint_dict_round_trip() -> None:
    generator = torch.Generator().manual_seed(3)
    parameter = nn.Parameter(torch.zeros(2))
    optimizer = torch.optim.Adam([parameter])
    fit = FitCheckpoint.capture(
        7, optimizer, generator, torch.device("cpu"), seed=1, batch_size=16, lr=0.01
    )
    restored = FitCheckpoint.from_dict(fit.to_dict())
    assert (restored.step, restored.seed, restored.batch_size, restored.lr) == (7, 1, 16, 0.01)
    other = torch.Generator()
    restored.restore(optimizer, other, torch.device("cpu"))
    assert torch.equal(other.get_state(), generator.get_state())


def test_a_resumed_optimizer_keeps_its_own_implementation_flags() -> None:
    # a CPU fit's HostFreeAdam state, resumed by a torch Adam (as on a GPU, where it is fused):
    # the moments and steps come from the checkpoint, the implementation stays the resumer's
    parameter = nn.Parameter(torch.ones(3))
    saved = HostFreeAdam([parameter], lr=0.01)
    parameter.grad = torch.full((3,), 0.5)
    saved.step()
    fit = FitCheckpoint.capture(
        1, saved, torch.Generator(), torch.device("cpu"), seed=0, batch_size=8, lr=0.01
    )
    resumer = torch.optim.Adam([parameter], lr=0.01, foreach=True)
    fit.restore(resumer, torch.Generator(), torch.device("cpu"))
    assert resumer.param_groups[0]["foreach"] is True
    state = resumer.state[parameter]
    assert float(state["step"]) == 1.0
    torch.testing.assert_close(state["exp_avg"], saved.state[parameter]["exp_avg"])


def test_fingerprint_names_what_differs(tmp_path: object) -> None:
    model = nn.Linear(4, 3)
    stored = model_fingerprint(model, (1, 2, 2), 3)
    check_fingerprint(stored, model_fingerprint(model, (1, 2, 2), 3), "f.pt")
    with pytest.raises(ValueError, match="its model weights .* differ"):
        check_fingerprint(stored, model_fingerprint(nn.Linear(4, 3), (1, 2, 2), 3), "f.pt")
    with pytest.raises(ValueError, match=r"input shape \[1, 2, 2\] != \[1, 4, 1\]"):
        check_fingerprint(stored, model_fingerprint(model, (1, 4, 1), 3), "f.pt")
    # the hash reads the values, not the device or the object
    assert model_fingerprint(lambda x: model(x), (1, 2, 2), 3) == stored
    path = os.path.join(str(tmp_path), "sub", "state.pt")
    state = {"format": CHECKPOINT_FORMAT, "fingerprint": stored, "config": {}, "generator": {}}
    write_atomically({**state, "history": {}, "steps_trained": 1, "x": torch.ones(1)}, path)
    assert torch.equal(read_checkpoint(path)["x"], torch.ones(1))
    assert os.listdir(os.path.dirname(path)) == ["state.pt"]


def test_load_refuses_the_same_architecture_with_other_weights(
    fitted: NetworkInversion, trained_lenet: LeNet5, tmp_path: object
) -> None:
    path = os.path.join(str(tmp_path), "inversion.pt")
    fitted.save(path)
    retrained = LeNet5()
    retrained.load_state_dict(trained_lenet.state_dict())
    with torch.no_grad():
        retrained.fc2.weight[3, 7] += 0.01  # one weight, one of the sampled ones
        retrained.fc1.weight.mul_(1.001)
    with pytest.raises(ValueError, match="its model weights .* differ"):
        NetworkInversion.load(path, retrained)
    assert NetworkInversion.load(path, lambda x: trained_lenet(x)).fitted  # wrapped: same weights


@pytest.mark.parametrize(
    "content",
    [b"", b"PK\x03\x04 truncated", bytes(range(256)) * 4, "not a dict", "other format", "half"],
)
def test_files_that_are_not_checkpoints_are_named(
    fitted: NetworkInversion, tmp_path: object, content: object
) -> None:
    path = os.path.join(str(tmp_path), "file.pt")
    if content == "not a dict":
        torch.save([1, 2, 3], path)
    elif content == "other format":
        torch.save({"format": "something/1", "weights": torch.zeros(1)}, path)
    elif content == "half":
        fitted.save(path)
        with open(path, "rb") as file:
            data = file.read()
        with open(path, "wb") as file:
            file.write(data[: len(data) // 2])
    else:
        with open(path, "wb") as file:
            file.write(content)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="is not a NetworkInversion checkpoint") as error:
        NetworkInversion.load(path, LeNet5())
    assert path in str(error.value) and "weights_only" not in str(error.value)
    assert len(str(error.value)) < 400


def test_save_to_a_directory_is_refused_without_a_stray_file(
    fitted: NetworkInversion, tmp_path: object
) -> None:
    folder = str(tmp_path)
    with pytest.raises(ValueError, match="`path` .* is a directory"):
        fitted.save(folder)
    with pytest.raises(ValueError, match="is a directory, not a NetworkInversion checkpoint"):
        NetworkInversion.load(folder, LeNet5())
    assert os.listdir(folder) == []
    with pytest.raises(FileNotFoundError):
        NetworkInversion.load(os.path.join(folder, "missing.pt"), LeNet5())


def test_fit_from_a_saved_inversion_says_what_the_file_is(
    fitted: NetworkInversion, trained_lenet: LeNet5, tmp_path: object
) -> None:
    path = os.path.join(str(tmp_path), "inversion.pt")
    fitted.save(path)
    with pytest.raises(ValueError, match="holds a saved inversion \\(from save\\(\\)\\)"):
        NetworkInversion(trained_lenet, input_shape=SHAPE).fit(
            steps=2, batch_size=4, checkpoint_path=path, progress=False
        )
