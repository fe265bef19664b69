"""The state and set-up both inversions share: model view, generator, fit, saved state, sampling.

:class:`_InversionBase` owns what an inversion holds (settings, input shape, generator, history)
and the fit's orchestration (resume, random streams, checkpoints). NetworkInversion builds on it
with Captum's layer base, NeuronInversion with Captum's neuron base; nothing here is one's alone.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import random
import warnings
from abc import abstractmethod
from collections.abc import Callable, Mapping
from typing import Any

import torch
from captum.attr._utils.attribution import InternalAttribution
from torch import Tensor, nn

from captum_netinv._captum_names import refuse_captum_name, resolve_alias
from captum_netinv._threads import warn_if_oversubscribed
from captum_netinv._utils import (
    caller_stacklevel,
    check_forward_func,
    check_layer_in_model,
    check_model_inputs,
    check_positive_int,
    check_positive_number,
    check_seed,
    excerpt,
    model_device,
    single_module,
)
from captum_netinv.inversion.checkpoint import (
    CHECKPOINT_FORMAT,
    FitCheckpoint,
    check_resumable,
    model_fingerprint,
    read_checkpoint,
    read_saved_inversion,
)
from captum_netinv.inversion.distributed import (
    ProcessGroup,
    restore_rank_streams,
    seed_streams,
    write_fit_checkpoint,
)
from captum_netinv.inversion.feature_statistics import reference_statistics
from captum_netinv.inversion.generator import ConditionedGenerator, check_input_shape
from captum_netinv.inversion.sampling import generate, rng_devices
from captum_netinv.inversion.settings import (
    InversionSettings,
    normalization_tensors,
    to_pixel_space,
)
from captum_netinv.inversion.target_model import (
    SAMPLE_BATCH_SIZE,
    ForwardArgumentsError,
    TargetModel,
    default_layer,
    num_classes_of_output,
    output_kind_of,
    output_kind_warning,
)
from captum_netinv.inversion.training import (
    History,
    NonFiniteLossError,
    StepCallback,
    check_trainable_settings,
    generator_optimizer,
    train_generator,
)

__all__ = ["fit_progress"]

#: Why a fit refuses Captum's ``internal_batch_size``, and what to pass instead.
_FIT_BATCH = (
    "pass `batch_size`: the samples generated per step, which go through the model in one "
    "forward pass"
)


def fit_progress(
    progress: bool | None, show_progress: bool | None, internal_batch_size: int | None
) -> bool:
    r"""Whether a fit shows its progress bar: ``progress``, or Captum's ``show_progress`` in its
    place, else True; Captum's ``internal_batch_size`` is refused, naming ``batch_size``."""
    refuse_captum_name("internal_batch_size", internal_batch_size, _FIT_BATCH)
    return resolve_alias(
        ours_name="progress",
        ours_value=progress,
        captum_name="show_progress",
        captum_value=show_progress,
        default=True,
    )


