"""A student in the loop: a classifier distilled from the frozen model on generated batches alone.

:func:`distill_student` trains the generator on its usual loss terms plus a term that seeks the
student's disagreement with the model, and the student on the model's soft outputs; no real data.
"""

from __future__ import annotations

import math
import numbers
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from captum_netinv._progress import progress_bar
from captum_netinv._utils import (
    check_positive_int,
    check_positive_number,
    check_seed,
    eval_mode,
    excerpt,
    model_device,
    modules_of,
)
from captum_netinv.inversion.conditioning import ConditioningBatch
from captum_netinv.inversion.distributed import frozen_parameters
from captum_netinv.inversion.sampling import rng_devices
from captum_netinv.inversion.settings import DEFAULT_BATCH_SIZE, DEFAULT_LR, InversionSettings
from captum_netinv.inversion.target_model import TargetModel
from captum_netinv.inversion.training import (
    History,
    NonFiniteLossError,
    StepCallback,
    draw_batch,
    generator_optimizer,
    prior_layers,
    step_terms,
    weighted_sum,
)

if TYPE_CHECKING:
    from captum_netinv.inversion.network.network_inversion import NetworkInversion

__all__ = [
    "DEFAULT_DISAGREEMENT_WEIGHT",
    "DEFAULT_STUDENT_LR",
    "DEFAULT_TEMPERATURE",
    "DistillationResult",
    "check_student",
    "distill_inversion",
    "distill_student",
    "distillation_loss",
    "jensen_shannon",
]

#: Adam learning rate of the student.
DEFAULT_STUDENT_LR = 1e-3
#: Weight of the generator's disagreement term (Adaptive DeepInversion's R_compete).
DEFAULT_DISAGREEMENT_WEIGHT = 1.0
#: Temperature of the softened outputs in both the disagreement and the distillation loss.
DEFAULT_TEMPERATURE = 3.0


@dataclass
class DistillationResult:
    r"""
    What :func:`distill_student` returns.

    Attributes:
        student (nn.Module): The student, trained in place (the object passed in).
        history (dict[str, list[float]]): One value per round: ``"student_loss"`` (the
                    distillation loss of the round's student steps, averaged),
                    ``"disagreement"`` (mean Jensen-Shannon divergence of the softened outputs
                    of student and model on the round's generated batch, before the student's
                    steps) and ``"agreement"`` (the fraction of that batch on which their
                    argmax classes agree).
        seconds (float): Wall-clock seconds of the rounds.
        steps (int): Rounds done (fewer than asked when the callback stopped them).
    """

    student: nn.Module
    history: History
    seconds: float
    steps: int


def jensen_shannon(student_logits: Tensor, model_logits: Tensor, temperature: float) -> Tensor:
    r"""
    Per sample, the Jensen-Shannon divergence (in nats, between 0 and log 2) of the softmax
    distributions of ``student_logits / temperature`` and ``model_logits / temperature``.

    Args:
        student_logits (Tensor): ``(B, K)`` the student's outputs.
        model_logits (Tensor): ``(B, K)`` the model's outputs.
        temperature (float): Softening of both distributions (> 0).

    Returns:
        *Tensor* of shape ``(B,)``.

    Examples::

        >>> logits = torch.tensor([[2.0, 0.0]])
        >>> jensen_shannon(logits, logits, 3.0)
        tensor([0.])
    """
    log_student = F.log_softmax(student_logits / temperature, dim=1)
    log_model = F.log_softmax(model_logits / temperature, dim=1)
    log_mean = torch.logsumexp(torch.stack([log_student, log_model]), dim=0) - math.log(2.0)

    def kl_to_mean(log_p: Tensor) -> Tensor:
        return (log_p.exp() * (log_p - log_mean)).sum(dim=1)

    return (kl_to_mean(log_student) + kl_to_mean(log_model)) / 2


