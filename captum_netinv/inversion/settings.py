"""The settings of a network inversion: listed, defaulted and validated in one place.

:class:`InversionSettings` is the one list of the inversion's knobs (saved in checkpoints, cloned
for the counterfeit companion); the model-space normalization that two of them define sits beside.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from captum_netinv._utils import check_positive_int
from captum_netinv.inversion.conditioning import (
    DEFAULT_VECTOR_MARGIN,
    DEFAULT_VECTOR_SCALE,
    ConditioningBatch,
    ConditioningMode,
    MatrixEncoding,
    check_conditioning_mode,
    check_matrix_encoding,
    draw_conditioning,
)
from captum_netinv.inversion.generator import (
    DEFAULT_DROPOUT,
    UPSAMPLINGS,
    VECTOR_ENCODERS,
    Upsampling,
    VectorEncoder,
)
from captum_netinv.inversion.losses import resolve_loss_weights

__all__ = [
    "AUTO_COLOUR_SHIFT",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_LR",
    "DEFAULT_STEPS",
    "FORMAT1_VALUES",
    "SETTING_NAMES",
    "InversionSettings",
    "Normalization",
    "normalization_tensors",
    "to_model_space",
    "to_pixel_space",
]

#: Default training budget of a fit (:doc:`/choosing_settings` says how it was chosen).
DEFAULT_STEPS = 2700
DEFAULT_BATCH_SIZE = 64
DEFAULT_LR = 2e-3

#: ``(mean, std)`` of the model's input normalization as ``(1, C, 1, 1)`` tensors.
Normalization = tuple[Tensor, Tensor]
_NormalizationArgument = tuple[Sequence[float] | float, Sequence[float] | float] | None
#: The colour shift of colour inputs when ``colour_shift`` is None (the default): chosen on the
#: colour protocol's tuning run (benchmarks/RESULTS.md, issue 21).
AUTO_COLOUR_SHIFT = 0.1
#: The default preset's centering: chosen on both protocols' tuning runs (benchmarks/RESULTS.md,
#: issue 21), where it raised the tuning verifier's acceptance on MNIST and on colour shapes.
DEFAULT_CENTERING = 0.3
#: The settings a saved file without the key had: no jitter and no zoom (before they existed), the
#: MLP vector encoder and the pooled hot matrix (before presets), the default preset, transposed
#: convolutions, no flips and no colour shift (before issue 21), and no centering.
FORMAT1_VALUES: dict[str, Any] = {
    "jitter": 0,
    "zoom": 0.0,
    "vector_encoder": "mlp",
    "matrix_encoding": "hot",
    "preset": "default",
    "upsampling": "transposed",
    "flips": False,
    "colour_shift": 0.0,
    "centering": 0.0,
}


@dataclass(frozen=True)
class InversionSettings:
    r"""
    The settings of a :class:`~captum_netinv.NetworkInversion`, validated on construction.
    The constructor arguments of the same names are documented there.

    Attributes:
        conditioning (str): ``"label"``, ``"vector"``, ``"matrix"`` or ``"vector+matrix"``.
        latent_dim (int): Length of the noise vector.
        dropout (float): Dropout rate of the default generator.
        loss_weights (dict[str, float]): The weight of every loss term (defaults filled in).
        input_range (tuple[float, float]): Range of the generated pixels.
        input_normalization (tuple or None): ``(mean, std)``, each a tuple of floats.
        sample_with_dropout (bool): Keep the generator's dropout active when sampling.
        vector_scale (float): Standard deviation of the soft vectors' Gaussian draws.
        vector_margin (float): Lead of the target's logit in a soft vector.
        jitter (int): Largest random shift, in pixels, of the batches the model sees in a fit.
        zoom (float): Largest relative zoom of each sample the model sees in a fit; 0: one
                    shift for the whole batch (:func:`~captum_netinv.inversion.augmented`).
        vector_encoder (str): ``"mlp"`` or ``"none"``: how the soft vector is joined to ``z``.
        matrix_encoding (str): ``"projection"`` or ``"hot"``: how matrix modes join the class.
        upsampling (str): ``"resize"`` or ``"transposed"``: how the default generator doubles
                    its feature maps (:data:`~captum_netinv.inversion.generator.Upsampling`).
        flips (bool): Mirror a random half of the samples the model sees in a fit (left-right);
                    for models whose classes do not change under a mirror.
        colour_shift (float or None): Strength of the per-sample, per-channel colour shift of
                    what the model sees in a fit: every channel scaled by ``exp(U[-s, s])`` and
                    moved by ``U[-s, s]`` in model space (Plug-In Inversion's colour jitter);
                    0: none; None: :data:`AUTO_COLOUR_SHIFT` for inputs of several channels,
                    0 for one channel (:meth:`colour_shift_for`).
        centering (float): Fraction of a fit's steps, in ``[0, 1)``, during which the model
                    sees the central crop of each generated image resized to the full size
                    (Plug-In Inversion's centering,
                    :func:`~captum_netinv.inversion.augmentation.centered`), the crop's side
                    growing linearly from half the image's to all of it; 0: none. Default:
                    :data:`DEFAULT_CENTERING` (0.3).
        preset (str): Name of the preset these settings started from (a label: every value
                    above is explicit).

    Examples::

        >>> settings = InversionSettings(dropout=0.5)
        >>> settings.replace(jitter=0).to_dict()["jitter"]
        0
    """

    conditioning: ConditioningMode = "vector"
    latent_dim: int = 64
    dropout: float = DEFAULT_DROPOUT
    loss_weights: Mapping[str, float] = field(default_factory=dict)
    input_range: tuple[float, float] = (0.0, 1.0)
    input_normalization: _NormalizationArgument = None
    sample_with_dropout: bool = True
    vector_scale: float = DEFAULT_VECTOR_SCALE
    vector_margin: float = DEFAULT_VECTOR_MARGIN
    jitter: int = 2
    zoom: float = 0.1
    vector_encoder: VectorEncoder = "mlp"
    matrix_encoding: MatrixEncoding = "projection"
    upsampling: Upsampling = "resize"
    flips: bool = False
    colour_shift: float | None = None
    centering: float = DEFAULT_CENTERING
    preset: str = "default"

    def __post_init__(self) -> None:
        check_conditioning_mode(self.conditioning)
        check_positive_int(self.latent_dim, "latent_dim")
        _check_number(self.dropout, "dropout", "in [0, 1)", lambda v: 0.0 <= v < 1.0)
        _check_number(self.vector_scale, "vector_scale", "> 0", lambda v: v > 0)
        _check_number(self.vector_margin, "vector_margin", ">= 0", lambda v: v >= 0)
        _check_number(self.zoom, "zoom", "in [0, 1)", lambda v: 0.0 <= v < 1.0)
        _check_number(self.centering, "centering", "in [0, 1)", lambda v: 0.0 <= v < 1.0)
        if self.colour_shift is not None:
            _check_number(
                self.colour_shift, "colour_shift", "in [0, 1] or None", lambda v: 0.0 <= v <= 1.0
            )
        if self.upsampling not in UPSAMPLINGS:
            raise ValueError(f"`upsampling` must be one of {UPSAMPLINGS}, got {self.upsampling!r}")
        if not isinstance(self.jitter, int) or isinstance(self.jitter, bool) or self.jitter < 0:
            raise ValueError(f"`jitter` must be an int >= 0 (pixels), got {self.jitter!r}")
        check_matrix_encoding(self.matrix_encoding)
        if self.vector_encoder not in VECTOR_ENCODERS:
            raise ValueError(
                f"`vector_encoder` must be one of {VECTOR_ENCODERS}, got {self.vector_encoder!r}"
            )
        if not isinstance(self.preset, str):
            raise TypeError(f"`preset` must be a preset's name, got {self.preset!r}")
        for flag in ("sample_with_dropout", "flips"):
            if not isinstance(getattr(self, flag), bool):
                raise TypeError(f"`{flag}` must be a bool, got {type(getattr(self, flag))}")
        self._set("loss_weights", resolve_loss_weights(self.loss_weights))
        self._set("input_range", _checked_range(self.input_range))
        self._set("input_normalization", _checked_normalization(self.input_normalization))
        for name in ("dropout", "vector_scale", "vector_margin", "zoom", "centering"):
            self._set(name, float(getattr(self, name)))
        if self.colour_shift is not None:
            self._set("colour_shift", float(self.colour_shift))

    def _set(self, name: str, value: object) -> None:
        object.__setattr__(self, name, value)

    def draw_condition(
        self, targets: Tensor, num_classes: int, rng: torch.Generator
    ) -> ConditioningBatch:
        r"""The conditioning of a batch of ``targets`` in these settings' mode and scales."""
        return draw_conditioning(
            self.conditioning,
            targets,
            num_classes,
            rng=rng,
            vector_scale=self.vector_scale,
            vector_margin=self.vector_margin,
            matrix_encoding=self.matrix_encoding,
        )

    def colour_shift_for(self, channels: int) -> float:
        r"""The colour shift a fit applies to inputs of ``channels`` channels: the set value,
        or for None :data:`AUTO_COLOUR_SHIFT` with several channels and 0 with one (a grey
        image's "colour" is its brightness, which the shift would jitter)."""
        if self.colour_shift is not None:
            return self.colour_shift
        return AUTO_COLOUR_SHIFT if channels > 1 else 0.0

    def replace(self, **changes: Any) -> InversionSettings:
        r"""These settings with ``changes`` applied (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        r"""The settings as plain Python values (lists for tuples), as checkpoints store them."""
        normalization = self.input_normalization
        return {
            "conditioning": self.conditioning,
            "latent_dim": self.latent_dim,
            "dropout": self.dropout,
            "loss_weights": dict(self.loss_weights),
            "input_range": list(self.input_range),
            "input_normalization": (
                None if normalization is None else [list(v) for v in normalization]  # type: ignore[arg-type]
            ),
            "sample_with_dropout": self.sample_with_dropout,
            "vector_scale": self.vector_scale,
            "vector_margin": self.vector_margin,
            "jitter": self.jitter,
            "zoom": self.zoom,
            "vector_encoder": self.vector_encoder,
            "matrix_encoding": self.matrix_encoding,
            "upsampling": self.upsampling,
            "flips": self.flips,
            "colour_shift": self.colour_shift,
            "centering": self.centering,
            "preset": self.preset,
        }

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> InversionSettings:
        r"""
        Settings from :meth:`to_dict`'s form; other keys of ``values`` are ignored. Keys that
        files written before them lack take the values that reproduce those files' behaviour
        (:data:`FORMAT1_VALUES`), not today's defaults.
        """
        names = {item.name for item in dataclasses.fields(cls)}
        chosen = {key: value for key, value in {**FORMAT1_VALUES, **values}.items() if key in names}
        for key in ("input_range", "input_normalization"):
            if isinstance(chosen.get(key), list):
                chosen[key] = tuple(chosen[key])
        return cls(**chosen)


#: The names of every setting: the constructor arguments that build :class:`InversionSettings`.
SETTING_NAMES: tuple[str, ...] = tuple(item.name for item in dataclasses.fields(InversionSettings))


def _check_number(value: object, name: str, expected: str, test: Any) -> None:
    """A ``TypeError`` for a value that is not a number, a ``ValueError`` for a number that is
    not finite or fails ``test``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"`{name}` must be a finite number {expected}, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"`{name}` must be a finite number {expected}, got {value!r}")
    if not test(float(value)):
        raise ValueError(f"`{name}` must be {expected}, got {value}")


def _checked_range(input_range: object) -> tuple[float, float]:
    if (
        not isinstance(input_range, (tuple, list))
        or len(input_range) != 2
        or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in input_range)
        or not float(input_range[0]) < float(input_range[1])
    ):
        raise ValueError(
            f"`input_range` must be (low, high) with finite low < high, got {input_range!r}"
        )
    return float(input_range[0]), float(input_range[1])


