"""The bad-input matrix: each unusual argument of both classes gives a clear, named error.

Every case runs on a tiny model in milliseconds; the expected message names the argument (or the
file) and what was expected, never a deep stack trace or a silently wrong result.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from captum_netinv import InverseRecognition, NetworkInversion, explain_activations

SHAPE = (1, 8, 8)


def _classifier() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 8), nn.ReLU(), nn.Linear(8, 3))


_MODEL = _classifier()
_FIT: dict[str, Any] = {"steps": 2, "batch_size": 4, "seed": 0, "progress": False}
_INPUTS = torch.randn(20, *SHAPE)
_LABELS = torch.rand(20, 3) < 0.4


@pytest.fixture(scope="module")
def fitted() -> NetworkInversion:
    inversion = NetworkInversion(_MODEL, input_shape=SHAPE)
    inversion.fit(**_FIT)  # type: ignore[arg-type]
    return inversion


def _inversion(**arguments: object) -> NetworkInversion:
    return NetworkInversion(_MODEL, **{"input_shape": SHAPE, **arguments})  # type: ignore[arg-type]


def _fit(**arguments: object) -> object:
    return _inversion().fit(**{**_FIT, **arguments})  # type: ignore[arg-type]


def _invert(**arguments: object) -> object:
    values = {"inputs": _INPUTS, "concepts": _LABELS, "progress": False, **arguments}
    return InverseRecognition(_MODEL, _MODEL[3]).attribute(**values)  # type: ignore[arg-type]


def _with_nan() -> Tensor:
    inputs = _INPUTS.clone()
    inputs[3, 0, 1, 1] = float("nan")
    return inputs


_SMALL = nn.Sequential(nn.Flatten(), nn.Linear(8, 3))
_VECTOR = nn.Sequential(nn.Flatten(), nn.Linear(64, 3), nn.Flatten(0))  # (B,) not (B, C)

#: (case, call, exception, message pattern)
NETWORK_INVERSION: list[tuple[str, Callable[[], object], type[Exception], str]] = [
    ("model is a string", lambda: NetworkInversion("resnet"), TypeError, "`forward_func` must be"),
    (
        "model returns (B,)",
        lambda: NetworkInversion(_VECTOR, input_shape=SHAPE),
        ValueError,
        r"output must be a \(batch, num_classes\)",
    ),
    (
        "layer not in the model",
        lambda: _inversion(layer=nn.Linear(8, 3)),
        ValueError,
        "not a submodule",
    ),
    ("layer given by name", lambda: _inversion(layer="3"), TypeError, "`layer` must be a torch"),
    ("input_shape 2-D", lambda: _inversion(input_shape=(4, 4)), ValueError, "input_shape"),
    (
        "input_shape too small for the default generator",
        lambda: NetworkInversion(_SMALL, input_shape=(1, 4, 2), layer=_SMALL[1]).fit(**_FIT),
        ValueError,
        "at least 8x8 for the default generator",
    ),
    ("input_shape with a 0", lambda: _inversion(input_shape=(1, 0, 4)), ValueError, "input_shape"),
    ("num_classes float", lambda: _inversion(num_classes=3.0), TypeError, "`num_classes` must be"),
    (
        "num_classes disagrees",
        lambda: _inversion(num_classes=5),
        ValueError,
        "`num_classes` is 5 but the model outputs 3",
    ),
    (
        "conditioning unknown",
        lambda: _inversion(conditioning="one-hot"),
        ValueError,
        "conditioning",
    ),
    ("dropout 1.5", lambda: _inversion(dropout=1.5), ValueError, "`dropout` must be"),
    (
        "input_range reversed",
        lambda: _inversion(input_range=(1.0, 0.0)),
        ValueError,
        "`input_range` must be",
    ),
    ("unknown loss term", lambda: _inversion(loss_weights={"tv": 1.0}), ValueError, "tv"),
    (
        "negative loss weight",
        lambda: _inversion(loss_weights={"cross_entropy": -1.0}),
        ValueError,
        "cross_entropy",
    ),
    ("steps 0", lambda: _fit(steps=0), ValueError, "`steps` must be >= 1, got 0"),
    ("steps 2.5", lambda: _fit(steps=2.5), TypeError, "`steps` must be an int >= 1, got 2.5"),
    ("steps True", lambda: _fit(steps=True), TypeError, "`steps` must be an int >= 1, got True"),
    ("batch_size 1", lambda: _fit(batch_size=1), ValueError, "`batch_size` must be >= 2"),
    (
        "lr negative",
        lambda: _fit(lr=-0.1),
        ValueError,
        "`lr` must be a finite number > 0, got -0.1",
    ),
    ("lr 0", lambda: _fit(lr=0), ValueError, "`lr` must be a finite number > 0, got 0"),
    ("lr NaN", lambda: _fit(lr=float("nan")), ValueError, "`lr` must be a finite number > 0"),
    ("lr inf", lambda: _fit(lr=float("inf")), ValueError, "`lr` must be a finite number > 0"),
    ("lr 10**400", lambda: _fit(lr=10**400), ValueError, "`lr` must be a finite number > 0"),
    ("lr string", lambda: _fit(lr="0.1"), TypeError, "`lr` must be a number > 0 .*, got '0.1'"),
    ("lr True", lambda: _fit(lr=True), TypeError, "`lr` must be a number > 0 .*, got True"),
    ("lr tensor", lambda: _fit(lr=torch.tensor(0.1)), TypeError, "`lr` must be a number > 0"),
    ("seed -1", lambda: _fit(seed=-1), ValueError, r"`seed` must be in \[0, 2\*\*63\)"),
    ("seed 2**70", lambda: _fit(seed=2**70), ValueError, r"`seed` must be in \[0, 2\*\*63\)"),
    ("seed string", lambda: _fit(seed="0"), TypeError, "`seed` must be an int"),
    (
        "checkpoint_every 0",
        lambda: _fit(checkpoint_every=0),
        ValueError,
        "`checkpoint_every` must be >= 1",
    ),
    (
        "example inputs 2-D",
        lambda: _inversion(input_shape=None).fit(torch.zeros(2, 16), **_FIT),
        ValueError,
        r"`inputs` must be an example batch \(N, C, H, W\)",
    ),
    (
        "example inputs of another shape",
        lambda: _fit(inputs=torch.zeros(2, 1, 9, 9)),
        ValueError,
        "`inputs` have shape",
    ),
    (
        "example inputs uint8",
        lambda: _inversion(input_shape=None).fit(torch.zeros(2, *SHAPE, dtype=torch.uint8), **_FIT),
        TypeError,
        r"`inputs` must be floating-point model-space inputs, got dtype torch\.uint8"
        r".*images\.float\(\) / 255",
    ),
    (
        "example inputs of 3 channels for a 1-channel model",
        lambda: _inversion(input_shape=None).fit(torch.zeros(2, 3, 8, 8), **_FIT),
        ValueError,
        r"`inputs` have shape \(3, 8, 8\) per sample, which the model does not accept",
    ),
    (
        "example inputs a tuple of model inputs",
        lambda: _inversion().fit((_INPUTS, _INPUTS), **_FIT),
        TypeError,
        r"`inputs` must be one tensor \(N, C, H, W\).*`additional_forward_args`",
    ),
    (
        "shape unknown",
        lambda: _inversion(input_shape=None).fit(**_FIT),
        ValueError,
        "the input shape is unknown",
    ),
    ("save unfitted", lambda: _inversion().save("never.pt"), ValueError, "nothing to save"),
    (
        "load with a string model",
        lambda: NetworkInversion.load("x.pt", "model"),
        TypeError,
        "`model` must be the model",
    ),
]


def _sampling_cases(fitted: NetworkInversion) -> list[tuple[str, Callable[[], object], type, str]]:
    return [
        (
            "target out of range",
            lambda: fitted.attribute(target=3),
            ValueError,
            r"must lie in \[0, 2\]",
        ),
        (
            "target negative",
            lambda: fitted.attribute(target=[-1, 0]),
            ValueError,
            r"must lie in \[0, 2\]",
        ),
        ("target tuple", lambda: fitted.attribute(target=(0, 1)), TypeError, "tuple targets"),
        (
            "target a bool",
            lambda: fitted.attribute(target=True),
            TypeError,
            "`target` must be an int class index.*got the bool True",
        ),
        (
            "example inputs and n_samples disagree",
            lambda: fitted.attribute(_INPUTS, target=0, n_samples=3),
            ValueError,
            r"`n_samples` \(3\) and `inputs` \(20 rows\) disagree",
        ),
        (
            "n_samples 0",
            lambda: fitted.attribute(target=0, n_samples=0),
            ValueError,
            "`n_samples` must be >= 1",
        ),
        (
            "n_samples disagrees",
            lambda: fitted.attribute(target=[0, 1], n_samples=3),
            ValueError,
            r"`n_samples` \(3\) must be None or equal the number of entries of `target` \(2\)",
        ),
        (
            "latents of another shape",
            lambda: fitted.attribute(target=0, n_samples=2, latents=torch.zeros(2, 5)),
            ValueError,
            r"`latents` must be a \(2, 64\) tensor",
        ),
        (
            "latents infinite",
            lambda: fitted.attribute(
                target=0, n_samples=1, latents=torch.full((1, 64), float("inf"))
            ),
            ValueError,
            "finite",
        ),
        (
            "n_per_class 1",
            lambda: fitted.evaluate(n_per_class=1),
            ValueError,
            "`n_per_class` must be >= 2",
        ),
        (
            "confidence 1.5",
            lambda: fitted.counterfeits(0, _MODEL, confidence=1.5),
            ValueError,
            r"`confidence` must be in \(0, 1\)",
        ),
        (
            "as_concept target '3'",
            lambda: fitted.as_concept("3"),
            TypeError,
            "`target` must be an int class index, got '3'",
        ),
        (
            "as_concept batch_size 0",
            lambda: fitted.as_concept(1, batch_size=0),
            ValueError,
            "`batch_size` must be >= 1",
        ),
        (
            "huge target list echoed short",
            lambda: fitted.attribute(target="7" * 10**6),
            TypeError,
            r"\.\.\. \(1000002 characters\)",
        ),
    ]


INVERSE_RECOGNITION: list[tuple[str, Callable[[], object], type[Exception], str]] = [
    (
        "model is an int",
        lambda: InverseRecognition(3, _MODEL[3]),
        TypeError,
        "`forward_func` must be",
    ),
    (
        "layer not in the model",
        lambda: InverseRecognition(_MODEL, nn.Linear(8, 3)),
        ValueError,
        "not a submodule",
    ),
    ("inputs a string", lambda: _invert(inputs="images"), TypeError, "`inputs` must be a tensor"),
    ("inputs an int", lambda: _invert(inputs=3), TypeError, "`inputs` must be a tensor"),
    ("inputs 0-d", lambda: _invert(inputs=torch.tensor(1.0)), ValueError, "batch dimension"),
    (
        "inputs empty",
        lambda: _invert(inputs=torch.zeros(0, *SHAPE), concepts=_LABELS[:0]),
        ValueError,
        "labels 0 sample",
    ),
    (
        "inputs with NaN",
        lambda: _invert(inputs=_with_nan()),
        ValueError,
        "NaN or infinite values for neurons",
    ),
    (
        "tuple inputs of unequal length",
        lambda: _invert(inputs=(_INPUTS, _INPUTS[:5])),
        ValueError,
        "different numbers of samples",
    ),
    (
        "concepts for other samples",
        lambda: _invert(concepts=_LABELS[:10]),
        ValueError,
        "labels 10 samples but `inputs` holds 20",
    ),
    (
        "concepts not binary",
        lambda: _invert(concepts=_LABELS.float() * 0.5),
        ValueError,
        "must be binary",
    ),
    (
        "concepts 3-D",
        lambda: _invert(concepts=_LABELS[:, :, None]),
        ValueError,
        r"`concepts` must have shape \(N, C\)",
    ),
    ("concepts a string", lambda: _invert(concepts="round"), TypeError, "`concepts` must be"),
    (
        "concepts of ragged lists",
        lambda: _invert(concepts=[[1, 0], [1]]),
        TypeError,
        "`concepts` must be",
    ),
    (
        "mask lengths differ",
        lambda: _invert(concepts={"a": _LABELS[:, 0], "b": _LABELS[:5, 1]}),
        ValueError,
        "same length",
    ),
    (
        "concept_names count",
        lambda: _invert(concept_names=["a"]),
        ValueError,
        "has 1 names for 3 concept columns",
    ),
    (
        "neurons out of range",
        lambda: _invert(neurons=[99]),
        ValueError,
        r"`neurons` \[99\] out of range",
    ),
    ("neurons float", lambda: _invert(neurons=[1.5]), TypeError, "`neurons` must be an int"),
    ("neurons empty", lambda: _invert(neurons=[]), TypeError, "`neurons` must be an int"),
    ("neurons repeated", lambda: _invert(neurons=[1, 1]), ValueError, "must not repeat"),
    ("formula_length 0", lambda: _invert(formula_length=0), ValueError, "`formula_length`"),
    ("beam_size -1", lambda: _invert(beam_size=-1), ValueError, "`beam_size`"),
    ("mode unknown", lambda: _invert(mode="up"), ValueError, "`mode`"),
    (
        "min above max fraction",
        lambda: _invert(min_fraction=0.6, max_fraction=0.5),
        ValueError,
        "must not exceed",
    ),
    ("batch_size 0", lambda: _invert(batch_size=0), ValueError, "`batch_size` must be >= 1"),
    (
        "reduction unknown",
        lambda: _invert(neuron_reduction="median"),
        ValueError,
        "`neuron_reduction` must be",
    ),
    ("alternative unknown", lambda: _invert(alternative="sideways"), ValueError, "alternative"),
    (
        "activations complex",
        lambda: explain_activations(torch.randn(20, 2, dtype=torch.cfloat), _LABELS),
        TypeError,
        "must hold real numbers",
    ),
    (
        "activations 3-D",
        lambda: explain_activations(torch.randn(20, 2, 2), _LABELS),
        ValueError,
        r"\(samples, neurons\)",
    ),
    (
        "one sample",
        lambda: explain_activations(torch.randn(1, 2), _LABELS[:1]),
        ValueError,
        "at least 2 samples",
    ),
]


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [pytest.param(*case[1:], id=case[0]) for case in NETWORK_INVERSION + INVERSE_RECOGNITION],
)
def test_bad_input_is_named(call: Callable[[], object], error: type, message: str) -> None:
    with pytest.raises(error, match=message) as raised:
        call()
    assert len(str(raised.value)) < 600


def test_bad_sampling_input_is_named(fitted: NetworkInversion) -> None:
    for case, call, error, message in _sampling_cases(fitted):
        with pytest.raises(error, match=message) as raised:
            call()
        assert len(str(raised.value)) < 600, case
