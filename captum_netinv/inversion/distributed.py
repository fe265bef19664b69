"""One generator fitted on every rank of a ``torch.distributed`` process group, and device helpers.

:meth:`NetworkInversion.fit <captum_netinv.NetworkInversion.fit>` called on every rank of a
process group (NCCL on GPUs, gloo on CPUs, started with ``torchrun``) trains one generator with
:class:`~torch.nn.parallel.DistributedDataParallel`. What is split and what is gathered:

* **batch**: ``batch_size`` is the global batch; each rank draws ``batch_size / world_size``
  samples (targets, conditioning, latent codes, dropout, jitter) from its own random stream,
  seeded with :func:`rank_seed` of the fit's seed (rank 0 keeps the seed itself);
* **per-sample terms** (cross-entropy, KL, total variation, pixel range and norm) are means over
  the rank's share; DDP's mean of the ranks' gradients is the gradient of the global mean;
* **batch-level terms** (cosine similarity, orthogonality, BatchNorm statistics) are computed on
  the global batch: features gathered from every rank (:func:`gather_rows`), BatchNorm input
  statistics combined exactly (:func:`global_batch_terms`). Every rank's local gradient is
  ``world_size`` times the global-batch gradient of its own samples, so that DDP's mean gives
  the single-process gradient of the global batch;
* **checkpoints**: only rank 0 writes; the file keeps every rank's random states, so that a fit
  resumed on the same number of ranks continues each rank's stream (:func:`write_fit_checkpoint`).

The generator's own BatchNorm layers normalise with each rank's share (as in any DDP training);
their running statistics are rank 0's, broadcast to the other ranks at every step.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.autograd import Function
from torch.nn.parallel import DistributedDataParallel

from captum_netinv._utils import MAX_SEED, check_positive_int, modules_of
from captum_netinv.inversion.checkpoint import FitCheckpoint, write_atomically
from captum_netinv.inversion.conditioning import ConditioningBatch
from captum_netinv.inversion.losses import (
    Similarity,
    batchnorm_distance,
    cosine_similarity,
    feature_orthogonality,
    pairwise_cosine,
)

__all__ = [
    "ProcessGroup",
    "AUTOCAST_DTYPES",
    "GLOBAL_BATCH_TERMS",
    "agree",
    "autocast_context",
    "check_autocast",
    "condition_to_device",
    "fit_group",
    "frozen_parameters",
    "gather_rows",
    "global_batch_terms",
    "identical_on_ranks",
    "local_batch_size",
    "mean_over_ranks",
    "rank_local_weights",
    "rank_of",
    "rank_seed",
    "restore_rank_streams",
    "seed_streams",
    "to_device",
    "wrap_generator",
    "write_fit_checkpoint",
]

#: ``autocast`` values of a fit and the dtype each runs the forward passes in.
AUTOCAST_DTYPES: dict[str, torch.dtype] = {"bfloat16": torch.bfloat16, "float16": torch.float16}
#: Loss terms that depend on the whole batch: computed on the global batch under several ranks.
GLOBAL_BATCH_TERMS: tuple[str, ...] = (
    "cosine_similarity",
    "feature_orthogonality",
    "batchnorm_statistics",
)

#: ``torch.distributed.ProcessGroup`` (absent from builds without distributed support).
ProcessGroup = Any


def fit_group(
    process_group: ProcessGroup | None, batch_size: int, autocast: str | None = None
) -> ProcessGroup | None:
    r"""
    The process group a fit runs on, or None for an ordinary one-process fit: ``process_group``
    itself, else the default group when ``torch.distributed`` is initialized; a group of one
    rank is an ordinary fit. Also checks that ``batch_size`` splits evenly over the ranks
    (:func:`local_batch_size`) and that ``autocast`` is None or in :data:`AUTOCAST_DTYPES`.

    To fit on one rank alone inside an initialized group, pass a group of that rank only
    (``torch.distributed.new_group([rank])``).
    """
    check_autocast(autocast)
    initialized = dist.is_available() and dist.is_initialized()
    if process_group is not None and not initialized:
        raise ValueError(
            "`process_group` was given but torch.distributed is not initialized: call "
            "torch.distributed.init_process_group() on every rank first (torchrun sets the "
            "environment it reads)"
        )
    if not initialized:
        group = None
    else:
        group = dist.group.WORLD if process_group is None else process_group
        if dist.get_world_size(group) == 1:
            group = None
    local_batch_size(batch_size, group)
    return group


def check_autocast(autocast: object) -> None:
    r"""A ``ValueError`` unless ``autocast`` is None or a key of :data:`AUTOCAST_DTYPES`."""
    if autocast is not None and autocast not in AUTOCAST_DTYPES:
        raise ValueError(
            f"`autocast` must be None or one of {sorted(AUTOCAST_DTYPES)}, got {autocast!r}"
        )


def rank_local_weights(
    weights: Mapping[str, float], group: ProcessGroup | None
) -> Mapping[str, float]:
    r"""The weights of the terms each rank computes on its own share: ``weights`` itself in one
    process; under a group, the :data:`GLOBAL_BATCH_TERMS` set to 0 (:func:`global_batch_terms`
    computes them on the global batch)."""
    if group is None:
        return weights
    return {name: 0.0 if name in GLOBAL_BATCH_TERMS else weight for name, weight in weights.items()}


def local_batch_size(batch_size: int, group: ProcessGroup | None) -> int:
    r"""Each rank's share of the global ``batch_size``; a ``ValueError`` unless it divides."""
    world = 1 if group is None else dist.get_world_size(group)
    if check_positive_int(batch_size, "batch_size") % world != 0:
        raise ValueError(
            f"`batch_size` ({batch_size}) is the global batch and must be a multiple of the "
            f"number of ranks ({world}): each rank draws batch_size / {world} samples"
        )
    return batch_size // world