def distillation_loss(student_logits: Tensor, model_logits: Tensor, temperature: float) -> Tensor:
    r"""
    Hinton's distillation loss: the batch mean of ``KL(model || student)`` of the softmax
    distributions at ``temperature``, times ``temperature ** 2`` (so that its gradients keep
    their size across temperatures).

    Args:
        student_logits (Tensor): ``(B, K)`` the student's outputs.
        model_logits (Tensor): ``(B, K)`` the model's outputs (targets: no gradient flows).
        temperature (float): Softening of both distributions (> 0).

    Returns:
        *Tensor*, a scalar.
    """
    log_student = F.log_softmax(student_logits / temperature, dim=1)
    log_model = F.log_softmax(model_logits.detach() / temperature, dim=1)
    kl = F.kl_div(log_student, log_model, reduction="batchmean", log_target=True)
    return kl * temperature**2


def check_student(student: object, model: TargetModel, example: Tensor, num_classes: int) -> None:
    r"""
    Refuses a ``student`` that is no ``nn.Module`` (``TypeError``), shares parameters with the
    model, or does not map the model-space ``example`` batch to ``(B, num_classes)`` outputs
    (``ValueError``); each error names ``student``.
    """
    if not isinstance(student, nn.Module):
        raise TypeError(f"`student` must be an nn.Module, got {excerpt(student)}")
    own = {id(parameter) for parameter in student.parameters()}
    if not own:
        raise ValueError("`student` has no parameters: there is nothing to train")
    model_parameters = (p for module in modules_of(model.forward_func) for p in module.parameters())
    if any(id(parameter) in own for parameter in model_parameters):
        raise ValueError(
            "`student` shares parameters with the model: the model stays frozen, so pass a "
            "separate network"
        )
    with torch.no_grad(), eval_mode(student):
        try:
            output = student(example)
        except (RuntimeError, ValueError, TypeError, IndexError) as error:
            raise ValueError(
                f"`student` fails on a batch of the model's inputs, shape "
                f"{tuple(example.shape)}: {excerpt(str(error), 300)}"
            ) from error
    expected = (len(example), num_classes)
    if not isinstance(output, Tensor) or tuple(output.shape) != expected:
        shape = tuple(output.shape) if isinstance(output, Tensor) else type(output).__name__
        raise ValueError(
            f"`student` must return (batch, num_classes) = {expected} outputs, as the model "
            f"does, got {shape}"
        )


def _check_non_negative(value: object, name: str, *, integer: bool = False) -> float:
    r"""``value`` if it is a finite number >= 0 (an int when ``integer``), else raises naming
    ``name``: a ``TypeError`` for another type, a ``ValueError`` for a negative value."""
    expected = "an int >= 0" if integer else "a number >= 0"
    kinds = (numbers.Integral,) if integer else (numbers.Real,)
    if isinstance(value, (bool, Tensor)) or not isinstance(value, kinds):
        raise TypeError(f"`{name}` must be {expected}, got {excerpt(value)}")
    if not (math.isfinite(float(value)) and float(value) >= 0):
        raise ValueError(f"`{name}` must be {expected}, got {excerpt(value)}")
    return float(value)


def _check_schedule(
    *,
    steps: int,
    batch_size: int,
    lr: float,
    student_lr: float,
    student_steps: int,
    disagreement_weight: float,
    temperature: float,
    warmup_steps: int,
) -> None:
    r"""Refuses each bad argument of :func:`distill_student`, naming it."""
    check_positive_int(steps, "steps")
    if check_positive_int(batch_size, "batch_size") < 2:
        raise ValueError(f"`batch_size` must be >= 2 (pairwise terms), got {batch_size}")
    check_positive_number(lr, "lr")
    check_positive_number(student_lr, "student_lr")
    check_positive_int(student_steps, "student_steps")
    check_positive_number(temperature, "temperature")
    _check_non_negative(disagreement_weight, "disagreement_weight")
    _check_non_negative(warmup_steps, "warmup_steps", integer=True)


def _record(values: dict[str, float], history: History) -> None:
    for key, number in values.items():
        history.setdefault(key, []).append(number)


