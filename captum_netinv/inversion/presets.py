"""Named configurations of an inversion: the package's default, the paper's method, the neurons'.

A :class:`Preset` is a small named object holding the settings it changes from
:class:`~captum_netinv.inversion.InversionSettings`; explicit arguments override it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from captum_netinv.inversion.losses import IMAGE_PRIORS
from captum_netinv.inversion.settings import InversionSettings

__all__ = ["DEFAULT", "NEURON", "PAPER", "PRESETS", "Preset", "preset_named"]


@dataclass(frozen=True)
class Preset:
    r"""
    A named set of inversion settings.

    Args:
        name (str): The name :class:`~captum_netinv.NetworkInversion` takes as ``preset=``
                    and :class:`~captum_netinv.InversionEvaluation` reports.
        description (str): One line on what the preset is for.
        values (Mapping[str, Any]): The settings it changes from
                    :class:`~captum_netinv.inversion.InversionSettings`'s defaults;
                    ``loss_weights`` holds only the terms it changes.

    Examples::

        >>> PAPER.settings(dropout=0.4).dropout
        0.4
        >>> PAPER.settings().loss_weights["pixel_norm"]
        0.0
    """

    name: str
    description: str
    values: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", MappingProxyType(dict(self.values)))
        self.settings()  # a preset that does not validate fails where it is defined

    def settings(self, **overrides: Any) -> InversionSettings:
        r"""
        The preset's settings with ``overrides`` applied on top; ``loss_weights`` overrides
        update the preset's weights term by term; None values (settings not given) and
        ``preset`` (the label is this preset's name) are left out.

        Args:
            **overrides: Any field of :class:`~captum_netinv.inversion.InversionSettings`.

        Returns:
            :class:`~captum_netinv.inversion.InversionSettings` labelled with this preset.
        """
        given = {key: value for key, value in overrides.items() if value is not None}
        given.pop("preset", None)
        weights = {**self.values.get("loss_weights", {}), **given.pop("loss_weights", {})}
        values = {**self.values, **given, "loss_weights": weights}
        return InversionSettings(**{**values, "preset": self.name})


#: The package's method: the paper's conditioning and diversity terms plus image priors, jitter,
#: a margin on the soft vectors and an MLP vector encoder (:doc:`/choosing_settings`).
DEFAULT = Preset("default", "the paper's method with image priors, jitter and a vector margin")

#: Only what Suhail & Sethi (2024) describe (the choices they leave open are listed in
#: docs/methods/network_inversion.md): soft-vector conditioning drawn plainly, heavy dropout (0.5)
#: kept at sampling, cross-entropy + KL + cosine similarity + orthogonality; no image prior, no
#: jitter, the soft vector joined to ``z`` as it is.
PAPER = Preset(
    "paper",
    "only what the paper describes: conditioning, heavy dropout, CE + KL + cosine + orthogonality",
    {
        "dropout": 0.5,
        "vector_margin": 0.0,
        "jitter": 0,
        "zoom": 0.0,
        "vector_encoder": "none",
        "matrix_encoding": "hot",
        "upsampling": "transposed",
        "colour_shift": 0.0,
        "centering": 0.0,
        "loss_weights": dict.fromkeys(IMAGE_PRIORS, 0.0),
    },
)

#: NeuronInversion's default: the package's method without per-sample shift or zoom (the unit is
#: asked to fire on the generated sample itself) and with stronger diversity terms per pair of
#: one unit's samples; how these values were chosen is in :doc:`/methods/neuron_inversion`.
NEURON = Preset(
    "neuron",
    "NeuronInversion's default: no shift or zoom, stronger within-unit diversity terms",
    {
        "jitter": 0,
        "zoom": 0.0,
        "upsampling": "transposed",
        "centering": 0.0,
        "loss_weights": {"cosine_similarity": 4.0, "feature_orthogonality": 0.2},
    },
)

#: Every preset by name.
PRESETS: Mapping[str, Preset] = MappingProxyType(
    {preset.name: preset for preset in (DEFAULT, PAPER, NEURON)}
)


def preset_named(preset: str | Preset) -> Preset:
    r"""The :class:`Preset` ``preset`` names (or ``preset`` itself), else raises naming them."""
    if isinstance(preset, Preset):
        return preset
    if preset not in PRESETS:
        raise ValueError(f"`preset` must be one of {sorted(PRESETS)} or a Preset, got {preset!r}")
    return PRESETS[preset]
