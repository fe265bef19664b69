"""NeuronInversion: one generator, conditioned on a unit of a layer, that samples inputs firing it.

Network inversion with the unit index in the role of the class: the shared generator, conditioning,
fit loop, sampling and checkpoints run unchanged on a :class:`NeuronTarget` whose scores are the
chosen units' standardized activations (see :doc:`/methods/neuron_inversion`).
"""

from __future__ import annotations

import dataclasses
import math
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
from captum.attr._utils.attribution import NeuronAttribution
from captum.log import log_usage
from torch import Tensor, nn

from captum_netinv._activations import reduce_activations
from captum_netinv._utils import (
    check_positive_int,
    check_positive_number,
    eval_mode,
    excerpt,
    model_device,
)
from captum_netinv.inversion.base import _InversionBase
from captum_netinv.inversion.checkpoint import write_atomically
from captum_netinv.inversion.conditioning import ConditioningMode, MatrixEncoding
from captum_netinv.inversion.distributed import fit_group, identical_on_ranks
from captum_netinv.inversion.generator import VectorEncoder
from captum_netinv.inversion.neuron_evaluation import NeuronEvaluation, evaluate_neurons
from captum_netinv.inversion.neuron_target import (
    NEURON_REDUCTIONS,
    NeuronTarget,
    UnitStatistics,
    chosen_neurons,
    noise_reference,
    pair_weighted,
    resolve_neuron_selector,
    unit_statistics,
)
from captum_netinv.inversion.presets import Preset, preset_named
from captum_netinv.inversion.settings import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_LR,
    SETTING_NAMES,
    normalization_tensors,
)
from captum_netinv.inversion.target_model import TargetModel
from captum_netinv.inversion.training import History, StepCallback

if TYPE_CHECKING:
    from captum_netinv.recognition import Explanations
    from captum_netinv.visualization import FigureAxes

__all__ = ["NEURON_AUGMENTATION", "NEURON_LOSS_WEIGHTS", "NEURON_STEPS", "NeuronInversion"]