def rank_of(group: ProcessGroup | None) -> int:
    r"""This process's rank in ``group``; 0 without one."""
    return 0 if group is None else dist.get_rank(group)


def rank_seed(seed: int, rank: int) -> int:
    r"""
    The seed of rank ``rank``'s random streams in a fit seeded with ``seed``: ``seed`` itself
    for rank 0 (so that a one-rank fit is the ordinary fit), else the first 8 bytes of
    ``sha256("captum_netinv/{seed}/{rank}")`` modulo ``2**63``: independent of the other ranks'.

    Examples::

        >>> rank_seed(0, 0)
        0
    """
    if rank == 0:
        return seed
    digest = hashlib.sha256(f"captum_netinv/{seed}/{rank}".encode()).digest()
    return int.from_bytes(digest[:8], "little") % MAX_SEED


def seed_streams(seed: int, rng: torch.Generator, group: ProcessGroup | None) -> None:
    r"""
    Seeds this rank's streams, the fit's ``rng`` and torch's global generators (dropout,
    jitter, the default generator's initial weights, which DDP replaces by rank 0's), with
    :func:`rank_seed`.
    """
    own = rank_seed(seed, rank_of(group))
    torch.manual_seed(own)
    rng.manual_seed(own)


class _GatherRows(Function):
    r"""All-gather along dim 0; backward: the sum of the ranks' gradients of this rank's rows."""

    @staticmethod
    def forward(ctx: Any, tensor: Tensor, group: ProcessGroup) -> Tensor:
        ctx.group = group
        ctx.rows = tensor.shape[0]
        parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size(group))]
        dist.all_gather(parts, tensor.contiguous(), group=group)
        return torch.cat(parts)

    @staticmethod
    def backward(ctx: Any, gradient: Tensor) -> tuple[Tensor, None]:
        total = gradient.contiguous().clone()
        dist.all_reduce(total, group=ctx.group)
        start = dist.get_rank(ctx.group) * ctx.rows
        return total[start : start + ctx.rows], None


def gather_rows(tensor: Tensor, group: ProcessGroup | None) -> Tensor:
    r"""
    Every rank's ``tensor`` (same shape on each) concatenated along dim 0 in rank order, in the
    autograd graph: the gradient reaching this rank's rows is the sum of the gradients every
    rank computed for them. Without a group, ``tensor`` itself.
    """
    if group is None:
        return tensor
    return _GatherRows.apply(tensor, group)


def _gather_all(tensors: Sequence[Tensor], group: ProcessGroup | None) -> list[Tensor]:
    r"""Each of ``tensors`` from every rank, ``(world_size, *shape)``, in one collective."""
    flat = gather_rows(torch.cat([tensor.reshape(1, -1) for tensor in tensors], dim=1), group)
    parts = flat.split([tensor.numel() for tensor in tensors], dim=1)
    return [
        part.reshape(len(flat), *tensor.shape) for part, tensor in zip(parts, tensors, strict=True)
    ]


def _moments(inputs: Tensor) -> Tensor:
    r"""``(2, C)``: per-channel mean and biased variance of ``(B, C, ...)`` ``inputs``."""
    dims = [0, *range(2, inputs.dim())]
    return torch.stack([inputs.mean(dim=dims), inputs.var(dim=dims, unbiased=False)])