def _check_finite(values: dict[str, float], step: int) -> None:
    r"""Raises :class:`NonFiniteLossError` when a value of ``step`` is NaN or infinite."""
    for name, number in values.items():
        if not math.isfinite(number):
            raise NonFiniteLossError(
                f"{name!r} became {number} at distillation step {step}; the generator and "
                f"the student keep the weights of step {step - 1}",
                step,
            )


def _generator_step(
    student: nn.Module,
    generator: nn.Module,
    model: TargetModel,
    settings: InversionSettings,
    *,
    optimizer: torch.optim.Optimizer,
    batch: tuple[ConditioningBatch, Tensor],
    norms: list[nn.Module],
    temperature: float,
    disagreement_weight: float,
    agreeing_only: bool,
    step: int,
) -> tuple[Tensor, Tensor, dict[str, float]]:
    r"""
    One step of the generator on its loss terms minus ``disagreement_weight`` times the
    student's Jensen-Shannon divergence from the model (on the samples where their classes
    agree, when ``agreeing_only``); the batch the model saw and its logits, detached, and the
    step's values (each loss term, ``"loss"``, ``"hit_rate"``, ``"disagreement"``,
    ``"agreement"``).
    """
    condition, z = batch
    terms, logits, seen = step_terms(
        generator, model, settings, condition=condition, z=z, norms=norms
    )
    with eval_mode(student):  # the student's answer, as it would classify: no dropout
        student_logits = student(seen)
    divergence = jensen_shannon(student_logits, logits, temperature)
    agreeing = (student_logits.argmax(dim=1) == logits.argmax(dim=1)).float()
    inversion_loss = weighted_sum(terms, settings.loss_weights)
    loss = inversion_loss
    if disagreement_weight > 0:
        sought = divergence * agreeing if agreeing_only else divergence
        loss = loss - disagreement_weight * sought.mean()
    optimizer.zero_grad(set_to_none=True)
    # the student's parameters are left alone: only the generator's receive gradients
    loss.backward(inputs=[p for p in generator.parameters() if p.requires_grad])
    hit_rate = (logits.argmax(dim=1) == condition.targets).float().mean()
    stacked = torch.stack(
        [
            *(term.detach().float() for term in terms.values()),
            inversion_loss.detach(),
            hit_rate,
            divergence.detach().mean(),
            agreeing.mean(),
        ]
    )
    names = [*terms, "loss", "hit_rate", "disagreement", "agreement"]
    values = dict(zip(names, stacked.tolist(), strict=True))
    if not all(math.isfinite(number) for number in values.values()):
        optimizer.zero_grad(set_to_none=True)
        _check_finite(values, step)
    optimizer.step()
    return seen.detach(), logits.detach(), values


def _student_step(
    student: nn.Module,
    optimizer: torch.optim.Optimizer,
    *,
    inputs: Tensor,
    model_logits: Tensor,
    temperature: float,
) -> Tensor:
    r"""One step of the student on :func:`distillation_loss` of ``inputs``; its loss."""
    loss = distillation_loss(student(inputs), model_logits, temperature)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()


def _book(
    values: dict[str, float],
    *,
    losses: list[Tensor],
    step: int,
    record: History,
    history: History | None,
    bar: Any,
) -> None:
    r"""A round's bookkeeping: the student's mean loss into ``values`` (checked finite), the
    student's values into ``record``, the generator's into ``history``, the progress bar."""
    values["student_loss"] = torch.stack(losses).mean().item()
    _check_finite(values, step)
    for key in ("student_loss", "disagreement", "agreement"):
        record.setdefault(key, []).append(values[key])
    if history is not None:
        _record({k: v for k, v in values.items() if k not in record}, history)
    bar.update()
    bar.set_postfix(student=f"{values['student_loss']:.3f}", agree=f"{values['agreement']:.2f}")


