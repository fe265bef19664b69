"""NetworkInversion end to end: the Captum class with Captum's own methods and its conveniences.

Captum's TCAV, IntegratedGradients and LayerGradCam consume the generated samples; every claim
is checked against the classifier's own verdict.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from captum.attr import IntegratedGradients, LayerGradCam
from captum.concept import TCAV
from torch import Tensor

from captum_netinv import NetworkInversion
from captum_netinv.examples.models import LeNet5
from captum_netinv.inversion import training as inversion_training
from captum_netinv.inversion.network import network_inversion as network_module

SHAPE = (1, 28, 28)


def test_as_concept_plugs_into_tcav(
    fitted: NetworkInversion,
    trained_lenet: LeNet5,
    digits: tuple[Tensor, Tensor],
    tmp_path: object,
    predict: Callable[[Callable, Tensor], Tensor],
) -> None:
    ones = fitted.as_concept(1, n_samples=40, batch_size=10, seed=0)
    sevens = fitted.as_concept(7, n_samples=40, batch_size=10, seed=1)
    batches = list(ones.data_iter)  # type: ignore[arg-type]
    assert len(batches) == 4 and batches[0].shape == (10, *SHAPE)
    assert bool((predict(trained_lenet, torch.cat(batches)) == 1).float().mean() > 0.8)
    tcav = TCAV(trained_lenet, layers=["fc1"], save_path=str(tmp_path))
    images, labels = digits
    scores = tcav.interpret(
        inputs=images[labels == 1][:20], experimental_sets=[[ones, sevens]], target=1
    )
    (result,) = scores.values()
    sign_count = result["fc1"]["sign_count"]
    assert sign_count.shape == (2,)
    assert float(sign_count.sum()) == pytest.approx(1.0)
    # real ones move along the "inverted ones" direction more than along "inverted sevens"
    assert float(sign_count[0]) > float(sign_count[1])


def test_samples_feed_captum_attributions(fitted: NetworkInversion, trained_lenet: LeNet5) -> None:
    samples = fitted.attribute(target=6, n_samples=4, seed=0)
    integrated = IntegratedGradients(trained_lenet)
    attributions, delta = integrated.attribute(
        samples, target=6, n_steps=64, return_convergence_delta=True
    )
    assert attributions.shape == samples.shape
    assert float(delta.abs().max()) < 0.05 * float(trained_lenet(samples)[:, 6].abs().max())
    cam = LayerGradCam(trained_lenet, trained_lenet.conv2).attribute(samples, target=6)
    assert cam.shape == (4, 1, 10, 10) and bool(torch.isfinite(cam).all())
    assert float(cam.abs().sum()) > 0.0


def test_unfitted_attribute_fits_first_with_a_warning(
    trained_lenet: LeNet5, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(network_module, "DEFAULT_STEPS", 3)
    inversion = NetworkInversion(trained_lenet)
    example = torch.zeros(2, *SHAPE)
    with pytest.warns(UserWarning, match="not fitted yet"):
        samples = inversion.attribute(example, target=0, n_samples=2)
    assert inversion.steps_trained == 3 and samples.shape == (2, *SHAPE)


@pytest.mark.cuda
def test_fit_and_sample_on_cuda(trained_lenet: LeNet5) -> None:
    model = LeNet5().cuda().eval()
    model.load_state_dict(trained_lenet.state_dict())
    inversion = NetworkInversion(model, input_shape=SHAPE)
    inversion.fit(steps=150, batch_size=32, seed=0, progress=False)
    assert inversion.generator is not None
    assert next(inversion.generator.parameters()).is_cuda
    samples = inversion.attribute(target=torch.arange(10).repeat(5), seed=0)
    assert samples.is_cuda
    assert float(inversion.evaluate(n_per_class=20).hit_rate) > 0.8


def test_the_first_attribute_call_shows_that_it_fits(
    trained_lenet: LeNet5, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(network_module, "DEFAULT_STEPS", 2)
    labels: list[str] = []
    real_bar = inversion_training.progress_bar

    def recording_bar(*args: object, **kwargs: object) -> object:
        labels.append(str(kwargs.get("desc")))
        return real_bar(*args, **{**kwargs, "enabled": False})  # type: ignore[arg-type]

    monkeypatch.setattr(inversion_training, "progress_bar", recording_bar)
    inversion = NetworkInversion(trained_lenet, input_shape=SHAPE)
    with pytest.warns(UserWarning, match=r"attribute\(\) fits the generator .* call fit\(\)"):
        inversion.attribute(target=0, n_samples=2)
    with pytest.warns(UserWarning, match=r"evaluate\(\) fits"):
        NetworkInversion(trained_lenet, input_shape=SHAPE).evaluate(n_per_class=2)
    assert labels == [
        "NetworkInversion fit (first attribute call)",
        "NetworkInversion fit (first evaluate call)",
    ]
