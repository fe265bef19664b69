"""NetworkInversion: a conditioned generator trained through a frozen classifier, as an attribution.

The class wires the conditioning, generator and loss modules beside it into Captum's attribution
API (fit, attribute, evaluate, save / load, TCAV concepts, counterfeits, plots).
"""

from __future__ import annotations

import os
import random
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from captum._utils.gradient import (
    _extract_device_ids,
    _forward_layer_distributed_eval,
    _gather_distributed_tensors,
)
from captum._utils.typing import TargetType
from captum.attr._utils.attribution import GradientAttribution, LayerAttribution
from captum.concept import Concept
from captum.log import log_usage
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset
from tqdm.auto import tqdm

from captum_netinv._utils import check_layer_in_model, check_positive_int, model_device
from captum_netinv.inversion.conditioning import (
    DEFAULT_VECTOR_MARGIN,
    DEFAULT_VECTOR_SCALE,
    ConditioningBatch,
    ConditioningMode,
    check_conditioning_mode,
    draw_conditioning,
)
from captum_netinv.inversion.generator import (
    DEFAULT_DROPOUT,
    ConditionedGenerator,
    check_input_shape,
    sampling_mode,
)
from captum_netinv.inversion.losses import (
    IMAGE_PRIORS,
    batchnorm_layers,
    inversion_loss_terms,
    record_batchnorm_inputs,
    resolve_loss_weights,
    weighted_sum,
    within_class_diversity,
)
from captum_netinv.visualization import (
    FigureAxes,
    FigureAxis,
    visualize_class_samples,
    visualize_training_curves,
)

#: Default training budget, chosen from benchmarks/bench_inversion.py (see RESULTS.md).
DEFAULT_STEPS = 2700
DEFAULT_BATCH_SIZE = 64
DEFAULT_LR = 2e-3
DEFAULT_LATENT_DIM = 64
DEFAULT_CONDITIONING: ConditioningMode = "vector"
DEFAULT_JITTER = 1
CHECKPOINT_FORMAT = "captum_netinv.NetworkInversion/1"
SAMPLE_BATCH_SIZE = 256


class NonFiniteLossError(ValueError):
    r"""A loss term became NaN or infinite during :meth:`NetworkInversion.fit`."""


@dataclass
class InversionEvaluation:
    r"""
    Quality of an inversion, measured on freshly generated samples.

    Attributes:
        hit_rate (float): Fraction of samples the model assigns to their target class.
        hit_rate_per_class (Tensor): ``(num_classes,)`` hit rate of each target class.
        mean_confidence (float): Mean softmax probability of the target class.
        confidence_per_class (Tensor): ``(num_classes,)`` mean target probability per class.
        diversity (float): Mean over classes of the within-class diversity.
        diversity_per_class (Tensor): ``(num_classes,)`` mean pairwise cosine distance between
                    the model's features (at the inversion's ``layer``) of a class's samples.
        verifier_hit_rate (float or None): Hit rate under ``verifier``, when one was given.
        verifier_hit_rate_per_class (Tensor or None): Its value per class.
    """

    hit_rate: float
    hit_rate_per_class: Tensor
    mean_confidence: float
    confidence_per_class: Tensor
    diversity: float
    diversity_per_class: Tensor
    verifier_hit_rate: float | None = None
    verifier_hit_rate_per_class: Tensor | None = None


def default_layer(forward_func: Callable) -> nn.Linear:
    r"""The last ``nn.Linear`` of ``forward_func``; its input feeds the diversity terms."""
    linears = (
        [m for m in forward_func.modules() if isinstance(m, nn.Linear)]
        if isinstance(forward_func, nn.Module)
        else []
    )
    if not linears:
        raise ValueError(
            "`layer` is None and the model has no nn.Linear to default to (or is not an "
            "nn.Module); pass the layer whose features the diversity terms should use"
        )
    return linears[-1]


def normalization_tensors(
    input_normalization: tuple[Sequence[float] | float, Sequence[float] | float] | None,
    channels: int,
) -> tuple[Tensor, Tensor] | None:
    r"""``(mean, std)`` as ``(1, C, 1, 1)`` tensors, or None without normalization."""
    if input_normalization is None:
        return None
    if not isinstance(input_normalization, (tuple, list)) or len(input_normalization) != 2:
        raise ValueError(
            f"`input_normalization` must be a (mean, std) pair, got {input_normalization!r}"
        )
    mean, std = (
        torch.as_tensor(value, dtype=torch.float32).reshape(-1) for value in input_normalization
    )
    for name, value in (("mean", mean), ("std", std)):
        if value.numel() not in (1, channels):
            raise ValueError(
                f"`input_normalization` {name} must have 1 or {channels} values, got "
                f"{value.numel()}"
            )
    if bool((std <= 0).any()):
        raise ValueError(f"`input_normalization` std must be > 0, got {std.tolist()}")
    shape = (1, -1, 1, 1)
    return mean.expand(channels).reshape(shape), std.expand(channels).reshape(shape)


def module_name(model: object, module: nn.Module) -> str | None:
    r"""Qualified name of ``module`` inside ``model``, or None where it cannot be named."""
    if isinstance(model, nn.Module):
        for name, candidate in model.named_modules():
            if candidate is module:
                return name
    return None


def model_fingerprint(
    model: object, input_shape: Sequence[int], num_classes: int
) -> dict[str, Any]:
    r"""What a checkpoint must match: input shape, class count, parameter names and shapes."""
    parameters = (
        [[name, list(p.shape)] for name, p in model.named_parameters()]
        if isinstance(model, nn.Module)
        else []
    )
    return {
        "input_shape": list(input_shape),
        "num_classes": int(num_classes),
        "parameters": parameters,
    }


def check_fingerprint(stored: Mapping[str, Any], current: Mapping[str, Any], path: str) -> None:
    r"""Refuses a checkpoint written for another model or input shape, saying what differs."""
    for key, what in (
        ("input_shape", "input shape"),
        ("num_classes", "number of classes"),
        ("parameters", "model parameters (names and shapes)"),
    ):
        if stored.get(key) != current.get(key):
            detail = f"{stored.get(key)} != {current.get(key)}" if key != "parameters" else "differ"
            raise ValueError(
                f"checkpoint {path!r} was written for another model or shape: its {what} "
                f"{detail}; load it with the model it was trained on"
            )


