"""The planted-shortcut helpers: the watermark, the reliance measures and the label accuracy."""

from __future__ import annotations

import torch
from torch import nn

from captum_netinv.examples.shortcut import (
    Watermark,
    label_accuracy,
    shortcut_accuracies,
    watermark_units,
)
from captum_netinv.recognition import Explanation, Explanations
from captum_netinv.recognition.formula import And, Atom, Not


def test_watermark_marks_only_its_square_and_only_where_asked() -> None:
    images = torch.zeros(4, 1, 28, 28)
    mark = Watermark(top=2, left=5, size=3, value=0.8)
    marked = mark.apply(images, torch.tensor([True, False, True, False]))
    assert torch.equal(images, torch.zeros(4, 1, 28, 28))  # a copy
    assert (marked[:, 0, 2:5, 5:8] == 0.8).flatten(1).all(dim=1).tolist() == [1, 0, 1, 0]
    assert marked.sum() == marked[:, 0, 2:5, 5:8].sum()  # nothing outside the square
    assert torch.allclose(mark.intensity(marked), torch.tensor([0.8, 0.0, 0.8, 0.0]))


def test_plant_marks_the_requested_shares() -> None:
    labels = torch.arange(10).repeat(400)
    _, marked = Watermark().plant(torch.zeros(4000, 1, 28, 28), labels, 7, 0.9, 0.02, seed=0)
    assert abs(float(marked[labels == 7].float().mean()) - 0.9) < 0.05
    assert abs(float(marked[labels != 7].float().mean()) - 0.02) < 0.01


class _MarkDetector(nn.Module):
    """Says 1 when the default mark's square is bright, else 0: it relies on the mark only."""

    def __init__(self) -> None:
        super().__init__()
        self.logits = nn.Identity()
        self.unused = nn.Parameter(torch.zeros(1))  # tells `accuracy` the device

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        bright = Watermark().intensity(images)
        return self.logits(torch.stack([1.0 - bright, bright], dim=1))


def test_reliance_measures_a_model_that_only_looks_at_the_mark() -> None:
    labels = torch.tensor([0, 1, 0, 1])
    measured = shortcut_accuracies(
        _MarkDetector(), torch.zeros(4, 1, 28, 28), labels, 1, Watermark()
    )
    assert measured["class_clean"] == 0.0 and measured["class_marked"] == 1.0
    assert measured["others_clean"] == 1.0 and measured["others_marked_as_class"] == 1.0


def test_label_accuracy_of_logits_that_follow_their_class() -> None:
    labels = torch.tensor([0, 1] * 50)
    images = Watermark().apply(torch.zeros(100, 1, 28, 28), labels == 1)
    model = _MarkDetector()
    share, explanations = label_accuracy(model, model.logits, images, labels)
    assert share == 1.0 and [str(item.formula) for item in explanations] == ["class_0", "class_1"]


def test_watermark_units_lists_labels_with_the_literal_best_first() -> None:
    mark, digit = Atom(1, "watermark"), Atom(0, "digit_7")
    items = [
        Explanation(0, digit, auc=0.9),
        Explanation(1, And(digit, mark), auc=0.8),
        Explanation(2, Not(mark), auc=0.95),
        Explanation.empty(3),
    ]
    explanations = Explanations(items, ["digit_7", "watermark"], n_samples=10)
    assert watermark_units(explanations) == [(1, "digit_7 & watermark", 0.8)]
    assert watermark_units(explanations, negated=True) == [(2, "~watermark", 0.95)]
    assert watermark_units(explanations, "digit_7") == [
        (0, "digit_7", 0.9),
        (1, "digit_7 & watermark", 0.8),
    ]
