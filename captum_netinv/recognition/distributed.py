"""INVERT on several processes (``torch.distributed``): samples split across ranks, neurons too.

Each rank reads and runs the model on its own share of the samples (no sample twice, no padding),
then the activation columns are exchanged (``all_to_all``) in rounds: in each round rank ``r``
receives all ``N`` rows of a group of its contiguous share of the neurons, runs the ordinary beam
search on them and drops them, so it never holds more than one round's columns besides its own
``n x K`` rows. Every rank gets all ``N`` rows of the labels, and the per-neuron results are
gathered in neuron order, so every rank returns what one process would.

The two entry points take the samples differently: ``InverseRecognition.attribute`` the whole data
set on every rank (it shares the samples out itself, :func:`local_layer_activations`),
``explain_activations`` each rank's own rows (:func:`rank_slice`). Before the exchange the ranks
compare what they hold (:func:`explain_sharded`): the same labels everywhere in the first case,
not the same rows everywhere in the second, else the same error is raised on every rank.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

import torch
import torch.distributed as dist
from captum._utils.common import _format_additional_forward_args
from captum.attr._utils.batching import _tuple_splice_range
from torch import Tensor
from torch.utils.data import DataLoader, IterableDataset
from torch.utils.data.distributed import DistributedSampler

from captum_netinv._activations import (
    InputSource,
    batch_inputs,
    batch_length,
    layer_activations,
)
from captum_netinv._progress import progress_bar
from captum_netinv.recognition.explanations import Explanation

__all__ = [
    "BatchLayout",
    "ExplainColumns",
    "active_group",
    "explain_sharded",
    "local_layer_activations",
    "rank_slice",
]

#: ``(key, rows)`` of each batch a rank holds, in its order; the keys of all ranks, sorted, give
#: the order of the samples in the whole data set.
BatchLayout = list[tuple[int, int]]
#: ``(columns (N, k), labels (N, C), neurons) -> explanations``: the single-process search.
ExplainColumns = Callable[[Tensor, Tensor, list[int]], list[Explanation]]
#: Bytes of activations one rank receives in one round of the exchange (and checks at a time).
_EXCHANGE_BYTES = 32 * 2**20
#: Fewest neurons a round holds: each round runs one search, which prepares the labels once.
_MIN_ROUND_NEURONS = 64
#: Bytes of one block of rows :func:`_checksum` converts at a time (it holds two such blocks).
_CHECKSUM_BYTES = 8 * 2**20


def active_group(process_group: Any = None) -> dist.ProcessGroup | None:
    r"""
    The process group INVERT splits its work over: ``process_group``, or the default group when
    it is None and ``torch.distributed`` is initialized; None (the single-process path) when
    there is none or it has one rank.

    Args:
        process_group (ProcessGroup, optional): A group this process belongs to.

    Returns:
        *ProcessGroup* or None.
    """
    initialized = dist.is_available() and dist.is_initialized()
    if process_group is None:
        if not initialized:
            return None
        group = dist.group.WORLD
    else:
        if not initialized:
            raise ValueError(
                "`process_group` is given but torch.distributed is not initialized: call "
                "torch.distributed.init_process_group first (e.g. under torchrun)"
            )
        if not isinstance(process_group, dist.ProcessGroup):
            raise TypeError(
                "`process_group` must be a torch.distributed.ProcessGroup or None, got "
                f"{type(process_group).__name__}"
            )
        group = process_group
    if dist.get_rank(group) < 0:
        raise ValueError("`process_group`: this process is not a member of the group")
    return None if dist.get_world_size(group) == 1 else group


def _share(count: int, part: int, parts: int) -> slice:
    r"""The ``part``-th of ``parts`` contiguous, balanced shares of ``range(count)``."""
    return slice(count * part // parts, count * (part + 1) // parts)


def rank_slice(count: int, process_group: Any = None) -> slice:
    r"""
    The rows of ``count`` samples this rank holds: its contiguous, balanced share (all rows
    without a process group). Slice a whole activation matrix and its labels with it before
    :func:`~captum_netinv.explain_activations` with a process group.

    Args:
        count (int): Number of samples of the whole data set.
        process_group (ProcessGroup, optional): As for :func:`active_group`.

    Returns:
        *slice* of rows.

    Examples::

        >>> rows = rank_slice(len(activations))
        >>> explain_activations(activations[rows], labels[rows])  # on every rank
    """
    group = active_group(process_group)
    if group is None:
        return slice(0, count)
    return _share(count, dist.get_rank(group), dist.get_world_size(group))


def local_layer_activations(
    forward_func: Callable[..., Any],
    layer: torch.nn.Module,
    inputs: InputSource,
    *,
    group: dist.ProcessGroup,
    batch_size: int = 256,
    additional_forward_args: Any = None,
    progress: bool = False,
    **forward: Any,
) -> tuple[Tensor | None, BatchLayout]:
    r"""
    :func:`~captum_netinv._activations.layer_activations` of this rank's share of ``inputs``:
    a contiguous slice of a tensor (and of the tensors of ``additional_forward_args``), or the
    batches ``rank, rank + world, ...`` of an iterable. A map-style ``DataLoader`` is rebuilt
    over this rank's batches only, so no sample is read by two ranks; other iterables are
    iterated by every rank, each running the model on its own batches.

    Returns:
        *Tensor* ``(n, K)`` of this rank's activations (None when it has no samples) and its
        :data:`BatchLayout`.
    """
    rank, world = dist.get_rank(group), dist.get_world_size(group)
    run: dict[str, Any] = dict(forward, batch_size=batch_size, progress=progress and rank == 0)
    if isinstance(inputs, (Tensor, tuple)):
        rows = _share(batch_length(inputs), rank, world)
        layout = [(rank, rows.stop - rows.start)]
        if rows.stop == rows.start:
            return None, layout
        local = inputs[rows] if isinstance(inputs, Tensor) else tuple(t[rows] for t in inputs)
        extra = _format_additional_forward_args(additional_forward_args)
        extra = _tuple_splice_range(extra, rows.start, rows.stop) if extra is not None else None
        values = layer_activations(forward_func, layer, local, additional_forward_args=extra, **run)
        return values, layout
    layout = []

    def stream() -> Iterator[Any]:
        for key, batch in _own_batches(inputs, rank, world):
            layout.append((key, batch_length(batch_inputs(batch))))
            yield batch

    batches = stream()
    first = next(batches, None)
    if first is None:
        return None, layout
    values = layer_activations(
        forward_func,
        layer,
        chain([first], batches),
        additional_forward_args=additional_forward_args,
        **run,
    )
    return values, layout


def _own_batches(inputs: Iterable[Any], rank: int, world: int) -> Iterator[tuple[int, Any]]:
    """``(index, batch)`` of the batches ``rank, rank + world, ...`` of ``inputs``."""
    if isinstance(inputs, DataLoader):
        if isinstance(inputs.sampler, DistributedSampler):
            raise ValueError(
                "`inputs` is a DataLoader with a DistributedSampler: with a process group pass "
                "the whole data set's DataLoader; INVERT shares it out across ranks itself"
            )
        if inputs.batch_sampler is not None and not isinstance(inputs.dataset, IterableDataset):
            batches = list(inputs.batch_sampler)
            keys = list(range(rank, len(batches), world))
            loader = DataLoader(
                inputs.dataset,
                batch_sampler=[batches[key] for key in keys],
                num_workers=inputs.num_workers,
                collate_fn=inputs.collate_fn,
                pin_memory=inputs.pin_memory,
                timeout=inputs.timeout,
                worker_init_fn=inputs.worker_init_fn,
                multiprocessing_context=inputs.multiprocessing_context,
                generator=inputs.generator,
                prefetch_factor=inputs.prefetch_factor if inputs.num_workers > 0 else None,
                persistent_workers=inputs.persistent_workers,
            )
            yield from zip(keys, loader, strict=True)
            return
    if isinstance(inputs, Sequence) and not isinstance(inputs, (str, bytes)):
        for key in range(rank, len(inputs), world):
            yield key, inputs[key]
        return
    if not isinstance(inputs, Iterable) or isinstance(inputs, (str, bytes)):
        raise TypeError(
            "`inputs` must be a tensor, a tuple of tensors (the model's inputs) or an "
            f"iterable of batches (e.g. a DataLoader), got {type(inputs).__name__}"
        )
    for key, batch in enumerate(inputs):
        if key % world == rank:
            yield key, batch


@dataclass(frozen=True)
class _Shard:
    """What a rank tells the others about its samples before the exchange."""

    layout: BatchLayout
    width: int | None
    dtype: torch.dtype | None
    finite: list[bool] | None
    label_rows: int
    #: :func:`_checksum` of the labels: the same on every rank when each passes the whole set.
    labels_checksum: tuple[float, ...]
    #: :func:`_checksum` of the activations, then of the labels, of a rank's own rows (None when
    #: it has none, or when the labels are the whole set's): equal on every rank only when each
    #: passes the same rows.
    rows_checksum: tuple[float, ...] | None
    names: list[str]
    problems: list[str]

    @property
    def rows(self) -> int:
        return sum(rows for _, rows in self.layout)


def explain_sharded(
    values: Tensor | None,
    labels: Tensor,
    names: list[str],
    *,
    group: dist.ProcessGroup,
    layout: BatchLayout | None,
    neuron_indices: Callable[[int], list[int]],
    explain: ExplainColumns,
    device: torch.device | str | None = None,
    progress: bool = False,
    source: str = "inputs",
) -> tuple[list[Explanation], Tensor]:
    r"""
    Runs ``explain`` on every rank for its share of the neurons and gathers the explanations.

    Raises the same ``ValueError`` on every rank when the ranks' data break the contract of
    ``layout``: with a ``layout``, ranks whose ``labels`` differ (each must pass the whole data
    set's); without one, ranks that all pass the same rows (activations and labels, compared by
    row count and :func:`_checksum`), which would count every sample once per rank.

    Args:
        values (Tensor or None): ``(n, K)`` activations of this rank's samples (None: none).
        labels (Tensor): ``(n, C)`` labels of this rank's samples when ``layout`` is None, else
                    the ``(N, C)`` labels of the whole data set (the same on every rank).
        names (list of str): Concept names (the same on every rank).
        group (ProcessGroup): The ranks sharing the work.
        layout (BatchLayout, optional): Where this rank's rows lie in the data set. Default:
                    the samples of rank 0, then rank 1, ... (one block per rank).
        neuron_indices (Callable): Layer width ``K`` -> the neurons to explain.
        explain (Callable): See :data:`ExplainColumns`.
        device (torch.device or str, optional): Where the search runs. Default: the device of
                    ``values``.
        progress (bool, optional): Show a progress bar over the rounds on rank 0.
        source (str, optional): The argument the activations came from, for errors.

    Returns:
        *list* of :class:`Explanation` of all chosen neurons, in their order, and the
        ``(N, C)`` labels of the whole data set, on every rank.
    """
    rank, world = dist.get_rank(group), dist.get_world_size(group)
    whole_labels = layout is not None
    if layout is None:
        layout = [(rank, 0 if values is None else values.shape[0])]
    shard = _describe(
        values=values,
        labels=labels,
        names=names,
        layout=layout,
        whole_labels=whole_labels,
        source=source,
    )
    shards = _agree(shard, group=group, whole_labels=whole_labels, source=source)
    width = next(shard.width for shard in shards if shard.width is not None)
    dtype = next(shard.dtype for shard in shards if shard.dtype is not None)
    chosen = neuron_indices(width)
    _check_finite(shards, chosen, source)
    comm = _comm_device(group)
    positions = _positions(shards, comm)
    count = sum(shard.rows for shard in shards)
    if whole_labels and labels.shape[0] != count:
        raise ValueError(
            f"`concepts` labels {labels.shape[0]} samples but `{source}` holds {count}; they "
            "must be the same samples"
        )
    if not whole_labels:
        labels = _gather_rows(labels, positions, count, group)
    local = values if values is not None else torch.empty(0, width, dtype=dtype, device=comm)
    target = torch.device(device) if device is not None else local.device
    whole = labels.to(target)
    found: list[Explanation] = []
    rounds = _exchange(
        values=local,
        chosen=chosen,
        positions=positions,
        count=count,
        group=group,
        progress=progress and rank == 0,
    )
    for columns, neurons in rounds:
        if neurons:
            found += explain(columns.to(target), whole, neurons)
        del columns
    gathered: list[Any] = [None] * world
    dist.all_gather_object(gathered, found, group=group)
    return [explanation for part in gathered for explanation in part], labels


def _describe(
    *,
    values: Tensor | None,
    labels: Tensor,
    names: list[str],
    layout: BatchLayout,
    whole_labels: bool,
    source: str,
) -> _Shard:
    """This rank's :class:`_Shard`, with the problems only its own rows can show."""
    problems = []
    rows = sum(size for _, size in layout)
    if not whole_labels and labels.shape[0] != rows:
        problems.append(
            f"`concepts` labels {labels.shape[0]} samples but `{source}` holds {rows}; they "
            "must be the same samples"
        )
    finite = None
    if values is not None:
        ok = torch.ones(values.shape[1], dtype=torch.bool, device=values.device)
        step = max(1, _EXCHANGE_BYTES // max(1, values.shape[1] * values.element_size()))
        for start in range(0, values.shape[0], step):
            ok &= torch.isfinite(values[start : start + step]).all(dim=0)
        finite = ok.tolist()
    labels_checksum = _checksum(labels, torch.int64)
    rows_checksum = None
    if values is not None and not whole_labels:
        rows_checksum = _checksum(values, torch.float64) + labels_checksum
    return _Shard(
        layout=layout,
        width=None if values is None else values.shape[1],
        dtype=None if values is None else values.dtype,
        finite=finite,
        label_rows=labels.shape[0],
        labels_checksum=labels_checksum,
        rows_checksum=rows_checksum,
        names=names,
        problems=problems,
    )


def _checksum(matrix: Tensor, dtype: torch.dtype) -> tuple[float, ...]:
    r"""
    Order-sensitive sums of the ``(n, m)`` ``matrix`` taken in ``dtype`` (int64 for labels, so
    exact in any order; float64 for activations), ``_CHECKSUM_BYTES`` of rows at a time: of all
    values, of each row's sum times its row number, of each column's sum times its column
    number (from 1), and of the squares. Equal matrices give equal sums; the rows of different
    samples practically never do, nor the same rows in another order. Non-finite values count
    as 0 here (they are refused by name later).
    """
    count, width = matrix.shape
    columns = torch.arange(1, width + 1, dtype=dtype, device=matrix.device)
    total = by_row = by_column = squares = torch.zeros((), dtype=dtype, device=matrix.device)
    step = max(1, _CHECKSUM_BYTES // max(1, width * dtype.itemsize))
    for start in range(0, count, step):
        # a contiguous copy, changed in place: the sums do not depend on the memory layout
        block = matrix[start : start + step].to(
            dtype=dtype, memory_format=torch.contiguous_format, copy=True
        )
        if dtype.is_floating_point:
            block.nan_to_num_(nan=0.0, posinf=0.0, neginf=0.0)
        rows = torch.arange(start + 1, start + block.shape[0] + 1, dtype=dtype, device=block.device)
        row_sums = block.sum(dim=1)
        total = total + row_sums.sum()
        by_row = by_row + (rows * row_sums).sum()
        by_column = by_column + (block.sum(dim=0) * columns).sum()
        squares = squares + (block * block).sum()
    return tuple(torch.stack([total, by_row, by_column, squares]).tolist())


def _same_rows_on_every_rank(shards: list[_Shard]) -> bool:
    """Whether every rank holds rows, as many as the others and with the same checksum."""
    first = shards[0]
    return (
        first.rows_checksum is not None
        and first.rows > 0
        and all(
            shard.rows == first.rows and shard.rows_checksum == first.rows_checksum
            for shard in shards
        )
    )


def _contract_problems(shards: list[_Shard], *, whole_labels: bool, source: str) -> list[str]:
    r"""
    How the ranks' data break the contract of their entry point: with ``whole_labels``
    (``attribute``: the whole data set on every rank) labels that differ between ranks; without
    (``explain_activations``: each rank's own rows) the same rows on every rank.
    """
    world = len(shards)
    if not whole_labels and _same_rows_on_every_rank(shards):
        return [
            f"all {world} ranks pass the same {shards[0].rows} rows of `{source}` and "
            "`concepts`, but with a process group explain_activations takes each rank's own "
            "rows (those of rank 0, then of rank 1, ... are the data set), so each sample would "
            f"be counted {world} times. Pass each rank its share, e.g. `rows = "
            f"captum_netinv.recognition.rank_slice(len({source}))`, then `{source}[rows]` and "
            "`concepts[rows]`; or label the whole matrix in one process (without "
            "torch.distributed, or with a `process_group` of one rank)"
        ]
    labels_seen = {(shard.label_rows, shard.labels_checksum) for shard in shards}
    if whole_labels and len(labels_seen) > 1:
        return [
            f"ranks pass different `concepts` ({[shard.label_rows for shard in shards]} rows): "
            f"with a process group, attribute takes the whole data set's `{source}` and "
            "`concepts` on every rank (the same on all, not each rank's own samples) and shares "
            "the samples out itself"
        ]
    return []


def _agree(
    shard: _Shard, *, group: dist.ProcessGroup, whole_labels: bool, source: str
) -> list[_Shard]:
    """Every rank's :class:`_Shard`; raises the same error on every rank if they disagree."""
    shards: list[Any] = [None] * dist.get_world_size(group)
    dist.all_gather_object(shards, shard, group=group)
    problems = [f"rank {rank}: {text}" for rank, s in enumerate(shards) for text in s.problems]
    problems += _contract_problems(shards, whole_labels=whole_labels, source=source)
    widths = {s.width for s in shards if s.width is not None}
    dtypes = {s.dtype for s in shards if s.dtype is not None}
    if not widths:
        problems.append(f"`{source}` holds no samples on any rank")
    if len(widths) > 1 or len(dtypes) > 1:
        shapes = [(s.width, str(s.dtype)) for s in shards]
        problems.append(f"ranks hold different numbers or dtypes of neurons: {shapes}")
    if any(s.names != shards[0].names for s in shards):
        problems.append("ranks have different concept names; every rank needs the same concepts")
    keys = [key for s in shards for key, _ in s.layout]
    if len(set(keys)) != len(keys):
        problems.append("two ranks hold the same batch")  # a bug, not a user error
    if problems:
        raise ValueError("distributed INVERT: " + "; ".join(problems))
    return shards


def _check_finite(shards: list[_Shard], chosen: list[int], source: str) -> None:
    """Raises on every rank if any rank holds NaN or infinite activations of chosen neurons."""
    bad = [
        neuron
        for neuron in chosen
        if any(s.finite is not None and not s.finite[neuron] for s in shards)
    ]
    if bad:
        raise ValueError(f"`{source}` holds NaN or infinite values for neurons {bad}")


def _comm_device(group: dist.ProcessGroup) -> torch.device:
    """Where the group's collectives take tensors: the current GPU for NCCL, else the CPU."""
    if dist.get_backend(group) == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _positions(shards: list[_Shard], device: torch.device) -> list[Tensor]:
    """Per rank, the rows of the whole data set its rows are, in its order (keys sorted)."""
    batches = sorted(
        (key, rank, order)
        for rank, shard in enumerate(shards)
        for order, (key, _) in enumerate(shard.layout)
    )
    starts: dict[tuple[int, int], int] = {}
    offset = 0
    for _, rank, order in batches:
        starts[rank, order] = offset
        offset += shards[rank].layout[order][1]
    positions = []
    for rank, shard in enumerate(shards):
        pieces = [
            torch.arange(starts[rank, order], starts[rank, order] + size)
            for order, (_, size) in enumerate(shard.layout)
        ]
        rows = torch.cat(pieces) if pieces else torch.empty(0, dtype=torch.int64)
        positions.append(rows.to(device))
    return positions


def _gather_rows(
    labels: Tensor, positions: list[Tensor], count: int, group: dist.ProcessGroup
) -> Tensor:
    """The ``(N, C)`` labels of all ranks in data set order, from each rank's ``(n, C)`` rows."""
    rank = dist.get_rank(group)
    comm = positions[0].device
    whole = torch.empty(count, labels.shape[1], dtype=torch.bool, device=comm)
    for source, rows in enumerate(positions):
        if source == rank:
            block = labels.to(device=comm, dtype=torch.bool).contiguous()
        else:
            block = torch.empty(rows.shape[0], labels.shape[1], dtype=torch.bool, device=comm)
        # bools travel as bytes: not every backend takes bool tensors
        dist.broadcast(block.view(torch.uint8), dist.get_global_rank(group, source), group=group)
        whole.index_copy_(0, rows, block)
    return whole


def _exchange(
    *,
    values: Tensor,
    chosen: list[int],
    positions: list[Tensor],
    count: int,
    group: dist.ProcessGroup,
    progress: bool,
) -> Iterator[tuple[Tensor, list[int]]]:
    r"""
    This rank's share of ``chosen`` over all samples, in data set order, in rounds: yields
    ``(N, g)`` activations and their ``g`` neurons, made from every rank's ``(n, K)`` rows by one
    ``all_to_all`` a round. A round receives about ``_EXCHANGE_BYTES`` (at least
    ``_MIN_ROUND_NEURONS`` neurons), so a rank never holds all its ``N x K / world`` values.
    Every rank runs the same number of rounds (a rank past its share gets no neurons).
    """
    rank, world = dist.get_rank(group), dist.get_world_size(group)
    comm = positions[0].device
    index = torch.tensor(chosen, dtype=torch.int64, device=values.device)
    shares = [index[_share(len(chosen), part, world)] for part in range(world)]
    mine = chosen[_share(len(chosen), rank, world)]
    step = max(_MIN_ROUND_NEURONS, _EXCHANGE_BYTES // max(1, count * values.element_size()))
    rounds = -(-max(part.shape[0] for part in shares) // step)
    # ranks holding contiguous blocks in rank order receive the columns in data set order
    in_order = torch.equal(torch.cat(positions), torch.arange(count, device=comm))
    for start in progress_bar(range(rounds), desc="INVERT exchange and search", enabled=progress):
        parts = [part[start * step : (start + 1) * step] for part in shares]
        own = parts[rank].shape[0]
        # one flat buffer per direction: gloo's all_to_all wants equal shapes, the single
        # buffer form takes a size per peer
        sent = torch.cat([values.index_select(1, part).reshape(-1) for part in parts]).to(comm)
        sizes = [rows.shape[0] * own for rows in positions]
        received = torch.empty(sum(sizes), dtype=values.dtype, device=comm)
        dist.all_to_all_single(
            received,
            sent,
            output_split_sizes=sizes,
            input_split_sizes=[values.shape[0] * part.shape[0] for part in parts],
            group=group,
        )
        del sent
        if in_order:
            columns = received.view(count, own)
        else:
            columns = torch.empty(count, own, dtype=values.dtype, device=comm)
            for rows, part in zip(positions, received.split(sizes), strict=True):
                columns.index_copy_(0, rows, part.view(-1, own))
        del received
        yield columns, mine[start * step : start * step + own]
        del columns  # before the next round's buffers