def targets_from(target: TargetType, n_samples: int | None, num_classes: int) -> Tensor:
    r"""
    The class of each sample to generate from Captum's target forms: an int (or scalar tensor)
    repeated ``n_samples`` times (default 16), or a list / 1-D tensor of ints, one sample each.
    """
    if target is None:
        raise ValueError("`target` is required: the class (or classes) to generate inputs for")
    if isinstance(target, tuple) or (
        isinstance(target, list) and target and isinstance(target[0], tuple)
    ):
        raise TypeError(
            f"`target` must be an int, a list of ints or a 1-D tensor of ints, got {target!r}: "
            "tuple targets index multi-dimensional outputs, the inverted model's output is "
            "(batch, num_classes)"
        )
    if isinstance(target, Tensor) and target.dim() == 0:
        target = int(target.item())
    if isinstance(target, int) and not isinstance(target, bool):
        count = check_positive_int(16 if n_samples is None else n_samples, "n_samples")
        targets = torch.full((count,), target, dtype=torch.long)
    else:
        targets = torch.as_tensor(target).reshape(-1)
        if targets.dtype.is_floating_point or targets.dtype == torch.bool:
            raise TypeError(f"`target` must hold ints, got dtype {targets.dtype}")
        if n_samples is not None and n_samples != len(targets):
            raise ValueError(
                f"`n_samples` ({n_samples}) must be None or equal the number of targets "
                f"({len(targets)}) when `target` is a list or tensor"
            )
        targets = targets.long().cpu()
    if len(targets) == 0:
        raise ValueError("`target` is empty")
    bad = targets[(targets < 0) | (targets >= num_classes)]
    if len(bad):
        raise ValueError(
            f"`target` must lie in [0, {num_classes - 1}] (the model has {num_classes} classes), "
            f"got {bad.unique().tolist()[:5]}"
        )
    return targets


@contextmanager
def frozen(model: object) -> Iterator[None]:
    r"""Puts a module ``model`` in eval mode for the block and restores its flags after."""
    if not isinstance(model, nn.Module):
        yield
        return
    previous = {module: module.training for module in model.modules()}
    model.eval()
    try:
        yield
    finally:
        for module, training in previous.items():
            module.training = training


def forward_with_features(
    forward_func: Callable,
    inputs: Tensor,
    layer: nn.Module,
    attribute_to_layer_input: bool,
    device_ids: list[int] | None,
) -> tuple[Tensor, Tensor]:
    r"""One forward pass returning the model's output and ``layer``'s features, both in the
    autograd graph (Captum's distributed layer evaluation, so DataParallel models work)."""
    saved, output = _forward_layer_distributed_eval(
        forward_func,
        inputs,
        layer,
        attribute_to_layer_input=attribute_to_layer_input,
        forward_hook_with_return=True,
    )
    ids = _extract_device_ids(forward_func, saved, device_ids)
    features = _gather_distributed_tensors(saved[layer], device_ids=ids)[0]
    return output, features.flatten(1)


def check_output(output: object, batch: int, num_classes: int | None) -> int:
    r"""The number of classes of a ``(batch, num_classes)`` model output, else raises."""
    if not isinstance(output, Tensor) or output.dim() != 2 or output.shape[0] != batch:
        raise ValueError(
            "the model's output must be a (batch, num_classes) tensor of logits; for a batch "
            f"of {batch} it returned {getattr(output, 'shape', type(output).__name__)}"
        )
    if num_classes is not None and output.shape[1] != num_classes:
        raise ValueError(
            f"`num_classes` is {num_classes} but the model outputs {output.shape[1]} logits"
        )
    return int(output.shape[1])


def latent_codes(
    count: int, latent_dim: int, sampler: torch.Generator, latents: Tensor | None = None
) -> Tensor:
    r"""``latents`` checked to be ``(count, latent_dim)``, or a standard Gaussian draw."""
    if latents is None:
        return torch.randn(count, latent_dim, generator=sampler)
    if not isinstance(latents, Tensor) or tuple(latents.shape) != (count, latent_dim):
        raise ValueError(
            f"`latents` must be a ({count}, {latent_dim}) tensor (one code per sample), got "
            f"{getattr(latents, 'shape', type(latents).__name__)}"
        )
    return latents.float().cpu()


def balanced_targets(batch_size: int, num_classes: int, sampler: torch.Generator) -> Tensor:
    r"""A shuffled batch of classes, each class appearing ``batch_size // num_classes`` times
    or once more."""
    return torch.randperm(batch_size, generator=sampler) % num_classes


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


def rng_devices(device: torch.device) -> list[int]:
    r"""The CUDA devices whose random state a fit on ``device`` uses."""
    return [device.index or 0] if device.type == "cuda" else []


def write_atomically(state: Mapping[str, Any], path: str) -> None:
    r"""``torch.save`` to a temporary file then rename, so a crash never leaves half a file."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    temporary = f"{path}.tmp"
    torch.save(dict(state), temporary)
    os.replace(temporary, path)


def read_checkpoint(path: str) -> dict[str, Any]:
    r"""A checkpoint written by :class:`NetworkInversion`, loaded with ``weights_only=True``."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path!r} is not a NetworkInversion checkpoint")
    return state