def _combined_moments(every: Tensor) -> tuple[Tensor, Tensor]:
    r"""
    The global batch's mean and variance from every rank's ``(world, 2, C)`` moments of equal
    shares, exactly: ``var = mean_r(var_r) + mean_r((mean_r - mean)^2)``.
    """
    means, variances = every[:, 0], every[:, 1]
    mean = means.mean(dim=0)
    return mean, variances.mean(dim=0) + (means - mean).pow(2).mean(dim=0)


def global_batch_terms(
    features: Tensor,
    batchnorm_inputs: Sequence[tuple[nn.modules.batchnorm._BatchNorm, Tensor]],
    weights: Mapping[str, float],
    group: ProcessGroup | None,
    similarity: Similarity = pairwise_cosine,
) -> dict[str, Tensor]:
    r"""
    The batch-level loss terms (:data:`GLOBAL_BATCH_TERMS`) with a positive weight, computed on
    the global batch of all ranks of ``group``: their values equal the one-process terms of the
    concatenated batch; each rank's gradient is ``world_size`` times the gradient of the global
    term with respect to its own samples (what DDP's mean over ranks expects).

    Args:
        features (Tensor): ``(B_local, D)`` this rank's features at the diversity layer.
        batchnorm_inputs (list): ``(layer, input)`` pairs recorded on this rank.
        weights (Mapping[str, float]): Weight of each term; terms of weight 0 are left out.
        group (ProcessGroup, optional): The fit's group; None for one process.
        similarity (Callable, optional): The diversity terms' cosine matrix of the gathered
                    features. Default: :func:`~captum_netinv.inversion.losses.pairwise_cosine`

    Returns:
        *dict* mapping term name to a scalar tensor.
    """
    wanted = [name for name in GLOBAL_BATCH_TERMS if weights.get(name, 0.0) > 0.0]
    diverse = "cosine_similarity" in wanted or "feature_orthogonality" in wanted
    records = list(batchnorm_inputs) if "batchnorm_statistics" in wanted else []
    pieces = ([features.flatten(1)] if diverse else []) + [_moments(x) for _, x in records]
    if not pieces:
        return {}
    # one all-gather for the features and every BatchNorm layer's moments
    gathered = _gather_all(pieces, group) if group is not None else [p[None] for p in pieces]
    terms: dict[str, Tensor] = {}
    if diverse:
        every = gathered.pop(0).flatten(0, 1)
        if "cosine_similarity" in wanted:
            terms["cosine_similarity"] = cosine_similarity(every, similarity)
        if "feature_orthogonality" in wanted:
            terms["feature_orthogonality"] = feature_orthogonality(every, similarity)
    if records:
        terms["batchnorm_statistics"] = torch.stack(
            [
                batchnorm_distance(*_combined_moments(moments), norm)
                for (norm, _), moments in zip(records, gathered, strict=True)
            ]
        ).sum()
    return terms


def mean_over_ranks(values: Tensor, group: ProcessGroup | None) -> list[float]:
    r"""
    ``values`` (a 1-D tensor on any device) averaged over the ranks of ``group``, as floats:
    the step's one host synchronisation.
    """
    if group is not None:
        values = values.detach().clone()
        dist.all_reduce(values, group=group)
        values = values / dist.get_world_size(group)
    return [float(value) for value in values.detach().float().cpu().tolist()]


def agree(flag: bool, group: ProcessGroup | None, device: torch.device) -> bool:
    r"""True on every rank when ``flag`` is true on any rank (a callback asking to stop)."""
    if group is None:
        return flag
    vote = torch.tensor([int(flag)], device=device)
    dist.all_reduce(vote, op=dist.ReduceOp.MAX, group=group)
    return bool(vote.item())


def identical_on_ranks(values: Tensor, group: ProcessGroup | None, device: torch.device) -> bool:
    r"""
    True on every rank when ``values`` (the same shape on each rank) are equal on all ranks of
    ``group`` (always with no group): their maximum and minimum over the ranks coincide.
    """
    if group is None:
        return True
    high = values.detach().flatten().double().to(device).clone()
    low = -high
    dist.all_reduce(high, op=dist.ReduceOp.MAX, group=group)
    dist.all_reduce(low, op=dist.ReduceOp.MAX, group=group)
    return torch.equal(high, -low)


