"""NeuronInversion: one generator, conditioned on a unit of a layer, that samples inputs firing it.

Network inversion with the unit index in the role of the class: the shared generator, conditioning,
fit loop, sampling and checkpoints run unchanged on a
:class:`~captum_netinv.inversion.neuron.target.NeuronTarget` whose scores are the chosen units'
standardized activations (see :doc:`/methods/neuron_inversion`).
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import torch
from captum.attr._utils.attribution import NeuronAttribution
from captum.log import log_usage
from torch import Tensor, nn

from captum_netinv._activations import reduce_activations
from captum_netinv._captum_names import refuse_captum_name
from captum_netinv._utils import (
    check_positive_int,
    check_positive_number,
    eval_mode,
    excerpt,
    model_device,
    timed_warning,
)
from captum_netinv.inversion.base import _InversionBase, fit_progress
from captum_netinv.inversion.checkpoint import write_atomically
from captum_netinv.inversion.compilation import check_compile
from captum_netinv.inversion.conditioning import ConditioningMode, MatrixEncoding
from captum_netinv.inversion.distributed import fit_group, identical_on_ranks
from captum_netinv.inversion.generator import Upsampling, VectorEncoder
from captum_netinv.inversion.neuron.evaluation import NeuronEvaluation, evaluate_neurons
from captum_netinv.inversion.neuron.selectors import chosen_neurons, resolve_neuron_selector
from captum_netinv.inversion.neuron.target import (
    NEURON_REDUCTIONS,
    REFERENCE_QUANTILE,
    NeuronTarget,
    UnitStatistics,
    noise_reference,
    pair_weighted,
    unit_statistics,
)
from captum_netinv.inversion.presets import NEURON, Preset, preset_named
from captum_netinv.inversion.settings import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_LR,
)
from captum_netinv.inversion.training import History, StepCallback

if TYPE_CHECKING:
    from captum_netinv.recognition import Explanations
    from captum_netinv.visualization import FigureAxes

__all__ = ["NEURON_AUGMENTATION", "NEURON_LOSS_WEIGHTS", "NEURON_STEPS", "NeuronInversion"]

#: Default number of fit steps (:doc:`/methods/neuron_inversion` says how it was chosen).
NEURON_STEPS = 600
#: The :data:`~captum_netinv.inversion.presets.NEURON` preset's weights of the diversity terms
#: per pair of one unit's samples (:func:`~captum_netinv.inversion.neuron.target.pair_weighted`),
#: read-only; explicit ``loss_weights`` override them.
NEURON_LOSS_WEIGHTS: Mapping[str, float] = MappingProxyType(dict(NEURON.values["loss_weights"]))
#: The :data:`~captum_netinv.inversion.presets.NEURON` preset's ``jitter`` and ``zoom``, read-only:
#: no per-sample shift or zoom, unlike NetworkInversion's default.
NEURON_AUGMENTATION: Mapping[str, Any] = MappingProxyType(
    {name: NEURON.values[name] for name in ("jitter", "zoom")}
)
_PAIR_TERMS = ("cosine_similarity", "feature_orthogonality")
#: Samples of every unit in the default batch of a step.
_SAMPLES_PER_UNIT = 4


class NeuronInversion(_InversionBase, NeuronAttribution):
    r"""
    One generator ``G(z, unit)`` conditioned on the units of a layer (linear units, logits, or
    conv channels reduced to one value as INVERT reduces them), trained through the frozen
    model alone so that each unit's samples drive that unit above its real-data 99th
    percentile, while the paper's diversity terms (cosine similarity, orthogonality of the
    layer's features), dropout and the image priors keep them varied and natural. Once fitted
    it samples as many inputs per unit as wanted: the feature-visualization question ("what
    makes this neuron fire?") answered with a distribution instead of one optimized image.

    The unit plays the role of NetworkInversion's class (settings, checkpoints and guarantees
    are the same); the objective replaces the classifier's logits by the units' scores
    ``(a - q99) / std`` next to a constant 0 column
    (:class:`~captum_netinv.inversion.neuron.target.NeuronTarget`): cross-entropy asks the unit
    to beat the other units and its own 99th percentile, the KL term matches the
    soft vector over the units' scores.

    Examples::

        >>> inversion = NeuronInversion(model, model.fc2, input_shape=(1, 28, 28))
        >>> history = inversion.fit(real_images, steps=600, seed=0)
        >>> samples = inversion.attribute(neuron_selector=7, n_samples=16)
    """

    def __init__(
        self,
        forward_func: Callable,
        layer: nn.Module,
        neurons: int | Sequence[int] | Tensor | None = None,
        neuron_reduction: str = "mean",
        input_shape: Sequence[int] | None = None,
        conditioning: ConditioningMode | None = None,
        generator: nn.Module | None = None,
        latent_dim: int | None = None,
        dropout: float | None = None,
        loss_weights: Mapping[str, float] | None = None,
        input_range: tuple[float, float] | None = None,
        input_normalization: tuple[Sequence[float] | float, Sequence[float] | float] | None = None,
        attribute_to_layer_input: bool = False,
        sample_with_dropout: bool | None = None,
        vector_scale: float | None = None,
        vector_margin: float | None = None,
        jitter: int | None = None,
        zoom: float | None = None,
        device_ids: list[int] | None = None,
        vector_encoder: VectorEncoder | None = None,
        matrix_encoding: MatrixEncoding | None = None,
        upsampling: Upsampling | None = None,
        flips: bool | None = None,
        colour_shift: float | None = None,
        centering: float | None = None,
        preset: str | Preset = "neuron",
        reach_gate: bool = True,
    ) -> None:
        r"""
        Settings left as None take ``preset``'s values, as in
        :class:`~captum_netinv.NetworkInversion`, whose constructor documents them.

        Args:
            forward_func (Callable or nn.Module): The model; never modified.
            layer (nn.Module): The layer whose units are inverted; its output (or input with
                        ``attribute_to_layer_input``) also feeds the diversity terms.
            neurons (int, sequence of int or Tensor, optional): The units the generator
                        covers (indices of the reduced layer output). Default: all, at most
                        :data:`~captum_netinv.inversion.neuron.selectors.MAX_NEURONS`.
            neuron_reduction (str, optional): ``"mean"`` or ``"max"`` over a conv channel's
                        map. Default: ``"mean"`` (as INVERT)
            input_shape (tuple[int, int, int], optional): ``(C, H, W)`` of one input.
                        Default: read from the ``inputs`` of :meth:`fit`.
            attribute_to_layer_input (bool, optional): Invert the units of the layer's input.
                        Default: False
            conditioning, generator, latent_dim, dropout (optional): As in NetworkInversion.
            loss_weights (dict, optional): Overrides of the preset's weights; the
                        ``"neuron"`` preset's diversity weights are
                        :data:`~captum_netinv.inversion.neuron.neuron_inversion.NEURON_LOSS_WEIGHTS`.
            input_range, input_normalization (optional): As in NetworkInversion.
            sample_with_dropout, vector_scale, vector_margin (optional): As there too.
            jitter (int, optional): As in NetworkInversion. Default: 0 (the ``"neuron"``
                        preset: the unit must fire on the generated sample itself)
            zoom (float, optional): As in NetworkInversion. Default: 0.0
            device_ids, vector_encoder, matrix_encoding (optional): As in NetworkInversion.
            upsampling, flips, colour_shift, centering (optional): As in NetworkInversion
                        (the ``"neuron"`` preset: ``"transposed"``, centering 0).
            preset (str or Preset, optional): The preset whose settings fill those left None
                        (:data:`~captum_netinv.inversion.presets.PRESETS`). Default:
                        ``"neuron"`` (:data:`~captum_netinv.inversion.presets.NEURON`)
            reach_gate (bool, optional): The diversity terms compare only samples whose unit
                        is above its 99th percentile, so that a strong diversity weight cannot
                        be met with samples that never reach it
                        (:class:`~captum_netinv.inversion.neuron.target.NeuronTarget`).
                        Default: True
        """
        settings = preset_named(preset).settings(
            conditioning=conditioning,
            latent_dim=latent_dim,
            dropout=dropout,
            loss_weights=loss_weights,
            input_range=input_range,
            input_normalization=input_normalization,
            sample_with_dropout=sample_with_dropout,
            vector_scale=vector_scale,
            vector_margin=vector_margin,
            jitter=jitter,
            zoom=zoom,
            vector_encoder=vector_encoder,
            matrix_encoding=matrix_encoding,
            upsampling=upsampling,
            flips=flips,
            colour_shift=colour_shift,
            centering=centering,
        )
        self._set_unit_arguments(
            layer=layer, neurons=neurons, neuron_reduction=neuron_reduction, reach_gate=reach_gate
        )
        self._setup(
            forward_func,
            layer,
            settings,
            input_shape=input_shape,
            num_classes=None,
            generator=generator,
            attribute_to_layer_input=attribute_to_layer_input,
            device_ids=device_ids,
        )

    def _set_unit_arguments(
        self, *, layer: object, neurons: Any, neuron_reduction: Any, reach_gate: object
    ) -> None:
        r"""Checks and keeps the constructor's own arguments (a ``TypeError`` or ``ValueError``
        names the first wrong one; the range of ``neurons`` waits for the layer's width); the
        units, their layer shape and statistics are known once the input shape is."""
        if not isinstance(layer, nn.Module):
            raise TypeError(f"`layer` must be an nn.Module of the model, got {excerpt(layer)}")
        if neuron_reduction not in NEURON_REDUCTIONS:
            raise ValueError(
                f"`neuron_reduction` must be one of {NEURON_REDUCTIONS}, got "
                f"{excerpt(neuron_reduction)}"
            )
        if neurons is not None:
            chosen_neurons(neurons, sys.maxsize)
        if not isinstance(reach_gate, bool):
            raise TypeError(f"`reach_gate` must be a bool, got {excerpt(reach_gate)}")
        self.reach_gate = reach_gate
        self.neuron_reduction: str = neuron_reduction
        self._requested_neurons = neurons
        self.neurons: list[int] = []
        self.layer_shape: tuple[int, ...] = ()
        self.statistics: UnitStatistics | None = None

    #: The quantile of a unit's real activations that its samples are asked to exceed.
    reference_quantile: float = REFERENCE_QUANTILE

    def _set_input_shape(
        self, input_shape: tuple[int, int, int], *, extra_args: Any, deferrable: bool = False
    ) -> None:
        r"""The input shape, the layer's units and the chosen ones, from one forward pass."""
        view = NeuronTarget.of(
            self._target_model(input_shape).with_args(extra_args),
            reduction=self.neuron_reduction,  # type: ignore[arg-type]
            reach_gate=self.reach_gate,
        )

        def layer_output(probe: Tensor) -> Tensor:
            with torch.no_grad(), eval_mode(self.forward_func):
                return view.layer_output(view.to_model_space(probe).to(self.device))

        values = self._probe(input_shape, layer_output, deferrable)
        if values is None:
            return
        width = reduce_activations(values, self.neuron_reduction).shape[1]  # type: ignore[arg-type]
        self.neurons = chosen_neurons(self._requested_neurons, width)
        self.layer_shape = tuple(int(v) for v in values.shape[1:])
        self.num_classes = len(self.neurons)
        self.input_shape = input_shape
        self._model = dataclasses.replace(
            view, neurons=tuple(self.neurons), statistics=self.statistics
        )

    def _neuron_view(self, extra_args: Any = None) -> NeuronTarget:
        model = self._ensure_input_shape(None, extra_args)
        assert isinstance(model, NeuronTarget)
        return model

    def _set_statistics(self, statistics: UnitStatistics) -> None:
        self.statistics = statistics
        assert isinstance(self._model, NeuronTarget)
        self._model = self._model.with_statistics(statistics)

    def _config(self) -> dict[str, Any]:
        return {
            **super()._config(),
            "method": "NeuronInversion",
            "neurons": list(self.neurons),
            "neuron_reduction": self.neuron_reduction,
            "reach_gate": self.reach_gate,
            "unit_statistics": None if self.statistics is None else self.statistics.to_dict(),
        }

    def default_batch_size(self) -> int:
        r"""
        ``max(64, 4 K)`` rounded up to a multiple of the ``K`` fitted units: every unit at
        least four times per step, so that the diversity terms see six pairs of each unit
        (more diverse samples than two per unit: :doc:`/methods/neuron_inversion`).
        """
        count = len(self._neuron_view().neurons)
        return math.ceil(max(DEFAULT_BATCH_SIZE, _SAMPLES_PER_UNIT * count) / count) * count

    def fit(
        self,
        inputs: Tensor | None = None,
        steps: int = NEURON_STEPS,
        batch_size: int | None = None,
        lr: float = DEFAULT_LR,
        progress: bool | None = None,
        checkpoint_path: str | None = None,
        checkpoint_every: int = 100,
        seed: int | None = None,
        callback: StepCallback | None = None,
        additional_forward_args: Any = None,
        process_group: Any = None,
        autocast: str | None = None,
        show_progress: bool | None = None,
        internal_batch_size: int | None = None,
        compile: bool | str = False,  # noqa: A002 (torch.compile's name)
    ) -> History:
        r"""
        Measures each unit's 99th percentile and standard deviation on ``inputs`` (real
        samples; without them, on noise, see :func:`~captum_netinv.inversion.neuron.target.
        noise_reference`), then trains the generator through the frozen model with Adam, each
        step drawing every unit equally. Seeds, checkpoints and resuming behave as in
        :meth:`NetworkInversion.fit <captum_netinv.NetworkInversion.fit>`; a checkpoint resumes
        only with the same reference statistics (the same ``inputs``).

        Args:
            inputs (Tensor, optional): ``(N, C, H, W)`` real inputs in model space, ``N >= 2``,
                        floating-point (uint8 images: ``images.float() / 255``), on any device
                        (moved to the model's batch by batch): the units' reference scale (and
                        the input shape); the measured :attr:`statistics` are kept on the CPU.
            steps (int, optional): Total optimisation steps. Default: 600
            batch_size (int, optional): Generated samples per step, at least the number of
                        units. Default: :meth:`default_batch_size`
            lr (float, optional): Adam learning rate. Default: 2e-3
            progress (bool, optional): Show a progress bar. Default: True
            checkpoint_path (str, optional): File to write checkpoints to / resume from.
            checkpoint_every (int, optional): Steps between checkpoints. Default: 100
            seed (int, optional): Seed of the fit; a random one when None.
            callback (Callable, optional): Called as ``callback(step, values)`` after each
                        step, as in NetworkInversion.fit.
            additional_forward_args (Any, optional): Extra arguments of ``forward_func``
                        after the inputs, the same for every batch.
            process_group (ProcessGroup, optional): Train on every rank of this group, as
                        NetworkInversion.fit does; every rank must pass the same ``inputs``
                        (the statistics are compared; a ``ValueError`` otherwise).
            autocast (str, optional): ``"bfloat16"`` or ``"float16"`` forward passes.
            show_progress (bool, optional): Captum's name for ``progress`` (Captum's methods
                        default to False, our fits to True). Default: None
            internal_batch_size (int, optional): Refused with a ``TypeError`` naming
                        ``batch_size``: a fit sends each step's samples through the model in
                        one forward pass. Default: None
            compile (bool or str, optional): ``torch.compile`` the generator and the loss
                        terms, in a mode of :mod:`~captum_netinv.inversion.compilation` (True:
                        ``"default"``; ``"reduce-overhead"``: CUDA graphs). Default: False

        Returns:
            *dict[str, list[float]]*: the **history**, one value per step of each loss term,
            ``"loss"`` and ``"hit_rate"`` (the unit beats the other units and its 99th
            percentile).

        Examples::

            >>> history = inversion.fit(real_images, steps=600, seed=0, progress=False)
        """
        compile_mode = check_compile(compile)
        check_positive_number(lr, "lr")  # before the statistics below change the object
        progress = fit_progress(progress, show_progress, internal_batch_size)
        model = self._ensure_input_shape(inputs, additional_forward_args)
        assert isinstance(model, NeuronTarget)
        count = len(model.neurons)
        if batch_size is None:
            batch_size = self.default_batch_size()
        elif check_positive_int(batch_size, "batch_size") < 2 * count:
            raise ValueError(
                f"`batch_size` must be >= twice the number of units ({2 * count}): each step "
                f"generates every unit at least twice (pairs of a unit); got {batch_size}"
            )
        group = fit_group(process_group, batch_size, autocast)
        self._set_statistics(self._reference_statistics(model, inputs, group))
        return self._run_fit(
            steps=steps,
            batch_size=batch_size,
            lr=lr,
            progress=progress,
            checkpoint_path=checkpoint_path,
            checkpoint_every=checkpoint_every,
            seed=seed,
            callback=callback,
            additional_forward_args=additional_forward_args,
            group=group,
            autocast=autocast,
            compile=compile_mode,
            settings=pair_weighted(self.settings, batch_size, count, _PAIR_TERMS),
        )

    def _reference_statistics(
        self, model: NeuronTarget, inputs: Tensor | None, group: Any
    ) -> UnitStatistics:
        r"""The units' statistics on the real ``inputs`` (on noise without them), the same on
        every rank of ``group`` (a ``ValueError`` naming ``inputs`` otherwise)."""
        assert self.input_shape is not None
        reference = (
            inputs
            if inputs is not None
            else model.to_model_space(noise_reference(self.input_shape, self.settings.input_range))
        )
        statistics = unit_statistics(model, reference)
        if not identical_on_ranks(statistics.flat(), group, model_device(self.forward_func)):
            raise ValueError(
                "`inputs` differ between the ranks: a distributed NeuronInversion fit measures "
                "the units' 99th percentiles and scales on its reference inputs, and every rank "
                "must pass the same ones (the whole reference set, not a shard)"
            )
        return statistics

    def _first_call_fit(self, *, extra_args: Any, caller: str) -> None:
        def message(estimate: str) -> str:
            return (
                f"NeuronInversion is not fitted yet: {caller}() fits the generator with the "
                f"default budget ({NEURON_STEPS} steps, {estimate} as its first steps ran) and "
                "noise reference statistics first; call fit(inputs=real_inputs) to choose the "
                "reference, budget and seed"
            )

        # the warning comes once the first steps are timed; the fit goes on unchanged
        self.fit(
            steps=NEURON_STEPS,
            additional_forward_args=extra_args,
            callback=timed_warning(message, NEURON_STEPS),
        )

    @log_usage()
    def attribute(
        self,
        inputs: Tensor | None = None,
        neuron_selector: Any = None,
        n_samples: int | None = None,
        latents: Tensor | None = None,
        seed: int | None = None,
        additional_forward_args: Any = None,
        internal_batch_size: int | None = None,
        *,
        target: Any = None,
    ) -> Tensor:
        r"""
        Generates inputs that drive the selected unit(s) high.

        As a Captum method attributes each input, example ``inputs`` give one sample per row:
        ``attribute(inputs, neuron_selector=3)`` returns ``len(inputs)`` samples of unit 3,
        and a list ``neuron_selector`` then holds one unit per row. The inputs' values are not
        read, only their number and shape.

        Args:
            inputs (Tensor, optional): Example batch ``(N, C, H, W)`` of floating-point
                        model-space inputs: gives the input shape (when ``input_shape`` was
                        not given) and the number of samples, one per row.
            neuron_selector (int, tuple, Callable, list or Tensor): Captum's forms: an int
                        (the unit; the channel of a conv layer); a tuple ``(unit,)`` (longer
                        tuples index positions inside a channel, which a generator conditioned
                        on the reduced channel cannot honour: ValueError); a callable of the
                        layer's output, resolved to the one unit it reads (it is evaluated on
                        indicator outputs, one per unit with that unit / channel set to 1, and
                        must respond to exactly one; a callable that reads only some positions
                        of a conv channel, e.g. ``out[:, 3, 0, 0]``, is refused like a longer
                        tuple, while one reducing the whole channel, e.g.
                        ``out[:, 3].mean((1, 2))``, names the channel); or a list / 1-D tensor
                        of those, one sample each (a one-element one counts as a single
                        selector). Units not fitted raise a ValueError.
            n_samples (int, optional): Samples for a single selector; with ``inputs`` it
                        must be None or ``len(inputs)``. Default: ``len(inputs)`` with
                        ``inputs``, else 16
            latents (Tensor, optional): ``(n, latent_dim)`` latent codes.
            seed (int, optional): Seed of the codes, conditioning draws and dropout.
            additional_forward_args (Any, optional): As in :meth:`fit`.
            internal_batch_size (int, optional): Captum's name: samples generated per forward
                        pass of the generator (memory); the same ``seed`` gives the same samples
                        at the same ``internal_batch_size``. Default: 256
            target (Any, optional): Refused with a ``TypeError``: Captum's neuron methods
                        take the unit as ``neuron_selector``, and so does this one.

        Returns:
            *Tensor* of **samples** ``(n, *input_shape)`` in the model's input space, on the
            model's device.

        Examples::

            >>> samples = inversion.attribute(neuron_selector=3, n_samples=8, seed=0)
            >>> samples = inversion.attribute(neuron_selector=lambda out: out[:, 3])
        """
        refuse_captum_name(
            captum_name="target",
            captum_value=target,
            instead="NeuronInversion.attribute takes the unit as `neuron_selector` (Captum's "
            "neuron methods' name), not `target`",
        )
        self._ensure_input_shape(inputs, additional_forward_args)
        positions = resolve_neuron_selector(
            neuron_selector,
            n_samples,
            neurons=self.neurons,
            layer_shape=self.layer_shape,
            rows=None if inputs is None else len(inputs),
        )
        self._ensure_fitted(additional_forward_args)
        return self._generate(positions, latents, seed, batch_size=internal_batch_size)

    def evaluate(
        self,
        inputs: Tensor | None = None,
        n_per_unit: int = 32,
        top_k: int = 100,
        feature_func: Callable[[Tensor], Tensor] | None = None,
        seed: int | None = 0,
        additional_forward_args: Any = None,
    ) -> NeuronEvaluation:
        r"""
        Measures every fitted unit on ``n_per_unit`` fresh samples
        (:func:`~captum_netinv.inversion.neuron.evaluation.evaluate_neurons`): their median
        activation against the unit's 99th percentile on real ``inputs``, and their diversity
        against the unit's ``top_k`` top-activating real inputs.

        Args:
            inputs (Tensor, optional): Real model-space inputs (e.g. the test set), on any
                        device (moved to the model's batch by batch). Default: the fit's
                        reference statistics, no diversity ratio.
            n_per_unit (int, optional): Samples per unit, >= 2. Default: 32
            top_k (int, optional): Top-activating real inputs per unit. Default: 100
            feature_func (Callable, optional): Features of the diversity measure (e.g. another
                        model's hidden layer), given batches where they lie: generated samples
                        on the model's device, ``inputs`` on theirs. Default: the layer's
                        output.
            seed (int, optional): Seed of the samples. Default: 0
            additional_forward_args (Any, optional): As in :meth:`fit`.

        Returns:
            :class:`~captum_netinv.inversion.neuron.evaluation.NeuronEvaluation`, its tensors
            on the CPU.
        """
        if check_positive_int(n_per_unit, "n_per_unit") < 2:
            raise ValueError(f"`n_per_unit` must be >= 2 (diversity is pairwise), got {n_per_unit}")
        check_positive_int(top_k, "top_k")
        self._ensure_fitted(additional_forward_args, caller="evaluate")
        model = self._neuron_view(additional_forward_args)
        positions = torch.arange(len(model.neurons)).repeat_interleave(n_per_unit)
        samples = self._generate(positions, seed=seed)
        return evaluate_neurons(
            model,
            samples,
            positions,
            inputs=inputs,
            top_k=top_k,
            feature_func=feature_func,
        )

    def unit_activations(self, inputs: Tensor, additional_forward_args: Any = None) -> Tensor:
        r"""``(N, K)`` activations of the fitted units on model-space ``inputs`` (on any device,
        moved to the model's batch by batch), on the CPU."""
        model = self._neuron_view(additional_forward_args)
        return model.measured(inputs)[0]

    def save(self, path: str) -> None:
        r"""
        Writes the fitted generator, settings, units, their reference statistics, history and
        the model's fingerprint to ``path`` (read back with :meth:`load`).
        """
        if not self.fitted:
            raise ValueError("nothing to save: the inversion is not fitted; call fit() first")
        write_atomically(self._state(), path)

    @classmethod
    def load(
        cls,
        path: str,
        model: Callable,
        generator: nn.Module | None = None,
        layer: nn.Module | None = None,
        device_ids: list[int] | None = None,
    ) -> NeuronInversion:
        r"""
        Restores a neuron inversion written by :meth:`save` (or a fit checkpoint) for
        ``model``, loading with ``torch.load(weights_only=True)``.

        Args:
            path (str): The saved file.
            model (Callable or nn.Module): The model it was fitted on.
            generator (nn.Module, optional): The same-architecture custom generator, if any.
            layer (nn.Module, optional): The layer; default: the saved layer name.
            device_ids (list[int], optional): As in the constructor.

        Returns:
            :class:`NeuronInversion`, fitted.
        """
        return cls._restore(path, model, generator, layer, device_ids)

    @classmethod
    def _saved_arguments(cls, config: Mapping[str, Any], fingerprint: Mapping[str, Any]) -> Any:
        return {
            "neurons": config["neurons"],
            "neuron_reduction": config["neuron_reduction"],
            "reach_gate": config.get("reach_gate", False),  # files from before the gate
        }

    def _restored(self, config: Mapping[str, Any]) -> None:
        self._ensure_input_shape(None)
        self._set_statistics(UnitStatistics.from_dict(config["unit_statistics"]))

    def visualize(
        self,
        neuron: int,
        inputs: Tensor,
        explanations: Explanations | None = None,
        n_generated: int = 16,
        k: int = 16,
        seed: int | None = 0,
        plt_fig_axis: FigureAxes | None = None,
        use_pyplot: bool = True,
        additional_forward_args: Any = None,
    ) -> FigureAxes:
        r"""
        One unit at a glance: :func:`~captum_netinv.visualization.visualize_neuron`.

        Args:
            neuron (int): The unit (index of the layer's reduced output).
            inputs (Tensor): ``(N, C, H, W)`` real model-space inputs.
            explanations (Explanations, optional): INVERT labels of the layer.
            n_generated (int, optional): Generated samples shown. Default: 16
            k (int, optional): Top-activating real inputs shown. Default: 16
            seed (int, optional): Seed of the generated samples. Default: 0
            plt_fig_axis (tuple, optional): ``(figure, axes)`` to draw into, three axes.
            use_pyplot (bool, optional): Create and show with pyplot. Default: True
            additional_forward_args (Any, optional): As in :meth:`fit`: passed unchanged with
                        every batch of real and generated inputs.

        Returns:
            *tuple* of **figure** and **axes**.
        """
        from captum_netinv.visualization import visualize_neuron

        return visualize_neuron(
            self,
            neuron,
            inputs,
            explanations=explanations,
            n_generated=n_generated,
            k=k,
            seed=seed,
            plt_fig_axis=plt_fig_axis,
            use_pyplot=use_pyplot,
            additional_forward_args=additional_forward_args,
        )
