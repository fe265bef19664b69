"""The fit loop of network inversion: the generator trained through the frozen model with Adam.

:func:`train_generator` runs steps with explicit arguments (no inversion object): it draws the
conditioning and codes from ``rng``, sums the loss terms and reports each step to its callbacks.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from functools import partial
from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm
from tqdm import tqdm

from captum_netinv._progress import progress_bar
from captum_netinv._utils import channels_last, eval_mode, model_device
from captum_netinv.inversion.augmentation import augmented, centered
from captum_netinv.inversion.compilation import (
    StepParts,
    compiled_parts,
    eager_parts,
    restorable_step,
    warn_compile_failed,
)
from captum_netinv.inversion.conditioning import ConditioningBatch
from captum_netinv.inversion.distributed import (
    ProcessGroup,
    agree,
    autocast_context,
    check_autocast,
    condition_to_device,
    frozen_parameters,
    global_batch_terms,
    local_batch_size,
    mean_over_ranks,
    rank_local_weights,
    rank_of,
    to_device,
    wrap_generator,
)
from captum_netinv.inversion.feature_statistics import record_inputs
from captum_netinv.inversion.losses import (
    batchnorm_layers,
    inversion_loss_terms,
    weighted_sum,
)
from captum_netinv.inversion.optimizer import HostFreeAdam
from captum_netinv.inversion.presets import PRESETS
from captum_netinv.inversion.sampling import latent_codes
from captum_netinv.inversion.settings import InversionSettings
from captum_netinv.inversion.target_model import TargetModel, prefers_channels_last

__all__ = [
    "History",
    "NonFiniteLossError",
    "StepCallback",
    "balanced_targets",
    "centering_crop",
    "check_trainable_settings",
    "draw_batch",
    "generator_optimizer",
    "prior_layers",
    "step_terms",
    "StepTerms",
    "train_generator",
]

#: One list per loss term, ``"loss"`` and ``"hit_rate"``, one value per step.
History = dict[str, list[float]]
#: Called after each step with the step number and its values; True stops the fit.
StepCallback = Callable[[int, dict[str, float]], bool | None]


class NonFiniteLossError(ValueError):
    r"""
    A loss term became NaN or infinite during :meth:`NetworkInversion.fit`.

    Attributes:
        step (int): The step whose loss was not finite; the generator holds the weights of
                    the step before.
    """

    def __init__(self, message: str, step: int = 0) -> None:
        super().__init__(message)
        self.step = step


def generator_optimizer(generator: nn.Module, *, lr: float) -> torch.optim.Optimizer:
    r"""
    Adam over ``generator``'s parameters, stepping without a host read where it can: on the
    CPU :class:`~captum_netinv.inversion.optimizer.HostFreeAdam` (torch's default and fused
    Adam both read every parameter's step counter each step there); on other devices torch's
    fused Adam (one kernel for all parameters, no read) where the device and this torch
    support it, else torch's default implementation. All compute torch's Adam, and their
    states load into each other (a checkpoint resumes on another device).

    Args:
        generator (nn.Module): The generator to train.
        lr (float): The learning rate.

    Returns:
        *torch.optim.Optimizer*: :class:`~captum_netinv.inversion.optimizer.HostFreeAdam` or
        ``torch.optim.Adam``.
    """
    parameters = list(generator.parameters())
    if all(parameter.device.type == "cpu" for parameter in parameters):
        return HostFreeAdam(parameters, lr=lr)
    try:
        return torch.optim.Adam(parameters, lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):  # a device or dtype without a fused kernel
        return torch.optim.Adam(parameters, lr=lr)


def balanced_targets(
    batch_size: int, num_classes: int, rng: torch.Generator, offset: int = 0
) -> Tensor:
    r"""A shuffled batch of classes, each class appearing ``batch_size // num_classes`` times
    or once more: positions ``offset, ..., offset + batch_size - 1`` of a batch that cycles
    through the classes. Ranks that draw consecutive slices of a global batch (``offset`` the
    rank times its share) hold together that balance over the global batch."""
    return (torch.randperm(batch_size, generator=rng) + offset) % num_classes


class StepTerms(NamedTuple):
    r"""
    One step's forward pass through the frozen model.

    Attributes:
        terms (dict[str, Tensor]): The unweighted loss terms with a positive weight.
        logits (Tensor): ``(B, K)`` the model's outputs on the batch it saw.
        seen (Tensor): ``(B, C, H, W)`` the generated batch as the model saw it (model space,
                    augmented), attached to the generator's graph: a student in the loop
                    (:mod:`~captum_netinv.inversion.network.distillation`) reads the same batch.
    """

    terms: dict[str, Tensor]
    logits: Tensor
    seen: Tensor


def step_terms(
    generator: nn.Module,
    model: TargetModel,
    settings: InversionSettings,
    *,
    condition: ConditioningBatch,
    z: Tensor,
    norms: list[nn.Module],
    group: ProcessGroup | None = None,
    autocast: str | None = None,
    progress_fraction: float = 1.0,
    loss_terms: Callable[..., dict[str, Tensor]] = inversion_loss_terms,
    channels_last: bool = False,
) -> StepTerms:
    r"""
    Generates the batch of ``condition`` and ``z``, runs it through ``model`` augmented, and
    computes the loss terms of ``settings`` (global-batch terms under a process group).
    ``norms`` come from :func:`prior_layers`. ``progress_fraction`` (the step over the fit's
    steps) sets the crop of ``settings.centering`` (:func:`centering_crop`); 1: none.
    ``loss_terms`` computes the terms (a compiled
    :func:`~captum_netinv.inversion.losses.inversion_loss_terms`:
    :mod:`~captum_netinv.inversion.compilation`). ``channels_last`` gives the model its batch
    channels-last (:func:`~captum_netinv.inversion.target_model.prefers_channels_last`).
    """
    with autocast_context(z.device, autocast):
        images = generator(z, condition)
        model_inputs = model.to_model_space(images)
        with record_inputs(norms) as recorded:
            seen = augmented(
                centered(model_inputs, centering_crop(settings, progress_fraction)),
                settings.jitter,
                settings.zoom,
                flips=settings.flips,
                colour_shift=settings.colour_shift_for(model_inputs.shape[1]),
            )
            if channels_last:
                seen = seen.contiguous(memory_format=torch.channels_last)
            logits, features = model.logits_and_features(seen)
    if autocast is not None:  # forward passes in half precision, loss terms in float32
        images, model_inputs, logits, features = (
            tensor.float() for tensor in (images, model_inputs, logits, features)
        )
        recorded = [(layer, inputs.float()) for layer, inputs in recorded]
    norm_inputs = [(layer, x) for layer, x in recorded if isinstance(layer, _BatchNorm)]
    terms = loss_terms(
        logits,
        features,
        images,
        conditioning=condition,
        weights=rank_local_weights(settings.loss_weights, group),
        input_range=settings.input_range,
        batchnorm_inputs=norm_inputs,
        model_inputs=model_inputs,
        similarity=model.pairwise_cosine,
        feature_statistics=model.feature_statistics,
        recorded_inputs=recorded,
        latents=z,
    )
    if group is not None:  # the batch-level terms, on the global batch of all ranks
        terms.update(
            global_batch_terms(
                features, norm_inputs, settings.loss_weights, group, model.pairwise_cosine
            )
        )
    return StepTerms(terms=terms, logits=logits, seen=seen)


def centering_crop(settings: InversionSettings, progress_fraction: float) -> float:
    r"""
    The side of the central crop the model sees at ``progress_fraction`` of a fit (the step
    over the fit's steps), relative to the image's: ``0.5 + 0.5 * min(1, progress_fraction /
    settings.centering)``, growing linearly from 1/2 to 1 over the first ``centering`` of the
    steps; 1 (the whole image) where ``settings.centering`` is 0.
    """
    if settings.centering <= 0:
        return 1.0
    return 0.5 + 0.5 * min(1.0, progress_fraction / settings.centering)


def _step(
    parts: StepParts,
    *,
    model: TargetModel,
    settings: InversionSettings,
    optimizer: torch.optim.Optimizer,
    condition: ConditioningBatch,
    z: Tensor,
    step: int,
    norms: list[nn.Module],
    group: ProcessGroup | None = None,
    autocast: str | None = None,
    scaler: torch.amp.GradScaler | None = None,
    progress_fraction: float = 1.0,
    channels_last: bool = False,
) -> dict[str, float]:
    terms, logits, _ = step_terms(
        parts.generator,
        model,
        settings,
        condition=condition,
        z=z,
        norms=norms,
        group=group,
        autocast=autocast,
        progress_fraction=progress_fraction,
        loss_terms=parts.loss_terms,
        channels_last=channels_last,
    )
    loss = weighted_sum(terms, settings.loss_weights)
    optimizer.zero_grad(set_to_none=True)
    # the model's parameters are frozen for the fit (frozen_parameters): the generator's alone
    # receive gradients; under DDP the backward pass also averages them over the ranks
    (loss if scaler is None else scaler.scale(loss)).backward()
    hit_rate = (logits.argmax(dim=1) == condition.targets).float().mean()
    stacked = torch.stack([*(v.detach().float() for v in [*terms.values(), loss]), hit_rate])
    # the step's one host synchronisation: every value at once (averaged over the ranks)
    values = dict(zip([*terms, "loss", "hit_rate"], mean_over_ranks(stacked, group), strict=True))
    for name in terms:
        if not math.isfinite(values[name]):
            optimizer.zero_grad(set_to_none=True)
            raise NonFiniteLossError(
                f"loss term {name!r} became {values[name]} at step {step}; the fit stopped "
                f"with the generator of step {step - 1}",
                step,
            )
    if scaler is None:
        optimizer.step()
    else:
        scaler.step(optimizer)
        scaler.update()
    return values


def _fit_step(
    model: TargetModel,
    settings: InversionSettings,
    optimizer: torch.optim.Optimizer,
    *,
    group: ProcessGroup | None,
    autocast: str | None,
    device: torch.device,
) -> Callable[..., dict[str, float]]:
    r""":func:`_step` with the arguments that stay the same over a fit bound: the prior layers
    (found once), a gradient scaler for float16, the model's memory format."""
    return partial(
        _step,
        model=model,
        settings=settings,
        optimizer=optimizer,
        norms=prior_layers(model, settings),
        group=group,
        autocast=autocast,
        scaler=torch.amp.GradScaler(device.type) if autocast == "float16" else None,
        channels_last=prefers_channels_last(model.forward_func),
    )


def _first_compiled_step(
    run: Callable[[StepParts], dict[str, float]],
    parts: StepParts,
    *,
    generator: nn.Module,
    device: torch.device,
    mode: str,
) -> tuple[dict[str, float], StepParts]:
    r"""Runs the fit's first step with the compiled ``parts``; where compilation fails, warns,
    restores the random state and the generator's buffers, and runs it eagerly. Returns the
    step's values and the parts the fit goes on with."""
    with restorable_step(generator, device) as restore:
        try:
            return run(parts), parts
        except (NonFiniteLossError, KeyboardInterrupt):
            raise
        except Exception as error:  # any compiler or backend failure
            restore()
            warn_compile_failed(error, mode, stacklevel=6)
            eager = eager_parts(generator)
            return run(eager), eager


def prior_layers(model: TargetModel, settings: InversionSettings) -> list[nn.Module]:
    r"""The layers whose inputs the feature priors read (the BatchNorm layers, the reference
    statistics' layers), found once for the whole fit; empty where both priors are off."""
    layers: list[nn.Module] = []
    if settings.loss_weights["batchnorm_statistics"] > 0:
        layers += batchnorm_layers(model.forward_func)
    statistics = model.feature_statistics
    if statistics is not None and settings.loss_weights["feature_statistics"] > 0:
        layers += [layer for layer in statistics.layers if all(layer is not x for x in layers)]
    return layers


def draw_batch(
    settings: InversionSettings,
    *,
    batch_size: int,
    num_classes: int,
    rng: torch.Generator,
    device: torch.device,
    offset: int = 0,
) -> tuple[ConditioningBatch, Tensor]:
    r"""One step's conditioning and latent codes of the global batch's rows from ``offset``,
    drawn from ``rng`` and moved to ``device``."""
    targets = balanced_targets(batch_size, num_classes, rng, offset)
    condition = settings.draw_condition(targets, num_classes, rng)
    z = latent_codes(batch_size, settings.latent_dim, rng)
    return condition_to_device(condition, device), to_device(z, device)


def _record(values: dict[str, float], *, history: History, bar: tqdm) -> None:
    r"""Appends a step's ``values`` to ``history`` and shows them on the progress ``bar``."""
    for key, number in values.items():
        history.setdefault(key, []).append(number)
    bar.update()
    bar.set_postfix(loss=f"{values['loss']:.3f}", hit=f"{values['hit_rate']:.2f}")


def _asks_to_stop(
    callback: StepCallback | None,
    step: int,
    values: dict[str, float],
    group: ProcessGroup | None,
    device: torch.device,
) -> bool:
    r"""Whether ``callback`` returned True, on any rank of ``group`` (all ranks stop together)."""
    if callback is None:
        return False
    return agree(bool(callback(step, values)), group, device)


def train_generator(
    generator: nn.Module,
    model: TargetModel,
    settings: InversionSettings,
    *,
    num_classes: int,
    optimizer: torch.optim.Optimizer,
    rng: torch.Generator,
    steps: int,
    batch_size: int,
    history: History,
    start: int = 0,
    progress: bool = True,
    callback: StepCallback | None = None,
    checkpoint: Callable[[int], None] | None = None,
    checkpoint_every: int = 100,
    desc: str = "NetworkInversion fit",
    process_group: ProcessGroup | None = None,
    autocast: str | None = None,
    compile: str | None = None,  # noqa: A002 (the fit argument's name)
) -> int:
    r"""
    Trains ``generator`` from step ``start`` to ``steps`` through the frozen model (in eval
    mode, parameters frozen, flags restored after); under a process group, in DDP. For a
    convolutional model (:func:`~captum_netinv.inversion.target_model.prefers_channels_last`)
    the batches and ``generator`` are channels-last during the fit.

    Args:
        generator (nn.Module): The generator, trained in place.
        model (TargetModel): The inverted model and its feature layer.
        settings (InversionSettings): Conditioning, loss weights, jitter, range.
        num_classes (int): The model's number of classes.
        optimizer (torch.optim.Optimizer): Optimizer of the generator's parameters.
        rng (torch.Generator): Source of the targets, conditioning and latent codes.
        steps (int): Step the fit ends at.
        batch_size (int): Generated samples per step (all ranks'), classes balanced.
        history (History): Appended with each step's values (see :data:`History`).
        start (int, optional): Steps already done. Default: 0
        progress (bool, optional): Show a progress bar. Default: True
        callback (StepCallback, optional): Called after each step; True stops the fit.
        checkpoint (Callable, optional): Called with the step number every
                    ``checkpoint_every`` steps, at the last step and before a stop.
        checkpoint_every (int, optional): Steps between checkpoints. Default: 100
        desc (str, optional): The progress bar's label. Default: ``"NetworkInversion fit"``
        process_group (ProcessGroup, optional): Ranks training one generator in DDP, each
                    with its share of the batch and its own ``rng``, as
                    :func:`~captum_netinv.inversion.distributed.fit_group` resolved it (used as
                    given: a group of one rank is not turned into None here). Default: None
        autocast (str, optional): ``"bfloat16"`` or ``"float16"`` forward passes. Default: None
        compile (str, optional): A ``torch.compile`` mode for the generator and the loss terms
                    (:mod:`~captum_netinv.inversion.compilation`). Default: None (eager)

    Returns:
        *int*: the number of steps done when the fit ended.

    Raises:
        NonFiniteLossError: when a loss term is NaN or infinite; the generator keeps the
                    weights of the step before.
    """
    device = model_device(model.forward_func)
    group = process_group
    check_autocast(autocast)
    share, rank = local_batch_size(batch_size, group), rank_of(group)
    done = start
    generator.train()
    with (
        eval_mode(model.forward_func),
        frozen_parameters(model.forward_func, generator),
        channels_last(generator, enabled=prefers_channels_last(model.forward_func)),
        wrap_generator(generator, group) as runner,
        progress_bar(total=steps, initial=start, desc=desc, enabled=progress and not rank) as bar,
    ):
        parts = eager_parts(runner) if compile is None else compiled_parts(runner, compile)
        fixed = _fit_step(model, settings, optimizer, group=group, autocast=autocast, device=device)
        for step in range(start + 1, steps + 1):
            condition, z = draw_batch(
                settings,
                batch_size=share,
                num_classes=num_classes,
                rng=rng,
                device=device,
                offset=rank * share,
            )
            run = partial(
                fixed, condition=condition, z=z, step=step, progress_fraction=step / steps
            )
            if compile is not None and step == start + 1:
                values, parts = _first_compiled_step(
                    run, parts, generator=runner, device=device, mode=compile
                )
            else:
                values = run(parts)
            _record(values, history=history, bar=bar)
            done = step
            stop = _asks_to_stop(callback, step, values, group, device)
            if checkpoint is not None and (stop or step % checkpoint_every == 0 or step == steps):
                checkpoint(step)
            if stop:
                break
    return done


def check_trainable_settings(settings: InversionSettings, custom_generator: bool) -> None:
    r"""
    Refuses ``settings`` that train nothing (every loss weight 0); warns of settings the fit
    cannot use: ``dropout`` with a custom generator, a KL weight without soft vectors. Values
    equal to the preset's are the user's choice only in name, so they never warn.
    """
    weights = settings.loss_weights
    if not any(weight > 0 for weight in weights.values()):
        raise ValueError(
            "`loss_weights` are all 0: nothing would be trained; keep `cross_entropy` (or "
            "`kl_divergence` with vector conditioning) above 0"
        )
    preset = PRESETS.get(settings.preset)
    baseline = preset.settings() if preset is not None else InversionSettings()
    if custom_generator and settings.dropout != baseline.dropout:
        warnings.warn(
            f"`dropout` ({settings.dropout}) is a setting of the default generator and is "
            "ignored with a custom `generator`: put dropout layers in your generator",
            stacklevel=5,
        )
    kl_weight = weights.get("kl_divergence", 0.0)
    changed = kl_weight != baseline.loss_weights.get("kl_divergence")
    example = settings.draw_condition(torch.arange(2), 2, torch.Generator().manual_seed(0))
    if example.vectors is None and kl_weight > 0 and changed:
        warnings.warn(
            f"`loss_weights['kl_divergence']` ({kl_weight}) is ignored with "
            f"conditioning={settings.conditioning!r}: the KL term compares the model's output "
            "with soft vectors, which this conditioning does not draw",
            stacklevel=5,
        )
