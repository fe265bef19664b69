"""NetworkInversion: a conditioned generator trained through a frozen classifier, as an attribution.

The Captum class only wires the shared machinery of :mod:`captum_netinv.inversion` and the modules
beside it (evaluation, counterfeits, concepts) into Captum's API; it holds no math of its own.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
from captum._utils.common import _format_additional_forward_args
from captum._utils.typing import TargetType
from captum.attr._utils.attribution import LayerAttribution
from captum.concept import Concept
from captum.log import log_usage
from torch import Tensor, nn

from captum_netinv._utils import check_int, check_model_inputs, check_positive_int, timed_warning
from captum_netinv.inversion.base import _InversionBase, fit_progress
from captum_netinv.inversion.checkpoint import write_atomically
from captum_netinv.inversion.compilation import check_compile
from captum_netinv.inversion.conditioning import ConditioningMode, MatrixEncoding
from captum_netinv.inversion.distributed import fit_group
from captum_netinv.inversion.generator import Upsampling, VectorEncoder
from captum_netinv.inversion.network.concepts import class_concept
from captum_netinv.inversion.network.counterfeits import counterfeit_settings, search_counterfeits
from captum_netinv.inversion.network.distillation import DistillationResult, distill_inversion
from captum_netinv.inversion.network.evaluation import InversionEvaluation, evaluate_samples
from captum_netinv.inversion.presets import Preset, preset_named
from captum_netinv.inversion.sampling import targets_from
from captum_netinv.inversion.settings import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_LR,
    DEFAULT_STEPS,
    InversionSettings,
)
from captum_netinv.inversion.training import History, StepCallback

if TYPE_CHECKING:
    from captum_netinv.visualization import FigureAxes, FigureAxis

__all__ = ["NetworkInversion"]


class NetworkInversion(_InversionBase, LayerAttribution):
    r"""
    Network Inversion (Suhail & Sethi, 2024, https://arxiv.org/abs/2407.18002): a conditioned
    generator ``G(z, conditioning)`` is trained through the frozen classifier alone (no data) so
    that it produces inputs the classifier assigns to a chosen class; once fitted it samples as
    many diverse inputs per class as wanted.

    Diversity comes from the conditioning (soft vectors whose argmax is the class, hot
    matrices joined to a feature map), from dropout kept active when sampling and from loss
    terms on the classifier's features at ``layer`` (pairwise cosine similarity, orthogonality);
    image priors (total variation, pixel range, BatchNorm statistics) keep samples natural.

    Examples::

        >>> model = train_classifier(LeNet5(), *load_mnist(), epochs=2)
        >>> inversion = NetworkInversion(model, input_shape=(1, 28, 28))
        >>> history = inversion.fit(steps=300)
        >>> threes = inversion.attribute(target=3, n_samples=8)
        >>> threes.shape
        torch.Size([8, 1, 28, 28])
    """

    # A LayerAttribution only: GradientAttribution's convergence delta means nothing here.

    def __init__(
        self,
        forward_func: Callable,
        layer: nn.Module | None = None,
        input_shape: Sequence[int] | None = None,
        num_classes: int | None = None,
        conditioning: ConditioningMode | None = None,
        generator: nn.Module | None = None,
        latent_dim: int | None = None,
        dropout: float | None = None,
        loss_weights: Mapping[str, float] | None = None,
        input_range: tuple[float, float] | None = None,
        input_normalization: tuple[Sequence[float] | float, Sequence[float] | float] | None = None,
        attribute_to_layer_input: bool | None = None,
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
        preset: str | Preset = "default",
    ) -> None:
        r"""
        Settings left as None take ``preset``'s values; the defaults below are ``"default"``'s.

        Args:
            forward_func (Callable or nn.Module): The classifier, returning ``(batch,
                        num_classes)`` logits; never modified (eval mode in fits, hooks removed).
            layer (nn.Module, optional): The diversity terms' layer (default: last Linear's input).
            input_shape, num_classes (optional): ``(C, H, W)`` of one input (default: from
                        :meth:`fit`'s ``inputs``) and the class count (default: a forward pass).
            conditioning (str, optional): ``"label"``, ``"vector"`` (soft vector),
                        ``"matrix"`` or ``"vector+matrix"``. Default: ``"vector"``
            generator (nn.Module, optional): ``generator(z, condition)`` of ``z`` ``(B,
                        latent_dim)`` and a :class:`~captum_netinv.inversion.ConditioningBatch`
                        gives ``(B, *input_shape)`` values in ``input_range``. Default: a
                        :class:`~captum_netinv.inversion.ConditionedGenerator` for the shape.
            latent_dim (int, optional): Length of the noise vector. Default: 64
            dropout (float, optional): Dropout rate of the default generator. Default: 0.3
            loss_weights (dict, optional): Overrides of the preset's weights (default:
                        :data:`~captum_netinv.inversion.DEFAULT_LOSS_WEIGHTS`); 0 switches off.
            input_range (tuple, optional): The generated pixels' range. Default: (0.0, 1.0)
            input_normalization (tuple, optional): ``(mean, std)``, floats or one per channel:
                        the model sees ``(x - mean) / std``, samples come in that space.
            attribute_to_layer_input (bool, optional): Read ``layer``'s input, not its output.
                        Default: True for the default layer, False for a given one.
            sample_with_dropout (bool, optional): Dropout on when sampling (default True).
            vector_scale, vector_margin (float, optional): Standard deviation of the soft
                        vectors' Gaussian draws (larger: peakier; default 3.0) and lead of the
                        target's logit over the runner-up (0: the paper's plain draw; default 1.0).
            jitter, zoom (optional): Largest shift (pixels, default 2) and relative zoom
                        (default 0.1; 0: one roll per batch) of what :meth:`fit` shows the model.
            device_ids (list[int], optional): A ``DataParallel`` model's devices, as in Captum.
            vector_encoder, matrix_encoding (optional): ``"mlp"`` / ``"none"`` and
                        ``"projection"`` / ``"hot"``. Defaults: ``"mlp"``, ``"projection"``
            upsampling, flips (optional): ``"resize"`` / ``"transposed"``; mirror half of
                        what the model sees in :meth:`fit`.
            colour_shift, centering (optional): :meth:`fit`'s colour jitter (None: 0.1 colour, 0
                        grey) and share of steps showing a growing centre crop (0.3; paper 0).
            preset (str or Preset, optional): ``"default"`` or ``"paper"``
                        (:data:`~captum_netinv.inversion.presets.PRESETS`). Default: ``"default"``
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
        # the counterfeit companion: its fit's key, the inversion, the forward arguments it
        # was fitted with (kept alive, so that their ids in the key stay theirs)
        self._counterfeiter: tuple[tuple[Any, ...], NetworkInversion, tuple[Any, ...]] | None = None
        self._setup(
            forward_func,
            layer,
            settings,
            input_shape=input_shape,
            num_classes=num_classes,
            generator=generator,
            attribute_to_layer_input=attribute_to_layer_input,
            device_ids=device_ids,
        )

    def fit(
        self,
        inputs: Tensor | None = None,
        steps: int = DEFAULT_STEPS,
        batch_size: int = DEFAULT_BATCH_SIZE,
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
        reference_inputs: Tensor | None = None,
        compile: bool | str = False,  # noqa: A002 (torch.compile's name)
    ) -> History:
        r"""
        Trains the generator through the frozen model with Adam
        (:func:`~captum_netinv.inversion.training.train_generator`).

        All randomness of the fit (initial weights, latent codes, conditioning, dropout) comes
        from ``seed``, in a forked RNG (the global random state is left alone). With
        ``checkpoint_path`` the generator, optimizer, history and random states are written
        every ``checkpoint_every`` steps and at the end; a file holding a checkpoint of this
        inversion is resumed, to the weights an uninterrupted fit would have. Otherwise every
        call starts over: ``history`` and ``steps_trained`` count this fit's ``steps`` alone.

        Args:
            inputs (Tensor, optional): Example batch ``(N, C, H, W)`` of floating-point
                        model-space inputs (uint8 images: ``images.float() / 255``) on any
                        device, only read for the input shape.
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
            additional_forward_args (Any, optional): Extra arguments of ``forward_func`` after
                        the inputs, as in Captum, passed unchanged with every generated batch
                        (so not per-sample; broadcastable ``(1, ...)`` ones are fine).
            process_group (ProcessGroup, optional): Called on every rank of a
                        ``torch.distributed`` group (default: the initialized default group, if
                        any), the ranks train one generator in DDP: ``batch_size`` is the global
                        batch, split evenly; rank 0 alone writes checkpoints (:doc:`/performance`).
            autocast (str, optional): ``"bfloat16"`` or ``"float16"`` (with a gradient scaler):
                        forward passes in half precision, loss terms in float32; faster on
                        GPUs and CPUs with bfloat16 units (AMX), slower on others. Default: None
            show_progress (bool, optional): Captum's name for ``progress`` (Captum's methods
                        default to False, our fits to True). Default: None
            internal_batch_size (int, optional): Refused (``TypeError``): see ``batch_size``.
            reference_inputs (Tensor, optional): Real model-space inputs ``(N, C, H, W)``, any
                        device, whose layer statistics the fit matches (no longer data-free;
                        :mod:`~captum_netinv.inversion.feature_statistics`). Default: None
            compile (bool or str, optional): ``torch.compile`` the generator and the loss
                        terms, in a mode of :mod:`~captum_netinv.inversion.compilation` (True:
                        ``"default"``; ``"reduce-overhead"``: CUDA graphs). Default: False

        Returns:
            *dict[str, list[float]]*: the **history**, one value per step for each loss term,
            the total ``"loss"`` and the batch ``"hit_rate"`` (argmax == target).

        Raises:
            NonFiniteLossError: a loss term became NaN or infinite (the generator and the
                        checkpoint file keep their last finite state).

        Examples::

            >>> history = inversion.fit(steps=300, seed=0, progress=False)
            >>> history["hit_rate"][-1]
            1.0
        """
        compile_mode = check_compile(compile)
        progress = fit_progress(progress, show_progress, internal_batch_size)
        group = fit_group(process_group, batch_size, autocast)
        # without an input shape or example inputs, the reference inputs give the shape
        no_shape = inputs is None and self.input_shape is None
        self._ensure_input_shape(reference_inputs if no_shape else inputs, additional_forward_args)
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
            reference_inputs=reference_inputs,
        )

    def _first_call_fit(self, *, extra_args: Any, caller: str) -> None:
        def message(estimate: str) -> str:
            return (
                f"NetworkInversion is not fitted yet: {caller}() fits the generator with the "
                f"default budget first ({DEFAULT_STEPS} steps of {DEFAULT_BATCH_SIZE} samples, "
                f"{estimate} as its first steps ran); call fit() to choose the budget and seed"
            )

        # the warning comes once the first steps are timed; the fit goes on unchanged
        self.fit(
            steps=DEFAULT_STEPS,
            additional_forward_args=extra_args,
            callback=timed_warning(message, DEFAULT_STEPS),
        )

    @log_usage()
    def attribute(
        self,
        inputs: Tensor | None = None,
        target: TargetType = None,
        n_samples: int | None = None,
        latents: Tensor | None = None,
        seed: int | None = None,
        additional_forward_args: Any = None,
        internal_batch_size: int | None = None,
    ) -> Tensor:
        r"""
        Generates inputs that the model assigns to ``target``.

        If the inversion is not fitted yet it is first fitted with the default budget, as a
        Captum method gives a result from the model alone; a warning and a progress bar
        labelled "NetworkInversion fit (first attribute call)" make the fit visible. Call
        :meth:`fit` first to choose its budget and seed (:doc:`/guarantees`).

        As a Captum method attributes each input, example ``inputs`` give one sample per row:
        ``attribute(inputs, target=3)`` returns ``len(inputs)`` samples of class 3, and a list
        ``target`` then holds one class per row. The inputs' values are not read, only their
        number and shape.

        Args:
            inputs (Tensor, optional): Example batch ``(N, C, H, W)`` of floating-point
                        model-space inputs: gives the input shape (when ``input_shape`` was
                        not given) and the number of samples, one per row.
            target (int, list[int] or Tensor): The class of the samples: an int (or scalar
                        tensor, or a one-element list / tensor / array) for ``n_samples``
                        samples of one class, or a list / 1-D tensor with the class of each
                        sample (a bool is refused: it is no class index).
            n_samples (int, optional): Number of samples for a single class; with ``inputs``
                        it must be None or ``len(inputs)``. Default: ``len(inputs)`` with
                        ``inputs``, else 16
            latents (Tensor, optional): ``(n, latent_dim)`` latent codes to decode instead of
                        random ones.
            seed (int, optional): Seed of the latent codes, conditioning draws and dropout.
            additional_forward_args (Any, optional): As in :meth:`fit`; only used by the
                        first-call fit (sampling does not run the model).
            internal_batch_size (int, optional): Captum's name: samples generated per forward
                        pass of the generator (memory); the same ``seed`` gives the same samples
                        at the same ``internal_batch_size``. Default: 256

        Returns:
            *Tensor* of **samples**, shape ``(n, *input_shape)``, in the model's input space
            (normalized when ``input_normalization`` was given), on the model's device.

        Examples::

            >>> sevens = inversion.attribute(target=7, n_samples=4, seed=0)
            >>> model(sevens).argmax(dim=1)
            tensor([7, 7, 7, 7])
        """
        self._ensure_input_shape(inputs, additional_forward_args)
        assert self.num_classes is not None
        targets = targets_from(
            target,
            n_samples,
            num_classes=self.num_classes,
            rows=None if inputs is None else len(inputs),
        )
        self._ensure_fitted(additional_forward_args)
        return self._generate(targets, latents, seed, batch_size=internal_batch_size)

    def evaluate(
        self,
        n_per_class: int = 100,
        verifier: Callable | None = None,
        seed: int | None = 0,
        additional_forward_args: Any = None,
        verifier_forward_args: Any = None,
        inputs: Tensor | None = None,
        labels: Tensor | None = None,
    ) -> InversionEvaluation:
        r"""
        Measures the inversion on ``n_per_class`` fresh samples of every class
        (:func:`~captum_netinv.inversion.network.evaluation.evaluate_samples`). With real
        ``inputs`` the samples' diversity is set beside the same measure on real data.

        Args:
            n_per_class (int, optional): Samples per class, >= 2. Default: 100
            verifier (Callable, optional): A second classifier of the same inputs (model space);
                        its hit rate tells whether samples carry the class's features rather
                        than adversarial noise specific to the model.
            seed (int, optional): Seed of the samples. Default: 0
            additional_forward_args (Any, optional): As in :meth:`fit` (not given to
                        ``verifier``); a model that needs them raises a ``ValueError`` naming
                        them when they are missing.
            verifier_forward_args (Any, optional): The verifier's own extra arguments after
                        the inputs, passed unchanged with every batch.
            inputs (Tensor, optional): Real model-space inputs ``(N, *input_shape)``, on any
                        device (moved to the model's batch by batch): the within-class
                        diversity of their features, per class and overall, and the samples'
                        ratio to it (``real_diversity``, ``diversity_ratio``).
                        Default: None (those fields None: no real-data reference)
            labels (Tensor, optional): ``(N,)`` classes of ``inputs``, on any device (a list
                        or array is converted). Default: the model's predicted classes.

        Returns:
            :class:`InversionEvaluation`: floats, and per-class tensors on the CPU.

        Examples::

            >>> result = inversion.evaluate(n_per_class=50, verifier=mlp, inputs=test_images)
            >>> result.hit_rate, result.verifier_hit_rate, result.diversity_ratio
            (1.0, 0.93, 0.41)
        """
        if check_positive_int(n_per_class, "n_per_class") < 2:
            raise ValueError(
                f"`n_per_class` must be >= 2 (diversity is pairwise), got {n_per_class}"
            )
        self._check_references(verifier, verifier_forward_args, inputs, labels)
        model = self._ensure_fitted(additional_forward_args, caller="evaluate")
        assert self.num_classes is not None
        targets = torch.arange(self.num_classes).repeat_interleave(n_per_class)
        samples = self._generate(targets, seed=seed)
        result = evaluate_samples(
            model,
            samples,
            targets=targets,
            num_classes=self.num_classes,
            verifier=verifier,
            verifier_forward_args=verifier_forward_args,
            inputs=inputs,
            labels=labels,
        )
        return dataclasses.replace(result, preset=self.settings.preset)

    def _check_references(
        self,
        verifier: Callable | None,
        verifier_forward_args: Any,
        inputs: Tensor | None,
        labels: Tensor | None,
    ) -> None:
        r"""Checks :meth:`evaluate`'s verifier and real-data arguments before any fit."""
        if verifier_forward_args is not None and verifier is None:
            raise ValueError(
                "`verifier_forward_args` were given without a `verifier`: they are the "
                "verifier's own extra arguments"
            )
        if labels is not None and inputs is None:
            raise ValueError("`labels` were given without `inputs`: they are the inputs' classes")
        if inputs is not None:
            check_model_inputs(inputs)
            shape = tuple(int(v) for v in inputs.shape[1:])
            if self.input_shape is not None and shape != self.input_shape:
                raise ValueError(
                    f"`inputs` have shape {shape} per sample but `input_shape` is "
                    f"{self.input_shape}"
                )

    def class_probabilities(self, inputs: Tensor, additional_forward_args: Any = None) -> Tensor:
        r"""
        The model's class probabilities of model-space ``inputs``, as the inversion reads its
        output (the softmax of logits; probabilities of a Softmax model as they are).

        Args:
            inputs (Tensor): ``(N, *input_shape)`` model-space inputs, on any device (moved to
                        the model's batch by batch).
            additional_forward_args (Any, optional): As in :meth:`fit`.

        Returns:
            *Tensor* ``(N, num_classes)`` on the CPU.
        """
        return self._ensure_input_shape(None, additional_forward_args).probabilities(inputs)

    def save(self, path: str) -> None:
        r"""
        Writes the fitted generator, settings, history and the model's fingerprint (input
        shape, number of classes, parameter names and shapes) to ``path``.

        Args:
            path (str): Destination file.

        Examples::

            >>> inversion.save("lenet_inversion.pt")
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
        return cls._restore(path, model, generator, layer, device_ids)

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
            concept_id (int, optional): The concept's id. Default: a hash of the generator,
                        ``target``, ``n_samples`` and ``seed`` (random without a seed) in
                        ``[2**23, 2**24)``: never a small user id, the same only for
                        the same draw (which TCAV's saved CAVs may then serve).
            name (str, optional): The concept's name. Default:
                        ``"inverted_class_{target}_seed_{seed}"`` (``_random`` without seed)
            seed (int, optional): Seed of the samples.

        Returns:
            :class:`captum.concept.Concept`, whose ``data_iter`` yields the samples on the
            model's device (where TCAV runs the model on them).

        Examples::

            >>> threes = inversion.as_concept(3, n_samples=50)
            >>> tcav = TCAV(model, layers=["fc1"])
        """
        check_int(target, "target", "an int class index")
        if concept_id is not None:
            check_int(concept_id, "concept_id")
        check_positive_int(batch_size, "batch_size")
        samples = self.attribute(target=int(target), n_samples=n_samples, seed=seed)
        assert self.generator is not None
        return class_concept(
            samples,
            generator=self.generator,
            target=int(target),
            seed=seed,
            batch_size=batch_size,
            concept_id=concept_id,
            name=name,
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
        progress: bool | None = None,
        additional_forward_args: Any = None,
        show_progress: bool | None = None,
    ) -> Tensor:
        r"""
        Inputs the model accepts as ``target`` with probability >= ``confidence`` that
        ``verifier`` assigns to another class: the adversarial use of inversion.

        A companion inversion without image priors, jitter and KL term
        (:func:`~captum_netinv.inversion.network.counterfeits.counterfeit_settings`) is fitted for
        ``steps`` steps (and kept for calls with the same ``steps``, ``batch_size`` and
        ``seed``); its samples of ``target`` are drawn until ``n_samples`` pass both tests or
        ``max_draws`` were tried (a warning then says how many were found).

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
            additional_forward_args (Any, optional): As in :meth:`fit` (not given to
                        ``verifier``).
            show_progress (bool, optional): Captum's name for ``progress``. Default: None

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
        model = self._ensure_input_shape(None, additional_forward_args)
        assert self.num_classes is not None
        targets_from(target, 1, self.num_classes)
        companion = self._counterfeit_companion(
            steps=steps,
            batch_size=batch_size,
            seed=seed,
            progress=fit_progress(progress, show_progress, internal_batch_size=None),
            additional_forward_args=additional_forward_args,
        )
        return search_counterfeits(
            lambda targets, draw_seed: companion._generate(targets, seed=draw_seed),
            model=model,
            verifier=verifier,
            target=target,
            n_samples=n_samples,
            confidence=confidence,
            max_draws=max_draws,
            seed=seed,
        )

    @log_usage()
    def distill(self, student: nn.Module, **options: Any) -> DistillationResult:
        r"""
        Trains ``student`` on freshly generated batches alone (data-free distillation) while
        the generator keeps training and seeks the student's disagreement with the model;
        the arguments and what is recorded are those of
        :func:`~captum_netinv.inversion.network.distillation.distill_inversion`.

        Args:
            student (nn.Module): Maps the model's inputs to ``(B, num_classes)`` logits.
            **options: ``steps``, ``batch_size``, ``lr``, ``seed``, ``progress`` and the
                        schedule (``student_lr``, ``disagreement_weight``, ...) of
                        :func:`~captum_netinv.inversion.network.distillation.distill_student`.

        Returns:
            :class:`~captum_netinv.inversion.network.distillation.DistillationResult`.

        Examples::

            >>> result = inversion.distill(LeNet5(), steps=3000, seed=0, progress=False)
        """
        return distill_inversion(self, student, **options)

    def _counterfeit_companion(
        self,
        *,
        steps: int,
        batch_size: int,
        seed: int | None,
        progress: bool,
        additional_forward_args: Any,
    ) -> NetworkInversion:
        r"""The inversion with :func:`counterfeit_settings`, fitted with this budget and seed;
        kept for calls with the same budget, seed and ``additional_forward_args`` objects."""
        # the objects passed, by identity; kept alive in _counterfeiter, so that no other
        # object takes their ids
        forward_args = _format_additional_forward_args(additional_forward_args) or ()
        key = (steps, batch_size, seed, *map(id, forward_args))
        if self._counterfeiter is None or self._counterfeiter[0] != key:
            companion = self._with_settings(counterfeit_settings(self.settings))
            companion.fit(
                steps=steps,
                batch_size=batch_size,
                seed=seed,
                progress=progress,
                additional_forward_args=additional_forward_args,
            )
            self._counterfeiter = key, companion, forward_args
        return self._counterfeiter[1]

    def _with_settings(self, settings: InversionSettings) -> NetworkInversion:
        r"""An unfitted inversion of the same model and layer with other ``settings``."""
        with warnings.catch_warnings():
            # what this inversion's construction said of the model's output holds here too
            warnings.filterwarnings("ignore", message="NetworkInversion: the model returns")
            return NetworkInversion._from_settings(
                self.forward_func,
                settings,
                layer=self.layer,
                input_shape=self.input_shape,
                num_classes=self.num_classes,
                attribute_to_layer_input=self.attribute_to_layer_input,
                device_ids=self.device_ids,
            )

    def visualize(
        self,
        n_per_class: int = 8,
        seed: int | None = 0,
        class_names: Sequence[str] | None = None,
        plt_fig_axis: FigureAxes | None = None,
        use_pyplot: bool = True,
        title: str | None = "generated samples per class",
        additional_forward_args: Any = None,
    ) -> FigureAxes:
        r"""
        Grid of generated samples, one row per class, each titled with the model's confidence
        in its class: :func:`~captum_netinv.visualization.visualize_inversion`.

        Args:
            n_per_class (int, optional): Samples per class. Default: 8
            seed (int, optional): Seed of the samples. Default: 0
            class_names (sequence of str, optional): Row labels.
            plt_fig_axis (tuple, optional): ``(figure, axes)`` to draw into.
            use_pyplot (bool, optional): Create and show with pyplot. Default: True
            title (str, optional): Figure title. Default: "generated samples per class"
            additional_forward_args (Any, optional): As in :meth:`fit`: for the confidences
                        (and a first-call fit).

        Returns:
            *tuple* of **figure** and **axes**.
        """
        from captum_netinv.visualization import visualize_inversion

        return visualize_inversion(
            self,
            n_per_class=n_per_class,
            seed=seed,
            class_names=class_names,
            plt_fig_axis=plt_fig_axis,
            use_pyplot=use_pyplot,
            title=title,
            additional_forward_args=additional_forward_args,
        )

    def visualize_history(
        self,
        keys: Sequence[str] | None = None,
        plt_fig_axis: FigureAxis | None = None,
        use_pyplot: bool = True,
    ) -> FigureAxis:
        r"""
        The fit's curves (loss terms and hit rate per step):
        :func:`~captum_netinv.visualization.visualize_training_curves` of :attr:`history`.

        Returns:
            *tuple* of **figure** and **axis**.
        """
        from captum_netinv.visualization import visualize_training_curves

        if not self.history:
            raise ValueError("no training history: call fit() first")
        return visualize_training_curves(
            self.history, keys=keys, plt_fig_axis=plt_fig_axis, use_pyplot=use_pyplot
        )