class NetworkInversion(LayerAttribution, GradientAttribution):
    r"""
    Network Inversion (Suhail & Sethi, 2024, https://arxiv.org/abs/2407.18002): a conditioned
    generator ``G(z, conditioning)`` is trained through the frozen classifier alone (no data) so
    that it produces inputs the classifier assigns to a chosen class; once fitted it samples as
    many diverse inputs per class as wanted.

    Diversity comes from the conditioning (soft vectors whose argmax is the class, hot
    matrices joined to a feature map), from dropout kept active when sampling and from loss
    terms on the classifier's features at ``layer`` (pairwise cosine similarity, orthogonality);
    image priors (total variation, pixel range, BatchNorm statistics) keep samples natural.

    Args:
        forward_func (Callable or nn.Module): The classifier, returning ``(batch, num_classes)``
                    logits. It is never modified (eval mode during fits, hooks removed).
        layer (nn.Module, optional): Layer whose features feed the diversity terms and the
                    diversity measure. Default: the input of the last ``nn.Linear``.
        input_shape (tuple[int, int, int], optional): ``(C, H, W)`` of one input. Default:
                    taken from the ``inputs`` example batch of :meth:`fit` / :meth:`attribute`.
        num_classes (int, optional): Number of classes; found with one forward pass when None.
        conditioning (str, optional): ``"label"`` (learned embedding), ``"vector"`` (soft
                    vector), ``"matrix"`` (hot matrix as an extra channel) or
                    ``"vector+matrix"``. Default: ``"vector"``
        generator (nn.Module, optional): A generator called as ``generator(z, conditioning)``
                    with ``z`` of shape ``(B, latent_dim)`` and a
                    :class:`~captum_netinv.inversion.ConditioningBatch`, returning
                    ``(B, *input_shape)`` values in ``input_range``. Default: a
                    :class:`~captum_netinv.inversion.ConditionedGenerator` sized from the shape.
        latent_dim (int, optional): Length of the noise vector. Default: 64
        dropout (float, optional): Dropout rate of the default generator. Default: 0.3
        loss_weights (dict, optional): Weights overriding
                    :data:`~captum_netinv.inversion.DEFAULT_LOSS_WEIGHTS`; 0 switches a term off.
        input_range (tuple[float, float], optional): Range of the generated pixels.
                    Default: (0.0, 1.0)
        input_normalization (tuple, optional): ``(mean, std)`` (floats or one per channel);
                    generated pixels ``x`` are fed to the model as ``(x - mean) / std`` and
                    returned in that space. Default: None
        attribute_to_layer_input (bool, optional): Read ``layer``'s input instead of its output.
                    Default: True for the default layer, False for a given one.
        sample_with_dropout (bool, optional): Keep the generator's dropout active when sampling.
                    Default: True
        vector_scale (float, optional): Standard deviation of the Gaussian draws behind the
                    soft vectors (larger: peakier vectors). Default: 3.0
        vector_margin (float, optional): Lead of the target's logit over the runner-up in a
                    soft vector (0: the paper's plain draw). Default: 1.0
        jitter (int, optional): During :meth:`fit` the classifier sees each generated batch
                    rolled by a random offset of up to ``jitter`` pixels (DeepInversion's
                    jitter, see :func:`~captum_netinv.inversion.jittered`); 0 switches it off.
                    Default: 1
        device_ids (list[int], optional): Devices of a ``DataParallel`` model, as in Captum.

    Examples::

        >>> model = train_classifier(LeNet5(), *load_mnist(), epochs=2)
        >>> inversion = NetworkInversion(model, input_shape=(1, 28, 28))
        >>> history = inversion.fit(steps=300)
        >>> threes = inversion.attribute(target=3, n_samples=8)
        >>> threes.shape
        torch.Size([8, 1, 28, 28])
    """

    def __init__(
        self,
        forward_func: Callable,
        layer: nn.Module | None = None,
        input_shape: Sequence[int] | None = None,
        num_classes: int | None = None,
        conditioning: ConditioningMode = DEFAULT_CONDITIONING,
        generator: nn.Module | None = None,
        latent_dim: int = DEFAULT_LATENT_DIM,
        dropout: float = DEFAULT_DROPOUT,
        loss_weights: Mapping[str, float] | None = None,
        input_range: tuple[float, float] = (0.0, 1.0),
        input_normalization: tuple[Sequence[float] | float, Sequence[float] | float] | None = None,
        attribute_to_layer_input: bool | None = None,
        sample_with_dropout: bool = True,
        vector_scale: float = DEFAULT_VECTOR_SCALE,
        vector_margin: float = DEFAULT_VECTOR_MARGIN,
        jitter: int = DEFAULT_JITTER,
        device_ids: list[int] | None = None,
    ) -> None:
        chosen_layer = default_layer(forward_func) if layer is None else layer
        check_layer_in_model(forward_func, chosen_layer)
        LayerAttribution.__init__(self, forward_func, chosen_layer, device_ids)
        GradientAttribution.__init__(self, forward_func)
        self.attribute_to_layer_input = (
            layer is None if attribute_to_layer_input is None else attribute_to_layer_input
        )
        self.conditioning = check_conditioning_mode(conditioning)
        self.latent_dim = check_positive_int(latent_dim, "latent_dim")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1), got {dropout}")
        self.dropout = float(dropout)
        self.loss_weights = resolve_loss_weights(loss_weights)
        if len(input_range) != 2 or not float(input_range[0]) < float(input_range[1]):
            raise ValueError(
                f"`input_range` must be (low, high) with low < high, got {input_range}"
            )
        self.input_range = (float(input_range[0]), float(input_range[1]))
        self.input_normalization = input_normalization
        self.sample_with_dropout = sample_with_dropout
        if not vector_scale > 0:
            raise ValueError(f"`vector_scale` must be > 0, got {vector_scale}")
        self.vector_scale = float(vector_scale)
        if not vector_margin >= 0:
            raise ValueError(f"`vector_margin` must be >= 0, got {vector_margin}")
        self.vector_margin = float(vector_margin)
        if not isinstance(jitter, int) or isinstance(jitter, bool) or jitter < 0:
            raise ValueError(f"`jitter` must be an int >= 0 (pixels), got {jitter!r}")
        self.jitter = jitter
        if generator is not None and not isinstance(generator, nn.Module):
            raise TypeError(f"`generator` must be an nn.Module, got {type(generator).__name__}")
        self.generator = generator
        self.custom_generator = generator is not None
        if num_classes is not None:
            check_positive_int(num_classes, "num_classes")
        self.num_classes = num_classes
        self.input_shape: tuple[int, int, int] | None = None
        self.history: dict[str, list[float]] = {}
        self.steps_trained = 0
        self._normalization: tuple[Tensor, Tensor] | None = None
        self._counterfeiter: NetworkInversion | None = None
        if input_shape is not None:
            self._set_input_shape(check_input_shape(input_shape))

    # -- set-up ------------------------------------------------------------------------------

    @property
    def device(self) -> torch.device:
        r"""Where the model (and so the generator) lives."""
        return model_device(self.forward_func)

    @property
    def fitted(self) -> bool:
        r"""Whether the generator has been trained (by :meth:`fit` or :meth:`load`)."""
        return self.steps_trained > 0

    def _set_input_shape(self, input_shape: tuple[int, int, int]) -> None:
        self._normalization = normalization_tensors(self.input_normalization, input_shape[0])
        probe = torch.full((2, *input_shape), sum(self.input_range) / 2, device=self.device)
        try:
            with torch.no_grad(), frozen(self.forward_func):
                output = self.forward_func(self._to_model_space(probe))
        except (RuntimeError, ValueError, TypeError, IndexError) as error:
            raise ValueError(
                f"`input_shape` {input_shape}: the model fails on a batch of that shape ({error})"
            ) from error
        self.num_classes = check_output(output, 2, self.num_classes)
        self.input_shape = input_shape

    def _prepare(self, inputs: Tensor | None) -> tuple[int, int, int]:
        if inputs is not None:
            if not isinstance(inputs, Tensor) or inputs.dim() != 4:
                raise ValueError(
                    "`inputs` must be an example batch (N, C, H, W) of the model's inputs, got "
                    f"{getattr(inputs, 'shape', type(inputs).__name__)}"
                )
            shape = check_input_shape(tuple(int(v) for v in inputs.shape[1:]), "inputs")
            if self.input_shape is not None and shape != self.input_shape:
                raise ValueError(
                    f"`inputs` have shape {shape} per sample but `input_shape` is "
                    f"{self.input_shape}"
                )
            if self.input_shape is None:
                self._set_input_shape(shape)
        if self.input_shape is None:
            raise ValueError(
                "the input shape is unknown: pass `input_shape=(C, H, W)` to NetworkInversion "
                "or an example batch as `inputs`"
            )
        if self.generator is None:
            # a fixed seed keeps the global random state alone; fit() redraws from its seed
            with torch.random.fork_rng(devices=rng_devices(self.device)):
                torch.manual_seed(0)
                self.generator = self._build_generator()
        return self.input_shape

    def _build_generator(self) -> nn.Module:
        assert self.input_shape is not None and self.num_classes is not None
        return ConditionedGenerator(
            self.input_shape,
            self.num_classes,
            latent_dim=self.latent_dim,
            conditioning=self.conditioning,
            dropout=self.dropout,
            input_range=self.input_range,
        ).to(self.device)

    def _to_model_space(self, images: Tensor) -> Tensor:
        if self._normalization is None:
            return images
        mean, std = self._normalization
        return (images - mean.to(images.device)) / std.to(images.device)

    def _fingerprint(self) -> dict[str, Any]:
        assert self.input_shape is not None and self.num_classes is not None
        return model_fingerprint(self.forward_func, self.input_shape, self.num_classes)

    def _config(self) -> dict[str, Any]:
        normalization = (
            None
            if self.input_normalization is None
            else [
                torch.as_tensor(v, dtype=torch.float32).reshape(-1).tolist()
                for v in self.input_normalization
            ]
        )
        return {
            "conditioning": self.conditioning,
            "latent_dim": self.latent_dim,
            "dropout": self.dropout,
            "loss_weights": dict(self.loss_weights),
            "input_range": list(self.input_range),
            "input_normalization": normalization,
            "layer": module_name(self.forward_func, self.layer),
            "attribute_to_layer_input": self.attribute_to_layer_input,
            "sample_with_dropout": self.sample_with_dropout,
            "vector_scale": self.vector_scale,
            "vector_margin": self.vector_margin,
            "jitter": self.jitter,
            "custom_generator": self.custom_generator,
        }

    # -- training ----------------------------------------------------------------------------

    def _loss_terms(
        self, generator: nn.Module, batch: ConditioningBatch, z: Tensor
    ) -> tuple[dict[str, Tensor], Tensor]:
        images = generator(z, batch)
        model_inputs = self._to_model_space(images)
        with record_batchnorm_inputs(
            batchnorm_layers(self.forward_func)
            if self.loss_weights["batchnorm_statistics"] > 0
            else []
        ) as norm_inputs:
            logits, features = forward_with_features(
                self.forward_func,
                jittered(model_inputs, self.jitter),
                self.layer,
                self.attribute_to_layer_input,
                self.device_ids,
            )
        terms = inversion_loss_terms(
            logits,
            features,
            images,
            batch,
            self.loss_weights,
            self.input_range,
            norm_inputs,
            model_inputs,
        )
        return terms, logits

    def fit(
        self,
        inputs: Tensor | None = None,
        steps: int = DEFAULT_STEPS,
        batch_size: int = DEFAULT_BATCH_SIZE,
        lr: float = DEFAULT_LR,
        progress: bool = True,
        checkpoint_path: str | None = None,
        checkpoint_every: int = 100,
        seed: int | None = None,
        callback: Callable[[int, dict[str, float]], bool | None] | None = None,
    ) -> dict[str, list[float]]:
        r"""
        Trains the generator through the frozen model with Adam.

        All randomness of the fit (initial weights of the default generator, latent codes,
        conditioning draws, dropout) comes from ``seed``, inside a forked RNG so that the global
        random state is left alone. With ``checkpoint_path`` the generator, optimizer, history
        and random states are written every ``checkpoint_every`` steps and at the end; if the
        file already holds a checkpoint of this inversion the fit resumes from it and ends with
        the weights an uninterrupted fit would have.

        Args:
            inputs (Tensor, optional): Example batch, only read for the input shape.
            steps (int, optional): Total optimisation steps. Default: 2700
            batch_size (int, optional): Generated samples per step (classes balanced), >= 2.
                        Default: 64
            lr (float, optional): Adam learning rate. Default: 2e-3
            progress (bool, optional): Show a progress bar. Default: True
            checkpoint_path (str, optional): File to write checkpoints to / resume from.
            checkpoint_every (int, optional): Steps between checkpoints. Default: 100
            seed (int, optional): Seed of the fit; a random one when None.
            callback (Callable, optional): Called as ``callback(step, values)`` after each step
                        with the step's loss terms, total ``"loss"`` and ``"hit_rate"``;
                        returning True stops the fit (a checkpoint is written first).

        Returns:
            *dict[str, list[float]]*: the **history**, one value per step for each loss term,
            the total ``"loss"`` and the batch ``"hit_rate"`` (argmax == target).

        Raises:
            NonFiniteLossError: when a loss term is NaN or infinite; the generator keeps its
                        last finite weights and the checkpoint file its last good state.

        Examples::

            >>> history = inversion.fit(steps=300, seed=0, progress=False)
            >>> history["hit_rate"][-1]
            1.0
        """
        self._prepare(inputs)
        check_positive_int(steps, "steps")
        check_positive_int(checkpoint_every, "checkpoint_every")
        if check_positive_int(batch_size, "batch_size") < 2:
            raise ValueError(f"`batch_size` must be >= 2 (pairwise terms), got {batch_size}")
        if not lr > 0:
            raise ValueError(f"`lr` must be > 0, got {lr}")
        resumed = (
            read_checkpoint(checkpoint_path)
            if checkpoint_path is not None and os.path.exists(checkpoint_path)
            else None
        )
        if resumed is not None:
            seed = self._check_resumable(resumed, checkpoint_path or "", seed, batch_size, lr)
        elif seed is None:
            seed = random.SystemRandom().randrange(2**31)
        with torch.random.fork_rng(devices=rng_devices(self.device)):
            sampler = torch.Generator()
            if resumed is None:
                torch.manual_seed(seed)
                sampler.manual_seed(seed)
                if not self.custom_generator and not self.fitted:
                    self.generator = self._build_generator()
            generator = self.generator
            assert generator is not None and self.num_classes is not None
            optimizer = torch.optim.Adam(generator.parameters(), lr=lr)
            start = 0
            if resumed is not None:
                generator.load_state_dict(resumed["generator"])
                optimizer.load_state_dict(resumed["optimizer"])
                self.history = {key: list(values) for key, values in resumed["history"].items()}
                self.steps_trained = start = int(resumed["step"])
                torch.set_rng_state(resumed["torch_rng"])
                if resumed.get("cuda_rng") is not None and self.device.type == "cuda":
                    torch.cuda.set_rng_state(resumed["cuda_rng"], self.device)
                sampler.set_state(resumed["sampler_rng"])

            def save(step: int) -> None:
                if checkpoint_path is not None:
                    self._write_fit_checkpoint(
                        checkpoint_path, step, seed, batch_size, lr, optimizer, sampler
                    )

            parameters = [p for p in generator.parameters() if p.requires_grad]
            generator.train()
            with (
                frozen(self.forward_func),
                tqdm(
                    total=steps, initial=start, desc="NetworkInversion fit", disable=not progress
                ) as bar,
            ):
                for step in range(start, steps):
                    targets = balanced_targets(batch_size, self.num_classes, sampler)
                    batch = draw_conditioning(
                        self.conditioning,
                        targets,
                        self.num_classes,
                        sampler,
                        self.vector_scale,
                        self.vector_margin,
                    ).to(self.device)
                    z = latent_codes(batch_size, self.latent_dim, sampler).to(self.device)
                    terms, logits = self._loss_terms(generator, batch, z)
                    for name, value in terms.items():
                        if not bool(torch.isfinite(value)):
                            raise NonFiniteLossError(
                                f"loss term {name!r} became {float(value)} at step {step + 1}; "
                                f"the fit stopped with the generator of step {step}"
                                + (
                                    f" (last good checkpoint: {checkpoint_path!r})"
                                    if checkpoint_path is not None
                                    else ""
                                )
                            )
                    loss = weighted_sum(terms, self.loss_weights)
                    gradients = torch.autograd.grad(loss, parameters, allow_unused=True)
                    optimizer.zero_grad(set_to_none=True)
                    for parameter, gradient in zip(parameters, gradients, strict=True):
                        parameter.grad = gradient
                    optimizer.step()
                    values: dict[str, float] = {
                        name: float(value.detach()) for name, value in terms.items()
                    }
                    values["loss"] = float(loss.detach())
                    values["hit_rate"] = float(
                        (logits.argmax(dim=1) == batch.targets).float().mean()
                    )
                    for key, number in values.items():
                        self.history.setdefault(key, []).append(number)
                    self.steps_trained = step + 1
                    bar.update()
                    bar.set_postfix(loss=f"{values['loss']:.3f}", hit=f"{values['hit_rate']:.2f}")
                    stop = bool(callback(step + 1, values)) if callback is not None else False
                    if stop or (step + 1) % checkpoint_every == 0 or step + 1 == steps:
                        save(step + 1)
                    if stop:
                        break
        return self.history

    def _check_resumable(
        self, state: Mapping[str, Any], path: str, seed: int | None, batch_size: int, lr: float
    ) -> int:
        check_fingerprint(state["fingerprint"], self._fingerprint(), path)
        stored = state["config"]
        current = self._config()
        differing = [key for key in current if stored.get(key) != current[key]]
        if differing:
            raise ValueError(
                f"checkpoint {path!r} was written with other settings ({differing}); "
                "resume with the settings it was trained with, or use another path"
            )
        for name, value, expected in (
            ("seed", seed, state["seed"]),
            ("batch_size", batch_size, state["batch_size"]),
            ("lr", lr, state["lr"]),
        ):
            if value is not None and value != expected:
                raise ValueError(
                    f"`{name}` is {value} but the checkpoint {path!r} was written by a fit with "
                    f"{name}={expected}; resume with the same value"
                )
        return int(state["seed"])

    def _generator_state(self) -> dict[str, Any]:
        r"""What :meth:`save` writes, and what every fit checkpoint starts with."""
        assert self.generator is not None
        return {
            "format": CHECKPOINT_FORMAT,
            "fingerprint": self._fingerprint(),
            "config": self._config(),
            "generator": self.generator.state_dict(),
            "history": self.history,
            "steps_trained": self.steps_trained,
        }

    def _write_fit_checkpoint(
        self,
        path: str,
        step: int,
        seed: int,
        batch_size: int,
        lr: float,
        optimizer: torch.optim.Optimizer,
        sampler: torch.Generator,
    ) -> None:
        write_atomically(
            {
                **self._generator_state(),
                "step": step,
                "seed": seed,
                "batch_size": batch_size,
                "lr": lr,
                "optimizer": optimizer.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "cuda_rng": (
                    torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None
                ),
                "sampler_rng": sampler.get_state(),
            },
            path,
        )

    def _ensure_fitted(self, inputs: Tensor | None = None) -> None:
        self._prepare(inputs)
        if not self.fitted:
            warnings.warn(
                f"NetworkInversion is not fitted yet: fitting the generator with the default "
                f"budget ({DEFAULT_STEPS} steps of {DEFAULT_BATCH_SIZE} samples) first; call "
                "fit() to choose the budget",
                stacklevel=3,
            )
            self.fit(steps=DEFAULT_STEPS, progress=True)

    # -- sampling ----------------------------------------------------------------------------

    def _generate(
        self, targets: Tensor, latents: Tensor | None = None, seed: int | None = None
    ) -> Tensor:
        assert self.generator is not None and self.num_classes is not None
        sampler = torch.Generator()
        if seed is None:
            sampler.seed()
        else:
            sampler.manual_seed(seed)
        codes = latent_codes(len(targets), self.latent_dim, sampler, latents)
        outputs = []
        with (
            torch.random.fork_rng(devices=rng_devices(self.device)),
            torch.no_grad(),
            sampling_mode(self.generator, self.sample_with_dropout) as generator,
        ):
            torch.manual_seed(int(torch.randint(2**31, (1,), generator=sampler)))
            for start in range(0, len(targets), SAMPLE_BATCH_SIZE):
                chunk = targets[start : start + SAMPLE_BATCH_SIZE]
                batch = draw_conditioning(
                    self.conditioning,
                    chunk,
                    self.num_classes,
                    sampler,
                    self.vector_scale,
                    self.vector_margin,
                )
                z = codes[start : start + SAMPLE_BATCH_SIZE].to(self.device)
                outputs.append(self._to_model_space(generator(z, batch.to(self.device))))
        return torch.cat(outputs)

    @log_usage()
    def attribute(
        self,
        inputs: Tensor | None = None,
        target: TargetType = None,
        n_samples: int | None = None,
        latents: Tensor | None = None,
        seed: int | None = None,
    ) -> Tensor:
        r"""
        Generates inputs that the model assigns to ``target``.

        If the inversion is not fitted yet it is first fitted with the default budget (a
        warning says so and a progress bar shows it).

        Args:
            inputs (Tensor, optional): Example batch ``(N, C, H, W)``; only its shape is read,
                        when ``input_shape`` was not given.
            target (int, list[int] or Tensor): The class of the samples: an int (or scalar
                        tensor) for ``n_samples`` samples of one class, or a list / 1-D tensor
                        with the class of each sample.
            n_samples (int, optional): Number of samples for an int ``target``. Default: 16
            latents (Tensor, optional): ``(n, latent_dim)`` latent codes to decode instead of
                        random ones.
            seed (int, optional): Seed of the latent codes, conditioning draws and dropout.

        Returns:
            *Tensor* of **samples**, shape ``(n, *input_shape)``, in the model's input space
            (normalized when ``input_normalization`` was given).

        Examples::

            >>> sevens = inversion.attribute(target=7, n_samples=4, seed=0)
            >>> model(sevens).argmax(dim=1)
            tensor([7, 7, 7, 7])
        """
        self._prepare(inputs)
        assert self.num_classes is not None
        targets = targets_from(target, n_samples, self.num_classes)
        self._ensure_fitted()
        return self._generate(targets, latents, seed)

    # -- evaluation --------------------------------------------------------------------------

    def evaluate(
        self,
        n_per_class: int = 100,
        verifier: Callable | None = None,
        seed: int | None = 0,
    ) -> InversionEvaluation:
        r"""
        Measures the inversion on ``n_per_class`` fresh samples of every class.

        Args:
            n_per_class (int, optional): Samples per class, >= 2. Default: 100
            verifier (Callable, optional): A second classifier of the same inputs (model space);
                        its hit rate tells whether samples carry the class's features rather
                        than adversarial noise specific to the model.
            seed (int, optional): Seed of the samples. Default: 0

        Returns:
            :class:`InversionEvaluation`.

        Examples::

            >>> result = inversion.evaluate(n_per_class=50, verifier=mlp)
            >>> result.hit_rate, result.verifier_hit_rate
            (1.0, 0.93)
        """
        if check_positive_int(n_per_class, "n_per_class") < 2:
            raise ValueError(
                f"`n_per_class` must be >= 2 (diversity is pairwise), got {n_per_class}"
            )
        self._ensure_fitted()
        assert self.num_classes is not None
        targets = torch.arange(self.num_classes).repeat_interleave(n_per_class)
        samples = self._generate(targets, seed=seed)
        logits, features = [], []
        with torch.no_grad(), frozen(self.forward_func):
            for start in range(0, len(samples), SAMPLE_BATCH_SIZE):
                output, feature = forward_with_features(
                    self.forward_func,
                    samples[start : start + SAMPLE_BATCH_SIZE],
                    self.layer,
                    self.attribute_to_layer_input,
                    self.device_ids,
                )
                logits.append(output.cpu())
                features.append(feature.cpu())
            verdicts = (
                None
                if verifier is None
                else torch.cat(
                    [
                        verifier(samples[start : start + SAMPLE_BATCH_SIZE]).argmax(dim=1).cpu()
                        for start in range(0, len(samples), SAMPLE_BATCH_SIZE)
                    ]
                )
            )
        probabilities = torch.cat(logits).softmax(dim=1)
        hits = (probabilities.argmax(dim=1) == targets).float().view(self.num_classes, -1)
        confidence = probabilities[torch.arange(len(targets)), targets].view(self.num_classes, -1)
        diversity = within_class_diversity(torch.cat(features), targets, self.num_classes)
        verifier_hits = (
            None if verdicts is None else (verdicts == targets).float().view(self.num_classes, -1)
        )
        return InversionEvaluation(
            hit_rate=float(hits.mean()),
            hit_rate_per_class=hits.mean(dim=1),
            mean_confidence=float(confidence.mean()),
            confidence_per_class=confidence.mean(dim=1),
            diversity=float(diversity.nanmean()),
            diversity_per_class=diversity,
            verifier_hit_rate=None if verifier_hits is None else float(verifier_hits.mean()),
            verifier_hit_rate_per_class=None if verifier_hits is None else verifier_hits.mean(1),
        )

    # -- persistence -------------------------------------------------------------------------

    def save(self, path: str) -> None:
        r"""
        Writes the fitted generator, settings, history and the model's fingerprint (input
        shape, number of classes, parameter names and shapes) to ``path``.

        Args:
            path (str): Destination file.

        Examples::

            >>> inversion.save("lenet_inversion.pt")
        """
        self._prepare(None)
        write_atomically(self._generator_state(), path)

    @classmethod
    def load(
        cls,
        path: str,
        model: Callable,
        generator: nn.Module | None = None,
        layer: nn.Module | None = None,
        device_ids: list[int] | None = None,
    ) -> NetworkInversion:
        r"""
        Restores an inversion written by :meth:`save` (or a fit checkpoint) for ``model``,
        loading with ``torch.load(weights_only=True)``.

        Args:
            path (str): The saved file.
            model (Callable or nn.Module): The model it was fitted on.
            generator (nn.Module, optional): The same-architecture generator, required when a
                        custom generator was used.
            layer (nn.Module, optional): The diversity layer; default: the saved layer name.
            device_ids (list[int], optional): As in the constructor.

        Returns:
            :class:`NetworkInversion`, fitted.

        Raises:
            ValueError: if the file was written for a model with other parameters, another
                        input shape or number of classes.

        Examples::

            >>> inversion = NetworkInversion.load("lenet_inversion.pt", model)
        """
        state = read_checkpoint(path)
        config = state["config"]
        fingerprint = state["fingerprint"]
        if config["custom_generator"] and generator is None:
            raise ValueError(
                f"{path!r} was fitted with a custom generator: pass a module of the same "
                "architecture as `generator`"
            )
        current = model_fingerprint(model, fingerprint["input_shape"], fingerprint["num_classes"])
        check_fingerprint(fingerprint, current, path)
        if layer is None and config["layer"] is not None and isinstance(model, nn.Module):
            layer = model.get_submodule(config["layer"])
        normalization = config["input_normalization"]
        inversion = cls(
            model,
            layer=layer,
            input_shape=tuple(fingerprint["input_shape"]),
            num_classes=fingerprint["num_classes"],
            conditioning=config["conditioning"],
            generator=generator,
            latent_dim=config["latent_dim"],
            dropout=config["dropout"],
            loss_weights=config["loss_weights"],
            input_range=tuple(config["input_range"]),
            input_normalization=None if normalization is None else tuple(normalization),
            attribute_to_layer_input=config["attribute_to_layer_input"],
            sample_with_dropout=config["sample_with_dropout"],
            vector_scale=config["vector_scale"],
            vector_margin=config["vector_margin"],
            jitter=config.get("jitter", 0),
            device_ids=device_ids,
        )
        inversion._prepare(None)
        assert inversion.generator is not None
        inversion.generator.load_state_dict(state["generator"])
        inversion.history = {key: list(values) for key, values in state["history"].items()}
        inversion.steps_trained = int(state["steps_trained"])
        return inversion

    # -- integrations ------------------------------------------------------------------------

    def as_concept(
        self,
        target: int,
        n_samples: int = 64,
        batch_size: int = 16,
        concept_id: int | None = None,
        name: str | None = None,
        seed: int | None = None,
    ) -> Concept:
        r"""
        A :class:`captum.concept.Concept` whose ``data_iter`` yields generated samples of
        ``target``, so that inversions serve as concept examples for
        :class:`captum.concept.TCAV`.

        Args:
            target (int): The class.
            n_samples (int, optional): Number of samples. Default: 64
            batch_size (int, optional): Samples per batch of ``data_iter``. Default: 16
            concept_id (int, optional): The concept's id. Default: ``target``
            name (str, optional): The concept's name. Default: ``"inverted_class_{target}"``
            seed (int, optional): Seed of the samples.

        Returns:
            :class:`captum.concept.Concept`.

        Examples::

            >>> threes = inversion.as_concept(3, n_samples=50)
            >>> tcav = TCAV(model, layers=["fc1"])
        """
        check_positive_int(batch_size, "batch_size")
        if not isinstance(target, int) or isinstance(target, bool):
            raise TypeError(f"`target` must be an int class index, got {target!r}")
        samples = self.attribute(target=target, n_samples=n_samples, seed=seed).detach()
        loader = DataLoader(TensorDataset(samples), batch_size=batch_size, collate_fn=_stack_first)
        return Concept(
            target if concept_id is None else concept_id,
            name or f"inverted_class_{target}",
            loader,
        )

    def counterfeits(
        self,
        target: int,
        verifier: Callable,
        n_samples: int = 16,
        confidence: float = 0.99,
        max_draws: int = 4096,
        steps: int = DEFAULT_STEPS,
        batch_size: int = DEFAULT_BATCH_SIZE,
        seed: int | None = None,
        progress: bool = True,
    ) -> Tensor:
        r"""
        Inputs the model accepts as ``target`` with probability >= ``confidence`` that
        ``verifier`` assigns to another class: the adversarial use of inversion.

        A companion inversion with the image priors and jitter switched off (both make samples
        that other models recognize), and the KL term too (it holds the model's confidence at
        the soft vector's, below a high threshold), keeping cross-entropy and the diversity
        terms, is fitted once for ``steps`` steps and cached;
        its samples of ``target`` are drawn, in batches, until ``n_samples`` pass both tests
        or ``max_draws`` samples were tried (a warning then says how many were found).

        Args:
            target (int): The class to counterfeit.
            verifier (Callable): Second classifier of the same inputs; it must reject them.
            n_samples (int, optional): Counterfeits wanted. Default: 16
            confidence (float, optional): Minimum target probability under the model.
                        Default: 0.99
            max_draws (int, optional): Most samples generated in the search. Default: 4096
            steps (int, optional): Fit steps of the companion inversion. Default: 2700
            batch_size (int, optional): Its batch size. Default: 64
            seed (int, optional): Seed of the companion fit and of the draws.
            progress (bool, optional): Show the companion fit's progress. Default: True

        Returns:
            *Tensor* of shape ``(m, *input_shape)``, ``m <= n_samples``, in model space.

        Examples::

            >>> fakes = inversion.counterfeits(3, verifier=mlp, n_samples=8)
            >>> model(fakes).softmax(1)[:, 3].min() >= 0.99, (mlp(fakes).argmax(1) != 3).all()
        """
        if not 0.0 < confidence < 1.0:
            raise ValueError(f"`confidence` must be in (0, 1), got {confidence}")
        check_positive_int(n_samples, "n_samples")
        check_positive_int(max_draws, "max_draws")
        input_shape = self._prepare(None)
        assert self.num_classes is not None
        targets_from(target, 1, self.num_classes)
        if self._counterfeiter is None:
            self._counterfeiter = NetworkInversion(
                self.forward_func,
                layer=self.layer,
                input_shape=input_shape,
                num_classes=self.num_classes,
                conditioning=self.conditioning,
                latent_dim=self.latent_dim,
                dropout=self.dropout,
                loss_weights={
                    **self.loss_weights,
                    **dict.fromkeys((*IMAGE_PRIORS, "kl_divergence"), 0.0),
                },
                input_range=self.input_range,
                input_normalization=self.input_normalization,
                attribute_to_layer_input=self.attribute_to_layer_input,
                sample_with_dropout=self.sample_with_dropout,
                vector_scale=self.vector_scale,
                vector_margin=self.vector_margin,
                jitter=0,
                device_ids=self.device_ids,
            )
            self._counterfeiter.fit(
                steps=steps, batch_size=batch_size, seed=seed, progress=progress
            )
        found: list[Tensor] = []
        draws = 0
        while sum(len(batch) for batch in found) < n_samples and draws < max_draws:
            count = min(SAMPLE_BATCH_SIZE, max_draws - draws)
            samples = self._counterfeiter._generate(
                torch.full((count,), target), seed=None if seed is None else seed + draws
            )
            draws += count
            with torch.no_grad(), frozen(self.forward_func):
                accepted = self.forward_func(samples).softmax(dim=1)[:, target] >= confidence
                rejected = verifier(samples).argmax(dim=1) != target
            found.append(samples[accepted & rejected])
        counterfeits = torch.cat(found)[:n_samples]
        if len(counterfeits) < n_samples:
            warnings.warn(
                f"found {len(counterfeits)} of {n_samples} counterfeits of class {target} in "
                f"{draws} draws; raise `max_draws` or lower `confidence`",
                stacklevel=2,
            )
        return counterfeits

    # -- plots -------------------------------------------------------------------------------

    def visualize(
        self,
        n_per_class: int = 8,
        seed: int | None = 0,
        class_names: Sequence[str] | None = None,
        plt_fig_axis: FigureAxes | None = None,
        use_pyplot: bool = True,
        title: str | None = "generated samples per class",
    ) -> FigureAxes:
        r"""
        Grid of generated samples, one row per class, each titled with the model's confidence
        in its class (:func:`~captum_netinv.visualization.visualize_class_samples`).

        Args:
            n_per_class (int, optional): Samples per class. Default: 8
            seed (int, optional): Seed of the samples. Default: 0
            class_names (sequence of str, optional): Row labels.
            plt_fig_axis, use_pyplot, title: As in
                        :func:`~captum_netinv.visualization.visualize_image_grid`.

        Returns:
            *tuple* of **figure** and **axes**.
        """
        self._ensure_fitted()
        assert self.num_classes is not None and self.input_shape is not None
        targets = torch.arange(self.num_classes).repeat_interleave(n_per_class)
        samples = self._generate(targets, seed=seed)
        with torch.no_grad(), frozen(self.forward_func):
            probabilities = self.forward_func(samples).softmax(dim=1).cpu()
        confidences = probabilities[torch.arange(len(targets)), targets]
        pixels = samples.cpu()
        if self._normalization is not None:
            mean, std = self._normalization
            pixels = pixels * std + mean
        return visualize_class_samples(
            pixels.view(self.num_classes, n_per_class, *self.input_shape),
            confidences.view(self.num_classes, n_per_class),
            class_names=class_names,
            plt_fig_axis=plt_fig_axis,
            use_pyplot=use_pyplot,
            title=title,
        )

    def visualize_history(
        self,
        keys: Sequence[str] | None = None,
        plt_fig_axis: FigureAxis | None = None,
        use_pyplot: bool = True,
    ) -> FigureAxis:
        r"""
        The fit's curves (loss terms and hit rate per step), with
        :func:`~captum_netinv.visualization.visualize_training_curves`.

        Args:
            keys (sequence of str, optional): Curves to draw. Default: all.
            plt_fig_axis, use_pyplot: As in
                        :func:`~captum_netinv.visualization.visualize_training_curves`.

        Returns:
            *tuple* of **figure** and **axis**.
        """
        if not self.history:
            raise ValueError("no training history: call fit() first")
        return visualize_training_curves(
            self.history, keys=keys, plt_fig_axis=plt_fig_axis, use_pyplot=use_pyplot
        )


def _stack_first(rows: list[tuple[Tensor, ...]]) -> Tensor:
    """Collates TensorDataset rows into one tensor batch (Captum concepts want bare tensors)."""
    return torch.stack([row[0] for row in rows])