def _student_round(
    student: nn.Module,
    optimizer: torch.optim.Optimizer,
    generator: nn.Module,
    model: TargetModel,
    settings: InversionSettings,
    *,
    first: tuple[Tensor, Tensor],
    fresh_batch: Callable[[], tuple[ConditioningBatch, Tensor]],
    norms: list[nn.Module],
    student_steps: int,
    temperature: float,
) -> list[Tensor]:
    r"""The student's steps of a round: on the round's batch ``first`` (inputs, model logits),
    then on fresh batches of the generator; their losses."""
    seen, logits = first
    losses = []
    for student_step in range(student_steps):
        if student_step > 0:
            with torch.no_grad():
                condition, z = fresh_batch()
                _, logits, seen = step_terms(
                    generator, model, settings, condition=condition, z=z, norms=norms
                )
        losses.append(
            _student_step(
                student, optimizer, inputs=seen, model_logits=logits, temperature=temperature
            )
        )
    return losses


def _rounds(
    student: nn.Module,
    generator: nn.Module,
    model: TargetModel,
    settings: InversionSettings,
    *,
    optimizers: tuple[torch.optim.Optimizer, torch.optim.Optimizer],
    fresh_batch: Callable[[], tuple[ConditioningBatch, Tensor]],
    norms: list[nn.Module],
    schedule: tuple[int, int, int],
    disagreement: tuple[float, float, bool],
    record: History,
    history: History | None,
    bar: Any,
    callback: StepCallback | None,
) -> int:
    r"""The rounds of :func:`distill_student` (``schedule``: rounds, student steps per round,
    warm-up rounds; ``disagreement``: its weight, the temperature, agreeing samples only);
    the number of rounds done."""
    steps, student_steps, warmup_steps = schedule
    weight, temperature, agreeing_only = disagreement
    done = 0
    for step in range(1, steps + 1):
        seen, logits, values = _generator_step(
            student,
            generator,
            model,
            settings,
            optimizer=optimizers[0],
            batch=fresh_batch(),
            norms=norms,
            temperature=temperature,
            disagreement_weight=weight if step > warmup_steps else 0.0,
            agreeing_only=agreeing_only,
            step=step,
        )
        student.train()
        losses = _student_round(
            student,
            optimizers[1],
            generator,
            model,
            settings,
            first=(seen, logits),
            fresh_batch=fresh_batch,
            norms=norms,
            student_steps=student_steps,
            temperature=temperature,
        )
        _book(values, losses=losses, step=step, record=record, history=history, bar=bar)
        done = step
        if callback is not None and callback(step, values):
            break
    return done


def distill_student(
    student: nn.Module,
    generator: nn.Module,
    model: TargetModel,
    settings: InversionSettings,
    *,
    num_classes: int,
    rng: torch.Generator,
    steps: int,
    batch_size: int,
    lr: float,
    student_lr: float = DEFAULT_STUDENT_LR,
    student_steps: int = 1,
    disagreement_weight: float = DEFAULT_DISAGREEMENT_WEIGHT,
    temperature: float = DEFAULT_TEMPERATURE,
    warmup_steps: int = 0,
    agreeing_only: bool = True,
    history: History | None = None,
    progress: bool = True,
    callback: StepCallback | None = None,
    desc: str = "NetworkInversion distill",
) -> DistillationResult:
    r"""
    Trains ``student`` data-free beside ``generator``, through the frozen model. Each round
    the generator takes one Adam step on the loss terms of ``settings`` minus
    ``disagreement_weight`` times :func:`jensen_shannon` of the student's and the model's
    softened outputs (on samples both classify alike when ``agreeing_only``; none in the first
    ``warmup_steps`` rounds); then the student takes ``student_steps`` Adam steps on
    :func:`distillation_loss`, the first on the round's detached batch, the others on fresh ones.

    Args:
        student (nn.Module): Trained in place; ``(B, num_classes)`` logits of model inputs.
        generator, model, settings, num_classes, rng, steps, batch_size, lr: As for
                    :func:`~captum_netinv.inversion.training.train_generator` (the generator
                    is trained in place; ``steps`` counts rounds).
        student_lr (float, optional): The student's Adam learning rate. Default: 1e-3
        student_steps (int, optional): Student steps per round. Default: 1
        disagreement_weight (float, optional): 0: DAFL-like, no competition. Default: 1.0
        temperature (float, optional): Softening in both losses. Default: 3.0
        warmup_steps (int, optional): Rounds without the disagreement term. Default: 0
        agreeing_only (bool, optional): See above. Default: True
        history, progress, callback, desc (optional): As in
                    :func:`~captum_netinv.inversion.training.train_generator`.

    Returns:
        :class:`DistillationResult`.
    """
    _check_schedule(
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        student_lr=student_lr,
        student_steps=student_steps,
        disagreement_weight=disagreement_weight,
        temperature=temperature,
        warmup_steps=warmup_steps,
    )
    device = model_device(model.forward_func)
    generator_adam = generator_optimizer(generator, lr=lr)
    student_adam = torch.optim.Adam(student.parameters(), lr=student_lr)
    norms = prior_layers(model, settings)
    record: History = {}
    started = time.perf_counter()

    fresh_batch = partial(
        draw_batch, settings, batch_size=batch_size, num_classes=num_classes, rng=rng, device=device
    )
    generator.train()
    student_training = student.training
    with (
        eval_mode(model.forward_func),
        frozen_parameters(model.forward_func, keep=generator),
        progress_bar(total=steps, desc=desc, enabled=progress) as bar,
    ):
        try:
            done = _rounds(
                student,
                generator,
                model,
                settings,
                optimizers=(generator_adam, student_adam),
                fresh_batch=fresh_batch,
                norms=norms,
                schedule=(steps, student_steps, warmup_steps),
                disagreement=(disagreement_weight, temperature, agreeing_only),
                record=record,
                history=history,
                bar=bar,
                callback=callback,
            )
        finally:
            student.train(student_training)
    return DistillationResult(
        student=student, history=record, seconds=time.perf_counter() - started, steps=done
    )


