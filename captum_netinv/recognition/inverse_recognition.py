"""InverseRecognition: a Captum layer attribution labeling neurons with formulas of concepts.

The class wires a model's layer to the search: it streams the inputs through the model, reduces
each neuron's output to one value per sample, and hands the activations to ``explain``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from captum.attr._utils.attribution import LayerAttribution
from captum.concept import Concept
from captum.log import log_usage
from torch import Tensor, nn

from captum_netinv._activations import InputSource, Reduction, layer_activations
from captum_netinv._utils import check_layer_in_model
from captum_netinv.recognition.explain import (
    ConceptBatches,
    ConceptSource,
    concept_labels,
    explain,
)
from captum_netinv.recognition.explanations import Explanations
from captum_netinv.recognition.search import check_search_arguments


class InverseRecognition(LayerAttribution):
    r"""
    Inverse Recognition (INVERT, Bykov et al., NeurIPS 2023, https://arxiv.org/abs/2311.13594)
    labels each neuron of a layer with the logical formula of human concepts (AND, OR, NOT of
    up to ``formula_length`` literals) whose presence its activation separates best: the formula
    maximizing (or minimizing) the AUC ``P(a(x+) > a(x-)) + P(a(x+) = a(x-)) / 2`` between the
    samples where the formula holds and the rest, found by beam search and backed by a
    Mann-Whitney U test. It needs only multi-label concept annotations of the samples, no
    segmentation masks.

    The search is exact and vectorized: each neuron is ranked once and a whole level of the
    beam search, for all neurons and beam entries, is a few matrix products on the model's
    device. A conv channel's activation is its spatial mean by default (``"max"`` or a callable
    via ``neuron_reduction``); linear units and logits are used as they are.
    """

    def __init__(
        self,
        forward_func: Callable[..., Any],
        layer: nn.Module,
        device_ids: list[int] | None = None,
    ) -> None:
        r"""
        Args:
            forward_func (Callable): The model, or a function running it.
            layer (torch.nn.Module): The layer whose neurons are labeled (its output channels /
                        units, or its input with ``attribute_to_layer_input=True``).
            device_ids (list[int], optional): Device IDs of a ``DataParallel`` model run inside
                        ``forward_func``, needed to gather the layer's outputs across devices
                        (not needed when ``forward_func`` is the ``DataParallel`` model).
        """
        check_layer_in_model(forward_func, layer)
        LayerAttribution.__init__(self, forward_func, layer, device_ids)

    @log_usage()
    def attribute(
        self,
        inputs: InputSource | None,
        concepts: ConceptSource,
        neurons: int | Sequence[int] | None = None,
        formula_length: int = 3,
        beam_size: int = 5,
        min_fraction: float = 0.0,
        max_fraction: float = 0.5,
        mode: str = "positive",
        neuron_reduction: Reduction = "mean",
        additional_forward_args: Any = None,
        attribute_to_layer_input: bool = False,
        batch_size: int = 256,
        progress: bool = True,
        concept_names: Sequence[str] | None = None,
        alternative: str | None = None,
    ) -> Explanations:
        r"""
        Args:
            inputs (Tensor, Iterable or None): The samples: a tensor (cut into batches of
                        ``batch_size``) or an iterable of batches such as a ``DataLoader``
                        (tensors or ``(inputs, labels, ...)`` tuples), streamed so that only the
                        reduced activations are kept. None when ``concepts`` is a list of
                        Captum concepts, whose data is used instead.
            concepts (Tensor, ndarray, Mapping or list of Concept): Which concepts each sample
                        shows: an ``(N, C)`` binary matrix (names in ``concept_names``), a
                        mapping name -> ``(N,)`` binary mask, or a list of
                        ``captum.concept.Concept``; then the samples are the concatenation of
                        the concepts' ``data_iter`` batches and each sample shows only its own
                        concept.
            neurons (int or sequence of int, optional): Neurons to label. Default: all.
            formula_length (int, optional): Longest formula, in literals. Default: 3
            beam_size (int, optional): Formulas kept per level of the beam search. Default: 5
            min_fraction (float, optional): Smallest admissible fraction of the samples a
                        formula may hold. Default: 0.0
            max_fraction (float, optional): Largest admissible fraction. Default: 0.5
            mode (str, optional): ``"positive"`` seeks the formula with the highest AUC,
                        ``"negative"`` the one with the lowest. Default: ``"positive"``
            neuron_reduction (str or Callable, optional): How a neuron's output with spatial
                        dimensions becomes one value: ``"mean"``, ``"max"`` or a callable
                        ``(B, ...) -> (B, K)``. Default: ``"mean"``
            additional_forward_args (Any, optional): Extra arguments of ``forward_func``, as in
                        Captum; tensors are sliced with each batch of a tensor ``inputs``.
            attribute_to_layer_input (bool, optional): Label the neurons of the layer's input
                        instead of its output. Default: False
            batch_size (int, optional): Batch size for a tensor ``inputs``. Default: 256
            progress (bool, optional): Show progress bars. Default: True
            concept_names (sequence of str, optional): Names of the columns of a label matrix.
                        Default: ``c0``, ``c1``, ...
            alternative (str, optional): The p-value's test: None for one-sided in the mode's
                        direction, ``"two-sided"``, ``"greater"`` or ``"less"``. Default: None

        Returns:
            :class:`Explanations`: per neuron the best formula with its AUC, p-value, ``z``,
            support and final beam; it keeps the layer's activations and the labels for plots.

        Examples::

            >>> from captum_netinv.data import digit_concepts, load_mnist
            >>> images, labels = load_mnist()
            >>> concepts, names = digit_concepts(images, labels)
            >>> invert = InverseRecognition(model, model.conv2)
            >>> explanations = invert.attribute(images, concepts, concept_names=names)
            >>> print(explanations)
            >>> explanations[3].formula, explanations[3].auc
        """
        settings = check_search_arguments(
            formula_length, beam_size, min_fraction, max_fraction, mode, alternative
        )
        concept_data = _concept_data(inputs, concepts)
        labels: Tensor | np.ndarray | Mapping[str, Any]
        if concept_data is not None:
            if concept_names is not None:
                raise ValueError(
                    "`concept_names` must be None when `concepts` are captum Concepts: their "
                    "names are used"
                )
            source: InputSource = concept_data
        else:
            assert inputs is not None
            labels, names = concept_labels(concepts, concept_names)  # type: ignore[arg-type]
            source = inputs
        activations = layer_activations(
            self.forward_func,
            self.layer,
            source,
            reduction=neuron_reduction,
            additional_forward_args=additional_forward_args,
            attribute_to_layer_input=attribute_to_layer_input,
            device_ids=self.device_ids,
            batch_size=batch_size,
            progress=progress,
        )
        if concept_data is not None:
            labels, names = concept_data.labels(), concept_data.names
        return explain(
            activations,
            labels,
            concept_names=names,
            neurons=neurons,
            settings=settings,
            device=None,
            progress=progress,
            source="inputs",
        )


def _concept_data(inputs: InputSource | None, concepts: ConceptSource) -> ConceptBatches | None:
    """The concepts' data stream when ``concepts`` are captum Concepts, else None."""
    is_concept_list = isinstance(concepts, (list, tuple)) and any(
        isinstance(concept, Concept) for concept in concepts
    )
    if is_concept_list:
        if inputs is not None:
            raise ValueError(
                "`inputs` must be None when `concepts` are captum Concepts: the samples are "
                "the concepts' data"
            )
        return ConceptBatches(concepts)  # type: ignore[arg-type]
    if inputs is None:
        raise ValueError(
            "`inputs` is None: give the samples (tensor or DataLoader) that `concepts` labels, "
            "or pass a list of captum Concepts as `concepts`"
        )
    if isinstance(inputs, Tensor) and inputs.dim() == 0:
        raise ValueError("`inputs` must hold a batch dimension, got a 0-d tensor")
    return None
