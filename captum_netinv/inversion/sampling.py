"""Drawing samples from a fitted generator: targets, latent codes, conditioning, dropout.

Every random choice of a draw comes from one seeded ``rng`` (a forked global state covers the
generator's dropout), so the same seed gives the same samples and the global state is untouched.
"""

from __future__ import annotations

import numbers

import numpy as np
import torch
from captum._utils.typing import TargetType
from torch import Tensor, nn

from captum_netinv._activations import iterate_batches
from captum_netinv._moved import moved_attribute
from captum_netinv._utils import check_positive_int, excerpt
from captum_netinv.inversion.generator import sampling_mode
from captum_netinv.inversion.settings import InversionSettings
from captum_netinv.inversion.target_model import SAMPLE_BATCH_SIZE, TargetModel

__all__ = [
    "DEFAULT_SAMPLES",
    "generate",
    "latent_codes",
    "rng_devices",
    "sample_count",
    "samples_per_entry",
    "targets_from",
]

#: Number of samples drawn for an int ``target`` when neither ``n_samples`` nor example
#: ``inputs`` (one sample per row) are given.
DEFAULT_SAMPLES = 16


def sample_count(n_samples: object, rows: int | None) -> int:
    r"""
    The number of samples of a single target (a class or a unit): ``n_samples``; with example
    ``inputs`` of ``rows`` rows and ``n_samples`` None, one per row, as a Captum method
    attributes each input; otherwise :data:`DEFAULT_SAMPLES`.

    Args:
        n_samples (int or None): The number of samples asked for.
        rows (int or None): The number of rows of the example ``inputs``, None without them.

    Returns:
        *int*, the **count** of samples.
    """
    count = _fixed_count(n_samples, rows)
    return DEFAULT_SAMPLES if count is None else count


def samples_per_entry(entries: int, n_samples: object, rows: int | None, name: str) -> int:
    r"""
    How many samples each entry of a list / 1-D tensor ``name`` of ``entries`` targets gives:
    one each, or all ``n_samples`` (or one per row of the example ``inputs``) for a single
    entry, as Captum reads a one-element target as one target for every input.

    Args:
        entries (int): The number of entries of the list ``name`` (>= 1).
        n_samples (int or None): The number of samples asked for.
        rows (int or None): The number of rows of the example ``inputs``, None without them.
        name (str): The argument's name, for the error messages.

    Returns:
        *int*, the **repeats** of each entry.
    """
    count = _fixed_count(n_samples, rows)
    if count is None or count == entries:
        return 1
    if entries == 1:
        return count
    if rows is not None:
        raise ValueError(
            f"`{name}` has {entries} entries but `inputs` has {rows} rows: with example "
            f"`inputs` attribute draws one sample per input row, so give one entry per row "
            f"(or a single one for all rows)"
        )
    raise ValueError(
        f"`n_samples` ({count}) must be None or equal the number of entries of `{name}` "
        f"({entries}) when `{name}` is a list or tensor (or `{name}` holds a single entry)"
    )


def _fixed_count(n_samples: object, rows: int | None) -> int | None:
    """``n_samples`` checked, or ``rows``; None when neither fixes the number of samples."""
    count = None if n_samples is None else check_positive_int(n_samples, "n_samples")
    if rows is None:
        return count
    if count is not None and count != rows:
        raise ValueError(
            f"`n_samples` ({count}) and `inputs` ({rows} rows) disagree: with example `inputs` "
            "attribute draws one sample per input row; leave `n_samples` None, or give it "
            "without `inputs`"
        )
    return rows


def targets_from(
    target: TargetType, n_samples: int | None, num_classes: int, rows: int | None = None
) -> Tensor:
    r"""
    The class of each sample to generate from Captum's target forms: an int (numpy's too, or a
    scalar tensor) repeated :func:`sample_count` times, or a non-empty list / 1-D tensor /
    array of ints, one sample each (a single entry repeated as an int is,
    :func:`samples_per_entry`).

    Args:
        target (int, list[int], Tensor or numpy.ndarray): The class or classes.
        n_samples (int or None): The number of samples asked for.
        num_classes (int): The model's number of classes.
        rows (int, optional): The number of rows of the example ``inputs``, if given.

    Returns:
        *Tensor* of the ``(n,)`` **classes**, long, on the CPU.
    """
    if target is None:
        raise ValueError("`target` is required: the class (or classes) to generate inputs for")
    if isinstance(target, tuple) or (
        isinstance(target, list) and target and isinstance(target[0], tuple)
    ):
        raise TypeError(
            f"`target` must be an int, a list of ints or a 1-D tensor of ints, got "
            f"{excerpt(target)}: tuple targets index multi-dimensional outputs, the inverted "
            "model's output is (batch, num_classes)"
        )
    if (
        isinstance(target, (str, bytes, float))
        or not hasattr(target, "__len__")
        and not (isinstance(target, (numbers.Integral, Tensor)))
    ):
        raise TypeError(
            f"`target` must be an int, a list of ints or a 1-D tensor of ints, got "
            f"{type(target).__name__} {excerpt(target)}"
        )
    if isinstance(target, (Tensor, np.ndarray)) and target.ndim == 0:
        target = target.item()
    if isinstance(target, bool):
        raise TypeError(
            f"`target` must be an int class index, a list of ints or a 1-D tensor of ints, got "
            f"the bool {target}: a bool is not a class index"
        )
    if isinstance(target, numbers.Integral):
        targets = torch.full((sample_count(n_samples, rows),), int(target), dtype=torch.long)
    else:
        targets = _target_list(target)
        repeats = samples_per_entry(len(targets), n_samples=n_samples, rows=rows, name="target")
        targets = targets.repeat(repeats)
    bad = targets[(targets < 0) | (targets >= num_classes)]
    if len(bad):
        raise ValueError(
            f"`target` must lie in [0, {num_classes - 1}] (the model has {num_classes} classes), "
            f"got {bad.unique().tolist()[:5]}"
        )
    return targets


