"""The state and set-up every inversion shares: model view, generator, fit, saved state, sampling.

:class:`_InversionBase` owns what an inversion holds (settings, input shape, generator, history)
and the fit's orchestration (resume, random streams, checkpoints); the Captum classes build on it.
"""

from __future__ import annotations

import os
import random
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import torch
from captum.attr._utils.attribution import LayerAttribution
from torch import Tensor, nn

from captum_netinv._utils import check_layer_in_model, check_positive_int, eval_mode, model_device
from captum_netinv.inversion.checkpoint import (
    CHECKPOINT_FORMAT,
    FitCheckpoint,
    check_fingerprint,
    check_resumable,
    model_fingerprint,
    read_checkpoint,
    write_atomically,
)
from captum_netinv.inversion.generator import ConditionedGenerator, check_input_shape
from captum_netinv.inversion.sampling import generate, rng_devices
from captum_netinv.inversion.settings import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_STEPS,
    InversionSettings,
    normalization_tensors,
    to_pixel_space,
)
from captum_netinv.inversion.target_model import TargetModel, default_layer, num_classes_of_output
from captum_netinv.inversion.training import (
    History,
    NonFiniteLossError,
    StepCallback,
    train_generator,
)

__all__: list[str] = []


class _InversionBase(LayerAttribution):
    r"""
    What an inversion holds and how it is set up, fitted, saved and sampled; the public
    classes add Captum's documented methods on top.
    """

    def _setup(
        self,
        forward_func: Callable,
        layer: nn.Module | None,
        settings: InversionSettings,
        input_shape: Any,
        num_classes: int | None,
        generator: nn.Module | None,
        attribute_to_layer_input: bool | None,
        device_ids: list[int] | None,
    ) -> None:
        chosen_layer = default_layer(forward_func) if layer is None else layer
        check_layer_in_model(forward_func, chosen_layer)
        LayerAttribution.__init__(self, forward_func, chosen_layer, device_ids)
        self.settings = settings
        self.attribute_to_layer_input = (
            layer is None if attribute_to_layer_input is None else attribute_to_layer_input
        )
        if generator is not None and not isinstance(generator, nn.Module):
            raise TypeError(f"`generator` must be an nn.Module, got {type(generator).__name__}")
        self.generator = generator
        self.custom_generator = generator is not None
        if num_classes is not None:
            check_positive_int(num_classes, "num_classes")
        self.num_classes = num_classes
        self.input_shape: tuple[int, int, int] | None = None
        self.history: History = {}
        self.steps_trained = 0
        self._model: TargetModel | None = None
        if input_shape is not None:
            self._set_input_shape(check_input_shape(input_shape))

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

    def _sibling(self, settings: InversionSettings) -> Any:
        r"""An unfitted inversion of the same class, model and layer with other ``settings``."""
        return type(self)._from_settings(
            self.forward_func,
            settings,
            layer=self.layer,
            input_shape=self.input_shape,
            num_classes=self.num_classes,
            attribute_to_layer_input=self.attribute_to_layer_input,
            device_ids=self.device_ids,
        )

    @property
    def device(self) -> torch.device:
        r"""Where the model (and so the generator) lives."""
        return model_device(self.forward_func)

    @property
    def fitted(self) -> bool:
        r"""Whether the generator has been trained (by :meth:`fit` or :meth:`load`)."""
        return self.steps_trained > 0

    def _set_input_shape(self, input_shape: tuple[int, int, int]) -> None:
        model = TargetModel(
            self.forward_func,
            self.layer,
            self.attribute_to_layer_input,
            self.device_ids,
            normalization_tensors(self.settings, input_shape[0]),
        )
        probe = torch.full((2, *input_shape), sum(self.settings.input_range) / 2)
        try:
            with torch.no_grad(), eval_mode(self.forward_func):
                output = self.forward_func(model.to_model_space(probe.to(self.device)))
        except (RuntimeError, ValueError, TypeError, IndexError) as error:
            raise ValueError(
                f"`input_shape` {input_shape}: the model fails on a batch of that shape ({error})"
            ) from error
        self.num_classes = num_classes_of_output(output, 2, self.num_classes)
        self.input_shape = input_shape
        self._model = model

    def _ensure_input_shape(self, inputs: Tensor | None) -> TargetModel:
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
        if self._model is None:
            raise ValueError(
                "the input shape is unknown: pass `input_shape=(C, H, W)` to NetworkInversion "
                "or an example batch as `inputs`"
            )
        return self._model

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
        ).to(self.device)

    def _fingerprint(self) -> dict[str, Any]:
        assert self.input_shape is not None and self.num_classes is not None
        return model_fingerprint(self.forward_func, self.input_shape, self.num_classes)

    def _config(self) -> dict[str, Any]:
        module_names = (
            {module: name for name, module in self.forward_func.named_modules()}
            if isinstance(self.forward_func, nn.Module)
            else {}
        )
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
        inputs: Tensor | None,
        steps: int,
        batch_size: int,
        lr: float,
        progress: bool,
        checkpoint_path: str | None,
        checkpoint_every: int,
        seed: int | None,
        callback: StepCallback | None,
    ) -> History:
        model = self._ensure_input_shape(inputs)
        check_positive_int(steps, "steps")
        check_positive_int(checkpoint_every, "checkpoint_every")
        if check_positive_int(batch_size, "batch_size") < 2:
            raise ValueError(f"`batch_size` must be >= 2 (pairwise terms), got {batch_size}")
        if not lr > 0:
            raise ValueError(f"`lr` must be > 0, got {lr}")
        resumed = self._resumable_checkpoint(checkpoint_path, seed, batch_size, lr)
        seed = resumed.seed if resumed is not None else seed
        if seed is None:
            seed = random.SystemRandom().randrange(2**31)
        with torch.random.fork_rng(devices=rng_devices(self.device)):
            rng = torch.Generator()
            if resumed is None:
                torch.manual_seed(seed)
                rng.manual_seed(seed)
                if not self.custom_generator and not self.fitted:
                    self.generator = self._new_generator()
            generator = self._ensure_generator()
            optimizer = torch.optim.Adam(generator.parameters(), lr=lr)
            if resumed is not None and checkpoint_path is not None:
                self._restore_fit(read_checkpoint(checkpoint_path), resumed, optimizer, rng)

            def checkpoint(step: int) -> None:
                self.steps_trained = step
                if checkpoint_path is not None:
                    fit = FitCheckpoint.capture(
                        step, seed, batch_size, lr, optimizer, rng, self.device
                    )
                    write_atomically({**self._state(), **fit.to_dict()}, checkpoint_path)

            assert self.num_classes is not None
            try:
                self.steps_trained = train_generator(
                    generator,
                    model,
                    self.settings,
                    self.num_classes,
                    optimizer,
                    rng,
                    steps=steps,
                    batch_size=batch_size,
                    history=self.history,
                    start=self.steps_trained if resumed is not None else 0,
                    progress=progress,
                    callback=callback,
                    checkpoint=checkpoint,
                    checkpoint_every=checkpoint_every,
                )
            except NonFiniteLossError as error:
                self.steps_trained = error.step - 1
                if checkpoint_path is None:
                    raise
                raise NonFiniteLossError(
                    f"{error} (last good checkpoint: {checkpoint_path!r})", error.step
                ) from error
        return self.history

    def _resumable_checkpoint(
        self, path: str | None, seed: int | None, batch_size: int, lr: float
    ) -> FitCheckpoint | None:
        if path is None or not os.path.exists(path):
            return None
        arguments = {"seed": seed, "batch_size": batch_size, "lr": lr}
        return check_resumable(
            read_checkpoint(path), path, self._fingerprint(), self._config(), arguments
        )

    def _restore_fit(
        self,
        state: Mapping[str, Any],
        fit: FitCheckpoint,
        optimizer: torch.optim.Optimizer,
        rng: torch.Generator,
    ) -> None:
        assert self.generator is not None
        self.generator.load_state_dict(state["generator"])
        self.history = {key: list(values) for key, values in state["history"].items()}
        self.steps_trained = fit.step
        fit.restore(optimizer, rng, self.device)

    def _ensure_fitted(self, inputs: Tensor | None = None) -> TargetModel:
        model = self._ensure_input_shape(inputs)
        if not self.fitted:
            warnings.warn(
                f"NetworkInversion is not fitted yet: fitting the generator with the default "
                f"budget ({DEFAULT_STEPS} steps of {DEFAULT_BATCH_SIZE} samples) first; call "
                "fit() to choose the budget",
                stacklevel=3,
            )
            self.fit(steps=DEFAULT_STEPS, progress=True)
        return model

    def _generate(
        self, targets: Tensor, latents: Tensor | None = None, seed: int | None = None
    ) -> Tensor:
        assert self._model is not None and self.num_classes is not None
        return generate(
            self._ensure_generator(),
            self._model,
            self.settings,
            targets,
            self.num_classes,
            self.device,
            latents,
            seed,
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
    def _restore(
        cls,
        path: str,
        model: Callable,
        generator: nn.Module | None,
        layer: nn.Module | None,
        device_ids: list[int] | None,
    ) -> Any:
        state = read_checkpoint(path)
        config = {"jitter": 0, **state["config"]}  # format 1 files from before jitter existed
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
        inversion = cls._from_settings(
            model,
            InversionSettings.from_dict(config),
            layer=layer,
            input_shape=tuple(fingerprint["input_shape"]),
            num_classes=fingerprint["num_classes"],
            generator=generator,
            attribute_to_layer_input=config["attribute_to_layer_input"],
            device_ids=device_ids,
        )
        inversion._ensure_generator().load_state_dict(state["generator"])
        inversion.history = {key: list(values) for key, values in state["history"].items()}
        inversion.steps_trained = int(state["steps_trained"])
        return inversion