def _checked_normalization(
    input_normalization: object,
) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    if input_normalization is None:
        return None
    if not isinstance(input_normalization, (tuple, list)) or len(input_normalization) != 2:
        raise ValueError(
            f"`input_normalization` must be a (mean, std) pair, got {input_normalization!r}"
        )
    try:
        # float32, as the model sees them and as checkpoints have always stored them
        mean, std = (
            tuple(torch.as_tensor(value, dtype=torch.float32).reshape(-1).tolist())
            for value in input_normalization
        )
    except (TypeError, ValueError, RuntimeError) as error:
        raise ValueError(
            f"`input_normalization` must hold numbers (a float or one per channel): {error}"
        ) from error
    if not mean or not std or not all(math.isfinite(v) for v in (*mean, *std)):
        raise ValueError(f"`input_normalization` must hold finite numbers, got {mean}, {std}")
    if any(v <= 0 for v in std):
        raise ValueError(f"`input_normalization` std must be > 0, got {list(std)}")
    return mean, std


def normalization_tensors(settings: InversionSettings, channels: int) -> Normalization | None:
    r"""``(mean, std)`` of ``settings`` as ``(1, C, 1, 1)`` tensors, or None without one."""
    if settings.input_normalization is None:
        return None
    mean, std = (torch.tensor(v, dtype=torch.float32) for v in settings.input_normalization)
    for name, value in (("mean", mean), ("std", std)):
        if value.numel() not in (1, channels):
            raise ValueError(
                f"`input_normalization` {name} must have 1 or {channels} values, got "
                f"{value.numel()}"
            )
    shape = (1, -1, 1, 1)
    return mean.expand(channels).reshape(shape), std.expand(channels).reshape(shape)


def to_model_space(images: Tensor, normalization: Normalization | None) -> Tensor:
    r"""Generated pixels as the model sees them: ``(x - mean) / std``."""
    if normalization is None:
        return images
    mean, std = normalization
    return (images - mean.to(images.device)) / std.to(images.device)


def to_pixel_space(inputs: Tensor, normalization: Normalization | None) -> Tensor:
    r"""Model-space inputs back in the generator's pixel range: ``x * std + mean``."""
    if normalization is None:
        return inputs
    mean, std = normalization
    return inputs * std.to(inputs.device) + mean.to(inputs.device)
