"""Captum's argument names: one setting under two names gives one value, or a TypeError."""

from __future__ import annotations

import pytest
import torch

from captum_netinv._captum_names import refuse_captum_name, resolve_alias


def _progress(ours: object, captum: object) -> object:
    return resolve_alias(
        ours_name="progress",
        ours_value=ours,
        captum_name="show_progress",
        captum_value=captum,
        default=True,
    )


@pytest.mark.parametrize(
    ("ours", "captum", "expected"),
    [(None, None, True), (False, None, False), (None, False, False), (False, False, False)],
)
def test_the_given_name_wins_and_the_default_fills_in(
    ours: object, captum: object, expected: object
) -> None:
    assert _progress(ours, captum) is expected


def test_both_names_with_different_values_raise_naming_both() -> None:
    with pytest.raises(TypeError) as error:
        _progress(True, False)
    message = str(error.value)
    assert "`progress`" in message and "`show_progress`" in message
    assert "True" in message and "False" in message and "only one" in message


@pytest.mark.parametrize(
    ("ours", "captum"),
    [
        # equal as text or number but of another kind: not the same value
        (1, True),
        (1, 1.0),
        # containers and tensors are never compared: both given raises
        ([3], [3]),
        (torch.tensor([3]), torch.tensor([3])),
    ],
)
def test_only_the_same_plain_value_passes_under_both_names(ours: object, captum: object) -> None:
    with pytest.raises(TypeError, match="were both given"):
        resolve_alias(
            ours_name="neurons",
            ours_value=ours,
            captum_name="neuron_selector",
            captum_value=captum,
            default=None,
        )


def test_the_same_plain_value_under_both_names_passes() -> None:
    value = resolve_alias(
        ours_name="batch_size",
        ours_value=64,
        captum_name="internal_batch_size",
        captum_value=64,
        default=256,
    )
    assert value == 64


def test_a_captum_name_without_counterpart_raises_saying_what_to_use() -> None:
    refuse_captum_name(captum_name="internal_batch_size", captum_value=None, instead="x")
    with pytest.raises(TypeError) as error:
        refuse_captum_name(
            captum_name="internal_batch_size", captum_value=32, instead="pass `batch_size`"
        )
    assert str(error.value) == "`internal_batch_size` (got 32) has no use here: pass `batch_size`"
