"""The student in the loop: a student distilled on generated batches alone learns the model."""

from __future__ import annotations

import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn

from captum_netinv import NetworkInversion
from captum_netinv.examples.models import accuracy, train_classifier


def _net() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))


@pytest.fixture(scope="module")
def teacher_and_digits() -> tuple[nn.Module, torch.Tensor]:
    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32).div(16).unsqueeze(1)
    labels = torch.tensor(digits.target)
    torch.manual_seed(0)
    teacher = train_classifier(_net(), images[:1400], labels[:1400], epochs=20)
    for parameter in teacher.parameters():
        parameter.requires_grad_(False)
    assert accuracy(teacher, images[1400:], labels[1400:]) > 0.8
    return teacher, images[1400:]


def _agreement(student: nn.Module, teacher: nn.Module, images: torch.Tensor) -> float:
    with torch.no_grad():
        return float((student(images).argmax(1) == teacher(images).argmax(1)).float().mean())


def test_a_student_trained_on_generated_data_agrees_with_the_model_on_real_digits(
    teacher_and_digits: tuple[nn.Module, torch.Tensor],
) -> None:
    teacher, real = teacher_and_digits
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    inversion = NetworkInversion(teacher, input_shape=(1, 8, 8))
    torch.manual_seed(1)
    student, untrained = _net(), _net()
    untrained.load_state_dict(student.state_dict())
    result = inversion.distill(student, steps=400, seed=0, progress=False)
    # measured 0.64 (an untrained student: 0.17) on the 397 held-out real digits
    assert _agreement(student, teacher, real) >= 0.45
    assert _agreement(untrained, teacher, real) < 0.3
    assert all(torch.equal(v, teacher.state_dict()[k]) for k, v in before.items())
    assert result.steps == 400 and len(result.history["agreement"]) == 400
    assert inversion.steps_trained == 400 and len(inversion.history["loss"]) == 400


def test_same_seed_same_student(teacher_and_digits: tuple[nn.Module, torch.Tensor]) -> None:
    teacher, _ = teacher_and_digits
    students = []
    for _ in range(2):
        torch.manual_seed(2)
        student = _net()
        NetworkInversion(teacher, input_shape=(1, 8, 8)).distill(
            student, steps=20, seed=3, progress=False
        )
        students.append(student.state_dict())
    assert all(torch.equal(students[0][k], students[1][k]) for k in students[0])


def test_bad_students_and_schedules_are_refused(
    teacher_and_digits: tuple[nn.Module, torch.Tensor], capsys: pytest.CaptureFixture[str]
) -> None:
    teacher, _ = teacher_and_digits
    inversion = NetworkInversion(teacher, input_shape=(1, 8, 8))
    with pytest.raises(TypeError, match="student"):
        inversion.distill("lenet", steps=2)  # type: ignore[arg-type]
    wrong = nn.Sequential(nn.Flatten(), nn.Linear(64, 3))
    with pytest.raises(ValueError, match="student"):
        inversion.distill(wrong, steps=2)
    with pytest.raises(ValueError, match="student"):
        inversion.distill(teacher, steps=2)  # shares the model's parameters
    with pytest.raises(ValueError, match="steps"):
        inversion.distill(_net(), steps=0)
    with pytest.raises(ValueError, match="disagreement_weight"):
        inversion.distill(_net(), steps=2, disagreement_weight=-1.0)
    inversion.distill(_net(), steps=2, progress=False)
    assert capsys.readouterr().err == ""
