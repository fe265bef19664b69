"""Distributed INVERT on two gloo processes equals the single-process result exactly.

The module runs itself as a script in two processes (ranks 0 and 1 of a gloo group on the CPU,
started once for all tests), which label the same data sharded as a user would shard it and
pickle what they find; the tests compare that with a single-process run in this process.
"""

from __future__ import annotations

import argparse
import pickle
import resource
import subprocess
import sys
import warnings
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import torch
from captum.concept import Concept
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from captum_netinv.recognition import Explanations, InverseRecognition, explain_activations
from captum_netinv.recognition.distributed import _checksum, rank_slice

SAMPLES, NEURONS, CONCEPTS, FEATURES = 301, 7, 9, 12
NAMES = [f"k{index}" for index in range(CONCEPTS)]
#: Rows of rank 0 when the tests shard by hand: an uneven split on purpose.
FIRST_SHARD = 100
SEARCH = {"formula_length": 3, "beam_size": 3}
QUIET = {"progress": False, **SEARCH}
#: Memory check: a rank may grow by at most this much while labeling 4x as many input bytes.
LIMIT_BYTES = 48 * 2**20
LAZY_WIDTH = 4096  # float32 values per lazily made sample: 16 KiB
LAZY_SAMPLES = 4 * LIMIT_BYTES // (4 * LAZY_WIDTH)


def _data() -> tuple[Tensor, Tensor, Tensor, Tensor, nn.Module]:
    """Activations with ties and their labels; model inputs, their labels and a small model."""
    generator = torch.Generator().manual_seed(0)
    labels = torch.rand(SAMPLES, CONCEPTS, generator=generator) < torch.linspace(0.1, 0.5, 9)
    drive = labels.float() @ torch.randn(CONCEPTS, NEURONS, generator=generator)
    activations = (drive + torch.randn(SAMPLES, NEURONS, generator=generator)).round(decimals=1)
    inputs = torch.randn(SAMPLES, FEATURES, generator=generator).round(decimals=1)
    input_labels = inputs[:, :CONCEPTS] > 0.4
    model = _model(FEATURES, NEURONS, seed=1)
    return activations, labels, inputs, input_labels, model


def _model(width: int, neurons: int, seed: int) -> nn.Module:
    generator = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Linear(width, neurons), nn.ReLU())  # ReLU: many tied zeros
    with torch.no_grad():
        model[0].weight.copy_(torch.randn(neurons, width, generator=generator) / width**0.5)
        model[0].bias.copy_(torch.randn(neurons, generator=generator) * 0.1)
    return model