@contextmanager
def wrap_generator(generator: nn.Module, group: ProcessGroup | None) -> Iterator[nn.Module]:
    r"""
    ``generator`` in :class:`~torch.nn.parallel.DistributedDataParallel` over ``group`` for the
    block (rank 0's weights and buffers broadcast on entry, buffers again at every forward and
    once more on a normal exit, so that every rank ends with the same state); itself without a
    group. The wrapper shares the generator's parameters: train through it, save the module.
    """
    if group is None:
        yield generator
        return
    yield DistributedDataParallel(generator, process_group=group)
    source = dist.get_global_rank(group, 0)
    for buffer in generator.buffers():
        dist.broadcast(buffer, src=source, group=group)


@contextmanager
def frozen_parameters(model: object, keep: nn.Module) -> Iterator[None]:
    r"""
    Sets ``requires_grad`` False on the parameters of every module ``model`` runs (except those
    of ``keep``) for the block, and restores each flag after, whatever happens: a backward pass
    then reaches the generator's parameters alone.
    """
    kept = {id(parameter) for parameter in keep.parameters()}
    flags = [
        (parameter, parameter.requires_grad)
        for module in modules_of(model)
        for parameter in module.parameters()
        if id(parameter) not in kept
    ]
    try:
        for parameter, _ in flags:
            parameter.requires_grad_(False)
        yield
    finally:
        for parameter, flag in flags:
            parameter.requires_grad_(flag)


def autocast_context(device: torch.device, autocast: str | None) -> Any:
    r"""``torch.autocast`` on ``device`` in the dtype named by ``autocast``; nothing for None."""
    if autocast is None:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=AUTOCAST_DTYPES[autocast])


def to_device(tensor: Tensor, device: torch.device) -> Tensor:
    r"""
    ``tensor`` (drawn on the CPU) on ``device``; to a GPU through pinned memory without
    blocking, so that the host queues the step without waiting for the device.
    """
    if device.type != "cuda":
        return tensor.to(device)
    return tensor.pin_memory().to(device, non_blocking=True)


def condition_to_device(condition: ConditioningBatch, device: torch.device) -> ConditioningBatch:
    r"""Every tensor of ``condition`` on ``device`` (:func:`to_device`)."""
    return ConditioningBatch(
        to_device(condition.targets, device),
        None if condition.vectors is None else to_device(condition.vectors, device),
        None if condition.matrices is None else to_device(condition.matrices, device),
    )


def _stream_states(rng: torch.Generator, device: torch.device) -> dict[str, Tensor | None]:
    return {
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        "sampler_rng": rng.get_state(),
    }


def write_fit_checkpoint(
    state: Callable[[], dict[str, Any]],
    fit: FitCheckpoint,
    path: str,
    group: ProcessGroup | None,
    rng: torch.Generator | None = None,
    device: torch.device | None = None,
) -> None:
    r"""
    Writes ``state()`` and ``fit`` to ``path`` (atomically). Under a group every rank calls
    it: the ranks' random states (``rng``, global CPU and CUDA) are gathered, rank 0 alone
    writes them with ``world_size``, and every rank waits until the file is there.
    """
    if group is None:
        write_atomically({**state(), **fit.to_dict()}, path)
        return
    assert rng is not None and device is not None
    streams: list[Any] = [None] * dist.get_world_size(group)
    dist.all_gather_object(streams, _stream_states(rng, device), group=group)
    if dist.get_rank(group) == 0:
        extra = {"world_size": len(streams), "rank_rng_states": streams}
        write_atomically({**state(), **fit.to_dict(), **extra}, path)
    dist.barrier(group=group)


def restore_rank_streams(
    state: Mapping[str, Any],
    rng: torch.Generator,
    device: torch.device,
    group: ProcessGroup | None,
) -> None:
    r"""
    Puts this rank's random states back from a checkpoint ``state`` (rank 0's are the file's
    own, already restored); a ``ValueError`` when the checkpoint was written by a fit on
    another number of ranks.
    """
    world = 1 if group is None else dist.get_world_size(group)
    written = int(state.get("world_size", 1))
    if written != world:
        raise ValueError(
            f"the checkpoint was written by a fit on {written} process(es) but this fit runs "
            f"on {world}: resume on {written}, or give fit() another `checkpoint_path`"
        )
    rank = rank_of(group)
    if rank == 0:
        return
    streams = state["rank_rng_states"][rank]
    torch.set_rng_state(streams["torch_rng"])
    if streams["cuda_rng"] is not None and device.type == "cuda":
        torch.cuda.set_rng_state(streams["cuda_rng"], device)
    rng.set_state(streams["sampler_rng"])