def _target_list(target: object) -> Tensor:
    """The classes of a list / 1-D tensor / array ``target``, checked."""
    if len(target) == 0:  # type: ignore[arg-type]
        raise ValueError("`target` is empty: give at least one class")
    try:
        targets = torch.as_tensor(target)
    except (TypeError, ValueError, RuntimeError) as error:
        raise TypeError(f"`target` must hold ints, got {excerpt(target)}") from error
    if targets.dim() != 1:
        raise ValueError(
            f"`target` must be an int or 1-D (one class per sample), got shape "
            f"{tuple(targets.shape)}"
        )
    if targets.dtype.is_floating_point or targets.dtype.is_complex or targets.dtype == torch.bool:
        raise TypeError(f"`target` must hold ints, got dtype {targets.dtype}")
    return targets.long().cpu()


def latent_codes(
    count: int, latent_dim: int, rng: torch.Generator, latents: Tensor | None = None
) -> Tensor:
    r"""``latents`` checked to be ``(count, latent_dim)``, or a standard Gaussian draw."""
    if latents is None:
        return torch.randn(count, latent_dim, generator=rng)
    if not isinstance(latents, Tensor) or tuple(latents.shape) != (count, latent_dim):
        raise ValueError(
            f"`latents` must be a ({count}, {latent_dim}) tensor (one code per sample), got "
            f"{getattr(latents, 'shape', type(latents).__name__)}"
        )
    if not (latents.dtype.is_floating_point and bool(torch.isfinite(latents).all())):
        raise ValueError(
            f"`latents` must hold finite floating-point values, got dtype {latents.dtype}"
            + ("" if not latents.dtype.is_floating_point else " with NaN or infinite values")
        )
    return latents.float().cpu()


def rng_devices(device: torch.device) -> list[int]:
    r"""The CUDA devices whose random state a fit or draw on ``device`` uses."""
    return [device.index or 0] if device.type == "cuda" else []


def generate(
    generator: nn.Module,
    model: TargetModel,
    settings: InversionSettings,
    targets: Tensor,
    num_classes: int,
    device: torch.device,
    latents: Tensor | None = None,
    seed: int | None = None,
    batch_size: int = SAMPLE_BATCH_SIZE,
) -> Tensor:
    r"""
    Samples of the classes ``targets`` from ``generator`` in sampling mode (batch norm on its
    running statistics, dropout as ``settings.sample_with_dropout`` says), in model space.

    Args:
        generator (nn.Module): The fitted generator.
        model (TargetModel): The inverted model (for its input normalization).
        settings (InversionSettings): The inversion's settings.
        targets (Tensor): ``(n,)`` class of each sample.
        num_classes (int): The model's number of classes.
        device (torch.device): Where the generator runs.
        latents (Tensor, optional): ``(n, latent_dim)`` codes instead of random ones.
        seed (int, optional): Seed of the codes, conditioning draws and dropout.
        batch_size (int, optional): Samples per forward pass of the generator (memory); the
                    same seed gives the same samples at the same ``batch_size``. Default: 256

    Returns:
        *Tensor* of shape ``(n, *input_shape)`` on ``device``.
    """
    rng = torch.Generator()
    if seed is None:
        rng.seed()
    else:
        rng.manual_seed(seed)
    codes = latent_codes(len(targets), settings.latent_dim, rng, latents)
    outputs = []
    with (
        torch.random.fork_rng(devices=rng_devices(device)),
        torch.no_grad(),
        sampling_mode(generator, settings.sample_with_dropout),
    ):
        torch.manual_seed(int(torch.randint(2**31, (1,), generator=rng)))
        batches = zip(
            iterate_batches(targets, batch_size),
            iterate_batches(codes, batch_size),
            strict=True,
        )
        for chunk, z in batches:
            condition = settings.draw_condition(chunk, num_classes, rng)
            outputs.append(model.to_model_space(generator(z.to(device), condition.to(device))))
    return torch.cat(outputs)


# concept_id_of, samples_as_concept and CONCEPT_ID_BASE were imported from here before
__getattr__ = moved_attribute(__name__)