class _InversionBase(InternalAttribution):
    r"""What an inversion holds and how it is set up, fitted, saved and sampled; the public
    classes put it before their Captum base (``LayerAttribution``, ``NeuronAttribution``),
    whose constructor :meth:`_setup` runs, and add Captum's documented methods on top."""

    def _setup(
        self,
        forward_func: Callable,
        layer: nn.Module | None,
        settings: InversionSettings,
        *,
        input_shape: Any,
        num_classes: int | None,
        generator: nn.Module | None,
        attribute_to_layer_input: bool | None,
        device_ids: list[int] | None,
    ) -> None:
        check_forward_func(forward_func)
        chosen_layer = default_layer(forward_func) if layer is None else layer
        check_layer_in_model(forward_func, chosen_layer)
        # the next class in the method resolution order: the public class's Captum base
        super().__init__(forward_func, chosen_layer, device_ids)
        self.settings = settings
        self.attribute_to_layer_input = (
            layer is None if attribute_to_layer_input is None else attribute_to_layer_input
        )
        if generator is not None and not isinstance(generator, nn.Module):
            raise TypeError(f"`generator` must be an nn.Module, got {type(generator).__name__}")
        self.generator = generator
        self.custom_generator = generator is not None
        # fit() starts from these weights every time (see _fresh_generator)
        self._initial_generator = (
            None if generator is None else copy.deepcopy(generator.state_dict())
        )
        check_trainable_settings(settings, self.custom_generator)
        if num_classes is not None and check_positive_int(num_classes, "num_classes") < 2:
            raise ValueError(f"`num_classes` must be >= 2 (a classifier), got {num_classes}")
        self.num_classes = num_classes
        self.input_shape: tuple[int, int, int] | None = None
        self.history: History = {}
        self.steps_trained = 0
        self._model: TargetModel | None = None
        # the public call an automatic first fit serves, for its progress bar's label
        self._first_caller: str | None = None
        if input_shape is not None:
            self._set_input_shape(check_input_shape(input_shape), extra_args=None, deferrable=True)

    @classmethod
    def _from_settings(
        cls,
        forward_func: Callable,
        settings: InversionSettings,
        **arguments: Any,
    ) -> Any:
        values = settings.to_dict()
        values["input_range"] = tuple(values["input_range"])
        if values["input_normalization"] is not None:
            values["input_normalization"] = tuple(values["input_normalization"])
        return cls(forward_func, **values, **arguments)

    @property
    def device(self) -> torch.device:
        r"""Where the model (and so the generator) lives."""
        return model_device(self.forward_func)

    @property
    def fitted(self) -> bool:
        r"""Whether the generator has been trained (by :meth:`fit` or :meth:`load`)."""
        return self.steps_trained > 0

    def _set_input_shape(
        self, input_shape: tuple[int, int, int], *, extra_args: Any, deferrable: bool = False
    ) -> None:
        r"""Sets the input shape and finds the number of classes with one forward pass; when
        ``deferrable`` (the constructor) a ``TypeError`` of the model, e.g. a missing extra
        argument, defers that pass to the first call that gives ``additional_forward_args``."""
        model = self._target_model(input_shape)
        view = model.with_args(extra_args)
        output = self._probe(
            input_shape, lambda x: view.outputs(view.to_model_space(x)), deferrable
        )
        if output is None:
            return
        self.num_classes = num_classes_of_output(output, 2, self.num_classes)
        kind, evidence = output_kind_of(self.forward_func, output)
        if kind != "logits":
            warnings.warn(
                output_kind_warning(type(self).__name__, kind, evidence),
                stacklevel=caller_stacklevel(),
            )
        self.input_shape = input_shape
        self._model = dataclasses.replace(model, output_kind=kind)

    def _target_model(self, input_shape: tuple[int, int, int]) -> TargetModel:
        r"""The frozen model as a fit sees it, for inputs of ``input_shape``."""
        return TargetModel(
            forward_func=self.forward_func,
            layer=self.layer,
            attribute_to_layer_input=self.attribute_to_layer_input,
            device_ids=self.device_ids,
            normalization=normalization_tensors(self.settings, input_shape[0]),
        )

    def _probe(
        self, input_shape: tuple[int, int, int], run: Callable[[Tensor], Any], deferrable: bool
    ) -> Any:
        r"""``run`` of two mid-range inputs of ``input_shape``; a failing model raises a ValueError,
        or (``deferrable``, a ``TypeError``) defers the pass: the shape is kept, None returned."""
        probe = torch.full((2, *input_shape), sum(self.settings.input_range) / 2)
        try:
            return run(probe)
        except (RuntimeError, ValueError, TypeError, IndexError) as raised:
            if isinstance(raised, ForwardArgumentsError) and not isinstance(
                raised.__cause__, TypeError
            ):
                raise  # per-sample extra arguments: their own message says so
            # a model without its extra arguments: deferred or named below, as a TypeError
            error = raised.__cause__ if isinstance(raised, ForwardArgumentsError) else raised
            assert isinstance(error, Exception)
            if deferrable and isinstance(error, TypeError):
                self.input_shape, self._model = input_shape, None
                return None
            hint = "; if it takes more inputs, pass `additional_forward_args`"
            raise ValueError(
                f"`input_shape` {input_shape}: the model fails on a batch of that shape "
                f"({excerpt(str(error), 300)}){hint if isinstance(error, TypeError) else ''}"
            ) from error

    def _ensure_input_shape(self, inputs: Tensor | None, extra_args: Any = None) -> TargetModel:
        r"""The model view, once the input shape is known; ``extra_args`` go with its calls.
        Example ``inputs`` are checked (:func:`~captum_netinv._utils.check_model_inputs`) and,
        when they give the input shape, a model that fails on it names ``inputs``."""
        if inputs is not None:
            check_model_inputs(inputs)
            shape = check_input_shape(tuple(int(v) for v in inputs.shape[1:]), "inputs")
            if self.input_shape is not None and shape != self.input_shape:
                raise ValueError(
                    f"`inputs` have shape {shape} per sample but `input_shape` is "
                    f"{self.input_shape}"
                )
            if self._model is None:
                try:
                    self._set_input_shape(shape, extra_args=extra_args)
                except ValueError as error:
                    failure = error.__cause__
                    if not isinstance(failure, (RuntimeError, ValueError, TypeError, IndexError)):
                        raise
                    hint = "; if it takes more inputs, pass `additional_forward_args`"
                    raise ValueError(
                        f"`inputs` have shape {shape} per sample, which the model does not "
                        f"accept: {excerpt(str(failure), 300)}"
                        f"{hint if isinstance(failure, TypeError) else ''}"
                    ) from failure
        if self._model is None and self.input_shape is not None:
            self._set_input_shape(self.input_shape, extra_args=extra_args)
        if self._model is None:
            raise ValueError(
                f"the input shape is unknown: pass `input_shape=(C, H, W)` to "
                f"{type(self).__name__} or an example batch as `inputs`"
            )
        return self._model.with_args(extra_args)

    def _ensure_generator(self) -> nn.Module:
        if self.generator is None:
            # a fixed seed keeps the global random state alone; fit() redraws from its seed
            with torch.random.fork_rng(devices=rng_devices(self.device)):
                torch.manual_seed(0)
                self.generator = self._new_generator()
        return self.generator

    def _new_generator(self) -> nn.Module:
        assert self.input_shape is not None and self.num_classes is not None
        return ConditionedGenerator(
            self.input_shape,
            self.num_classes,
            latent_dim=self.settings.latent_dim,
            conditioning=self.settings.conditioning,
            dropout=self.settings.dropout,
            input_range=self.settings.input_range,
            vector_encoder=self.settings.vector_encoder,
            matrix_encoding=self.settings.matrix_encoding,
            upsampling=self.settings.upsampling,
        ).to(self.device)

    def _fingerprint(self) -> dict[str, Any]:
        assert self.input_shape is not None and self.num_classes is not None
        return model_fingerprint(self.forward_func, self.input_shape, self.num_classes)

    def _config(self) -> dict[str, Any]:
        module_names = {
            module: name for name, module in single_module(self.forward_func).named_modules()
        }
        return {
            **self.settings.to_dict(),
            "layer": module_names.get(self.layer),
            "attribute_to_layer_input": self.attribute_to_layer_input,
            "custom_generator": self.custom_generator,
        }

    def _state(self) -> dict[str, Any]:
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

    def _run_fit(
        self,
        *,
        steps: int,
        batch_size: int,
        lr: float,
        progress: bool,
        checkpoint_path: str | None,
        checkpoint_every: int,
        seed: int | None,
        callback: StepCallback | None,
        additional_forward_args: Any,
        group: ProcessGroup | None,
        autocast: str | None,
        settings: InversionSettings | None = None,
        reference_inputs: Tensor | None = None,
        compile: str | None = None,  # noqa: A002 (the fit argument's name)
    ) -> History:
        r"""
        The fit of both methods: a fresh fit from the initial weights (history and
        ``steps_trained`` start over), or the rest of the one saved at ``checkpoint_path``.
        ``group`` is the process group the public ``fit`` resolved (None: one process);
        ``settings`` are the fit's, when they differ from :attr:`settings` (default: those);
        with ``reference_inputs`` the fit matches their feature statistics
        (:mod:`~captum_netinv.inversion.feature_statistics`); ``compile`` is a checked
        ``torch.compile`` mode or None (:mod:`~captum_netinv.inversion.compilation`).
        """
        model = self._ensure_input_shape(None, additional_forward_args)
        if reference_inputs is not None:
            statistics = reference_statistics(
                model.logits_and_features,
                model.forward_func,
                self._checked_reference(reference_inputs),
            )
            model = dataclasses.replace(model, feature_statistics=statistics)
        seed = check_seed(seed)
        check_positive_int(steps, "steps")
        check_positive_int(checkpoint_every, "checkpoint_every")
        if check_positive_int(batch_size, "batch_size") < 2:
            raise ValueError(f"`batch_size` must be >= 2 (pairwise terms), got {batch_size}")
        lr = check_positive_number(lr, "lr")
        warn_if_oversubscribed()
        resumed = self._resumable_checkpoint(checkpoint_path, seed, batch_size, lr)
        seed = resumed.seed if resumed is not None else seed
        if seed is None:
            seed = random.SystemRandom().randrange(2**31)
        with torch.random.fork_rng(devices=rng_devices(self.device)):
            rng = torch.Generator()
            if resumed is None:
                seed_streams(seed, rng, group)  # rank 0's are ``seed``'s; see distributed.py
                self._fresh_generator()
            generator = self._ensure_generator()
            optimizer = generator_optimizer(generator, lr=lr)
            if resumed is not None and checkpoint_path is not None:
                state = read_checkpoint(checkpoint_path, type(self).__name__)
                self._restore_fit(state, resumed, optimizer, rng, group)

            def checkpoint(step: int) -> None:
                self.steps_trained = step
                if checkpoint_path is not None:
                    fit = FitCheckpoint.capture(
                        step, optimizer, rng, self.device, seed=seed, batch_size=batch_size, lr=lr
                    )
                    write_fit_checkpoint(
                        self._state, fit, checkpoint_path, group, rng=rng, device=self.device
                    )

            assert self.num_classes is not None
            try:
                self.steps_trained = train_generator(
                    generator,
                    model,
                    self.settings if settings is None else settings,
                    num_classes=self.num_classes,
                    optimizer=optimizer,
                    rng=rng,
                    steps=steps,
                    batch_size=batch_size,
                    history=self.history,
                    start=self.steps_trained if resumed is not None else 0,
                    progress=progress,
                    desc=self._fit_label(),
                    callback=callback,
                    checkpoint=checkpoint,
                    checkpoint_every=checkpoint_every,
                    process_group=group,
                    autocast=autocast,
                    compile=compile,
                )
            except NonFiniteLossError as error:
                self.steps_trained = error.step - 1
                if checkpoint_path is None:
                    raise
                raise NonFiniteLossError(
                    f"{error} (last good checkpoint: {checkpoint_path!r})", error.step
                ) from error
        return self.history

    def _checked_reference(self, reference_inputs: object) -> Tensor:
        r"""``reference_inputs`` checked (a batch of model-space inputs of the input shape, at
        least 2) and moved to the model's device."""
        inputs = check_model_inputs(reference_inputs, "reference_inputs")
        if tuple(inputs.shape[1:]) != self.input_shape:
            raise ValueError(
                f"`reference_inputs` must have the input shape {self.input_shape}, got "
                f"{tuple(inputs.shape[1:])}"
            )
        return inputs.to(self.device)

    def _fresh_generator(self) -> None:
        r"""The generator at its initial weights, and no history: every fit starts over."""
        self.history = {}
        self.steps_trained = 0
        if self._initial_generator is None:
            self.generator = self._new_generator()
        else:
            assert self.generator is not None
            self.generator.load_state_dict(self._initial_generator)

    def _resumable_checkpoint(
        self, path: str | None, seed: int | None, batch_size: int, lr: float
    ) -> FitCheckpoint | None:
        if path is None or not os.path.exists(path):
            return None
        return check_resumable(
            read_checkpoint(path, type(self).__name__),
            path,
            fingerprint=self._fingerprint(),
            config=self._config(),
            arguments={"seed": seed, "batch_size": batch_size, "lr": lr},
            method=type(self).__name__,
        )

    def _restore_fit(
        self,
        state: Mapping[str, Any],
        fit: FitCheckpoint,
        optimizer: torch.optim.Optimizer,
        rng: torch.Generator,
        group: Any = None,
    ) -> None:
        assert self.generator is not None
        self.generator.load_state_dict(state["generator"])
        self.history = {key: list(values) for key, values in state["history"].items()}
        self.steps_trained = fit.step
        fit.restore(optimizer, rng, self.device)
        restore_rank_streams(state, rng, self.device, group)

    def _ensure_fitted(self, extra_args: Any = None, caller: str = "attribute") -> TargetModel:
        r"""The model view of a fitted inversion: an unfitted one is first fitted with its
        class's default budget (:meth:`_first_call_fit`), as a Captum method gives a result
        from the model alone."""
        self._ensure_input_shape(None, extra_args)
        if not self.fitted:
            self._first_caller = caller
            try:
                self._first_call_fit(extra_args=extra_args, caller=caller)
            finally:
                self._first_caller = None
        return self._ensure_input_shape(None, extra_args)

    @abstractmethod
    def _first_call_fit(self, *, extra_args: Any, caller: str) -> None:
        r"""Fits an unfitted inversion with the default budget, visibly (a warning and the
        progress bar), for the first ``caller`` call: each public class says how."""

    def _fit_label(self) -> str:
        r"""The fit's progress-bar label: the class, and the call a first-call fit serves."""
        label = f"{type(self).__name__} fit"
        return label if self._first_caller is None else f"{label} (first {self._first_caller} call)"

    def _generate(
        self,
        targets: Tensor,
        latents: Tensor | None = None,
        seed: int | None = None,
        batch_size: int | None = None,
    ) -> Tensor:
        r"""Samples of ``targets`` (:func:`generate`), ``batch_size`` of them per forward pass
        of the generator (Captum's ``internal_batch_size``; default: 256)."""
        assert self._model is not None and self.num_classes is not None
        return generate(
            self._ensure_generator(),
            self._model,
            self.settings,
            targets,
            num_classes=self.num_classes,
            device=self.device,
            latents=latents,
            seed=check_seed(seed),
            batch_size=(
                SAMPLE_BATCH_SIZE
                if batch_size is None
                else check_positive_int(batch_size, "internal_batch_size")
            ),
        )

    def to_pixel_space(self, inputs: Tensor) -> Tensor:
        r"""
        Model-space inputs (as :meth:`attribute` returns them) back in the generator's pixel
        range ``input_range``: the inverse of ``input_normalization``.

        Args:
            inputs (Tensor): ``(n, *input_shape)`` model-space inputs.

        Returns:
            *Tensor* of the same shape.
        """
        model = self._ensure_input_shape(None)
        return to_pixel_space(inputs, model.normalization)

    @classmethod
    def _saved_arguments(cls, config: Mapping[str, Any], fingerprint: Mapping[str, Any]) -> Any:
        r"""Constructor arguments a saved file gives besides those every inversion has."""
        return {"num_classes": fingerprint["num_classes"]}

    def _restored(self, config: Mapping[str, Any]) -> None:
        r"""Sets what a saved ``config`` holds besides the generator and history: nothing here."""

    @classmethod
    def _restore(
        cls,
        path: str,
        model: Callable,
        generator: nn.Module | None,
        layer: nn.Module | None,
        device_ids: list[int] | None,
    ) -> Any:
        check_forward_func(model, "model")
        state = read_saved_inversion(path, model, generator is not None, cls.__name__)
        config, fingerprint = state["config"], state["fingerprint"]
        if layer is None and config["layer"] is not None:
            layer = single_module(model).get_submodule(config["layer"])
        inversion = cls._from_settings(
            model,
            InversionSettings.from_dict(config),
            layer=layer,
            input_shape=tuple(fingerprint["input_shape"]),
            generator=generator,
            attribute_to_layer_input=config["attribute_to_layer_input"],
            device_ids=device_ids,
            **cls._saved_arguments(config, fingerprint),
        )
        inversion._restored(config)
        inversion._ensure_generator().load_state_dict(state["generator"])
        inversion.history = {key: list(values) for key, values in state["history"].items()}
        inversion.steps_trained = int(state["steps_trained"])
        return inversion
