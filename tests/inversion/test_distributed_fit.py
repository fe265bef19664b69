"""NetworkInversion.fit (and NeuronInversion.fit) on two gloo ranks (CPU): one generator in DDP,
global-batch terms, resume, reference statistics.

One spawn of two processes runs every distributed check (each start costs seconds); the tests
read what the ranks wrote. The model is a small BatchNorm CNN on scikit-learn's 8x8 digits.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import Tensor, nn

from captum_netinv import NetworkInversion, NeuronInversion
from captum_netinv.inversion import ConditioningBatch
from captum_netinv.inversion import distributed as inversion_distributed
from captum_netinv.inversion.distributed import frozen_parameters, wrap_generator
from captum_netinv.inversion.losses import (
    batchnorm_layers,
    batchnorm_statistics,
    cosine_similarity,
    feature_orthogonality,
    weighted_sum,
)
from captum_netinv.inversion.training import step_terms

WORLD = 2
SHAPE = (1, 8, 8)
#: The same global batch, steps and seed for the one-process fit and the two-rank fit.
FIT: dict[str, Any] = {"steps": 80, "batch_size": 32, "lr": 1e-2, "seed": 0, "progress": False}
HALF = FIT["steps"] // 2
#: Shifts in proportion to 8x8 digits: the default's 2 pixels and 10% zooms are sized for 28x28.
SMALL_IMAGE = {"jitter": 1, "zoom": 0.0}
#: Samples per class of the hit-rate measure.
PER_CLASS = 20
#: NeuronInversion on two ranks: 8 units of the hidden linear layer, the default global batch.
NEURON_FIT: dict[str, Any] = {"steps": 60, "seed": 0, "progress": False}
NEURON_UNITS = list(range(8))


def _classifier() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(8 * 64, 32),
        nn.ReLU(),
        nn.Linear(32, 10),
    )


def _digits() -> tuple[Tensor, Tensor]:
    from sklearn.datasets import load_digits  # here: the ranks' imports stay light

    digits = load_digits()
    return torch.tensor(digits.images, dtype=torch.float32)[:, None] / 16.0, torch.tensor(
        digits.target
    )


def _trained_classifier() -> nn.Module:
    images, labels = _digits()
    torch.manual_seed(0)
    model = _classifier()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(30):
        for batch in torch.randperm(len(labels)).split(256):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(images[batch]), labels[batch]).backward()
            optimizer.step()
    model.eval()
    accuracy = float((model(images).argmax(1) == labels).float().mean())
    assert accuracy > 0.95, f"fixture classifier only {accuracy:.3f} accurate on its data"
    return model


def _hit_rate(inversion: NetworkInversion, model: nn.Module) -> float:
    targets = torch.arange(10).repeat_interleave(PER_CLASS)
    with torch.no_grad():
        samples = inversion.attribute(target=targets, seed=1)
        return float((model(samples).argmax(1) == targets).float().mean())


def _batch_terms_example() -> tuple[Tensor, Tensor, nn.BatchNorm2d]:
    r"""A global batch of features and BatchNorm inputs, and a layer with running statistics."""
    generator = torch.Generator().manual_seed(3)
    features = torch.randn(8, 5, generator=generator, dtype=torch.float64)
    norm_inputs = 2 + torch.randn(8, 3, 4, 4, generator=generator, dtype=torch.float64)
    norm = nn.BatchNorm2d(3).double()
    assert norm.running_mean is not None and norm.running_var is not None
    norm.running_mean.copy_(torch.tensor([1.5, 2.0, 2.5]))
    norm.running_var.copy_(torch.tensor([0.5, 1.0, 2.0]))
    return features, norm_inputs, norm


class _PlainGenerator(nn.Module):
    r"""A generator without BatchNorm or dropout: its gradient is a function of the batch alone."""

    def __init__(self) -> None:
        super().__init__()
        with torch.random.fork_rng():
            torch.manual_seed(5)
            self.layer = nn.Linear(8 + 10, 64)

    def forward(self, z: Tensor, condition: ConditioningBatch) -> Tensor:
        assert condition.vectors is not None
        code = torch.cat([z, condition.vectors], dim=1)
        return torch.sigmoid(self.layer(code)).view(len(z), *SHAPE)


def _one_step_gradients(model: nn.Module, rows: slice | None, group: Any) -> dict[str, Tensor]:
    r"""
    The gradients of one step's loss for a fixed global batch of 16: on ``rows`` of it through
    DDP under ``group``, or on all of it in one process (``rows`` None).
    """
    generator = _PlainGenerator()
    inversion = NetworkInversion(
        model, input_shape=SHAPE, generator=generator, latent_dim=8, jitter=0, zoom=0.0
    )
    target_model = inversion._ensure_input_shape(None)
    settings = inversion.settings
    rng = torch.Generator().manual_seed(11)
    targets = torch.arange(16) % 10
    condition = settings.draw_condition(targets, 10, rng)
    z = torch.randn(16, 8, generator=rng)
    if rows is not None:
        assert condition.vectors is not None
        condition = ConditioningBatch(targets[rows], condition.vectors[rows])
        z = z[rows]
    norms = batchnorm_layers(model)
    with frozen_parameters(model, generator), wrap_generator(generator, group) as runner:
        terms, _, _ = step_terms(
            runner, target_model, settings, condition=condition, z=z, norms=norms, group=group
        )
        weighted_sum(terms, settings.loss_weights).backward()
    return {name: p.grad.clone() for name, p in generator.named_parameters() if p.grad is not None}


def _global_terms_on_rank(rank: int, out: Path) -> None:
    features, norm_inputs, norm = _batch_terms_example()
    rows = slice(rank * 4, rank * 4 + 4)
    own_features = features[rows].clone().requires_grad_(True)
    own_inputs = norm_inputs[rows].clone().requires_grad_(True)
    weights = dict.fromkeys(inversion_distributed.GLOBAL_BATCH_TERMS, 1.0)
    group = dist.group.WORLD
    terms = inversion_distributed.global_batch_terms(
        own_features, [(norm, own_inputs)], weights, group
    )
    torch.stack(list(terms.values())).sum().backward()
    values = {name: value.detach() for name, value in terms.items()}
    assert own_features.grad is not None and own_inputs.grad is not None
    grads = {"features": own_features.grad, "norm_inputs": own_inputs.grad}
    torch.save({"values": values, "grads": grads}, out / f"terms_{rank}.pt")
    model = _classifier()
    model.load_state_dict(torch.load(out / "model.pt", weights_only=True))
    step = _one_step_gradients(model.eval(), slice(rank * 8, rank * 8 + 8), group)
    torch.save(step, out / f"step_{rank}.pt")


def _neuron_fit(model: nn.Module, inputs: Tensor) -> dict[str, Any]:
    r"""A NeuronInversion of the hidden layer's first units fitted on ``inputs``, measured."""
    inversion = NeuronInversion(model, model[4], neurons=NEURON_UNITS, input_shape=SHAPE)
    history = inversion.fit(inputs, **NEURON_FIT)
    assert inversion.generator is not None and inversion.statistics is not None
    return {
        "weights": inversion.generator.state_dict(),
        "history": history,
        "statistics": inversion.statistics.flat(),
        "reached": inversion.evaluate(inputs, n_per_unit=16).share_reached,
    }