def distill_inversion(
    inversion: NetworkInversion,
    student: nn.Module,
    *,
    steps: int = 2000,
    batch_size: int = DEFAULT_BATCH_SIZE,
    lr: float = DEFAULT_LR,
    seed: int | None = None,
    progress: bool = True,
    **schedule: Any,
) -> DistillationResult:
    r"""
    :meth:`NetworkInversion.distill <captum_netinv.NetworkInversion.distill>`: checks
    ``student`` on a batch of the input shape, then runs :func:`distill_student` with the
    inversion's generator (fitted or not: it keeps training), model and settings, inside a
    forked random state seeded by ``seed``; the generator's rounds are appended to the
    inversion's ``history`` and ``steps_trained``.

    Args:
        inversion (NetworkInversion): The inversion whose generator trains beside the student.
        student (nn.Module): The network to train, in place, on the model's device.
        steps (int, optional): Rounds. Default: 2000
        batch_size (int, optional): Generated samples per round. Default: 64
        lr (float, optional): The generator's Adam learning rate. Default: 2e-3
        seed (int, optional): Seed of the rounds' draws; a random one when None.
        progress (bool, optional): Show a progress bar. Default: True
        **schedule: ``student_lr``, ``student_steps``, ``disagreement_weight``,
                    ``temperature``, ``warmup_steps``, ``agreeing_only``, ``callback`` of
                    :func:`distill_student`.

    Returns:
        :class:`DistillationResult`.
    """
    model = inversion._ensure_input_shape(None, None)
    assert inversion.input_shape is not None and inversion.num_classes is not None
    example = torch.zeros(2, *inversion.input_shape, device=inversion.device)
    check_student(student, model, example, inversion.num_classes)
    seed = check_seed(seed)
    with torch.random.fork_rng(devices=rng_devices(inversion.device)):
        rng = torch.Generator()
        rng.manual_seed(random.SystemRandom().randrange(2**31) if seed is None else seed)
        torch.manual_seed(rng.initial_seed())  # dropout and augmentation draws
        result = distill_student(
            student,
            inversion._ensure_generator(),
            model,
            inversion.settings,
            num_classes=inversion.num_classes,
            rng=rng,
            steps=steps,
            batch_size=batch_size,
            lr=lr,
            history=inversion.history,
            progress=progress,
            desc="NetworkInversion distill",
            **schedule,
        )
    inversion.steps_trained += result.steps
    return result