class _Scaled(nn.Module):
    """A model with a second, per-sample argument: ``model(inputs * scale)``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, inputs: Tensor, scale: Tensor) -> Tensor:
        return self.model(inputs * scale.unsqueeze(1))


def _captum_concepts(inputs: Tensor) -> list[Concept]:
    """Three captum concepts of uneven sizes, their data in batches of 16."""
    parts = [inputs[:70], inputs[70:95], inputs[95:200]]
    return [
        Concept(index, f"part{index}", DataLoader(part, batch_size=16))
        for index, part in enumerate(parts)
    ]


class _Recording(Dataset):
    """The rows of a tensor, remembering which indices were read."""

    def __init__(self, values: Tensor) -> None:
        self.values = values
        self.read: list[int] = []

    def __len__(self) -> int:
        return self.values.shape[0]

    def __getitem__(self, index: int) -> Tensor:
        self.read.append(index)
        return self.values[index]


class _Lazy(Dataset):
    """Samples made on demand from their index: never all in memory at once."""

    def __init__(self, count: int) -> None:
        self.count = count

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> Tensor:
        generator = torch.Generator().manual_seed(index)
        return torch.randn(LAZY_WIDTH, generator=generator)


def _lazy_labels(count: int) -> Tensor:
    return torch.rand(count, CONCEPTS, generator=torch.Generator().manual_seed(2)) < 0.3


def _lazy_run(count: int, **kwargs: Any) -> Explanations:
    model = _model(LAZY_WIDTH, 8, seed=3)
    loader = DataLoader(_Lazy(count), batch_size=64)
    invert = InverseRecognition(model, model[1])
    return invert.attribute(loader, _lazy_labels(count), progress=False, **SEARCH, **kwargs)


def _two_input_run(model: nn.Module, inputs: Tensor, input_labels: Tensor) -> Explanations:
    """A DataLoader of ``((inputs, scale), 0)`` samples: batches of two model inputs."""
    scaled = _Scaled(model)
    scales = torch.linspace(0.5, 2.0, SAMPLES)
    samples = list(zip(zip(inputs, scales, strict=True), [0] * SAMPLES, strict=True))
    loader = DataLoader(samples, batch_size=40)  # batches [[inputs, scales], zeros]
    return InverseRecognition(scaled, scaled.model[1]).attribute(loader, input_labels, **QUIET)


def _constant_labels(labels: Tensor) -> Tensor:
    """``labels`` with concept 0 constant on each rank's rows (rank 0's set, rank 1's not) but
    not on the data set, and concept 1 set on every sample."""
    changed = labels.clone()
    changed[:, 0] = torch.arange(SAMPLES) < FIRST_SHARD
    changed[:, 1] = True
    return changed


def _checks(rank: int) -> dict[str, Any]:
    """What a rank finds on each workload (the group is initialized)."""
    import torch.distributed as dist

    activations, labels, inputs, input_labels, model = _data()
    results: dict[str, Any] = {}
    rows = slice(0, FIRST_SHARD) if rank == 0 else slice(FIRST_SHARD, SAMPLES)
    results["shards"] = explain_activations(activations[rows], labels[rows], **SEARCH)
    group = dist.new_group([0, 1])
    mine = rank_slice(SAMPLES, group)
    results["subset"] = explain_activations(
        activations[mine],
        labels[mine],
        concept_names=NAMES,
        neurons=[6, 0, 3],
        mode="negative",
        process_group=group,
        **SEARCH,
    )
    results["reference"] = explain_activations(
        activations[mine], labels[mine], neurons=[1, 4], reference_compatible=True, **SEARCH
    )
    invert = InverseRecognition(model, model[1])
    results["tensor"] = invert.attribute(
        inputs, input_labels, batch_size=50, progress=False, **SEARCH
    )
    recording = _Recording(inputs)
    loader = DataLoader(recording, batch_size=40)  # 8 batches, the last of 21 samples
    results["loader"] = invert.attribute(loader, input_labels, progress=False, **SEARCH)
    results["read"] = sorted(recording.read)
    scaled = _Scaled(model)
    scales = torch.linspace(0.5, 2.0, SAMPLES)
    results["extra"] = InverseRecognition(scaled, scaled.model[1]).attribute(
        (inputs,), input_labels, additional_forward_args=(scales,), batch_size=64, **QUIET
    )
    results["concepts"] = invert.attribute(None, _captum_concepts(inputs), **QUIET)
    results["two_inputs"] = _two_input_run(model, inputs, input_labels)
    from captum_netinv.recognition import distributed

    sizes = distributed._EXCHANGE_BYTES, distributed._MIN_ROUND_NEURONS
    distributed._EXCHANGE_BYTES, distributed._MIN_ROUND_NEURONS = 1, 2  # rounds of 2 neurons
    try:
        results["rounds"] = explain_activations(activations[rows], labels[rows], **SEARCH)
        results["loader_rounds"] = invert.attribute(loader, input_labels, **QUIET)
    finally:
        distributed._EXCHANGE_BYTES, distributed._MIN_ROUND_NEURONS = sizes
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        explain_activations(activations[rows], _constant_labels(labels)[rows], **SEARCH)
    results["constant"] = [str(item.message) for item in caught if item.category is UserWarning]
    broken = activations.clone()
    broken[250, 2] = float("nan")  # on rank 1 only
    try:
        explain_activations(broken[rows], labels[rows], **SEARCH)
    except ValueError as error:
        results["nan"] = str(error)
    try:  # the whole matrix on every rank, as attribute takes its inputs
        explain_activations(activations, labels, **SEARCH)
    except ValueError as error:
        results["whole_matrix"] = str(error)
    try:  # each rank's own samples, as explain_activations takes its rows
        invert.attribute(inputs[rows], input_labels[rows], **QUIET)
    except ValueError as error:
        results["own_samples"] = str(error)
    _lazy_run(256)  # warm-up: every code path and allocator pool in use once
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    results["lazy"] = _lazy_run(LAZY_SAMPLES)
    results["growth"] = 1024 * (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
    return results


def _main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rank", type=int)
    parser.add_argument("--store")
    parser.add_argument("--out")
    args = parser.parse_args()
    torch.set_num_threads(1)
    import torch.distributed as dist

    dist.init_process_group(
        "gloo",
        init_method=f"file://{args.store}",
        rank=args.rank,
        world_size=2,
        timeout=timedelta(seconds=60),
    )
    try:
        found = _checks(args.rank)
    finally:
        dist.destroy_process_group()
    Path(args.out).write_bytes(pickle.dumps(found))


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """What ranks 0 and 1 found, from one run of two processes."""
    folder = tmp_path_factory.mktemp("distributed")
    outputs = [folder / f"rank{rank}.pkl" for rank in range(2)]
    processes = [
        subprocess.Popen(
            [sys.executable, __file__, "--rank", str(rank), "--store", str(folder / "store")]
            + ["--out", str(outputs[rank])],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for rank in range(2)
    ]
    logs = [process.communicate(timeout=120)[0].decode() for process in processes]
    for process, log in zip(processes, logs, strict=True):
        assert process.returncode == 0, log[-3000:]
    return [pickle.loads(path.read_bytes()) for path in outputs]


def _assert_same(found: Explanations, expected: Explanations) -> None:
    """Exactly the same explanations, in the same neuron order, with the same labels."""
    assert found.neurons == expected.neurons
    assert list(found) == list(expected)  # formulas, AUCs, p-values, z, beams, by_length
    assert [item.best_by_length for item in found] == [item.best_by_length for item in expected]
    assert found.to_json() == expected.to_json()
    assert found.n_samples == expected.n_samples
    assert found.settings == expected.settings
    assert found.concepts is not None and expected.concepts is not None
    assert torch.equal(found.concepts, expected.concepts)
    assert found.activations is None  # spread over the ranks


def test_explain_activations_on_uneven_shards_equals_one_process(ranks) -> None:
    activations, labels, *_ = _data()
    expected = explain_activations(activations, labels, **SEARCH)
    assert all(item.has_formula for item in expected)
    assert len({item.auc for item in expected}) > 1
    for found in ranks:
        _assert_same(found["shards"], expected)


def test_rounds_of_a_few_neurons_equal_one_process(ranks) -> None:
    # rank 0 searches neurons 0-2 in rounds of 2, rank 1 neurons 3-6: one round with no
    # neurons on rank 0; contiguous shards (columns arrive in order) and loader batches (not)
    activations, labels, inputs, input_labels, model = _data()
    expected = explain_activations(activations, labels, **SEARCH)
    from_loader = InverseRecognition(model, model[1]).attribute(
        DataLoader(inputs, batch_size=40), input_labels, **QUIET
    )
    for found in ranks:
        _assert_same(found["rounds"], expected)
        _assert_same(found["loader_rounds"], from_loader)


def test_explicit_group_neuron_subset_and_negative_mode(ranks) -> None:
    activations, labels, *_ = _data()
    expected = explain_activations(
        activations, labels, concept_names=NAMES, neurons=[6, 0, 3], mode="negative", **SEARCH
    )
    for found in ranks:
        _assert_same(found["subset"], expected)
        assert found["subset"].neurons == [6, 0, 3]


def test_reference_compatible_search_is_shared_too(ranks) -> None:
    activations, labels, *_ = _data()
    expected = explain_activations(
        activations, labels, neurons=[1, 4], reference_compatible=True, **SEARCH
    )
    for found in ranks:
        _assert_same(found["reference"], expected)


def test_attribute_on_a_tensor_equals_one_process(ranks) -> None:
    _, _, inputs, input_labels, model = _data()
    invert = InverseRecognition(model, model[1])
    expected = invert.attribute(inputs, input_labels, batch_size=50, progress=False, **SEARCH)
    assert expected.activations is not None
    assert int((expected.activations == 0).sum()) > SAMPLES  # ReLU ties
    for found in ranks:
        _assert_same(found["tensor"], expected)


def test_attribute_on_a_dataloader_reads_each_sample_once(ranks) -> None:
    _, _, inputs, input_labels, model = _data()
    invert = InverseRecognition(model, model[1])
    loader = DataLoader(inputs, batch_size=40)
    expected = invert.attribute(loader, input_labels, progress=False, **SEARCH)
    for found in ranks:
        _assert_same(found["loader"], expected)
    read = [found["read"] for found in ranks]
    # batches 0, 2, 4, 6 on rank 0 and 1, 3, 5, 7 (21 samples) on rank 1: no padding, no repeat
    assert len(read[0]) == 160 and len(read[1]) == 141
    assert sorted(read[0] + read[1]) == list(range(SAMPLES))
    assert read[0][:40] == list(range(40)) and read[1][:40] == list(range(40, 80))


def test_attribute_slices_additional_forward_args_and_takes_captum_concepts(ranks) -> None:
    _, _, inputs, input_labels, model = _data()
    scaled = _Scaled(model)
    scales = torch.linspace(0.5, 2.0, SAMPLES)
    expected = InverseRecognition(scaled, scaled.model[1]).attribute(
        (inputs,), input_labels, additional_forward_args=(scales,), batch_size=64, **QUIET
    )
    unscaled = InverseRecognition(model, model[1]).attribute(inputs, input_labels, **QUIET)
    assert expected.to_json() != unscaled.to_json()  # the scales matter
    concepts = InverseRecognition(model, model[1]).attribute(
        None, _captum_concepts(inputs), **QUIET
    )
    assert concepts.n_samples == 200
    for found in ranks:
        _assert_same(found["extra"], expected)
        _assert_same(found["concepts"], concepts)


def test_batches_of_two_model_inputs_equal_one_process(ranks) -> None:
    _, _, inputs, input_labels, model = _data()
    expected = _two_input_run(model, inputs, input_labels)
    unscaled = InverseRecognition(model, model[1]).attribute(inputs, input_labels, **QUIET)
    assert expected.to_json() != unscaled.to_json()  # the second input reaches the model
    for found in ranks:
        _assert_same(found["two_inputs"], expected)


def test_constant_concepts_are_judged_on_the_whole_data_set(ranks) -> None:
    activations, labels, *_ = _data()
    with pytest.warns(UserWarning) as caught:
        explain_activations(activations, _constant_labels(labels), **SEARCH)
    expected = [str(item.message) for item in caught]
    # c1 is constant everywhere; c0 only on each rank's own rows, which says nothing
    assert len(expected) == 1 and "'c1' (present in every sample)" in expected[0]
    assert "'c0'" not in expected[0] and "on these 301 samples" in expected[0]
    for found in ranks:
        assert found["constant"] == expected


def test_nan_on_one_rank_raises_on_every_rank(ranks) -> None:
    messages = [found.get("nan") for found in ranks]
    assert messages[0] == messages[1]
    assert messages[0] == "`activations` holds NaN or infinite values for neurons [2]"


def test_whole_matrix_on_every_rank_raises_on_every_rank(ranks) -> None:
    # explain_activations takes each rank's own rows: the whole matrix on both ranks would count
    # every sample twice, so both ranks refuse it with the same message naming the contract
    messages = [found.get("whole_matrix") for found in ranks]
    assert messages[0] is not None and messages[0] == messages[1]
    assert f"all 2 ranks pass the same {SAMPLES} rows of `activations`" in messages[0]
    assert "takes each rank's own rows" in messages[0]
    assert "rank_slice(len(activations))" in messages[0]


def test_attribute_with_each_ranks_own_samples_raises_on_every_rank(ranks) -> None:
    # the opposite contract: attribute takes the whole data set on every rank
    messages = [found.get("own_samples") for found in ranks]
    assert messages[0] is not None and messages[0] == messages[1]
    counts = [FIRST_SHARD, SAMPLES - FIRST_SHARD]
    assert f"ranks pass different `concepts` ({counts} rows)" in messages[0]
    assert "takes the whole data set's `inputs` and `concepts` on every rank" in messages[0]


def test_checksum_tells_shards_and_orders_apart() -> None:
    activations, labels, *_ = _data()
    halves = activations[:150], activations[150:300]
    assert _checksum(halves[0], torch.float64) != _checksum(halves[1], torch.float64)
    swapped_rows = activations[[1, 0, *range(2, SAMPLES)]]
    swapped_columns = activations[:, [1, 0, *range(2, NEURONS)]]
    sums = _checksum(activations, torch.float64)
    assert _checksum(swapped_rows, torch.float64) != sums
    assert _checksum(swapped_columns, torch.float64) != sums
    assert _checksum(activations.t().contiguous().t(), torch.float64) == sums  # same values
    # the label sums, whole numbers, against a direct count
    rows, columns = torch.arange(1, SAMPLES + 1), torch.arange(1, CONCEPTS + 1)
    counts = labels.long()
    expected = (
        int(counts.sum()),
        int((rows * counts.sum(dim=1)).sum()),
        int((columns * counts.sum(dim=0)).sum()),
        int(counts.sum()),
    )
    assert _checksum(labels, torch.int64) == expected


def test_data_four_times_a_rank_memory_limit_is_labeled(ranks) -> None:
    # Simulated limit: each rank's peak resident memory (ru_maxrss) may grow by LIMIT_BYTES
    # while it labels LAZY_SAMPLES samples made on demand, 4x LIMIT_BYTES of inputs in all
    # (each rank reads half of them, in batches of 64, and keeps only 8 activations a sample)
    assert LAZY_SAMPLES * LAZY_WIDTH * 4 == 4 * LIMIT_BYTES
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the ranks: a wide matmul's rounding depends on the threads
    try:
        expected = _lazy_run(LAZY_SAMPLES)
    finally:
        torch.set_num_threads(threads)
    for found in ranks:
        assert found["growth"] < LIMIT_BYTES, found["growth"]
        _assert_same(found["lazy"], expected)


def test_process_group_without_torch_distributed_is_refused() -> None:
    activations, labels, *_ = _data()
    with pytest.raises(ValueError, match="not initialized"):
        explain_activations(activations, labels, process_group=object())  # type: ignore[arg-type]
    assert rank_slice(10) == slice(0, 10)


if __name__ == "__main__":
    _main()
