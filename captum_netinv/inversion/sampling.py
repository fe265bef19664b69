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
    "targets_from",
]

#: Number of samples drawn for an int ``target`` when ``n_samples`` is not given.
DEFAULT_SAMPLES = 16


def targets_from(target: TargetType, n_samples: int | None, num_classes: int) -> Tensor:
    r"""
    The class of each sample to generate from Captum's target forms: an int (numpy's too, or a
    scalar tensor) repeated ``n_samples`` times (default 16), or a non-empty list / 1-D tensor
    / array of ints, one sample each.
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
    if isinstance(target, numbers.Integral) and not isinstance(target, bool):
        count = check_positive_int(DEFAULT_SAMPLES if n_samples is None else n_samples, "n_samples")
        targets = torch.full((count,), int(target), dtype=torch.long)
    else:
        targets = _target_list(target, n_samples)
    bad = targets[(targets < 0) | (targets >= num_classes)]
    if len(bad):
        raise ValueError(
            f"`target` must lie in [0, {num_classes - 1}] (the model has {num_classes} classes), "
            f"got {bad.unique().tolist()[:5]}"
        )
    return targets


def _target_list(target: object, n_samples: int | None) -> Tensor:
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
    if n_samples is not None and n_samples != len(targets):
        raise ValueError(
            f"`n_samples` ({excerpt(n_samples)}) must be None or equal the number of targets "
            f"({len(targets)}) when `target` is a list or tensor"
        )
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
            iterate_batches(targets, SAMPLE_BATCH_SIZE),
            iterate_batches(codes, SAMPLE_BATCH_SIZE),
            strict=True,
        )
        for chunk, z in batches:
            condition = settings.draw_condition(chunk, num_classes, rng)
            outputs.append(model.to_model_space(generator(z.to(device), condition.to(device))))
    return torch.cat(outputs)


# concept_id_of, samples_as_concept and CONCEPT_ID_BASE were imported from here before
__getattr__ = moved_attribute(__name__)
