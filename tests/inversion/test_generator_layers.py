"""The generator's fast layers against the operations they replace: resize + conv, dropout."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from captum_netinv.inversion.conditioning import draw_conditioning
from captum_netinv.inversion.generator import ConditionedGenerator
from captum_netinv.inversion.generator_layers import ResizeConv2d, UnitDropout


@pytest.mark.parametrize(("height", "width"), [(7, 7), (4, 9), (1, 1)])
def test_resize_conv_equals_a_nearest_resize_then_a_convolution(height: int, width: int) -> None:
    torch.manual_seed(0)
    layer = ResizeConv2d(5, 3)
    x = torch.randn(2, 5, height, width, dtype=torch.float64, requires_grad=True)
    layer = layer.double()
    out = layer(x)
    upsampled = F.interpolate(x, scale_factor=2, mode="nearest")
    reference = F.conv2d(upsampled, layer.weight, layer.bias, padding=1)
    assert out.shape == (2, 3, 2 * height, 2 * width)
    torch.testing.assert_close(out, reference, rtol=0, atol=1e-12)
    upstream = torch.randn_like(out)
    grads = torch.autograd.grad(out, [x, layer.weight, layer.bias], upstream)
    expected = torch.autograd.grad(reference, [x, layer.weight, layer.bias], upstream)
    for got, want in zip(grads, expected, strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-10)


def test_a_resize_generator_saved_with_its_upsample_layer_still_loads() -> None:
    # before ResizeConv2d, a "resize" stage was [Upsample, Conv2d, BatchNorm2d, ReLU, Dropout]
    torch.manual_seed(0)
    saved = ConditionedGenerator((1, 28, 28), 10, upsampling="resize")
    old_layout = {}
    for key, value in saved.state_dict().items():
        parts = key.split(".")
        if parts[0] == "stages":
            parts[2] = str(int(parts[2]) + 1)
        old_layout[".".join(parts)] = value
    assert any(key.startswith("stages.0.1.weight") for key in old_layout)
    torch.manual_seed(1)
    loaded = ConditionedGenerator((1, 28, 28), 10, upsampling="resize")
    loaded.load_state_dict(old_layout)
    for key, value in saved.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    batch = draw_conditioning("vector", torch.arange(4), 10)
    saved.eval(), loaded.eval()
    z = torch.randn(4, 64)
    assert torch.equal(saved(z, batch), loaded(z, batch))


def test_unit_dropout_keeps_units_at_one_minus_p_scaled_and_routes_the_gradient() -> None:
    torch.manual_seed(0)
    dropout = UnitDropout(0.3)
    x = torch.ones(200_000, requires_grad=True)
    out = dropout(x)
    kept = out > 0
    assert abs(float(kept.float().mean()) - 0.7) < 0.005
    torch.testing.assert_close(out[kept], torch.full_like(out[kept], 1 / 0.7))
    assert bool((out[~kept] == 0).all())
    (grad,) = torch.autograd.grad(out.sum(), x)
    assert torch.equal(grad, out.detach())  # d out / d x is the scaled mask


def test_unit_dropout_is_nn_dropout_without_a_gradient_and_in_eval_mode() -> None:
    x = torch.randn(64, 16, 8, 8)
    reference = nn.Dropout(0.3)
    for grad_recorded in (False, True):
        source = x.clone().requires_grad_(grad_recorded)
        with torch.no_grad():
            torch.manual_seed(5)
            ours = UnitDropout(0.3)(source)
            torch.manual_seed(5)
            theirs = reference(source)
        assert torch.equal(ours, theirs)
    assert torch.equal(UnitDropout(0.3).eval()(x), x)
    assert torch.equal(UnitDropout(0.0)(x.requires_grad_()), x)
    assert isinstance(UnitDropout(0.3), nn.Dropout)  # sampling_mode keeps it active
