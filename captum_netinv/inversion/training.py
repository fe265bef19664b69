"""The fit loop of network inversion: the generator trained through the frozen model with Adam.

:func:`train_generator` runs steps with explicit arguments (no inversion object): it draws the
conditioning and codes from ``rng``, sums the loss terms and reports each step to its callbacks.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from captum_netinv._utils import eval_mode, model_device
from captum_netinv.inversion.conditioning import ConditioningBatch
from captum_netinv.inversion.losses import (
    batchnorm_layers,
    inversion_loss_terms,
    record_batchnorm_inputs,
    weighted_sum,
)
from captum_netinv.inversion.presets import PRESETS
from captum_netinv.inversion.sampling import latent_codes
from captum_netinv.inversion.settings import InversionSettings
from captum_netinv.inversion.target_model import TargetModel

__all__ = [
    "History",
    "NonFiniteLossError",
    "StepCallback",
    "balanced_targets",
    "check_trainable_settings",
    "jittered",
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


def balanced_targets(batch_size: int, num_classes: int, rng: torch.Generator) -> Tensor:
    r"""A shuffled batch of classes, each class appearing ``batch_size // num_classes`` times
    or once more."""
    return torch.randperm(batch_size, generator=rng) % num_classes


def jittered(inputs: Tensor, jitter: int) -> Tensor:
    r"""
    ``inputs`` rolled by one random offset of at most ``jitter`` pixels along height and width
    (DeepInversion's jitter), drawn from torch's global random generator: a classifier that
    sees its inputs at random offsets cannot be fooled by pixel-exact patterns, so the
    generator learns shapes that other models recognize too.

    Args:
        inputs (Tensor): ``(B, C, H, W)`` batch.
        jitter (int): Largest shift in pixels; 0 returns ``inputs`` unchanged.

    Returns:
        *Tensor* of the same shape.
    """
    if jitter == 0:
        return inputs
    shift_y, shift_x = (int(v) for v in torch.randint(-jitter, jitter + 1, (2,)))
    return torch.roll(inputs, shifts=(shift_y, shift_x), dims=(-2, -1))


def _loss_terms(
    generator: nn.Module,
    model: TargetModel,
    settings: InversionSettings,
    condition: ConditioningBatch,
    z: Tensor,
    norms: list[nn.modules.batchnorm._BatchNorm],
) -> tuple[dict[str, Tensor], Tensor]:
    images = generator(z, condition)
    model_inputs = model.to_model_space(images)
    with record_batchnorm_inputs(norms) as norm_inputs:
        logits, features = model.logits_and_features(jittered(model_inputs, settings.jitter))
    terms = inversion_loss_terms(
        logits,
        features,
        images,
        condition,
        settings.loss_weights,
        settings.input_range,
        norm_inputs,
        model_inputs,
    )
    return terms, logits


def _step(
    generator: nn.Module,
    model: TargetModel,
    settings: InversionSettings,
    optimizer: torch.optim.Optimizer,
    condition: ConditioningBatch,
    z: Tensor,
    step: int,
    norms: list[nn.modules.batchnorm._BatchNorm],
) -> dict[str, float]:
    terms, logits = _loss_terms(generator, model, settings, condition, z, norms)
    for name, value in terms.items():
        if not bool(torch.isfinite(value)):
            raise NonFiniteLossError(
                f"loss term {name!r} became {float(value)} at step {step}; the fit stopped "
                f"with the generator of step {step - 1}",
                step,
            )
    loss = weighted_sum(terms, settings.loss_weights)
    parameters = [p for p in generator.parameters() if p.requires_grad]
    # gradients of the generator alone: the frozen model's parameters never receive any
    gradients = torch.autograd.grad(loss, parameters, allow_unused=True)
    optimizer.zero_grad(set_to_none=True)
    for parameter, gradient in zip(parameters, gradients, strict=True):
        parameter.grad = gradient
    optimizer.step()
    values = {name: float(value.detach()) for name, value in terms.items()}
    values["loss"] = float(loss.detach())
    values["hit_rate"] = float((logits.argmax(dim=1) == condition.targets).float().mean())
    return values


def train_generator(
    generator: nn.Module,
    model: TargetModel,
    settings: InversionSettings,
    num_classes: int,
    optimizer: torch.optim.Optimizer,
    rng: torch.Generator,
    *,
    steps: int,
    batch_size: int,
    history: History,
    start: int = 0,
    progress: bool = True,
    callback: StepCallback | None = None,
    checkpoint: Callable[[int], None] | None = None,
    checkpoint_every: int = 100,
    desc: str = "NetworkInversion fit",
) -> int:
    r"""
    Trains ``generator`` from step ``start`` to ``steps`` through the frozen model (in eval
    mode for the whole loop, its flags restored after).

    Args:
        generator (nn.Module): The generator, trained in place.
        model (TargetModel): The inverted model and its feature layer.
        settings (InversionSettings): Conditioning, loss weights, jitter, range.
        num_classes (int): The model's number of classes.
        optimizer (torch.optim.Optimizer): Optimizer of the generator's parameters.
        rng (torch.Generator): Source of the targets, conditioning and latent codes.
        steps (int): Step the fit ends at.
        batch_size (int): Generated samples per step, classes balanced.
        history (History): Appended with each step's values (see :data:`History`).
        start (int, optional): Steps already done. Default: 0
        progress (bool, optional): Show a progress bar. Default: True
        callback (StepCallback, optional): Called after each step; True stops the fit.
        checkpoint (Callable, optional): Called with the step number every
                    ``checkpoint_every`` steps, at the last step and before a stop.
        checkpoint_every (int, optional): Steps between checkpoints. Default: 100
        desc (str, optional): The progress bar's label. Default: ``"NetworkInversion fit"``

    Returns:
        *int*: the number of steps done when the fit ended.

    Raises:
        NonFiniteLossError: when a loss term is NaN or infinite; the generator keeps the
                    weights of the step before.
    """
    device = model_device(model.forward_func)
    # the layers whose inputs the BatchNorm prior reads, found once for the whole fit
    norms = (
        batchnorm_layers(model.forward_func)
        if settings.loss_weights["batchnorm_statistics"] > 0
        else []
    )
    done = start
    generator.train()
    with (
        eval_mode(model.forward_func),
        tqdm(total=steps, initial=start, desc=desc, disable=not progress) as bar,
    ):
        for step in range(start + 1, steps + 1):
            targets = balanced_targets(batch_size, num_classes, rng)
            condition = settings.draw_condition(targets, num_classes, rng).to(device)
            z = latent_codes(batch_size, settings.latent_dim, rng).to(device)
            values = _step(generator, model, settings, optimizer, condition, z, step, norms)
            for key, number in values.items():
                history.setdefault(key, []).append(number)
            done = step
            bar.update()
            bar.set_postfix(loss=f"{values['loss']:.3f}", hit=f"{values['hit_rate']:.2f}")
            stop = bool(callback(step, values)) if callback is not None else False
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