#: Default number of fit steps (the budget of benchmarks/bench_neuron_inversion.py).
NEURON_STEPS = 600
#: Weights of the diversity terms per pair of one unit's samples
#: (:func:`~captum_netinv.inversion.neuron_target.pair_weighted`); explicit ``loss_weights``
#: override them. Cosine 4.0, with the reach gate, was chosen on three tuning models (rounds 6
#: and 7 of benchmarks/RESULTS.md), the orthogonality weight on the 5,000-digit demo LeNet-5.
NEURON_LOSS_WEIGHTS: dict[str, float] = {"cosine_similarity": 4.0, "feature_orthogonality": 0.2}
#: ``jitter`` and ``zoom`` when left None: no per-sample shift or zoom (unlike
#: NetworkInversion's default): the unit is asked to fire on the generated sample itself.
#: Chosen on a held-out tuning target (protocol LeNet-5+BN, seed 1), where the default
#: preset's ``jitter=2, zoom=0.1`` halved the diversity ratio on fc2 (benchmarks/RESULTS.md).
NEURON_AUGMENTATION: dict[str, Any] = {"jitter": 0, "zoom": 0.0}
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
    ``(a - q99) / std`` next to a constant 0 column (:class:`NeuronTarget`): cross-entropy asks
    the unit to beat the other units and its own 99th percentile, the KL term matches the
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
        preset: str | Preset = "default",
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
                        :data:`~captum_netinv.inversion.neuron_target.MAX_NEURONS`.
            neuron_reduction (str, optional): ``"mean"`` or ``"max"`` over a conv channel's
                        map. Default: ``"mean"`` (as INVERT)
            input_shape (tuple[int, int, int], optional): ``(C, H, W)`` of one input.
                        Default: read from the ``inputs`` of :meth:`fit`.
            attribute_to_layer_input (bool, optional): Invert the units of the layer's input.
                        Default: False
            preset (str or Preset, optional): As in NetworkInversion, and so are
                        ``conditioning``, ``generator``, ``latent_dim``, ``dropout``,
                        ``loss_weights`` (the diversity terms default to
                        :data:`~captum_netinv.inversion.neuron_inversion.NEURON_LOSS_WEIGHTS`),
                        ``input_range``, ``input_normalization``, ``sample_with_dropout``,
                        ``vector_scale``, ``vector_margin``, ``jitter`` and ``zoom`` (none:
                        :data:`~captum_netinv.inversion.neuron_inversion.NEURON_AUGMENTATION`),
                        ``device_ids``, ``vector_encoder`` and ``matrix_encoding``.
            reach_gate (bool, optional): The diversity terms compare only samples whose unit
                        is above its 99th percentile, so that a strong diversity weight cannot
                        be met with samples that never reach it
                        (:class:`~captum_netinv.inversion.neuron_target.NeuronTarget`).
                        Default: True
        """
        arguments = locals()
        arguments["loss_weights"] = {**NEURON_LOSS_WEIGHTS, **(loss_weights or {})}
        arguments.update({k: v for k, v in NEURON_AUGMENTATION.items() if arguments[k] is None})
        settings = preset_named(preset).settings(**{n: arguments[n] for n in SETTING_NAMES})
        if not isinstance(layer, nn.Module):
            raise TypeError(f"`layer` must be an nn.Module of the model, got {excerpt(layer)}")
        if neuron_reduction not in NEURON_REDUCTIONS:
            raise ValueError(
                f"`neuron_reduction` must be one of {NEURON_REDUCTIONS}, got "
                f"{excerpt(neuron_reduction)}"
            )
        if neurons is not None:
            chosen_neurons(neurons, sys.maxsize)  # the types now, the range with the layer's width
        if not isinstance(reach_gate, bool):
            raise TypeError(f"`reach_gate` must be a bool, got {excerpt(reach_gate)}")
        self.reach_gate = reach_gate
        self.neuron_reduction = neuron_reduction
        self._requested_neurons = neurons
        self._declared_settings = settings
        self.neurons: list[int] = []
        self.layer_shape: tuple[int, ...] = ()
        self.statistics: UnitStatistics | None = None
        self._setup(
            forward_func,
            layer,
            settings,
            input_shape,
            None,
            generator,
            attribute_to_layer_input,
            device_ids,
        )

    def _set_input_shape(
        self, input_shape: tuple[int, int, int], extra_args: Any, deferrable: bool = False
    ) -> None:
        r"""The input shape, the layer's units and the chosen ones, from one forward pass."""
        view = NeuronTarget(
            self.forward_func,
            self.layer,
            self.attribute_to_layer_input,
            self.device_ids,
            normalization_tensors(self.settings, input_shape[0]),
            extra_args,
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
            "loss_weights": dict(self._declared_settings.loss_weights),
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
        (chosen on a held-out model over two: more diverse samples, benchmarks/RESULTS.md).
        """
        count = len(self._neuron_view().neurons)
        return math.ceil(max(DEFAULT_BATCH_SIZE, _SAMPLES_PER_UNIT * count) / count) * count

    def fit(
        self,
        inputs: Tensor | None = None,
        steps: int = NEURON_STEPS,
        batch_size: int | None = None,
        lr: float = DEFAULT_LR,
        progress: bool = True,
        checkpoint_path: str | None = None,
        checkpoint_every: int = 100,
        seed: int | None = None,
        callback: StepCallback | None = None,
        additional_forward_args: Any = None,
        process_group: Any = None,
        autocast: str | None = None,
    ) -> History:
        r"""
        Measures each unit's 99th percentile and standard deviation on ``inputs`` (real
        samples; without them, on noise, see :func:`~captum_netinv.inversion.neuron_target.
        noise_reference`), then trains the generator through the frozen model with Adam, each
        step drawing every unit equally. Seeds, checkpoints and resuming behave as in
        :meth:`NetworkInversion.fit <captum_netinv.NetworkInversion.fit>`; a checkpoint resumes
        only with the same reference statistics (the same ``inputs``).

        Args:
            inputs (Tensor, optional): ``(N, C, H, W)`` real inputs in model space, ``N >= 2``:
                        the units' reference scale (and the input shape).
            steps (int, optional): Total optimisation steps. Default: 600
            batch_size (int, optional): Generated samples per step, at least the number of
                        units. Default: :meth:`default_batch_size`
            lr (float, optional): Adam learning rate, as in NetworkInversion.fit; so are
                        ``progress``, ``checkpoint_path``, ``checkpoint_every``, ``seed``,
                        ``callback``, ``additional_forward_args``, ``process_group`` and
                        ``autocast``. On several ranks every rank must pass the same
                        ``inputs`` (the statistics are compared; a ``ValueError`` otherwise).

        Returns:
            *dict[str, list[float]]*: the **history**, one value per step of each loss term,
            ``"loss"`` and ``"hit_rate"`` (the unit beats the other units and its 99th
            percentile).

        Examples::

            >>> history = inversion.fit(real_images, steps=600, seed=0, progress=False)
        """
        arguments = {key: value for key, value in locals().items() if key != "self"}
        check_positive_number(lr, "lr")  # before the statistics below change the object
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
        assert self.input_shape is not None
        reference = (
            inputs
            if inputs is not None
            else model.to_model_space(noise_reference(self.input_shape, self.settings.input_range))
        )
        statistics = unit_statistics(model, reference)
        group = fit_group(process_group, batch_size, autocast)
        if not identical_on_ranks(statistics.flat(), group, model_device(self.forward_func)):
            raise ValueError(
                "`inputs` differ between the ranks: a distributed NeuronInversion fit measures "
                "the units' 99th percentiles and scales on its reference inputs, and every rank "
                "must pass the same ones (the whole reference set, not a shard)"
            )
        self._set_statistics(statistics)
        self.settings = pair_weighted(self._declared_settings, batch_size, count, _PAIR_TERMS)
        try:
            # every argument of fit() goes to _run_fit under its own name; the inputs were read
            arguments.update(inputs=None, batch_size=batch_size, desc="NeuronInversion fit")
            return self._run_fit(**arguments)
        finally:
            self.settings = self._declared_settings

    def _ensure_fitted(
        self, inputs: Tensor | None = None, extra_args: Any = None, caller: str = "attribute"
    ) -> TargetModel:
        r"""The model view of a fitted inversion; an unfitted one is fitted on noise first."""
        self._ensure_input_shape(inputs, extra_args)
        if not self.fitted:
            warnings.warn(
                f"NeuronInversion is not fitted yet: {caller}() fits the generator with the "
                f"default budget ({NEURON_STEPS} steps) and noise reference statistics first; "
                "call fit(inputs=real_inputs) to choose the reference, budget and seed",
                stacklevel=3,
            )
            self.fit(additional_forward_args=extra_args)
        return self._ensure_input_shape(None, extra_args)

    @log_usage()
    def attribute(
        self,
        inputs: Tensor | None = None,
        neuron_selector: Any = None,
        n_samples: int | None = None,
        latents: Tensor | None = None,
        seed: int | None = None,
        additional_forward_args: Any = None,
    ) -> Tensor:
        r"""
        Generates inputs that drive the selected unit(s) high.

        Args:
            inputs (Tensor, optional): Example batch; only its shape is read, when
                        ``input_shape`` was not given.
            neuron_selector (int, tuple, Callable, list or Tensor): Captum's forms: an int
                        (the unit; the channel of a conv layer); a tuple ``(unit,)`` (longer
                        tuples index positions inside a channel, which a generator conditioned
                        on the reduced channel cannot honour: ValueError); a callable of the
                        layer's output, resolved to the one unit it reads (it is evaluated on
                        indicator outputs, one per unit with that unit / channel set to 1, and
                        must respond to exactly one); or a list / 1-D tensor of those, one
                        sample each. Units not fitted raise a ValueError.
            n_samples (int, optional): Samples for a single selector. Default: 16
            latents (Tensor, optional): ``(n, latent_dim)`` latent codes.
            seed (int, optional): Seed of the codes, conditioning draws and dropout.
            additional_forward_args (Any, optional): As in :meth:`fit`.

        Returns:
            *Tensor* of **samples** ``(n, *input_shape)`` in the model's input space.

        Examples::

            >>> samples = inversion.attribute(neuron_selector=3, n_samples=8, seed=0)
            >>> samples = inversion.attribute(neuron_selector=lambda out: out[:, 3])
        """
        self._ensure_input_shape(inputs, additional_forward_args)
        positions = resolve_neuron_selector(
            neuron_selector, n_samples, self.neurons, self.layer_shape
        )
        self._ensure_fitted(None, additional_forward_args)
        return self._generate(positions, latents, seed)

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
        (:func:`~captum_netinv.inversion.neuron_evaluation.evaluate_neurons`): their median
        activation against the unit's 99th percentile on real ``inputs``, and their diversity
        against the unit's ``top_k`` top-activating real inputs.

        Args:
            inputs (Tensor, optional): Real model-space inputs (e.g. the test set). Default:
                        the fit's reference statistics, no diversity ratio.
            n_per_unit (int, optional): Samples per unit, >= 2. Default: 32
            top_k (int, optional): Top-activating real inputs per unit. Default: 100
            feature_func (Callable, optional): Features of the diversity measure (e.g. another
                        model's hidden layer). Default: the layer's output.
            seed (int, optional): Seed of the samples. Default: 0
            additional_forward_args (Any, optional): As in :meth:`fit`.

        Returns:
            :class:`~captum_netinv.inversion.neuron_evaluation.NeuronEvaluation`.
        """
        if check_positive_int(n_per_unit, "n_per_unit") < 2:
            raise ValueError(f"`n_per_unit` must be >= 2 (diversity is pairwise), got {n_per_unit}")
        check_positive_int(top_k, "top_k")
        self._ensure_fitted(None, additional_forward_args, "evaluate")
        model = self._neuron_view(additional_forward_args)
        positions = torch.arange(len(model.neurons)).repeat_interleave(n_per_unit)
        samples = self._generate(positions, seed=seed)
        return evaluate_neurons(model, samples, positions, inputs, top_k, feature_func)

    def unit_activations(self, inputs: Tensor, additional_forward_args: Any = None) -> Tensor:
        r"""``(N, K)`` activations of the fitted units on model-space ``inputs``, on the CPU."""
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
    ) -> FigureAxes:
        r"""
        One unit at a glance: :func:`~captum_netinv.visualization.visualize_neuron`.

        Returns:
            *tuple* of **figure** and **axes**.
        """
        from captum_netinv.visualization import visualize_neuron

        arguments = (explanations, n_generated, k, seed, 40, plt_fig_axis, use_pyplot)
        return visualize_neuron(self, neuron, inputs, *arguments)  # bins: the default 40