def _neuron_fits_on_rank(rank: int, model: nn.Module) -> dict[str, Any]:
    r"""The two-rank NeuronInversion fit, and the error of one given a shard per rank."""
    images = _digits()[0]
    result = _neuron_fit(model, images)
    try:
        _neuron_fit(model, images[rank::WORLD])
        result["shard_error"] = ""
    except ValueError as error:
        result["shard_error"] = str(error)
    return result


def _rank_main(rank: int, folder: str) -> None:
    out = Path(folder)
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"file://{out / 'store'}", rank=rank, world_size=WORLD
    )
    try:
        _global_terms_on_rank(rank, out)
        model = _classifier()
        model.load_state_dict(torch.load(out / "model.pt", weights_only=True))
        model.eval()
        writes: list[str] = []
        real_write = inversion_distributed.write_atomically

        def recording_write(state: Any, path: str) -> None:
            writes.append(path)
            real_write(state, path)

        inversion_distributed.write_atomically = recording_write

        def keep_half_way(step: int, values: dict[str, float]) -> None:
            if step == HALF + 1 and rank == 0:  # the checkpoint of step HALF, kept aside
                shutil.copy(out / "full.pt", out / "half.pt")

        full = NetworkInversion(model, input_shape=SHAPE, **SMALL_IMAGE)
        history = full.fit(
            **FIT,
            checkpoint_path=str(out / "full.pt"),
            checkpoint_every=HALF,
            callback=keep_half_way,
        )
        # the fit interrupted half-way, resumed by a new inversion from its checkpoint
        resumed = NetworkInversion(model, input_shape=SHAPE, **SMALL_IMAGE)
        resumed.fit(**FIT, checkpoint_path=str(out / "half.pt"))
        errors = []
        for bad in ({"batch_size": 33}, {"autocast": "int8"}):
            try:
                NetworkInversion(model, input_shape=SHAPE, **SMALL_IMAGE).fit(**{**FIT, **bad})
            except ValueError as error:
                errors.append(str(error))
        assert full.generator is not None and resumed.generator is not None
        result = {
            "weights": full.generator.state_dict(),
            "resumed_weights": resumed.generator.state_dict(),
            "history": history,
            "resumed_history": resumed.history,
            "hit_rate": _hit_rate(full, model),
            "writes": writes,
            "errors": errors,
            "neuron": _neuron_fits_on_rank(rank, model),
        }
        torch.save(result, out / f"rank_{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def classifier() -> nn.Module:
    r"""The small BatchNorm CNN trained on scikit-learn's digits."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: threads only cost synchronisation
    try:
        return _trained_classifier()
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, classifier: nn.Module) -> dict[str, Any]:
    r"""The classifier, its one-process fit, and what each of the two ranks wrote."""
    folder = tmp_path_factory.mktemp("distributed_fit")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = classifier
        torch.save(model.state_dict(), folder / "model.pt")
        single = NetworkInversion(model, input_shape=SHAPE, **SMALL_IMAGE)
        single.fit(**FIT)
        single_neuron = _neuron_fit(model, _digits()[0])
        mp.spawn(_rank_main, args=(str(folder),), nprocs=WORLD, join=True)
    finally:
        torch.set_num_threads(threads)
    ranks = [torch.load(folder / f"rank_{rank}.pt", weights_only=True) for rank in range(WORLD)]
    terms = [torch.load(folder / f"terms_{rank}.pt", weights_only=True) for rank in range(WORLD)]
    steps = [torch.load(folder / f"step_{rank}.pt", weights_only=True) for rank in range(WORLD)]
    return {
        "folder": folder,
        "model": model,
        "single": single,
        "single_hit_rate": _hit_rate(single, model),
        "single_neuron": single_neuron,
        "ranks": ranks,
        "terms": terms,
        "step_gradients": steps,
    }


def test_both_ranks_end_with_identical_weights_and_history(runs: dict[str, Any]) -> None:
    first, second = runs["ranks"]
    assert first["weights"].keys() == second["weights"].keys()
    for key, value in first["weights"].items():
        assert torch.equal(value, second["weights"][key]), key
    assert first["history"] == second["history"]
    assert len(first["history"]["loss"]) == FIT["steps"]
    # the fit trained: the weights moved from the generator's initial ones
    initial = (
        NetworkInversion(runs["model"], input_shape=SHAPE, **SMALL_IMAGE)
        ._ensure_generator()
        .state_dict()
    )
    assert not torch.equal(initial["project.weight"], first["weights"]["project.weight"])


def test_two_ranks_reach_the_single_process_hit_rate(runs: dict[str, Any]) -> None:
    single, distributed = runs["single_hit_rate"], runs["ranks"][0]["hit_rate"]
    assert single >= 0.8, f"one-process fit only reaches {single:.3f}"
    assert distributed >= 0.8 and distributed >= single - 0.1, (distributed, single)
    assert runs["ranks"][1]["hit_rate"] == distributed  # attribute is local, weights equal


def test_only_rank_zero_writes_checkpoints_with_every_rank_stream(
    runs: dict[str, Any],
) -> None:
    first, second = runs["ranks"]
    assert second["writes"] == []
    # the full fit at steps HALF and 80, the resumed one at 80
    assert len(first["writes"]) == 3
    state = torch.load(runs["folder"] / "full.pt", weights_only=True)
    assert state["world_size"] == WORLD and len(state["rank_rng_states"]) == WORLD
    streams = state["rank_rng_states"]
    assert not torch.equal(streams[0]["sampler_rng"], streams[1]["sampler_rng"])
    for key, value in state["generator"].items():
        assert torch.equal(value, first["weights"][key]), key


def test_resumed_two_rank_fit_equals_the_uninterrupted_one(runs: dict[str, Any]) -> None:
    for rank in runs["ranks"]:
        for key, value in rank["weights"].items():
            assert torch.equal(value, rank["resumed_weights"][key]), key
        assert rank["resumed_history"] == rank["history"]


def test_bad_batch_split_and_autocast_raise_on_every_rank(runs: dict[str, Any]) -> None:
    for rank in runs["ranks"]:
        batch_error, autocast_error = rank["errors"]
        assert "`batch_size` (33)" in batch_error and "multiple of the number of ranks (2)" in (
            batch_error
        )
        assert "`autocast`" in autocast_error


def test_one_process_cannot_resume_a_two_rank_checkpoint(runs: dict[str, Any]) -> None:
    inversion = NetworkInversion(runs["model"], input_shape=SHAPE, **SMALL_IMAGE)
    path = str(runs["folder"] / "full.pt")
    with pytest.raises(ValueError, match="written by a fit on 2 process"):
        inversion.fit(**{**FIT, "steps": FIT["steps"] + 10}, checkpoint_path=path)


def test_global_batch_terms_equal_the_concatenated_batch(runs: dict[str, Any]) -> None:
    features, norm_inputs, norm = _batch_terms_example()
    features.requires_grad_(True)
    norm_inputs.requires_grad_(True)
    expected = {
        "cosine_similarity": cosine_similarity(features),
        "feature_orthogonality": feature_orthogonality(features),
        "batchnorm_statistics": batchnorm_statistics(norm_inputs, norm),
    }
    torch.stack(list(expected.values())).sum().backward()
    assert features.grad is not None and norm_inputs.grad is not None
    for rank, result in enumerate(runs["terms"]):
        rows = slice(rank * 4, rank * 4 + 4)
        assert result["values"].keys() == expected.keys()
        for name, value in expected.items():
            assert torch.allclose(result["values"][name], value.detach(), atol=1e-12), name
        # each rank's gradient is world_size x the global gradient of its rows: DDP's mean
        # over the ranks then gives the one-process gradient
        grads = result["grads"]
        assert torch.allclose(grads["features"] / WORLD, features.grad[rows], atol=1e-12)
        assert torch.allclose(grads["norm_inputs"] / WORLD, norm_inputs.grad[rows], atol=1e-12)


def test_ddp_step_gradient_equals_the_one_process_global_batch_gradient(
    runs: dict[str, Any],
) -> None:
    expected = _one_step_gradients(runs["model"], None, None)
    assert set(expected) == {"layer.weight", "layer.bias"}
    for rank in runs["step_gradients"]:
        assert rank.keys() == expected.keys()
        for name, gradient in expected.items():
            assert float(gradient.abs().max()) > 0
            assert torch.allclose(rank[name], gradient, rtol=1e-4, atol=1e-6), name


def test_bfloat16_autocast_fit_runs_on_cpu(classifier: nn.Module) -> None:
    inversion = NetworkInversion(classifier, input_shape=SHAPE, **SMALL_IMAGE)
    history = inversion.fit(steps=3, batch_size=8, seed=0, progress=False, autocast="bfloat16")
    assert set(history) >= {"loss", "hit_rate", "cross_entropy", "batchnorm_statistics"}
    assert all(len(values) == 3 for values in history.values())
    assert all(math.isfinite(value) for values in history.values() for value in values)
    assert inversion.steps_trained == 3
    generator = inversion.generator
    assert generator is not None
    assert all(p.dtype == torch.float32 for p in generator.parameters())


@pytest.mark.cuda
def test_cuda_fit_syncs_the_host_about_once_per_step(classifier: nn.Module) -> None:
    model = _classifier().cuda().eval()
    model.load_state_dict(classifier.state_dict())
    steps = 20
    for autocast in (None, "bfloat16", "float16"):
        inversion = NetworkInversion(model, input_shape=SHAPE, **SMALL_IMAGE)
        inversion.fit(steps=2, batch_size=32, seed=0, progress=False, autocast=autocast)
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("warn")
        try:
            with pytest.warns(UserWarning) as caught:
                history = inversion.fit(
                    steps=steps, batch_size=32, seed=0, progress=False, autocast=autocast
                )
        finally:
            torch.cuda.set_sync_debug_mode("default")
        syncs = [w for w in caught if "synchroniz" in str(w.message)]
        # one per step (the step's values), a few for the fit's set-up; float16's gradient
        # scaler checks for infinite gradients once more per step
        assert len(syncs) <= (2 if autocast == "float16" else 1) * steps + 10, (autocast, syncs[:3])
        assert len(history["loss"]) == steps
        assert all(math.isfinite(value) for value in history["loss"])
        assert inversion.generator is not None
        assert next(inversion.generator.parameters()).is_cuda


def test_neuron_inversion_on_two_ranks_shares_one_generator_and_its_statistics(
    runs: dict[str, Any],
) -> None:
    first, second = (rank["neuron"] for rank in runs["ranks"])
    single = runs["single_neuron"]
    for key, value in first["weights"].items():
        assert torch.equal(value, second["weights"][key]), key
    assert first["history"] == second["history"]
    assert len(first["history"]["loss"]) == NEURON_FIT["steps"]
    # the reference statistics of the whole set, as one process measures them
    assert torch.equal(first["statistics"], single["statistics"])
    assert single["reached"] >= 0.75, single["reached"]
    assert first["reached"] >= single["reached"] - 0.25, (first["reached"], single["reached"])


def test_neuron_inversion_refuses_a_different_reference_on_each_rank(
    runs: dict[str, Any],
) -> None:
    for rank in runs["ranks"]:
        assert "`inputs` differ between the ranks" in rank["neuron"]["shard_error"]
