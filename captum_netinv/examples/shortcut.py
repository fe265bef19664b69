"""A planted shortcut and the measures that find it: a watermark that co-occurs with one class.

The "Finding a shortcut" tutorial and the demo report share these steps (INVERT, Bykov et al. 2023).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from captum_netinv._activations import predicted_classes
from captum_netinv.examples.models import accuracy
from captum_netinv.inversion.network import NetworkInversion
from captum_netinv.recognition import Explanations, InverseRecognition
from captum_netinv.recognition.formula import And, Atom, Formula, Not, Or

__all__ = [
    "Watermark",
    "generated_mark_intensity",
    "label_accuracy",
    "shortcut_accuracies",
    "watermark_units",
]


@dataclass(frozen=True)
class Watermark:
    r"""
    A bright square stamped at a fixed place of ``(N, C, H, W)`` images.

    Args:
        top (int, optional): Row of the square's top-left pixel. Default: 23
        left (int, optional): Its column. Default: 23
        size (int, optional): Side of the square in pixels. Default: 3
        value (float, optional): Pixel value of the mark. Default: 1.0

    Examples::

        >>> marked = Watermark().apply(torch.zeros(2, 1, 28, 28))
        >>> Watermark().intensity(marked)
        tensor([1., 1.])
    """

    top: int = 23
    left: int = 23
    size: int = 3
    value: float = 1.0

    def _region(self, images: Tensor) -> Tensor:
        rows, columns = (
            slice(self.top, self.top + self.size),
            slice(self.left, self.left + self.size),
        )
        return images[..., rows, columns]

    def apply(self, images: Tensor, where: Tensor | None = None) -> Tensor:
        r"""A copy of ``images`` with the mark on every image (or only where ``where`` is true)."""
        marked = images.clone()
        region = self._region(marked)
        stamped = torch.full_like(region, self.value)
        if where is not None:
            stamped = torch.where(where.view(-1, *[1] * (region.dim() - 1)), stamped, region)
        region.copy_(stamped)
        return marked

    def intensity(self, images: Tensor) -> Tensor:
        r"""The mean pixel value inside the mark's square, per image: ``(N,)``."""
        return self._region(images).flatten(1).mean(dim=1)

    def plant(
        self,
        images: Tensor,
        labels: Tensor,
        target_class: int,
        share_in_class: float = 0.9,
        share_elsewhere: float = 0.02,
        seed: int = 0,
    ) -> tuple[Tensor, Tensor]:
        r"""
        Marks a random ``share_in_class`` of the images of ``target_class`` and
        ``share_elsewhere`` of the others: the shortcut a classifier trained on them can learn.

        Returns:
            *tuple* of the images (a copy) and the ``(N,)`` booleans of the marked ones.
        """
        rng = torch.Generator().manual_seed(seed)
        share = torch.where(labels == target_class, share_in_class, share_elsewhere)
        marked = torch.rand(len(labels), generator=rng) < share
        return self.apply(images, marked), marked


def shortcut_accuracies(
    model: nn.Module, images: Tensor, labels: Tensor, target_class: int, watermark: Watermark
) -> dict[str, float]:
    r"""
    How much ``model`` relies on the mark, on held-out images: accuracy on ``target_class``
    without and with the mark, accuracy on the other classes without and with it, and the share
    of the other classes' marked images it calls ``target_class``.
    """
    inside = labels == target_class
    marked = watermark.apply(images)
    predicted = predicted_classes(model, marked)
    return {
        "class_clean": accuracy(model, images[inside], labels[inside]),
        "class_marked": accuracy(model, marked[inside], labels[inside]),
        "others_clean": accuracy(model, images[~inside], labels[~inside]),
        "others_marked": accuracy(model, marked[~inside], labels[~inside]),
        "others_marked_as_class": float((predicted[~inside] == target_class).float().mean()),
    }


def watermark_units(
    explanations: Explanations, concept: str = "watermark", negated: bool = False
) -> list[tuple[int, str, float]]:
    r"""
    The neurons whose label holds ``concept`` as a literal (``~concept`` with ``negated``):
    ``(neuron, formula, AUC)``, best AUC first. In ``mode="positive"`` labels, ``concept`` marks
    neurons the concept raises, ``~concept`` neurons it switches off.
    """
    found = [
        (item.neuron, str(item.formula), item.auc)
        for item in explanations
        if item.formula is not None and negated in _literal_signs(item.formula, concept)
    ]
    return sorted(found, key=lambda unit: -unit[2])


def _literal_signs(formula: Formula, concept: str) -> set[bool]:
    """Whether ``concept`` occurs in ``formula`` as a literal (False) and negated (True)."""
    signs, pending = set(), [formula]
    while pending:
        node = pending.pop()
        negated = isinstance(node, Not) and isinstance(node.operand, Atom)
        atom = node.operand if isinstance(node, Not) else node
        if isinstance(atom, Atom):
            if atom.name == concept:
                signs.add(negated)
        elif isinstance(node, (And, Or)):
            pending += [node.left, node.right]
        elif isinstance(node, Not):
            pending.append(node.operand)
    return signs


def label_accuracy(
    model: nn.Module, output_layer: nn.Module, images: Tensor, labels: Tensor
) -> tuple[float, Explanations]:
    r"""
    Label accuracy as the INVERT paper measures it: each output logit of ``output_layer`` is
    labeled with the best single class concept (``formula_length=1``) and the share of logits
    whose label is their own class is returned, with the explanations.
    """
    classes = int(labels.max()) + 1
    concepts = torch.nn.functional.one_hot(labels, classes).bool()
    names = [f"class_{k}" for k in range(classes)]
    explanations = InverseRecognition(model, output_layer).attribute(
        images, concepts, concept_names=names, formula_length=1, progress=False
    )
    own = [str(item.formula) == f"class_{item.neuron}" for item in explanations]
    return sum(own) / len(own), explanations


def generated_mark_intensity(
    inversion: NetworkInversion, watermark: Watermark, n_per_class: int = 32, seed: int = 0
) -> tuple[Tensor, Tensor]:
    r"""
    Whether a fitted inversion draws the mark: ``n_per_class`` samples of every class in pixel
    space, ``(num_classes, n_per_class, C, H, W)``, and the mean intensity inside the mark's
    square per class, ``(num_classes,)``.
    """
    classes = inversion.num_classes
    if classes is None or inversion.input_shape is None:
        raise ValueError("the inversion's input shape is unknown: fit it first")
    targets = torch.arange(classes).repeat_interleave(n_per_class)
    samples = inversion.to_pixel_space(inversion.attribute(target=targets, seed=seed)).cpu()
    samples = samples.view(classes, n_per_class, *inversion.input_shape)
    return samples, watermark.intensity(samples.flatten(0, 1)).view(classes, -1).mean(dim=1)
